from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from . import checks as account_checks  # registers the deploy check

        checks.register(account_checks.check_signup_mode_setting)
        checks.register(account_checks.check_pending_middleware)
