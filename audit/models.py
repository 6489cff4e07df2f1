"""The audit trail: one append-only table of what staff and the system did (docs/review.md,
"Audit trail").

An entry names its actor and target by value (id and name as they were), not by foreign key, so
deleting a user or purging a conversation never changes or removes an entry. Nothing on the site
can edit or delete one: ``save`` refuses an update and ``delete`` refuses outright; the admin
shows entries read-only.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class AppendOnly(Exception):
    """An audit entry was to be changed or deleted."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnly("Audit entries cannot be changed.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly("Audit entries cannot be deleted.")


class AuditEntry(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_id = models.CharField(max_length=64, blank=True, db_index=True)
    # The actor's username then; "system" for commands and timers.
    actor = models.CharField(max_length=150, blank=True)
    # A dotted verb: transcript.view, transcript.export, conversation.delete, review.change, ...
    action = models.CharField(max_length=64, db_index=True)
    # "app_label.model" of what the action concerned, and its primary key as text.
    target_type = models.CharField(max_length=100, blank=True, db_index=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    target_repr = models.CharField(max_length=200, blank=True)
    # What the action needs to be understood later: a filter, a reason, before and after.
    detail = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit trail"
        indexes = [models.Index(fields=["target_type", "target_id", "-at"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor or 'system'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("Audit entries cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("Audit entries cannot be deleted.")
