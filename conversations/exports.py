"""Transcripts exported as a stream of text: JSON, Markdown and CSV (one row per message).

Each generator takes a queryset of conversations (the admin changelist's, filters and search
applied; conversations/admin_export.py) and yields text chunks of about ``CHUNK_CHARS``, never the
whole export: memory stays flat whatever the number of conversations.

How: the conversations are read in keyset-paginated batches of ``BATCH`` by primary key (each
batch one query for its ids, with the queryset's own filters, and one for the rows and their
owners), and each batch's messages in one query ordered by (conversation, seq), read with
``.iterator()``. The conversations of a batch and its messages come in the same order, that of the
conversation's id in the database, so the two are walked side by side: no query per conversation,
and no more than a batch of conversations and a chunk of messages held at once. The export is in
the order of the conversations' ids, not the changelist's sort.

The JSON is one array; each conversation as the API shows it (``shapes.conversation_data``) plus
its ``owner``, ``deleted_at`` and ``legal_hold``, and its ``messages`` as the API shows them
(``shapes.message_data``) plus ``replaced`` (a regenerated reply, kept for review).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from .models import Conversation, Message
from .shapes import conversation_data, message_data, timestamp

BATCH = 500
MESSAGE_CHUNK = 2000
CHUNK_CHARS = 64 * 1024

CSV_HEADER = [
    "conversation_id",
    "title",
    "owner",
    "conversation_model",
    "deleted_at",
    "seq",
    "role",
    "status",
    "model",
    "provider",
    "error_code",
    "sid",
    "total_tokens",
    "cost_cny",
    "ttft_ms",
    "duration_ms",
    "replaced",
    "created_at",
    "content",
]

# A cell a spreadsheet would run as a formula (CSV injection, OWASP): these first characters.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def batches(
    queryset: QuerySet[Conversation], batch_size: int = BATCH
) -> Iterator[list[Conversation]]:
    """The queryset's conversations, ``batch_size`` at a time, in the order of their ids.

    Each batch: the next ids after the last one (the queryset's filters, its annotations left
    out), then those conversations with their owners."""
    ids = queryset.order_by("pk").values_list("pk", flat=True)
    last = None
    while True:
        page = ids if last is None else ids.filter(pk__gt=last)
        keys = list(page[:batch_size])
        if not keys:
            return
        yield list(Conversation.objects.filter(pk__in=keys).select_related("user").order_by("pk"))
        if len(keys) < batch_size:
            return
        last = keys[-1]


class _Messages:
    """A batch's messages, ordered by (conversation, seq), handed out one conversation at a time:
    at most one message read ahead."""

    def __init__(self, rows: Iterator[Message]) -> None:
        self.rows = rows
        self.ahead: Message | None = None

    def _next(self) -> Message | None:
        message, self.ahead = self.ahead, None
        return message if message is not None else next(self.rows, None)

    def of(self, key: Any) -> Iterator[Message]:
        """The messages of conversation ``key``, the next in the batch's order."""
        while (message := self._next()) is not None:
            if message.conversation_id != key:
                self.ahead = message
                return
            yield message

    def left(self) -> Message | None:
        return self._next()


def transcripts(
    queryset: QuerySet[Conversation], batch_size: int = BATCH
) -> Iterator[tuple[Conversation, Iterator[Message]]]:
    """Each conversation with an iterator of its messages in order (replaced ones included).

    A conversation's messages are read (or not) before the next conversation is asked for; what
    is left unread is skipped."""
    for batch in batches(queryset, batch_size):
        messages = _Messages(
            Message.objects.filter(conversation_id__in=[c.pk for c in batch])
            .order_by("conversation_id", "seq")
            .iterator(chunk_size=MESSAGE_CHUNK)
        )
        for conversation in batch:
            walk = messages.of(conversation.pk)
            yield conversation, walk
            for _unread in walk:
                pass
        # Both queries order by the conversation's id in the database: every message has been
        # matched to its conversation by now.
        leftover = messages.left()
        if leftover is not None:
            raise RuntimeError(
                f"message {leftover.pk} of conversation {leftover.conversation_id} came out of "
                "the order of its batch"
            )


def conversation_record(conversation: Conversation) -> dict[str, Any]:
    """A conversation's fields in the export, without its messages."""
    return {
        **conversation_data(conversation),
        "owner": conversation.user.get_username(),
        "deleted_at": None
        if conversation.deleted_at is None
        else timestamp(conversation.deleted_at),
        "legal_hold": conversation.legal_hold,
    }


def message_record(message: Message) -> dict[str, Any]:
    return {**message_data(message), "replaced": message.replaced}


def _chunked(pieces: Iterable[str], size: int = CHUNK_CHARS) -> Iterator[str]:
    """Small pieces of text joined into chunks of about ``size`` characters."""
    buffer: list[str] = []
    length = 0
    for piece in pieces:
        buffer.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(buffer)
            buffer.clear()
            length = 0
    if buffer:
        yield "".join(buffer)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _json_pieces(queryset: QuerySet[Conversation]) -> Iterator[str]:
    yield "["
    first = True
    for conversation, messages in transcripts(queryset):
        head = _dumps(conversation_record(conversation))
        # The object without its closing brace, then its messages one by one.
        yield ("\n" if first else ",\n") + head[:-1] + ', "messages": ['
        first = False
        separator = ""
        for message in messages:
            yield separator + _dumps(message_record(message))
            separator = ", "
        yield "]}"
    yield "\n]\n"


def json_chunks(queryset: QuerySet[Conversation]) -> Iterator[str]:
    """One JSON array of the conversations, each with its owner and messages."""
    return _chunked(_json_pieces(queryset))


def _markdown_head(record: dict[str, Any]) -> list[str]:
    lines = [
        f"# {record['title'] or record['id']}",
        "",
        f"- id: {record['id']}",
        f"- owner: {record['owner']}",
        f"- model: {record['model']}",
        f"- created: {record['created_at']}",
    ]
    if record["deleted_at"]:
        lines.append(f"- deleted: {record['deleted_at']}")
    if record["legal_hold"]:
        lines.append("- legal hold")
    lines.append("")
    if record["system_prompt"]:
        lines += ["## system", "", record["system_prompt"], ""]
    return lines


def _markdown_message(m: dict[str, Any]) -> list[str]:
    meta = [m["status"]]
    if m["error_code"]:
        meta.append(f"error {m['error_code']}")
    if m["sid"]:
        meta.append(f"sid {m['sid']}")
    if m["usage"]:
        meta.append(f"{m['usage']['total_tokens']} tokens")
    if m["replaced"]:
        meta.append("replaced")
    return [f"## {m['seq']}. {m['role']} ({', '.join(meta)})", "", m["content"], ""]


def _markdown_pieces(queryset: QuerySet[Conversation]) -> Iterator[str]:
    first = True
    for conversation, messages in transcripts(queryset):
        if not first:
            yield "\n---\n\n"
        first = False
        yield "\n".join(_markdown_head(conversation_record(conversation))) + "\n"
        for message in messages:
            yield "\n".join(_markdown_message(message_record(message))) + "\n"


def markdown_chunks(queryset: QuerySet[Conversation]) -> Iterator[str]:
    """The conversations as Markdown: a level-1 heading each, a level-2 heading per message,
    separated by rules."""
    return _chunked(_markdown_pieces(queryset))


def safe_cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, quoted with a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_row(conversation: Conversation, owner: str, message: Message) -> list[Any]:
    return [
        safe_cell(value)
        for value in (
            str(conversation.pk),
            conversation.title,
            owner,
            conversation.model,
            "" if conversation.deleted_at is None else timestamp(conversation.deleted_at),
            message.seq,
            message.role,
            message.status,
            message.model,
            message.provider,
            message.error_code,
            message.sid,
            "" if message.total_tokens is None else message.total_tokens,
            "" if message.cost_cny is None else str(message.cost_cny),
            "" if message.ttft_ms is None else message.ttft_ms,
            "" if message.duration_ms is None else message.duration_ms,
            "true" if message.replaced else "false",
            timestamp(message.created_at),
            message.content,
        )
    ]


def csv_chunks(queryset: QuerySet[Conversation]) -> Iterator[str]:
    """One CSV row per message (a conversation without messages has none), after a header; a
    byte-order mark first, so that spreadsheet programs read the file as UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(CSV_HEADER)
    for conversation, messages in transcripts(queryset):
        owner = conversation.user.get_username()
        for message in messages:
            writer.writerow(csv_row(conversation, owner, message))
            if buffer.tell() >= CHUNK_CHARS:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


FORMATS = {
    # format: (generator, file extension, content type)
    "json": (json_chunks, "json", "application/json; charset=utf-8"),
    "md": (markdown_chunks, "md", "text/markdown; charset=utf-8"),
    "csv": (csv_chunks, "csv", "text/csv; charset=utf-8"),
}
