from argparse import ArgumentParser
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from attachments.models import Attachment
from conversations.models import Conversation
from conversations.services import purge_deleted


class Command(BaseCommand):
    help = (
        "Remove for good the conversations deleted more than DELETED_RETENTION_DAYS ago, except "
        "those under legal hold (docs/review.md). Run it daily (docs/deploy.md)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be purged; remove nothing."
        )

    def handle(self, *args: Any, dry_run: bool = False, **options: Any) -> None:
        days = settings.DELETED_RETENTION_DAYS
        if dry_run:
            due = Conversation.objects.filter(
                deleted_at__lt=timezone.now() - timedelta(days=days), legal_hold=False
            ).count()
            self.stdout.write(f"{due} conversation(s) deleted over {days} days ago would be purged")
            return
        conversations, messages = purge_deleted()
        held = Conversation.objects.filter(deleted_at__isnull=False, legal_hold=True).count()
        self.stdout.write(
            f"{conversations} conversation(s) and {messages} message(s) purged "
            f"(deleted over {days} days ago); {held} deleted conversation(s) under legal hold kept"
        )
        # Files uploaded and never sent (docs/attachments.md): their owner moved on.
        unsent_days = settings.ATTACHMENT_UNSENT_DAYS
        unsent = Attachment.objects.filter(
            conversation__isnull=True,
            created_at__lt=timezone.now() - timedelta(days=unsent_days),
        )
        removed = 0
        for attachment in unsent.iterator(chunk_size=200):
            attachment.delete()  # its files leave storage with it
            removed += 1
        self.stdout.write(f"{removed} file(s) never sent in {unsent_days} days removed")
