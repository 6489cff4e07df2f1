"""System checks of the sign-up settings (registered in accounts/apps.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from .models import SignupMode

MIDDLEWARE_PATH = "accounts.middleware.PendingApprovalMiddleware"


def check_signup_mode_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    mode = str(getattr(settings, "SIGNUP_MODE", SignupMode.OPEN) or SignupMode.OPEN)
    if mode.strip().lower() in SignupMode.values:
        return []
    return [
        checks.Error(
            f"SIGNUP_MODE={mode!r} is not a sign-up mode: sign-up stays closed until it is fixed.",
            hint="Set SIGNUP_MODE to one of: " + ", ".join(SignupMode.values) + ".",
            id="accounts.E001",
        )
    ]


def check_pending_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if MIDDLEWARE_PATH in settings.MIDDLEWARE:
        return []
    return [
        checks.Warning(
            f"{MIDDLEWARE_PATH} is not in MIDDLEWARE: accounts waiting for approval can use the "
            "chat page and the API with their session.",
            hint="Add it after django.contrib.auth.middleware.AuthenticationMiddleware.",
            id="accounts.W002",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_signup_open_in_production(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Open sign-up on a public server lets anyone spend the site's model quota."""
    if settings.DEBUG:
        return []
    from .selectors import signup_mode_current

    if signup_mode_current() != SignupMode.OPEN:
        return []
    return [
        checks.Warning(
            "Sign-up is open: anyone who reaches the site can create an account and use the "
            "models.",
            hint=(
                "Set SIGNUP_MODE=approval or SIGNUP_MODE=invite (or change the mode in admin, "
                "Sign-up settings). See docs/signup.md."
            ),
            id="accounts.W001",
        )
    ]
