"""Review of deployed conversations (docs/review.md): what gets flagged, and the queue staff work.

A ``ReviewItem`` is one reason to read one conversation (or one message of it): a moderated
reply, a 👎, a keyword, a random sample, or a staff member's own choice. The same conversation,
message and source never make two items.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from conversations.models import Conversation, Message


class Label(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ReviewItem(models.Model):
    class Source(models.TextChoices):
        MODERATION = "moderation", "moderation"
        FEEDBACK = "feedback", "👎 feedback"
        KEYWORD = "keyword", "keyword"
        SAMPLE = "sample", "sample"
        MANUAL = "manual", "staff"

    class Status(models.TextChoices):
        NEW = "new", "new"
        IN_REVIEW = "in_review", "in review"
        RESOLVED = "resolved", "resolved"
        DISMISSED = "dismissed", "dismissed"

    class Severity(models.TextChoices):
        LOW = "low", "low"
        MEDIUM = "medium", "medium"
        HIGH = "high", "high"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="review_items"
    )
    # The message that raised it; null for a whole-conversation item (a sample).
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="review_items"
    )
    source = models.CharField(max_length=16, choices=Source.choices)
    # Why, in a few words: the provider's code, the keyword that matched, the user's reason.
    detail = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.MEDIUM)
    labels = models.ManyToManyField(Label, blank=True, related_name="items")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_review_items",
    )
    # A claim is a lock that expires (REVIEW_CLAIM_MINUTES): others can read, not change.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="claimed_review_items",
        editable=False,
    )
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    resolution = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "message", "source"],
                condition=models.Q(message__isnull=False),
                name="review_item_message_source_unique",
            ),
            models.UniqueConstraint(
                fields=["conversation", "source"],
                condition=models.Q(message__isnull=True),
                name="review_item_conversation_source_unique",
            ),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="review_status_created")]

    def __str__(self) -> str:
        return f"{self.get_source_display()} #{self.pk}"

    def claim_holder(self, now: datetime | None = None) -> Any:
        """Who holds the claim now (None when unclaimed or expired)."""
        now = now or timezone.now()
        if self.claimed_by_id and self.claimed_until and self.claimed_until > now:
            return self.claimed_by
        return None

    @staticmethod
    def claim_length() -> timedelta:
        return timedelta(minutes=settings.REVIEW_CLAIM_MINUTES)


class ReviewNote(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="notes")
    # Optionally about one message of the transcript.
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="review_notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, editable=False
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Note by {self.author} at {self.created_at:%Y-%m-%d %H:%M}"


class FlagKeyword(models.Model):
    """A word or phrase that flags a message or a reply containing it (case-insensitive)."""

    phrase = models.CharField(max_length=100, unique=True)
    severity = models.CharField(
        max_length=8, choices=ReviewItem.Severity.choices, default=ReviewItem.Severity.MEDIUM
    )
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["phrase"]

    def __str__(self) -> str:
        return self.phrase


class ReviewSettings(models.Model):
    """The site's review settings (one row)."""

    sample_percent = models.DecimalField(
        "daily sample (% of conversations)",
        max_digits=5,
        decimal_places=2,
        default=0,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Each day, this share of the conversations that got a reply is queued.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "review settings"
        verbose_name_plural = "review settings"

    def __str__(self) -> str:
        return "Review settings"

    @classmethod
    def get(cls) -> ReviewSettings:
        return cls.objects.get_or_create(pk=1)[0]
