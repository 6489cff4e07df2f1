"""Writes: conversations. Messages are written by the reply engine (``replies.py``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chatsite.errors import AppError

from .llm import registry
from .models import Conversation


def _validated_model(model: str | None) -> str:
    if not model:
        default = settings.DEFAULT_MODEL
        return default if registry.is_known_model(default) else settings.SPARK_MODELS[0]
    if not registry.is_known_model(model):
        raise AppError(f"Unknown model {model!r}.", code="unknown_model")
    return model


def conversation_create(
    *, user: Any, title: str = "", model: str | None = None, system_prompt: str = ""
) -> Conversation:
    """A new conversation. ``user`` is a User (assigning it checks it is still active)."""
    return Conversation.objects.create(
        user=user,
        title=title.strip(),
        model=_validated_model(model),
        system_prompt=system_prompt,
    )


def conversation_update(
    *,
    conversation: Conversation,
    title: str | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
) -> Conversation:
    fields = []
    if title is not None:
        conversation.title = title.strip()
        fields.append("title")
    if model is not None:
        conversation.model = _validated_model(model)
        fields.append("model")
    if system_prompt is not None:
        conversation.system_prompt = system_prompt
        fields.append("system_prompt")
    if fields:
        conversation.save(update_fields=[*fields, "updated_at"])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    conversation.delete()
