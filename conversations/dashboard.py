"""Staff's usage dashboard: replies aggregated by day, model, group, user and error code.

Reads only. Every figure comes from the assistant rows of ``Message`` (a reply is one row: its
model, status, error code, tokens, charged tokens and cost), joined to the conversation's owner
and, for the figures by group, the owner's groups. Days are calendar days in
``QUOTA_TIME_ZONE``, the zone the quotas count in (docs/governance.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Message

DEFAULT_DAYS = 30
MAX_DAYS = 366
TOP_USERS = 10
MILLIONTH = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class Filters:
    """What the dashboard shows: days ``start`` to ``end`` inclusive, optionally one group, one
    user and one model."""

    start: date
    end: date
    group_id: int | None = None
    user_id: int | None = None
    model: str = ""

    def query(self) -> dict[str, str]:
        """The filters as the query string that reproduces them (for the CSV link)."""
        values = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        if self.group_id is not None:
            values["group"] = str(self.group_id)
        if self.user_id is not None:
            values["user"] = str(self.user_id)
        if self.model:
            values["model"] = self.model
        return values


def zone() -> ZoneInfo:
    return ZoneInfo(str(settings.QUOTA_TIME_ZONE))


def today() -> date:
    return timezone.now().astimezone(zone()).date()


def filters_from(params: Mapping[str, str]) -> tuple[Filters, list[str]]:
    """Filters from a query string; a value that does not parse is dropped and named in the
    second item, so the page shows what it ignored instead of failing."""
    invalid: list[str] = []
    end = _date(params.get("end"), "end", invalid) or today()
    start = _date(params.get("start"), "start", invalid) or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        start, end = end, start
    if (end - start).days >= MAX_DAYS:
        start = end - timedelta(days=MAX_DAYS - 1)
        invalid.append("start")
    return (
        Filters(
            start=start,
            end=end,
            group_id=_int(params.get("group"), "group", invalid),
            user_id=_int(params.get("user"), "user", invalid),
            model=(params.get("model") or "").strip()[:64],
        ),
        invalid,
    )


def _date(value: str | None, name: str, invalid: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        invalid.append(name)
        return None


def _int(value: str | None, name: str, invalid: list[str]) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        invalid.append(name)
        return None
    return number if 0 < number < 2**31 else None


def bounds(filters: Filters) -> tuple[datetime, datetime]:
    """The filters' days as aware datetimes: local midnight of the first day to local midnight
    after the last."""
    tz = zone()
    after = filters.end + timedelta(days=1)
    return (
        datetime(filters.start.year, filters.start.month, filters.start.day, tzinfo=tz),
        datetime(after.year, after.month, after.day, tzinfo=tz),
    )


def replies(filters: Filters) -> QuerySet[Message]:
    """The replies the filters select: assistant rows created within the days."""
    since, until = bounds(filters)
    rows = Message.objects.filter(
        role=Message.Role.ASSISTANT, created_at__gte=since, created_at__lt=until
    )
    if filters.model:
        rows = rows.filter(model=filters.model)
    if filters.user_id is not None:
        rows = rows.filter(conversation__user_id=filters.user_id)
    if filters.group_id is not None:
        members = get_user_model().groups.through.objects.filter(group_id=filters.group_id)
        rows = rows.filter(conversation__user_id__in=members.values("user_id"))
    return rows.order_by()


def _figures() -> dict[str, Any]:
    return {
        "messages": Count("id"),
        "errors": Count("id", filter=Q(status=Message.Status.ERROR)),
        "prompt_tokens": Sum("prompt_tokens"),
        "completion_tokens": Sum("completion_tokens"),
        "tokens": Sum("charged_tokens"),
        "cost_cny": Sum("cost_cny"),
    }


def _clean(row: Mapping[str, Any]) -> dict[str, Any]:
    """Sums of no rows are NULL: zero. Cost as a decimal string exact to a millionth (SQLite sums
    decimals as floats)."""
    out = dict(row)
    for key in ("messages", "errors", "prompt_tokens", "completion_tokens", "tokens"):
        out[key] = int(out.get(key) or 0)
    out["cost_cny"] = str(Decimal(str(out.get("cost_cny") or 0)).quantize(MILLIONTH))
    return out


def by_day(filters: Filters) -> list[dict[str, Any]]:
    """One row per day of the range, days without replies included (as zeros)."""
    rows = (
        replies(filters)
        .annotate(day=TruncDate("created_at", tzinfo=zone()))
        .values("day")
        .annotate(**_figures())
    )
    found = {row["day"]: _clean(row) for row in rows}
    days = []
    day = filters.start
    while day <= filters.end:
        days.append(found.get(day) or _clean({"day": day}))
        days[-1]["day"] = day.isoformat()
        day += timedelta(days=1)
    return days


def by_model(filters: Filters) -> list[dict[str, Any]]:
    rows = replies(filters).values("model").annotate(**_figures()).order_by("-tokens", "model")
    return [_clean(row) for row in rows]


def by_group(filters: Filters) -> list[dict[str, Any]]:
    """Per group of the replies' owners. A user in several groups counts in each; users in no
    group are the row whose ``group`` is ``None``."""
    rows = (
        replies(filters)
        .values(
            group_id=F("conversation__user__groups__id"),
            group=F("conversation__user__groups__name"),
        )
        .annotate(**_figures())
        .order_by("-tokens", "group")
    )
    return [_clean(row) for row in rows]


def top_users(filters: Filters, *, limit: int = TOP_USERS) -> list[dict[str, Any]]:
    username = f"conversation__user__{get_user_model().USERNAME_FIELD}"
    rows = (
        replies(filters)
        .values(user_id=F("conversation__user_id"), username=F(username))
        .annotate(**_figures())
        .order_by("-tokens", "username")[:limit]
    )
    return [_clean(row) for row in rows]


def errors_by_code(filters: Filters) -> list[dict[str, Any]]:
    """Replies that ended with an error code: failures (status ``error``) and interruptions
    (``client_disconnected``, ``worker_lost``), by code."""
    rows = (
        replies(filters)
        .exclude(error_code="")
        .values("error_code", "status")
        .annotate(count=Count("id"))
        .order_by("-count", "error_code")
    )
    return [
        {"error_code": r["error_code"], "status": r["status"], "count": r["count"]} for r in rows
    ]


def totals(filters: Filters) -> dict[str, Any]:
    return _clean(replies(filters).aggregate(**_figures()))


def usage_dashboard(filters: Filters) -> dict[str, Any]:
    """Everything the dashboard draws, for the filters."""
    return {
        "time_zone": str(settings.QUOTA_TIME_ZONE),
        "filters": filters.query(),
        "totals": totals(filters),
        "days": by_day(filters),
        "models": by_model(filters),
        "groups": by_group(filters),
        "users": top_users(filters),
        "errors": errors_by_code(filters),
    }


CSV_HEADER = [
    "day",
    "user_id",
    "username",
    "model",
    "messages",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "cost_cny",
]


def csv_rows(filters: Filters, *, chunk_size: int = 2000) -> Iterator[list[Any]]:
    """The export: one row per day, user and model, read from the database in chunks."""
    username = f"conversation__user__{get_user_model().USERNAME_FIELD}"
    rows = (
        replies(filters)
        .annotate(day=TruncDate("created_at", tzinfo=zone()))
        .values("day", user_id=F("conversation__user_id"), username=F(username), model_=F("model"))
        .annotate(**_figures())
        .order_by("day", "username", "model_")
    )
    for row in rows.iterator(chunk_size=chunk_size):
        clean = _clean(row)
        yield [
            clean["day"].isoformat(),
            clean["user_id"],
            clean["username"],
            clean["model_"],
            *(clean[key] for key in CSV_HEADER[4:]),
        ]
