from __future__ import annotations

import pytest

from accounts.checks import MIDDLEWARE_PATH

AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@pytest.fixture(autouse=True)
def _pending_middleware(settings) -> None:
    """The waiting-page middleware, where chatsite/settings.py is to list it (after the session's
    user is known) until it does; a no-op once it is there (accounts.W002 says when it is not)."""
    if MIDDLEWARE_PATH not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(middleware.index(AUTH_MIDDLEWARE) + 1, MIDDLEWARE_PATH)
        settings.MIDDLEWARE = middleware
