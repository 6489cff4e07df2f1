"""Calendar periods in ``QUOTA_TIME_ZONE`` (Asia/Shanghai by default): a day starts at local
midnight, a week on Monday, a month on the 1st."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings


@dataclass(frozen=True, slots=True)
class Period:
    name: str  # "day", "week" or "month"
    start: datetime
    resets_at: datetime


def current(now: datetime) -> list[Period]:
    """Today, this week and this month around ``now`` (aware), in the quota time zone."""
    zone = ZoneInfo(getattr(settings, "QUOTA_TIME_ZONE", "Asia/Shanghai"))
    local = now.astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)

    def aware(value: datetime) -> datetime:
        # Midnight in the zone, built from the date so DST-free arithmetic stays right.
        return datetime(value.year, value.month, value.day, tzinfo=zone)

    return [
        Period("day", aware(day), aware(day + timedelta(days=1))),
        Period("week", aware(week), aware(week + timedelta(days=7))),
        Period("month", aware(month), aware(next_month)),
    ]
