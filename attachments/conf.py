"""The attachments' settings, with their defaults (docs/attachments.md, "Limits")."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.storage import Storage, storages

from .limits import MIB, Limits


def get(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def max_bytes() -> int:
    return int(get("ATTACHMENT_MAX_BYTES", 20 * MIB))


def user_quota_bytes() -> int:
    return int(get("ATTACHMENT_USER_QUOTA_BYTES", 200 * MIB))


def per_message() -> int:
    return int(get("ATTACHMENTS_PER_MESSAGE", 5))


def extract_timeout() -> float:
    return float(get("ATTACHMENT_EXTRACT_TIMEOUT_SECONDS", 30))


def extract_memory_mb() -> int:
    return int(get("ATTACHMENT_EXTRACT_MEMORY_MB", 768))


def limits() -> Limits:
    return Limits(max_pages=int(get("ATTACHMENT_MAX_PAGES", 500)))


def storage() -> Storage:
    """Django's storage API: local disk by default, S3-compatible by setting
    (``STORAGES["attachments"]``, docs/deploy.md)."""
    return storages["attachments"] if "attachments" in settings.STORAGES else storages["default"]
