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
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import Conversation, Message

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
    """Everything the dashboard draws, for the filters.

    On PostgreSQL in one pass over the replies (``GROUPING SETS``), which keeps the page within a
    second on a million replies (bench/dashboard.py); elsewhere (SQLite) one query per figure.
    """
    if connection.vendor == "postgresql":
        return _one_pass(filters)
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


_SETS = ("day", "model", "user", "error")


# The PostgreSQL page in one statement; ``{messages}``, ``{conversations}`` are quoted table names
# and ``{where}`` fixed conditions with ``%s`` parameters (filled by the function below).
_GROUPING_SQL = """
        SELECT GROUPING(day), GROUPING(model), GROUPING(user_id), GROUPING(error_code, status),
               day, model, user_id, error_code, status,
               COUNT(*), COUNT(*) FILTER (WHERE status = %s),
               SUM(prompt_tokens), SUM(completion_tokens), SUM(charged_tokens), SUM(cost_cny)
        FROM (SELECT (m.created_at AT TIME ZONE %s)::date AS day, m.model, c.user_id,
                     m.error_code, m.status, m.prompt_tokens, m.completion_tokens,
                     m.charged_tokens, m.cost_cny
              FROM {messages} m
              JOIN {conversations} c ON c.id = m.conversation_id
              WHERE {where}) AS r
        GROUP BY GROUPING SETS ((day), (model), (user_id), (error_code, status))
    """


def one_pass_sql(filters: Filters) -> tuple[str, list[Any]]:
    """The statement of ``_one_pass`` and its parameters (PostgreSQL only)."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    since, until = bounds(filters)
    where = ["m.role = %s", "m.created_at >= %s", "m.created_at < %s"]
    # In the order of the text: the FILTER's status, the zone, then the WHERE clause's values.
    params: list[Any] = [
        Message.Status.ERROR,
        str(settings.QUOTA_TIME_ZONE),
        Message.Role.ASSISTANT,
        since,
        until,
    ]
    if filters.model:
        where.append("m.model = %s")
        params.append(filters.model)
    if filters.user_id is not None:
        where.append("c.user_id = %s")
        params.append(filters.user_id)
    if filters.group_id is not None:
        members = quote(user_model.groups.through._meta.db_table)
        where.append(f"c.user_id IN (SELECT user_id FROM {members} WHERE group_id = %s)")  # noqa: S608  # nosec B608 - a quoted table name; the value is a parameter
        params.append(filters.group_id)
    sql = _GROUPING_SQL.format(  # nosec B608 - quoted table names; every value is a parameter
        messages=quote(Message._meta.db_table),
        conversations=quote(Conversation._meta.db_table),
        where=" AND ".join(where),
    )
    return sql, params


def _one_pass(filters: Filters) -> dict[str, Any]:
    """``usage_dashboard`` in one statement: the replies are read once (an index-only scan of
    ``msg_reply_usage``, migration 0006) and summed by day, by model, by owner and by error code
    at once. Totals are the days' sums; groups and the top users are folded from the owners'
    sums, so no query joins the groups to a million rows."""
    sql, params = one_pass_sql(filters)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in _SETS}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            grouped = row[:4]
            figures = dict(
                zip(
                    (
                        "messages",
                        "errors",
                        "prompt_tokens",
                        "completion_tokens",
                        "tokens",
                        "cost_cny",
                    ),
                    row[9:],
                    strict=True,
                )
            )
            name = _SETS[list(grouped).index(0)]
            key = {"day": row[4], "model": row[5], "user": row[6], "error": (row[7], row[8])}
            found[name].append({"key": key[name], **figures})
    return {
        "time_zone": str(settings.QUOTA_TIME_ZONE),
        "filters": filters.query(),
        **_fold(filters, found),
    }


def _fold(filters: Filters, found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    user_model = get_user_model()
    day_rows = {row["key"]: row for row in found["day"]}
    days = []
    day = filters.start
    while day <= filters.end:
        days.append(_clean({**day_rows.get(day, {}), "day": day.isoformat()}))
        days[-1].pop("key", None)
        day += timedelta(days=1)
    total = _clean(
        {
            key: sum(Decimal(str(row[key] or 0)) for row in found["day"])
            for key in (
                "messages",
                "errors",
                "prompt_tokens",
                "completion_tokens",
                "tokens",
                "cost_cny",
            )
        }
    )
    models = sorted(
        (_clean({"model": row.pop("key"), **row}) for row in found["model"]),
        key=lambda r: (-r["tokens"], r["model"]),
    )
    owners = {row.pop("key"): _clean(row) for row in found["user"]}
    memberships: dict[Any, list[tuple[int | None, str | None]]] = {}
    through = user_model.groups.through.objects.filter(user_id__in=list(owners))
    for user_id, group_id, name in through.values_list("user_id", "group_id", "group__name"):
        memberships.setdefault(user_id, []).append((group_id, name))
    groups: dict[Any, dict[str, Any]] = {}
    keys = ("messages", "errors", "prompt_tokens", "completion_tokens", "tokens")
    for user_id, sums in owners.items():
        for in_group, group_name in memberships.get(user_id) or [(None, None)]:
            into = groups.setdefault(
                in_group,
                {
                    "group_id": in_group,
                    "group": group_name,
                    "cost": Decimal(0),
                    **dict.fromkeys(keys, 0),
                },
            )
            for key in keys:
                into[key] += sums[key]
            into["cost"] += Decimal(sums["cost_cny"])
    group_rows = sorted(
        (_clean({**g, "cost_cny": g.pop("cost")}) for g in groups.values()),
        key=lambda r: (-r["tokens"], r["group"] or ""),
    )
    names = (
        dict(
            user_model._default_manager.filter(pk__in=list(owners)).values_list(
                "pk", user_model.USERNAME_FIELD
            )
        )
        if owners
        else {}
    )
    users = sorted(
        ({"user_id": uid, "username": names.get(uid, ""), **sums} for uid, sums in owners.items()),
        key=lambda r: (-r["tokens"], r["username"]),
    )[:TOP_USERS]
    errors = sorted(
        (
            {"error_code": row["key"][0], "status": row["key"][1], "count": row["messages"]}
            for row in found["error"]
            if row["key"][0]
        ),
        key=lambda r: (-r["count"], r["error_code"]),
    )
    return {
        "totals": total,
        "days": days,
        "models": models,
        "groups": group_rows,
        "users": users,
        "errors": errors,
    }
