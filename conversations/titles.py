"""Generated titles (docs/architecture.md, "Titles").

After a conversation's first finished reply, one short non-streaming call to ``TITLE_MODEL`` (a
cheap model; empty: no titles are generated) writes a title in the conversation's language: at
most 20 characters when it is Chinese, at most 8 words otherwise. It replaces only the first
message's words that the turn set as the title, never a title the user set, even one set while
the title was being written (the write is conditional). On any failure the first words stay.
Its tokens are the site's (``SystemUsage``), not the user's: they count against no quota.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.utils import timezone

from governance import pricing

from . import catalog
from .llm.base import ChatMessage, ChatOptions
from .llm.exceptions import LLMError
from .models import Conversation, Message, SystemUsage

logger = logging.getLogger(__name__)

MAX_CJK_CHARS = 20
MAX_WORDS = 8
_EXCERPT_CHARS = 600
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_QUOTES = "\"'“”‘’「」『』《》【】*#`"
_TRAILING = " \t.,;:!?。，；：！？、…-–—"

INSTRUCTION = (
    "Write a title for the conversation below. Use the language of the user's message. "
    f"At most {MAX_CJK_CHARS} characters if it is Chinese, Japanese or Korean, otherwise at most "
    f"{MAX_WORDS} words. Answer with the title alone: no quotes, no final punctuation."
)


def wanted(conversation: Conversation, reply: Message) -> bool:
    """Whether this reply should give its conversation a title: the first finished reply of a
    conversation whose title is still its first message's words."""
    return bool(
        settings.TITLE_MODEL
        and reply.status == Message.Status.COMPLETE
        and conversation.title_source == Conversation.TitleSource.MESSAGE
        and not Message.objects.filter(
            conversation_id=conversation.pk,
            role=Message.Role.ASSISTANT,
            status=Message.Status.COMPLETE,
            seq__lt=reply.seq,
        ).exists()
    )


def tidy(text: str) -> str:
    """The model's answer as a title: its first line, unquoted, within the limits."""
    line = next((part.strip() for part in text.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^(title|标题)\s*[:：]\s*", "", line, flags=re.IGNORECASE)
    line = line.strip(_QUOTES + " ").rstrip(_TRAILING).strip(_QUOTES + " ")
    if _CJK.search(line):
        return line[:MAX_CJK_CHARS].rstrip(_TRAILING)
    return " ".join(line.split()[:MAX_WORDS]).rstrip(_TRAILING)


def _model_id(conversation: Conversation) -> str:
    models = catalog.current()
    wanted_model = settings.TITLE_MODEL
    if wanted_model in models.models and models.is_configured(wanted_model):
        return wanted_model
    return conversation.model  # the title model is not on offer here: the conversation's own


def generate(conversation: Conversation, question: str, answer: str) -> str | None:
    """Write and save the title; the title, or None when it was not written (a failure, an
    empty answer, or a title the user set meanwhile)."""
    model_id = _model_id(conversation)
    try:
        info = catalog.require_configured(model_id)
        completion = catalog.provider_for(model_id).complete(
            model=info.wire_id,
            messages=[
                ChatMessage("system", INSTRUCTION),
                ChatMessage(
                    "user",
                    f"User: {question[:_EXCERPT_CHARS]}\n\nAssistant: {answer[:_EXCERPT_CHARS]}",
                ),
            ],
            user=f"chatsite-titles-{conversation.user_id}",
            options=ChatOptions(max_tokens=48, reasoning=False if info.reasoning_switch else None),
        )
    except LLMError as exc:
        logger.warning("title not generated: %s %s", exc.code, model_id)
        return None
    title = tidy(completion.content)
    if completion.usage is not None:
        usage = completion.usage
        SystemUsage.objects.create(
            purpose="title",
            model=model_id,
            provider=info.provider,
            conversation_id=conversation.pk,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cost_cny=pricing.cost(
                pricing.cached_price_in_force(model_id, timezone.now()),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
            ),
        )
    if not title:
        return None
    written = Conversation.objects.filter(
        pk=conversation.pk, title_source=Conversation.TitleSource.MESSAGE
    ).update(title=title, title_source=Conversation.TitleSource.GENERATED)
    if not written:
        return None
    conversation.title = title
    conversation.title_source = Conversation.TitleSource.GENERATED
    return title
