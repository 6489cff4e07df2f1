from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from conversations.recovery import messages_recover_stale


class Command(BaseCommand):
    help = "Mark replies left 'streaming' by a dead or stopped worker as 'interrupted'."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--worker", default=None, help="host:pid[:start] of a worker known to be gone"
        )

    def handle(self, *args: Any, worker: str | None = None, **options: Any) -> None:
        count = messages_recover_stale(worker=worker)
        self.stdout.write(f"{count} reply(ies) marked interrupted")
