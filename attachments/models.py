"""Files users attach to their messages (docs/attachments.md).

The app knows conversations only by name (string foreign keys): the reply engine imports it,
never the other way round. An upload's text is extracted once, at upload, in a child process
(``attachments.runner``); what is stored here is what the prompt gets.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from . import conf


def _upload_to(instance: Attachment, filename: str) -> str:
    # Never the user's file name on disk: a fixed layout, the name is kept in a column.
    return f"{instance.owner_id}/{instance.id}/original"


def _derived_to(instance: Attachment, filename: str) -> str:
    return f"{instance.owner_id}/{instance.id}/image"


class Attachment(models.Model):
    class Kind(models.TextChoices):
        PDF = "pdf", "PDF"
        DOCX = "docx", "Word"
        XLSX = "xlsx", "Excel"
        CSV = "csv", "CSV"
        PPTX = "pptx", "PowerPoint"
        TEXT = "text", "text"
        CODE = "code", "source code"
        IMAGE = "image", "image"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    # The conversation it was first sent in (null until then): purging the conversation purges
    # the file. Edits and regenerations in that conversation may send it again.
    conversation = models.ForeignKey(
        "conversations.Conversation",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="attachments",
    )
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(storage=conf.storage, upload_to=_upload_to, max_length=300)
    # Images: the sanitised copy vision models get (EXIF removed, long side capped).
    image = models.FileField(
        storage=conf.storage, upload_to=_derived_to, max_length=300, blank=True
    )
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # The extracted text, with page / slide / sheet labels; page_starts: where each PDF page or
    # slide begins in it, for page ranges.
    text = models.TextField(blank=True)
    page_starts = models.JSONField(default=list, blank=True)
    chars = models.PositiveIntegerField(default=0)
    token_estimate = models.PositiveIntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="attachment_owner")]

    def __str__(self) -> str:
        return self.name

    @property
    def pages(self) -> int:
        return len(self.page_starts)


class AttachmentUse(models.Model):
    """A file sent with a message, with the page range the user chose (empty: all of it)."""

    attachment = models.ForeignKey(Attachment, on_delete=models.CASCADE, related_name="uses")
    message = models.ForeignKey(
        "conversations.Message", on_delete=models.CASCADE, related_name="attachment_uses"
    )
    pages = models.CharField(max_length=100, blank=True)
    # What this use put in the prompt: its tokens (counted in the message's token estimate).
    token_estimate = models.PositiveIntegerField(default=0)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["message_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["message", "attachment"], name="attachment_use_unique")
        ]

    def __str__(self) -> str:
        return f"{self.attachment} in {self.message_id}"
