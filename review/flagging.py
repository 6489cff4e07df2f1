"""What puts a conversation in the review queue (docs/review.md, "What gets flagged"):

- a reply the provider refused or stopped for moderation (Spark 10013/10014/10019, the other
  dialects' moderation codes and finish reasons: the reply engine tells which);
- a 👎 from the user;
- a keyword of the admin's list in the user's message or the reply;
- a daily sample of ``ReviewSettings.sample_percent`` % of the conversations that got a reply.

A reply that raises no flag costs no query: the keywords and the sample rate are kept in memory
and reloaded when changed (in this worker at once, in the others within
``REVIEW_REFRESH_SECONDS``). Flags are idempotent: the unique constraints of ``ReviewItem`` make a
second flag of the same conversation, message and source a no-op, whatever the race.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from conversations.models import Conversation, Feedback, Message
from conversations.signals import reply_saved

from .models import FlagKeyword, ReviewItem, ReviewSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Rules:
    pattern: re.Pattern[str] | None
    severities: dict[str, str]  # phrase (lower case) -> severity
    sample_percent: Decimal
    loaded: float


_lock = threading.Lock()
_rules: _Rules | None = None


def _load() -> _Rules:
    keywords = list(FlagKeyword.objects.filter(enabled=True).values_list("phrase", "severity"))
    phrases = sorted({p.strip() for p, _ in keywords if p.strip()}, key=len, reverse=True)
    pattern = (
        re.compile("|".join(re.escape(p) for p in phrases), re.IGNORECASE) if phrases else None
    )
    return _Rules(
        pattern=pattern,
        severities={p.strip().lower(): s for p, s in keywords},
        sample_percent=ReviewSettings.get().sample_percent,
        loaded=time.monotonic(),
    )


def rules() -> _Rules:
    global _rules
    current = _rules
    if current is None or time.monotonic() - current.loaded > settings.REVIEW_REFRESH_SECONDS:
        with _lock:
            current = _rules = _load()
    return current


def forget_rules(**_: Any) -> None:
    """Reload the rules on next use (a keyword or the settings changed in this worker)."""
    global _rules
    _rules = None


def flag(
    *,
    conversation_id: Any,
    source: str,
    message_id: Any = None,
    detail: str = "",
    severity: str = ReviewItem.Severity.MEDIUM,
) -> ReviewItem | None:
    """Queue an item, once: None when this conversation, message and source already has one."""
    try:
        with transaction.atomic():
            return ReviewItem.objects.create(
                conversation_id=conversation_id,
                message_id=message_id,
                source=source,
                detail=detail[:300],
                severity=severity,
            )
    except IntegrityError:
        return None


def sampled(conversation_id: Any, percent: Decimal, day: Any) -> bool:
    """Whether a conversation is in the day's sample: a stable hash of its id and the day, so
    every worker agrees and a conversation's many replies of one day give it one chance."""
    if percent <= 0:
        return False
    digest = hashlib.blake2b(f"{conversation_id}:{day}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100


def _severest(found: list[str], severities: dict[str, str]) -> str:
    order = [ReviewItem.Severity.HIGH, ReviewItem.Severity.MEDIUM, ReviewItem.Severity.LOW]
    levels = {severities.get(f.lower(), ReviewItem.Severity.MEDIUM) for f in found}
    return next((level for level in order if level in levels), ReviewItem.Severity.LOW)


def on_reply_saved(
    *, message: Message, prompt: str, conversation: Conversation, moderated: bool, **_: Any
) -> None:
    if moderated:
        flag(
            conversation_id=conversation.pk,
            message_id=message.pk,
            source=ReviewItem.Source.MODERATION,
            detail=f"{message.model} {message.error_code}: {message.error_detail}",
            severity=ReviewItem.Severity.HIGH,
        )
    current = rules()
    if current.pattern is not None:
        found = sorted(
            {
                m.group(0)
                for text in (prompt, message.content)
                for m in current.pattern.finditer(text)
            }
        )
        if found:
            flag(
                conversation_id=conversation.pk,
                message_id=message.pk,
                source=ReviewItem.Source.KEYWORD,
                detail=", ".join(found),
                severity=_severest(found, current.severities),
            )
    today = timezone.localdate()
    if sampled(conversation.pk, current.sample_percent, today):
        flag(
            conversation_id=conversation.pk,
            source=ReviewItem.Source.SAMPLE,
            detail=f"{current.sample_percent}% sample of {today}",
            severity=ReviewItem.Severity.LOW,
        )


def on_feedback_saved(*, instance: Feedback, **_: Any) -> None:
    if instance.rating != Feedback.Rating.DOWN:
        return
    message = Message.objects.only("conversation_id").get(pk=instance.message_id)
    detail = " · ".join(part for part in (instance.reason, instance.comment[:200]) if part)
    item = flag(
        conversation_id=message.conversation_id,
        message_id=instance.message_id,
        source=ReviewItem.Source.FEEDBACK,
        detail=detail,
    )
    if item is None:
        # Already queued (a 👎 given again): keep the item's detail current.
        ReviewItem.objects.filter(
            message_id=instance.message_id, source=ReviewItem.Source.FEEDBACK
        ).update(detail=detail[:300])


def connect() -> None:
    reply_saved.connect(on_reply_saved, dispatch_uid="review-flag-reply")
    post_save.connect(on_feedback_saved, sender=Feedback, dispatch_uid="review-flag-feedback")
    for model in (FlagKeyword, ReviewSettings):
        post_save.connect(forget_rules, sender=model, dispatch_uid=f"review-rules-{model.__name__}")
        post_delete.connect(
            forget_rules, sender=model, dispatch_uid=f"review-rules-del-{model.__name__}"
        )
