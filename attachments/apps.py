from django.apps import AppConfig


class AttachmentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "attachments"
    verbose_name = "Attachments"

    def ready(self) -> None:
        from . import signals  # noqa: F401  # files leave storage with their rows
