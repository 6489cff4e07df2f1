"""Writes: conversations and the feedback on replies. Messages are written by the reply engine
(``replies.py``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit import trail
from chatsite.errors import AppError
from governance import policy as policies

from . import catalog
from .llm.base import ModelInfo
from .models import Conversation, Feedback, FeedbackReason, Message


def _validated_model(model: str | None, user_id: Any) -> str:
    models = catalog.current()
    policy = policies.for_user(user_id)
    if not model:
        default = models.default_model()
        if policy.allows(default):
            return default
        # The site's default is not for this user's group: their first allowed model.
        return next((m for m in models.models if policy.allows(m)), default)
    if model not in models.models:
        raise AppError(f"Unknown model {model!r}.", code="unknown_model")
    if not policy.allows(model):
        raise AppError(
            f"Your group may not use the model {model!r}.",
            code="model_not_allowed",
            status_code=403,
        )
    return model


PARAMETERS = ("temperature", "max_tokens", "reasoning", "web_search")


def _parameter_error(info: ModelInfo, name: str, value: Any) -> str | None:
    """Why the model cannot take ``value`` for parameter ``name``; None if it can."""
    if value is None:
        return None
    if name == "temperature" and not info.temperature_min <= value <= info.temperature_max:
        return (
            f"temperature must be between {info.temperature_min:g} and "
            f"{info.temperature_max:g} for {info.label}."
        )
    if name == "max_tokens" and not 1 <= value <= info.max_tokens:
        return f"max_tokens must be between 1 and {info.max_tokens} for {info.label}."
    if name == "reasoning" and not info.reasoning_switch:
        return f"{info.label} cannot switch its reasoning on or off."
    if name == "web_search" and not info.web_search:
        return f"{info.label} has no web search."
    return None


def _allowed(info: ModelInfo, name: str) -> dict[str, Any]:
    if name == "temperature":
        return {"min": info.temperature_min, "max": info.temperature_max}
    if name == "max_tokens":
        return {"min": 1, "max": info.max_tokens}
    if name == "reasoning":
        return {"values": [True, False, None] if info.reasoning_switch else [None]}
    return {"values": [True, False, None] if info.web_search else [None]}


def _apply_parameters(
    conversation: Conversation, parameters: dict[str, Any], *, model_changed: bool
) -> list[str]:
    """Set the given parameters after checking them against the conversation's model.

    A bad value is a 400 that names the allowed range. When only the model changed, parameters
    the new model cannot take go back to its default (null) rather than refusing the change.
    """
    info = catalog.current().model(conversation.model)
    changed = []
    for name in PARAMETERS:
        if name in parameters:
            value = parameters[name]
            problem = _parameter_error(info, name, value)
            if problem is not None:
                raise AppError(
                    problem,
                    code="invalid_parameter",
                    extra={"field": name, "allowed": _allowed(info, name)},
                )
        elif model_changed and _parameter_error(info, name, getattr(conversation, name)):
            value = None
        else:
            continue
        setattr(conversation, name, value)
        changed.append(name)
    return changed


def conversation_create(
    *,
    user: Any,
    title: str = "",
    model: str | None = None,
    system_prompt: str = "",
    pinned: bool = False,
    **parameters: Any,
) -> Conversation:
    """A new conversation. ``user`` is a User (assigning it checks it is still active);
    ``parameters``: temperature, max_tokens, reasoning, web_search (None = the model's default).
    """
    conversation = Conversation(
        user=user,
        title=title.strip(),
        # A title given here is the user's: a generated one never replaces it.
        title_source=Conversation.TitleSource.USER if title.strip() else "",
        model=_validated_model(model, user.pk),
        system_prompt=system_prompt,
        pinned=pinned,
    )
    _apply_parameters(conversation, parameters, model_changed=False)
    conversation.save(force_insert=True)
    return conversation


def conversation_update(
    *,
    conversation: Conversation,
    title: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
    pinned: bool | None = None,
    **parameters: Any,
) -> Conversation:
    fields = []
    if pinned is not None and pinned != conversation.pinned:
        conversation.pinned = pinned
        fields.append("pinned")
    if title is not None:
        conversation.title = title.strip()
        # The user's title from now on (an empty one: the next message's words may replace it).
        conversation.title_source = Conversation.TitleSource.USER if conversation.title else ""
        fields += ["title", "title_source"]
    if model is not None:
        conversation.model = _validated_model(model, conversation.user_id)
        fields.append("model")
    if system_prompt is not None:
        conversation.system_prompt = system_prompt
        fields.append("system_prompt")
    fields += _apply_parameters(conversation, parameters, model_changed=model is not None)
    if fields:
        # Pinning alone does not move the conversation in the list (it is no activity).
        touched = [] if fields == ["pinned"] else ["updated_at"]
        conversation.save(update_fields=[*fields, *touched])
    return conversation


def conversation_delete(*, conversation: Conversation, by: Any, reason: str = "") -> None:
    """Delete for its owner: gone from their page and the API at once, kept for review
    ``DELETED_RETENTION_DAYS``, then purged (docs/review.md, "Retention"). A reply still being
    written is saved all the same."""
    Conversation.objects.filter(pk=conversation.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), deleted_by=by.get_username(), deletion_reason=reason
    )


def conversation_purge(*, conversation: Conversation) -> int:
    """Remove a conversation for good: its messages, feedback and review items go with it (the
    audit trail keeps its entries). Refused under legal hold. Returns the messages removed."""
    if conversation.legal_hold:
        raise AppError(
            "This conversation is under legal hold and cannot be removed.",
            code="legal_hold",
            status_code=409,
        )
    messages = conversation.messages.count()
    conversation.delete()
    return messages


def purge_deleted(*, now: datetime | None = None, batch: int = 200) -> tuple[int, int]:
    """Purge the conversations deleted more than ``DELETED_RETENTION_DAYS`` ago and not under
    legal hold, ``batch`` at a time; each is recorded on the audit trail. Returns the numbers of
    conversations and messages removed."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.DELETED_RETENTION_DAYS)
    due = Conversation.objects.filter(deleted_at__lt=cutoff, legal_hold=False).order_by(
        "deleted_at"
    )
    conversations = messages = 0
    while True:
        chunk = list(due.select_related("user")[:batch])
        if not chunk:
            return conversations, messages
        for conversation in chunk:
            with transaction.atomic():
                # Again under the lock: a hold placed since the chunk was read wins.
                locked = (
                    Conversation.objects.select_for_update()
                    .filter(pk=conversation.pk, legal_hold=False, deleted_at__lt=cutoff)
                    .first()
                )
                if locked is None:
                    continue
                removed = conversation_purge(conversation=locked)
                trail.record(
                    "conversation.purge",
                    target_type="conversations.conversation",
                    target_id=conversation.pk,
                    target_repr=str(conversation),
                    detail={
                        "owner": conversation.user.get_username(),
                        "deleted_at": locked.deleted_at.isoformat() if locked.deleted_at else None,
                        "deleted_by": conversation.deleted_by,
                        "messages": removed,
                    },
                )
            conversations += 1
            messages += removed


def _rateable(message: Message) -> None:
    """Refuse a message that cannot carry feedback: a user's message, a reply being written."""
    if message.role != Message.Role.ASSISTANT:
        raise AppError("Only a reply of the assistant can be rated.", code="not_a_reply")
    if message.status == Message.Status.STREAMING:
        raise AppError(
            "This reply is still being written: rate it once it is finished.",
            code="reply_not_finished",
        )


def feedback_set(*, message: Message, rating: str, reason: str = "", comment: str = "") -> Feedback:
    """Set (or replace) the feedback on a finished reply.

    ``reason`` (may be empty) must be the code of an enabled reason offered with ``rating``
    (or with both ratings): anything else is a 400 ``invalid_reason`` listing the allowed codes.
    The row is written with ``save()``, so its ``post_save`` receivers run (a 👎 queues the reply
    for review: review/flagging.py).
    """
    _rateable(message)
    if reason:
        allowed = list(
            FeedbackReason.objects.filter(enabled=True, rating__in=(rating, "any"))
            .order_by("order", "code")
            .values_list("code", flat=True)
        )
        if reason not in allowed:
            raise AppError(
                f"Unknown reason {reason!r} for the rating {rating!r}.",
                code="invalid_reason",
                extra={"field": "reason", "allowed": allowed},
            )
    with transaction.atomic():
        feedback = Feedback.objects.select_for_update().filter(message=message).first()
        if feedback is None:
            try:
                with transaction.atomic():
                    feedback = Feedback.objects.create(
                        message=message, rating=rating, reason=reason, comment=comment
                    )
            except IntegrityError:
                # Another request rated the reply between the read and the write: replace it.
                feedback = Feedback.objects.select_for_update().get(message=message)
            else:
                return feedback
        feedback.rating = rating
        feedback.reason = reason
        feedback.comment = comment
        feedback.save(update_fields=["rating", "reason", "comment", "updated_at"])
    message.feedback = feedback
    return feedback


def feedback_delete(*, message: Message) -> bool:
    """Take back the feedback on a reply; False when there was none (the end state is the same).

    Deleted through the model (``Model.delete``), so its ``post_delete`` receivers run."""
    _rateable(message)
    feedback = Feedback.objects.filter(message=message).first()
    if feedback is None:
        return False
    feedback.delete()
    return True
