"""A deleted attachment row takes its files out of storage (a purge, a user's delete)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Attachment


@receiver(post_delete, sender=Attachment, dispatch_uid="attachment-files")
def _remove_files(sender: Any, instance: Attachment, **_: Any) -> None:
    names = [f.name for f in (instance.file, instance.image) if f and f.name]
    storage = instance.file.storage

    def remove() -> None:
        for name in names:
            storage.delete(name)

    # Only once the deletion is committed: a rolled-back purge keeps its files.
    transaction.on_commit(remove)
