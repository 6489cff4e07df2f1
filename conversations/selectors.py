"""Reads: conversations and messages, always scoped to their owner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
    prefetch_related_objects,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from attachments import services as attachments
from attachments.models import AttachmentUse
from chatsite import tokens
from chatsite.errors import NotFound, UserInactive
from governance import periods as calendar
from governance import policy as policies
from governance.models import KINDS

from . import catalog
from .llm.base import ChatMessage
from .llm.exceptions import LLMNotConfigured
from .models import Conversation, FeedbackReason, Message

# Used by the history trimmer: a token is never fewer than this many characters of any script,
# so a message whose running character total is past CHARS_PER_TOKEN_MAX x budget cannot fit.
# The token estimate lives in chatsite/tokens.py (attachments use it too); known here by its name.
CHARS_PER_TOKEN_MAX = tokens.CHARS_PER_TOKEN_MAX
estimate_tokens = tokens.estimate_tokens
MESSAGE_OVERHEAD_TOKENS = 4


def any_model_configured() -> bool:
    models = catalog.current()
    return any(models.is_configured(model_id) for model_id in models.models)


def model_data(info: Any, *, configured: bool) -> dict[str, Any]:
    """A model as ``GET /api/models/`` lists it."""
    return {
        "id": info.id,
        "label": info.label,
        "provider": info.provider,
        "provider_label": info.provider_label,
        "dialect": info.dialect,
        "context_window": info.context_window,
        "max_tokens": info.max_tokens,
        "max_output": info.max_tokens,
        "default": info.default,
        "capabilities": {
            "reasoning": info.reasoning,
            "reasoning_switch": info.reasoning_switch,
            "web_search": info.web_search,
            "vision": info.vision,
            "temperature": {
                "min": info.temperature_min,
                "max": info.temperature_max,
                "default": info.temperature_default,
            },
        },
        "configured": configured,
    }


def model_list(*, user_id: Any = None) -> list[dict[str, Any]]:
    """The models on offer to the user (their group's), each saying whether it has a key;
    ``LLMNotConfigured`` if none has."""
    models = catalog.current()
    policy = policies.for_user(user_id) if user_id is not None else None
    listed = [
        model_data(info, configured=models.is_configured(info.id))
        for info in models.models.values()
        if policy is None or policy.allows(info.id)
    ]
    if not any(item["configured"] for item in listed):
        raise LLMNotConfigured()
    default = models.default_model()
    if policy is not None and not policy.allows(default) and listed:
        default = listed[0]["id"]
    for item in listed:
        item["default"] = item["id"] == default
    return listed


def conversation_list(*, user_id: Any, search: str = "") -> QuerySet[Conversation]:
    """The user's conversations, newest first; none for an inactive user (see ``user_check``)."""
    conversations = Conversation.objects.filter(
        user_id=user_id, user__is_active=True, deleted_at__isnull=True
    )
    search = search.strip()
    if search:
        matching_messages = Message.objects.filter(
            conversation=OuterRef("pk"), replaced=False, content__icontains=search
        )
        conversations = conversations.filter(Q(title__icontains=search) | Exists(matching_messages))
    return conversations.order_by("-updated_at", "-id")


def user_check(*, user_id: Any) -> None:
    """Raise ``UserInactive`` unless the user exists and is active."""
    active = User.objects.filter(pk=user_id).values_list("is_active", flat=True).first()
    if active is None:
        raise UserInactive("User not found.", code="user_not_found")
    if not active:
        raise UserInactive()


def conversation_get(
    *, user_id: Any, conversation_id: UUID | str, with_message_count: bool = False
) -> Conversation:
    """The user's conversation, in one query that also checks the user is still active.

    Raises ``NotFound`` for a conversation that does not exist, is another user's (the API
    answers 404, never 403) or was deleted (kept for review only: docs/review.md), and
    ``UserInactive`` when the user was deactivated.
    ``with_message_count`` adds ``message_count`` (visible messages) in the same query.
    """
    conversations = Conversation.objects.filter(user_id=user_id, deleted_at__isnull=True).annotate(
        owner_active=F("user__is_active")
    )
    if with_message_count:
        conversations = conversations.annotate(message_count=_visible_message_count())
    try:
        conversation = conversations.get(pk=conversation_id)
    except (Conversation.DoesNotExist, ValidationError):
        # A deleted user's conversations are gone too: answer that as the token's problem (401),
        # like a deactivated user's, before the 404. Only this rare path pays the query.
        user_check(user_id=user_id)
        raise NotFound("Conversation not found.") from None
    if not conversation.owner_active:
        raise UserInactive()
    return conversation


def _per_conversation() -> QuerySet[Message, Any]:
    return Message.objects.filter(conversation=OuterRef("pk")).order_by().values("conversation")


def _visible_message_count() -> Coalesce:
    """A subquery: the conversation's messages, replaced replies left out."""
    visible = _per_conversation().filter(replaced=False).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(visible, output_field=IntegerField()), 0)


def message_list(
    *,
    conversation: Conversation,
    after: int | None = None,
    before: int | None = None,
    latest: bool = False,
    limit: int = 50,
    offset: int = 0,
    every_branch: bool = False,
) -> tuple[list[Message], bool]:
    """A page of visible messages, oldest first, and whether more lie beyond the page.

    Keyset pagination on ``seq`` (one query whatever the conversation's length); ``offset``
    serves page-numbered clients, oldest first.
    """
    # Each message's feedback comes in the same query (a LEFT JOIN on a unique key), so building
    # the message objects (shapes.message_data) costs no query per message.
    # Whether each message was sent with files rides along (an EXISTS); only a page holding such
    # messages pays a query for them (below), so a page without files stays one query.
    messages = (
        Message.objects.filter(conversation=conversation)
        .select_related("feedback")
        .annotate(has_files=Exists(AttachmentUse.objects.filter(message_id=OuterRef("pk"))))
    )
    if not every_branch:  # the active branch (conversations/branches.py)
        messages = messages.filter(replaced=False)
    if offset:
        page = list(messages.order_by("seq")[offset : offset + limit + 1])
        return _with_files(page[:limit]), len(page) > limit
    if after is not None:
        messages = messages.filter(seq__gt=after)
    if before is not None:
        messages = messages.filter(seq__lt=before)
    if before is not None or latest:
        page = list(messages.order_by("-seq")[: limit + 1])
        more = len(page) > limit
        return _with_files(list(reversed(page[:limit]))), more
    page = list(messages.order_by("seq")[: limit + 1])
    return _with_files(page[:limit]), len(page) > limit


def _with_files(page: Sequence[Message]) -> list[Message]:
    """Load the files of the page's messages that were sent with some (one query, if any)."""
    sent = [m for m in page if getattr(m, "has_files", False)]
    if sent:
        prefetch_related_objects(
            sent,
            Prefetch(
                "attachment_uses",
                queryset=AttachmentUse.objects.select_related("attachment").order_by("position"),
            ),
        )
    return list(page)


def feedback_message_get(*, user_id: Any, message_id: UUID | str) -> Message:
    """One of the user's messages, to rate: with its feedback (if any) loaded.

    Raises ``NotFound``, as ``conversation_get`` does, for a message that does not exist, is
    another user's, belongs to a conversation its owner deleted or was replaced by a regenerated
    reply (none of which the API shows), and ``UserInactive`` when the user was deactivated.
    """
    messages = (
        Message.objects.filter(
            conversation__user_id=user_id,
            conversation__deleted_at__isnull=True,
            replaced=False,
        )
        .select_related("feedback")
        .annotate(owner_active=F("conversation__user__is_active"))
    )
    try:
        message = messages.get(pk=message_id)
    except (Message.DoesNotExist, ValidationError):
        user_check(user_id=user_id)
        raise NotFound("Message not found.") from None
    if not message.owner_active:
        raise UserInactive()
    return message


def feedback_reasons() -> list[FeedbackReason]:
    """The reasons on offer (enabled), in their order."""
    return list(FeedbackReason.objects.filter(enabled=True).order_by("order", "code"))


def feedback_reason_list(*, language: str | None) -> list[dict[str, str]]:
    """The enabled reasons as ``GET /api/feedback/reasons/`` and the chat page show them: the
    Chinese label when the language is Chinese and the reason has one."""
    chinese = (language or "").lower().startswith("zh")
    return [
        {
            "code": reason.code,
            "label": reason.label_zh if chinese and reason.label_zh else reason.label,
            "rating": reason.rating,
        }
        for reason in feedback_reasons()
    ]


@dataclass(frozen=True, slots=True)
class TurnState:
    last_seq: int  # the conversation's last seq, 0 when empty
    leaf_id: UUID | None  # the active branch's last message (conversations/branches.py)
    streaming: int  # its replies still being written
    user_active: bool  # whether the owner may still use the site
    recent_replies: int  # replies the owner started since ``since``, counted up to ``limit``


def turn_state(*, conversation: Conversation, since: datetime, limit: int) -> TurnState:
    """What a new turn must know, read inside its write transaction in one statement.

    Hand-written, since building the equivalent ORM aggregates cost more than running them. The
    rate count only looks at conversations updated since ``since`` (every turn touches its
    conversation's ``updated_at``), so the index on (user, updated_at) bounds it for a user with
    thousands of conversations.
    """
    messages = connection.ops.quote_name(Message._meta.db_table)
    conversations = connection.ops.quote_name(Conversation._meta.db_table)
    users = connection.ops.quote_name(User._meta.db_table)
    conversation_id = Message._meta.get_field("conversation").get_db_prep_value(
        conversation.pk, connection
    )
    since_value = connection.ops.adapt_datetimefield_value(since)
    # Only quoted table names and the constant status are interpolated; every value from outside
    # is a parameter. The status is written as a literal so that the database can use the partial
    # index of replies in flight (msg_streaming_conv), which a bound parameter would not match.
    streaming_literal = f"'{Message.Status.STREAMING.value}'"
    sql = (
        "SELECT"  # noqa: S608  # nosec B608 - values are parameters
        f" (SELECT MAX(seq) FROM {messages} WHERE conversation_id = %s),"
        f" (SELECT id FROM {messages} WHERE conversation_id = %s AND replaced = %s"
        "   ORDER BY seq DESC LIMIT 1),"
        f" (SELECT COUNT(*) FROM {messages} WHERE conversation_id = %s"
        f"   AND status = {streaming_literal} AND replaced = %s),"
        f" (SELECT is_active FROM {users} WHERE id = %s),"
        # Counting stops at ``limit``: whether the limit is reached is all the turn needs to know.
        f" (SELECT COUNT(*) FROM (SELECT 1 FROM {messages} m JOIN {conversations} c"
        "   ON m.conversation_id = c.id"
        "   WHERE c.user_id = %s AND c.updated_at >= %s AND m.role = %s AND m.created_at >= %s"
        "   LIMIT %s) AS recent)"
    )
    params = [
        conversation_id,
        conversation_id,
        False,
        conversation_id,
        False,
        conversation.user_id,
        conversation.user_id,
        since_value,
        Message.Role.ASSISTANT,
        since_value,
        limit,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        last_seq, leaf, streaming, active, recent = cursor.fetchone()
    return TurnState(
        last_seq=last_seq or 0,
        leaf_id=None if leaf is None else _message_id(leaf),
        streaming=streaming or 0,
        user_active=bool(active),
        recent_replies=recent or 0,
    )


@dataclass(frozen=True, slots=True)
class Used:
    messages: int
    tokens: int  # charged, plus what replies in flight hold
    cost_cny: Decimal
    prompt_tokens: int
    completion_tokens: int


_USAGE_KINDS = ("messages", "tokens", "cost_cny", "prompt_tokens", "completion_tokens")


def usage_since(
    *,
    user_id: Any,
    starts: dict[str, datetime],
    tokens_of: Conversation | None = None,
    kinds: dict[str, set[str]] | None = None,
) -> tuple[dict[str, Used], int]:
    """What the user used since each start (``{"day": ..., "week": ..., "month": ...}``), in one
    statement: replies that failed upstream count nothing; a reply in flight counts what it holds.
    With ``tokens_of``, the same statement also sums that conversation's token estimates (the
    prompt a new turn may send), returned second (0 without).

    Every reply touches its conversation's ``updated_at``, so only conversations updated since the
    earliest start are joined (the index on (user, updated_at) bounds it): pass only the periods
    that have a limit. ``kinds`` narrows what is summed for each period (``{"day":
    {"messages"}}``: only the day's message count; the rest reads 0): each sum costs a pass of
    CASE expressions over the rows.
    """
    messages = connection.ops.quote_name(Message._meta.db_table)
    conversations = connection.ops.quote_name(Conversation._meta.db_table)
    earliest = min(starts.values())
    names = list(starts)
    columns = []
    params: list[Any] = []
    streaming = f"'{Message.Status.STREAMING.value}'"
    expressions = {
        "messages": "1",
        "tokens": f"CASE WHEN m.status = {streaming} THEN COALESCE(m.held_tokens, 0)"
        " ELSE COALESCE(m.charged_tokens, 0) END",
        "cost_cny": f"CASE WHEN m.status = {streaming} THEN COALESCE(m.held_cost_cny, 0)"
        " ELSE COALESCE(m.cost_cny, 0) END",
        "prompt_tokens": "COALESCE(m.prompt_tokens, 0)",
        "completion_tokens": "COALESCE(m.completion_tokens, 0)",
    }
    for name in names:
        since = connection.ops.adapt_datetimefield_value(starts[name])
        wanted = kinds.get(name, set()) if kinds is not None else set(_USAGE_KINDS)
        for kind in _USAGE_KINDS:
            if kind in wanted:
                columns.append(
                    f"SUM(CASE WHEN m.created_at >= %s THEN {expressions[kind]} ELSE 0 END)"
                )
                params.append(since)
            else:
                columns.append("0")
    if tokens_of is not None:
        columns.append(
            f"(SELECT COALESCE(SUM(token_estimate), 0) FROM {messages}"  # noqa: S608  # nosec B608 - quoted names; values are parameters
            " WHERE conversation_id = %s AND replaced = %s)"
        )
        params += [
            Message._meta.get_field("conversation").get_db_prep_value(tokens_of.pk, connection),
            False,
        ]
    earliest_value = connection.ops.adapt_datetimefield_value(earliest)
    sql = (
        f"SELECT {', '.join(columns)} FROM {messages} m"  # noqa: S608  # nosec B608 - quoted names; values are parameters
        f" JOIN {conversations} c ON m.conversation_id = c.id"
        " WHERE c.user_id = %s AND c.updated_at >= %s AND m.role = %s AND m.created_at >= %s"
        " AND m.status <> %s"
    )
    params += [
        user_id,
        earliest_value,
        Message.Role.ASSISTANT,
        earliest_value,
        Message.Status.ERROR,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone() or ()
    used = {}
    for index, name in enumerate(names):
        values = row[index * 5 : index * 5 + 5] if row else (0,) * 5
        used[name] = Used(
            messages=int(values[0] or 0),
            tokens=int(values[1] or 0),
            # SQLite sums decimals as floats: back to a millionth of a yuan.
            cost_cny=Decimal(str(values[2] or 0)).quantize(Decimal("0.000001")),
            prompt_tokens=int(values[3] or 0),
            completion_tokens=int(values[4] or 0),
        )
    tokens = int(row[-1] or 0) if tokens_of is not None and row else 0
    return used, tokens


def usage_report(*, user_id: Any, now: datetime | None = None) -> dict[str, Any]:
    """``GET /api/usage/``: each period's start, reset, use, limits and what remains."""
    now = now or timezone.now()
    policy = policies.for_user(user_id)
    periods = calendar.current(now)
    used, _ = usage_since(user_id=user_id, starts={p.name: p.start for p in periods})
    report: dict[str, Any] = {"time_zone": str(settings.QUOTA_TIME_ZONE)}
    for period in periods:
        spent = used[period.name]
        limits = {kind: policy.limits[f"{period.name}_{kind}"] for kind in KINDS}
        amounts: dict[str, Any] = {
            "messages": spent.messages,
            "tokens": spent.tokens,
            "cost_cny": spent.cost_cny,
        }
        remaining = {
            kind: None if limit is None else max(limit - amounts[kind], 0)
            for kind, limit in limits.items()
        }
        report[period.name] = {
            "start": period.start.isoformat(),
            "resets_at": period.resets_at.isoformat(),
            "used": {
                "messages": spent.messages,
                "prompt_tokens": spent.prompt_tokens,
                "completion_tokens": spent.completion_tokens,
                "tokens": spent.tokens,
                "cost_cny": str(spent.cost_cny),
            },
            "limits": {k: _decimal_text(v) for k, v in limits.items()},
            "remaining": {k: _decimal_text(v) for k, v in remaining.items()},
        }
    return report


def _decimal_text(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def oldest_reply_since(*, user_id: Any, since: datetime) -> datetime | None:
    """When the oldest of the user's replies since ``since`` started (for ``Retry-After``)."""
    return (
        Message.objects.filter(
            conversation__user_id=user_id,
            conversation__updated_at__gte=since,
            role=Message.Role.ASSISTANT,
            created_at__gte=since,
        )
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def _history_rows(
    *,
    conversation: Conversation,
    char_budget: int,
    up_to_seq: int | None,
    oldest_seq: int | None,
    with_reasoning: bool = False,
) -> list[tuple[str, str, int | None, str, Any, bool]]:
    """(role, content, token estimate, reasoning, id, sent with files) of the messages that may go
    to the model, newest first, in one query. The reasoning is read only ``with_reasoning``
    ("" otherwise).

    A window function keeps only rows whose newer rows hold at most ``char_budget`` characters.
    Written as SQL because building this query through the ORM cost more (about 5 ms a reply)
    than running it; the statement is portable between SQLite and PostgreSQL.
    """
    table = connection.ops.quote_name(Message._meta.db_table)
    conversation_id = Message._meta.get_field("conversation").get_db_prep_value(
        conversation.pk, connection
    )
    params: list[Any] = [
        conversation_id,
        False,
        Message.Role.USER,
        Message.Role.ASSISTANT,
        Message.Status.COMPLETE,
        Message.Status.INTERRUPTED,
    ]
    bounds = ""
    if up_to_seq is not None:
        bounds += " AND seq <= %s"
        params.append(up_to_seq)
    if oldest_seq is not None:
        bounds += " AND seq > %s"
        params.append(oldest_seq)
    params.append(char_budget)
    # Only the quoted table name and fixed clauses are interpolated; every value is a parameter.
    reasoning = "reasoning" if with_reasoning else "''"
    # Whether a kept message was sent with files: asked of the few rows returned only, so a
    # conversation without files still costs one query (docs/attachments.md).
    uses = connection.ops.quote_name(AttachmentUse._meta.db_table)
    sql = (
        f"SELECT role, content, token_estimate, {reasoning}, id,"  # noqa: S608  # nosec B608 - values are parameters
        f" EXISTS (SELECT 1 FROM {uses} WHERE {uses}.message_id = newest.id) FROM ("
        " SELECT role, content, token_estimate, reasoning, seq, id,"
        " SUM(LENGTH(content)) OVER (ORDER BY seq DESC) - LENGTH(content) AS chars_after"
        f" FROM {table}"
        " WHERE conversation_id = %s AND replaced = %s"
        " AND (role = %s OR (role = %s AND status IN (%s, %s)))"
        f"{bounds}"
        ") AS newest WHERE chars_after <= %s ORDER BY seq DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def message_history_for_model(
    *,
    conversation: Conversation,
    budget_tokens: int,
    up_to_seq: int | None = None,
    with_reasoning: bool = False,
) -> list[ChatMessage]:
    """The history to send: system prompt, then alternating turns ending with the user's.

    Failed, replaced and empty assistant messages are skipped (Spark rejects empty content, and a
    failed reply is not part of the conversation), and so is the question such a reply answered;
    the oldest turns are dropped to fit
    ``budget_tokens``. One query, whatever the conversation's length: a window function keeps only
    the newest rows whose characters could fit. ``with_reasoning`` keeps the replies' reasoning
    for the dialects that want it back (Kimi); it counts against the budget then.
    """
    system = conversation.system_prompt.strip()
    budget = budget_tokens - (estimate_tokens(system) + MESSAGE_OVERHEAD_TOKENS if system else 0)

    newest_first = _history_rows(
        conversation=conversation,
        char_budget=max(budget, 0) * CHARS_PER_TOKEN_MAX,
        up_to_seq=up_to_seq,
        with_reasoning=with_reasoning,
        oldest_seq=(
            # Every kept message costs at least MESSAGE_OVERHEAD_TOKENS + 1 tokens, so no more
            # than budget / 5 fit: a seq range half as large again leaves room for skipped
            # (failed, replaced) messages and spares the window function the rest of the rows.
            up_to_seq - 3 * (max(budget, 0) // (MESSAGE_OVERHEAD_TOKENS + 1)) // 2
            if up_to_seq is not None
            else None
        ),
    )

    # Newest first: take turns while they fit, always keeping the newest user message. Spark wants
    # alternating turns: a question followed by another question got no usable reply (it failed,
    # or stopped before any text), so it is left out with its failed reply. Merging it into the
    # next question would resend a refused input (10013, 10907...) with every later message.
    turns: list[tuple[str, str, str, Any]] = []
    used = 0
    for role, content, estimate, reasoning, message_id, with_files in newest_first:
        text = content.strip()
        if not text or (turns and turns[-1][0] == role):
            continue
        cost = (
            estimate if estimate is not None else estimate_tokens(text)
        ) + MESSAGE_OVERHEAD_TOKENS
        if reasoning:
            cost += estimate_tokens(reasoning)
        if turns and used + cost > budget:
            break
        used += cost
        turns.append((role, text, reasoning, message_id if with_files else None))
    turns.reverse()

    # Drop a leading or trailing assistant: the turns start and end with the user.
    while turns and turns[0][0] != Message.Role.USER:
        turns.pop(0)
    while turns and turns[-1][0] != Message.Role.USER:
        turns.pop()

    # Files sent with the user's messages (docs/attachments.md): one query for the turns kept.
    # A message's token estimate already counts its files, so the trimming above saw them.
    sent = [_message_id(m) for role, _, _, m in turns if role == Message.Role.USER and m]
    files = attachments.sent_with(sent) if sent else {}
    if files and system:
        system = f"{system}\n\n{attachments.FILES_NOTE}"
    elif files:
        system = attachments.FILES_NOTE
    history = [ChatMessage("system", system)] if system else []
    for role, text, reasoning, message_id in turns:
        its_files = files.get(_message_id(message_id)) if message_id else None
        if its_files is None:
            history.append(ChatMessage(role, text, reasoning))
        else:
            content = f"{its_files.blocks}\n\n{text}" if its_files.blocks else text
            history.append(ChatMessage(role, content, reasoning, images=its_files.images))
    return history


def _message_id(raw: Any) -> UUID:
    """A message id as the raw query returns it (SQLite: 32 hex digits; PostgreSQL: a UUID)."""
    return raw if isinstance(raw, UUID) else UUID(str(raw))


def conversation_stats() -> QuerySet[Conversation]:
    """Conversations annotated for the admin changelist.

    Subqueries, not joins: admin search over ``messages__content`` joins the messages again, and
    aggregates over that join would count each message once per matching message.
    """
    per_conversation = _per_conversation()
    return Conversation.objects.annotate(
        message_count=_visible_message_count(),
        tokens_total=Subquery(
            per_conversation.annotate(n=Sum("total_tokens")).values("n"),
            output_field=IntegerField(),
        ),
        last_activity=Subquery(per_conversation.annotate(m=Max("created_at")).values("m")),
    )
