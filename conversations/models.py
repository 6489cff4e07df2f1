from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=64)
    system_prompt = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-updated_at"], name="conv_user_updated")]
        ordering = ["-updated_at"]

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
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    model = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_detail = models.TextField(blank=True)
    sid = models.CharField(max_length=128, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # The content's token estimate (selectors.estimate_tokens), written with the content, so
    # building a long conversation's history does not estimate every message again on every turn.
    token_estimate = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # A regenerated reply stays for review in admin but leaves the conversation and the history.
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
    def usage(self) -> dict[str, int] | None:
        if self.total_tokens is None:
            return None
        return {
            "prompt_tokens": self.prompt_tokens or 0,
            "completion_tokens": self.completion_tokens or 0,
            "total_tokens": self.total_tokens or 0,
        }
