from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReviewConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "review"
    verbose_name = "Review"

    def ready(self) -> None:
        from . import flagging, roles

        flagging.connect()
        post_migrate.connect(roles.ensure_reviewer_role, sender=self, dispatch_uid="reviewer-role")
