"""Start-up checks: the encryption key must open the API keys stored in the database.

Registered with the tag ``secrets``: ``manage.py check``, ``runserver`` and ``migrate`` run it,
and ``chatsite/wsgi.py`` runs it before serving, so a wrong ``ENCRYPTION_KEY`` stops the server
with this message instead of failing replies later (docs/deploy.md, "Encryption key").
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from chatsite import crypto


@checks.register("secrets")
def check_stored_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings

    from . import catalog

    try:
        crypto.parse_keys(list(settings.ENCRYPTION_KEY))
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="chatsite.E101")]
    try:
        problems = catalog.stored_key_problems()
    except DatabaseError:
        return []  # before ``migrate``: nothing stored yet
    if not problems:
        return []
    return [
        checks.Error(
            "ENCRYPTION_KEY cannot decrypt the API key stored for " + ", ".join(problems) + ".",
            hint=(
                "Set ENCRYPTION_KEY to the key the API keys were saved with (to rotate, list the "
                "new key first and the old one after it), or enter those API keys again in admin."
            ),
            id="chatsite.E102",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_encryption_key_is_set(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """``check --deploy``: ENCRYPTION_KEY derived from the secret key ties the stored API keys to
    it, so rotating DJANGO_SECRET_KEY would make them unreadable."""
    import os

    if os.environ.get("ENCRYPTION_KEY"):
        return []
    return [
        checks.Warning(
            "ENCRYPTION_KEY is not set: the API keys stored in the database are encrypted with a "
            "key derived from DJANGO_SECRET_KEY, so rotating that secret makes them unreadable.",
            hint="Set ENCRYPTION_KEY (make run writes one into .env); see docs/deploy.md.",
            id="chatsite.W101",
        )
    ]
