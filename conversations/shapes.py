"""The public shape of a message and a conversation: defined once, here.

The API's responses and its OpenAPI schema (``api/serializers.py``), the server-sent event frames
of a reply (``replies.py``), the admin's transcript export (``admin.py``) and the one log line per
reply all build their dictionaries with these functions, so a field added here reaches all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils.translation import gettext

from .models import Conversation, Feedback, Message

# What a message object holds in the API (docs/architecture.md, "The HTTP interface").
MESSAGE_FIELDS = (
    "id",
    "conversation",
    "seq",
    "role",
    "content",
    "reasoning",
    "reasoning_ms",
    "references",
    "status",
    "model",
    "provider",
    "error_code",
    "error_detail",
    "sid",
    "usage",
    "cost_cny",
    "ttft_ms",
    "duration_ms",
    "created_at",
    "feedback",
    "parent",
    "siblings",
    "active",
    "attachments",
)

# The columns a reply's one final write sets (docs/architecture.md, "The reply flow", step 4).
REPLY_OUTCOME_COLUMNS = (
    "content",
    "reasoning",
    "reasoning_ms",
    "references",
    "token_estimate",
    "status",
    "error_code",
    "error_detail",
    "sid",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "charged_tokens",
    "cost_cny",
    "ttft_ms",
    "duration_ms",
    "finished_at",
    "worker",
)

# The log line carries identifiers and figures, never what people wrote.
# (The feedback holds the user's comment.)
_NOT_LOGGED = frozenset(
    {"content", "reasoning", "references", "error_detail", "feedback", "siblings", "attachments"}
)


def timestamp(value: datetime) -> str:
    """ISO 8601 as DRF writes it: UTC as ``Z``."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def error_text(detail: str) -> str:
    """A failed reply's stored (English) error text in the active language: the texts the model
    clients and the reply engine end a reply with are in conversations/locale (a test keeps that
    list complete); any other text is shown as stored."""
    return gettext(detail) if detail else ""


def message_data(message: Message) -> dict[str, Any]:
    """A message as the API, the stream frames and the exports show it."""
    return {
        "id": str(message.id),
        "conversation": str(message.conversation_id),
        "seq": message.seq,
        "role": str(message.role),
        "content": message.content,
        "reasoning": message.reasoning,
        "reasoning_ms": message.reasoning_ms,
        "references": message.references,
        "status": str(message.status),
        "model": message.model,
        "provider": message.provider,
        "error_code": message.error_code,
        "error_detail": error_text(message.error_detail),
        "sid": message.sid,
        "usage": message.usage,
        # A decimal string, exact (null: unpriced model, or a reply still being written).
        "cost_cny": None if message.cost_cny is None else str(message.cost_cny),
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
        "created_at": timestamp(message.created_at),
        "feedback": feedback_data(message),
        # Branches (conversations/branches.py): the message this one follows, the ids of it and
        # its siblings in order when the listing computed them (null otherwise), and whether it
        # is on the active branch.
        "parent": None if message.parent_id is None else str(message.parent_id),
        "siblings": _siblings(message),
        "active": not message.replaced,
        "attachments": message.sent_attachments,
    }


def _siblings(message: Message) -> list[str] | None:
    ids = getattr(message, "sibling_ids", None)
    return None if ids is None else [str(pk) for pk in ids]


def feedback_data(message: Message) -> dict[str, Any] | None:
    """The user's rating of a reply, when it was loaded with the message
    (``select_related("feedback")``, as ``selectors.message_list`` does); None otherwise, never a
    query per message (a reply being streamed cannot have any yet)."""
    feedback: Feedback | None = message._state.fields_cache.get("feedback")
    if feedback is None:
        return None
    return {
        "rating": str(feedback.rating),
        "reason": feedback.reason,
        "comment": feedback.comment,
        "updated_at": timestamp(feedback.updated_at),
    }


def message_log_fields(message: Message) -> dict[str, Any]:
    """The public fields of a reply fit for a log line: no content, no error text.

    The message's id is logged as ``message`` and its error code as ``code``; usage is flattened.
    """
    data = message_data(message)
    for name in _NOT_LOGGED:
        del data[name]
    usage = data.pop("usage") or {}
    return {"message": data.pop("id"), "code": data.pop("error_code"), **data, **usage}


def conversation_data(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.id),
        "title": conversation.title,
        "model": conversation.model,
        "system_prompt": conversation.system_prompt,
        "temperature": conversation.temperature,
        "max_tokens": conversation.max_tokens,
        "reasoning": conversation.reasoning,
        "web_search": conversation.web_search,
        "pinned": conversation.pinned,
        "created_at": timestamp(conversation.created_at),
        "updated_at": timestamp(conversation.updated_at),
    }
