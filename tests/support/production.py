"""The environment of a production deployment, for tests that start ``manage.py`` as one would:
DEBUG off, HTTPS, fresh secrets, a SQLite file of the test's own. Nothing of the developer's
environment that would change settings (``DJANGO_*``, ``DATABASE_URL``...) leaks in."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

LEAKING = (
    "DJANGO_",
    "JWT_",
    "CHATSITE_",
    "DATABASE_URL",
    "REDIS_URL",
    "ENCRYPTION_KEY",
    "SIGNUP_",
)


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(LEAKING)}
    return {
        **env,
        "CHATSITE_TESTING": "0",
        "DJANGO_DEBUG": "false",
        "DJANGO_HTTPS": "true",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(64),
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **extra,
    }
