"""Generated titles (docs/architecture.md, "Titles").

For a conversation's first streamed reply, one short non-streaming call to ``TITLE_MODEL`` (a
cheap model; empty: no titles are generated) writes a title from the user's first message, in
its language: at most 20 characters when it is Chinese, at most 8 words otherwise.

The call runs beside the reply (a ``TitleJob`` started when the stream starts), so the title is
usually ready when the reply ends: its ``title`` frame then comes before ``done``, which ends the
stream as every stream ends (docs/architecture.md, "The HTTP interface"). A title not ready
``TITLE_WAIT_SECONDS`` after the reply is dropped, never waited for longer. It replaces only the
first message's words that the turn set as the title, never a title the user set, even one set
while the title was being written (the write is conditional). On any failure the first words
stay. Its tokens are the site's (``SystemUsage``), not the user's: they count against no quota.
"""

from __future__ import annotations

import logging
import re
import threading

from django.conf import settings
from django.utils import timezone

from governance import pricing

from . import catalog
from .llm.base import ChatMessage, ChatOptions, ChatProvider, Completion, ModelInfo
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
    "Write a title for a conversation that starts with the user's message below. Use the "
    f"language of the message. At most {MAX_CJK_CHARS} characters if it is Chinese, Japanese "
    f"or Korean, otherwise at most {MAX_WORDS} words. Answer with the title alone: no quotes, no "
    "final punctuation."
)


def wanted(conversation: Conversation, user_message: Message | None) -> bool:
    """Whether this turn should title its conversation: a message sent while the title is still
    its first message's words, and no finished reply yet."""
    return bool(
        settings.TITLE_MODEL
        and user_message is not None
        and conversation.title_source == Conversation.TitleSource.MESSAGE
        and not Message.objects.filter(
            conversation_id=conversation.pk,
            role=Message.Role.ASSISTANT,
            status=Message.Status.COMPLETE,
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


class TitleJob:
    """The title call, on a thread of its own (a greenlet under gevent). The thread only talks
    to the model: everything touching the database happens in the caller's thread, before
    (``start``) and after (``finish``)."""

    def __init__(self, conversation: Conversation, model: ModelInfo, provider: ChatProvider):
        self.conversation = conversation
        self.model = model
        self.provider = provider
        self.completion: Completion | None = None
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, conversation: Conversation, question: str) -> TitleJob | None:
        """Start the call; None when the title model cannot be called."""
        model_id = _model_id(conversation)
        try:
            model = catalog.require_configured(model_id)
            provider = catalog.provider_for(model_id)
        except LLMError as exc:
            logger.warning("title not generated: %s %s", exc.code, model_id)
            return None
        job = cls(conversation, model, provider)
        job._thread = threading.Thread(
            target=job._call, args=(question,), name="title", daemon=True
        )
        job._thread.start()
        return job

    def _call(self, question: str) -> None:
        try:
            self.completion = self.provider.complete(
                model=self.model.wire_id,
                messages=[
                    ChatMessage("system", INSTRUCTION),
                    ChatMessage("user", question[:_EXCERPT_CHARS]),
                ],
                user=f"chatsite-titles-{self.conversation.user_id}",
                options=ChatOptions(
                    max_tokens=48, reasoning=False if self.model.reasoning_switch else None
                ),
            )
        except Exception as exc:  # noqa: BLE001 - reported by finish(), in the caller's thread
            self.error = exc

    def finish(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` seconds, then save the title; the title, or None when there is
        none (not ready in time, a failure, an empty answer, or a title the user set)."""
        assert self._thread is not None  # noqa: S101 - start() made it
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("title not ready in %.1f s: dropped", timeout)
            return None
        if self.error is not None or self.completion is None:
            code = getattr(self.error, "code", type(self.error).__name__)
            logger.warning("title not generated: %s %s", code, self.model.id)
            return None
        return save(self.conversation, self.completion, self.model)


def save(conversation: Conversation, completion: Completion, model: ModelInfo) -> str | None:
    """Record the call's tokens as the site's, and write the title unless the user set one."""
    usage = completion.usage
    if usage is not None:
        SystemUsage.objects.create(
            purpose="title",
            model=model.id,
            provider=model.provider,
            conversation_id=conversation.pk,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
            cost_cny=pricing.cost(
                pricing.cached_price_in_force(model.id, timezone.now()),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=usage.cached_tokens,
            ),
        )
    title = tidy(completion.content)
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


def generate(conversation: Conversation, question: str, timeout: float = 30.0) -> str | None:
    """Write and save the title now (start and finish in one go)."""
    job = TitleJob.start(conversation, question)
    return job.finish(timeout) if job is not None else None
