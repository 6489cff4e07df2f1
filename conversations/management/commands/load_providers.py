"""``manage.py load_providers FILE``: upsert providers and models from YAML (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import trail
from conversations import providers_file


class Command(BaseCommand):
    help = (
        "Create or update providers and models from a YAML file. Keys are named by environment "
        "variable (api_key_env), never written in the file. A bad file changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror}") from None
        try:
            plan = providers_file.parse(text)
        except providers_file.ProvidersFileError as exc:
            raise CommandError(f"{file}: {exc} (nothing was changed)") from None
        result = providers_file.load(plan)
        if result.created or result.updated:
            # On the audit trail like an admin change (docs/review.md); keys never appear.
            trail.record(
                "provider.load",
                target_type="conversations.provider",
                target_repr=file.name,
                detail={"file": str(file), "created": result.created, "updated": result.updated},
            )
        for label in result.created:
            self.stdout.write(f"created {label}")
        for label in result.updated:
            self.stdout.write(f"updated {label}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(result.created)} created, {len(result.updated)} updated, "
                f"{len(result.unchanged)} unchanged"
            )
        )
