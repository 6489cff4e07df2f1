from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from chatsite import crypto

from .llm.dialects import DIALECTS


class Provider(models.Model):
    """A model provider staff configured (admin or ``manage.py load_providers``).

    The API key is stored encrypted (chatsite/crypto.py) and never shown again. The providers
    from the environment (``SPARK_*`` settings) are not rows: catalog.py adds them.
    """

    DIALECT_CHOICES = [(d.name, d.label) for d in DIALECTS.values()]

    name = models.SlugField(max_length=64, unique=True, help_text="Shown in the model picker.")
    label = models.CharField(max_length=100, blank=True)
    dialect = models.CharField(max_length=32, choices=DIALECT_CHOICES)
    base_url = models.CharField(
        max_length=300,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Up to /chat/completions, e.g. https://api.deepseek.com",
    )
    api_key_encrypted = models.TextField(blank=True, editable=False)
    # Where load_providers read the key from (the name of a variable, never its value).
    api_key_env = models.CharField(max_length=100, blank=True)
    connect_timeout = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.1), MaxValueValidator(120)]
    )
    read_timeout = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(3600)]
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.label or self.name

    @property
    def has_key(self) -> bool:
        return bool(self.api_key_encrypted)

    def set_api_key(self, key: str) -> None:
        self.api_key_encrypted = crypto.encrypt(key) if key else ""

    def api_key(self) -> str:
        """The key in clear; raises ``crypto.WrongEncryptionKey``."""
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""


class ChatModel(models.Model):
    """A model of a provider, as conversations and the API name it (``model_id``)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(
        "id",
        max_length=64,
        unique=True,
        help_text="The id conversations and the API use; unique across providers.",
    )
    upstream_id = models.CharField(
        max_length=128, blank=True, help_text="The id the provider knows; empty = the id."
    )
    label = models.CharField(max_length=100, blank=True)
    context_window = models.PositiveIntegerField(default=8192, validators=[MinValueValidator(512)])
    max_output = models.PositiveIntegerField(default=4096, validators=[MinValueValidator(1)])
    reasoning = models.BooleanField(default=False, help_text="The model thinks before answering.")
    reasoning_switch = models.BooleanField(
        default=False, help_text="Its reasoning can be switched on and off per conversation."
    )
    web_search = models.BooleanField(default=False, help_text="Spark web search.")
    vision = models.BooleanField(default=False)
    temperature_min = models.FloatField(default=0.0)
    temperature_max = models.FloatField(default=2.0)
    temperature_default = models.FloatField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    order = models.IntegerField(default=0)
    is_default = models.BooleanField("default", default=False)
    # Spark issues one key per model: this one wins over the provider's.
    api_key_encrypted = models.TextField(blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "model_id"]
        verbose_name = "model"

    def __str__(self) -> str:
        return self.label or self.model_id

    def set_api_key(self, key: str) -> None:
        self.api_key_encrypted = crypto.encrypt(key) if key else ""

    def api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )

    class TitleSource(models.TextChoices):
        USER = "user", "set by the user"
        MESSAGE = "message", "the first message's words"
        GENERATED = "generated", "written by the title model"

    title = models.CharField(max_length=200, blank=True)
    # Where the title came from: a generated title replaces only the first message's words,
    # never a title the user set (docs/architecture.md, "Titles").
    title_source = models.CharField(
        max_length=16, choices=TitleSource.choices, blank=True, editable=False
    )
    model = models.CharField(max_length=64)
    system_prompt = models.TextField(blank=True)
    # The conversation's parameters; null = the model's default (docs/providers.md).
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    reasoning = models.BooleanField(null=True, blank=True)
    web_search = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Pinned to the top of its owner's sidebar.
    pinned = models.BooleanField(default=False)
    # Deleted by its owner (or staff): gone from the owner's page and the API at once, kept for
    # review DELETED_RETENTION_DAYS, then purged (docs/review.md, "Retention").
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    deleted_by = models.CharField(max_length=150, blank=True, editable=False)
    deletion_reason = models.TextField(blank=True, editable=False)
    # Never purged, and not deletable from admin, while set.
    legal_hold = models.BooleanField(default=False)
    legal_hold_reason = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-updated_at"], name="conv_user_updated"),
            # purge_deleted's scan: only deleted conversations are in it.
            models.Index(
                fields=["deleted_at"],
                condition=models.Q(deleted_at__isnull=False),
                name="conv_deleted",
            ),
        ]
        ordering = ["-updated_at"]
        permissions = [("legal_hold_conversation", "Can place or lift a legal hold")]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "user"
        ASSISTANT = "assistant", "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "complete"
        STREAMING = "streaming", "streaming"
        ERROR = "error", "error"
        INTERRUPTED = "interrupted", "interrupted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    # Position in the conversation: the key of history pages and of the order sent to the model.
    seq = models.PositiveIntegerField()
    # The message this one follows (null: the first of a branch at the root). Edit and
    # regenerate add a sibling; messages are never changed in place (docs/architecture.md,
    # "Branches").
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="children",
        editable=False,
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    # What a reasoning model thought before answering: shown apart, never sent back upstream
    # (except to a dialect that requires it).
    reasoning = models.TextField(blank=True)
    reasoning_ms = models.PositiveIntegerField(null=True, blank=True)
    # Web pages a reply's web search cited: [{"title": ..., "url": ...}].
    references = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_detail = models.TextField(blank=True)
    sid = models.CharField(max_length=128, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Quotas (docs/governance.md): what a reply in flight holds against its owner's limits, then
    # what it was charged (0 when it failed upstream) and its cost at the price then in force
    # (null: the model had no price).
    held_tokens = models.PositiveIntegerField(null=True, blank=True, editable=False)
    held_cost_cny = models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True, editable=False
    )
    charged_tokens = models.PositiveIntegerField(null=True, blank=True, editable=False)
    cost_cny = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The content's token estimate (selectors.estimate_tokens), written with the content, so
    # building a long conversation's history does not estimate every message again on every turn.
    token_estimate = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # Off the active branch: a regenerated reply, an edited message and what followed them, or a
    # branch the user switched away from. The active branch is exactly the messages with
    # replaced=False, in seq order: every listing and the history read it that way, and switching
    # branches flips this flag (conversations/branches.py). Kept for review in admin.
    replaced = models.BooleanField(default=False)
    # "host:pid:start-time" of the worker streaming this reply, so a dead worker's stream can be
    # recovered (conversations/recovery.py); emptied by the final write.
    worker = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_conv_seq_unique")
        ]
        indexes = [
            models.Index(fields=["conversation", "created_at"], name="msg_conv_created"),
            models.Index(fields=["status", "created_at"], name="msg_status_created"),
            # The chat rate limit counts a user's replies of the last minute inside every turn's
            # write transaction (selectors.turn_state): with the role in the index the count
            # reads only the index, not a row per reply.
            models.Index(
                fields=["conversation", "role", "created_at"], name="msg_conv_role_created"
            ),
            # "Is a reply of this conversation being written?", asked in every turn: a partial
            # index holds only the replies in flight, whatever the conversation's length.
            models.Index(
                fields=["conversation"],
                condition=models.Q(status="streaming"),
                name="msg_streaming_conv",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq}"

    @property
    def sent_attachments(self) -> list[dict[str, Any]]:
        """The files a user message was sent with (docs/attachments.md), when the listing loaded
        them (``prefetch_related("attachment_uses__attachment")``) or the turn just attached them
        (``sent_files``); [] otherwise, never a query per message."""
        cache = getattr(self, "_prefetched_objects_cache", {})
        uses = cache.get("attachment_uses", getattr(self, "sent_files", ()))
        return [
            {
                "id": str(use.attachment.pk),
                "name": use.attachment.name,
                "kind": use.attachment.kind,
                "size": use.attachment.size,
                "pages": use.pages,
            }
            for use in uses
        ]

    @property
    def active(self) -> bool:
        """On the active branch (conversations/branches.py)."""
        return not self.replaced

    @property
    def usage(self) -> dict[str, int] | None:
        if self.total_tokens is None:
            return None
        return {
            "prompt_tokens": self.prompt_tokens or 0,
            "completion_tokens": self.completion_tokens or 0,
            "total_tokens": self.total_tokens or 0,
        }


class FeedbackReason(models.Model):
    """A reason a user may give with a rating (configurable in admin, shown translated)."""

    code = models.SlugField(max_length=40, unique=True)
    label = models.CharField(max_length=100)
    label_zh = models.CharField("label (Chinese)", max_length=100, blank=True)
    # Offered with 👍, with 👎, or both.
    rating = models.CharField(
        max_length=8,
        choices=[("up", "👍"), ("down", "👎"), ("any", "both")],
        default="down",
    )
    enabled = models.BooleanField(default=True)
    order = models.IntegerField(default=0)

    class Meta:
        ordering = ["order", "code"]

    def __str__(self) -> str:
        return self.label


class Feedback(models.Model):
    """A user's rating of one of their replies: one per reply, replaced when given again."""

    class Rating(models.TextChoices):
        UP = "up", "👍"
        DOWN = "down", "👎"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    rating = models.CharField(max_length=8, choices=Rating.choices)
    reason = models.CharField(max_length=40, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "feedback"
        indexes = [models.Index(fields=["rating", "-updated_at"], name="feedback_rating")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.message_id}"


class SystemUsage(models.Model):
    """Tokens chatsite itself spent (a generated title): the site's cost, not the user's, so it
    counts against no quota (docs/governance.md)."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    purpose = models.CharField(max_length=32)
    model = models.CharField(max_length=64)
    provider = models.CharField(max_length=64, blank=True)
    # The conversation it was for (by value: kept when the conversation is purged).
    conversation_id = models.UUIDField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost_cny = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)

    class Meta:
        verbose_name_plural = "system usage"

    def __str__(self) -> str:
        return f"{self.purpose} {self.model} {self.total_tokens} tokens"


class Share(models.Model):
    """A read-only link to a snapshot of a conversation's active branch (docs/export-and-share.md).

    The snapshot is taken when the link is made: the title and the messages' role, content and
    time, never the system prompt, usage, reasoning or other branches. A new share of the same
    conversation revokes the previous one; a revoked link, or one of a conversation its owner
    deleted, answers 404 like an unknown one.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="shares")
    # secrets.token_urlsafe(32): 43 characters, 256 bits.
    token = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="shares",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Anyone with the link may read it, signed in or not (only where SHARE_PUBLIC_LINKS allows).
    public = models.BooleanField(default=False)
    title = models.CharField(max_length=200, blank=True)
    # [{"role", "content", "created_at"}], the active branch when the link was made.
    snapshot = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["conversation", "revoked_at"], name="share_conv_revoked")]

    def __str__(self) -> str:
        return f"share of {self.conversation_id}"
