"""Secrets stored in the database (providers' API keys), encrypted at rest.

Fernet (``cryptography``: AES-128-CBC with an HMAC-SHA256, a timestamp and a version byte) with
the keys in ``ENCRYPTION_KEY``: the first encrypts, every one decrypts, so a key is rotated by
putting the new one first and re-saving (docs/deploy.md, "Encryption key"). A value that none of
them can decrypt raises ``WrongEncryptionKey``, which start-up turns into a clear error.
"""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class WrongEncryptionKey(Exception):
    """A stored secret that none of ``ENCRYPTION_KEY``'s keys can decrypt."""


def parse_keys(value: list[str]) -> list[bytes]:
    """``ENCRYPTION_KEY``'s keys, checked: each is 32 url-safe base64 bytes."""
    keys = []
    for text in value:
        key = text.strip().encode()
        try:
            ok = len(base64.urlsafe_b64decode(key)) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ImproperlyConfigured(
                "ENCRYPTION_KEY must be a comma-separated list of Fernet keys (32 url-safe "
                'base64-encoded bytes each). Make one with: python -c "from '
                'cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            )
        keys.append(key)
    if not keys:
        raise ImproperlyConfigured("ENCRYPTION_KEY is empty.")
    return keys


@functools.lru_cache(maxsize=4)
def _box(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in parse_keys(list(keys))])


def _current() -> MultiFernet:
    return _box(tuple(settings.ENCRYPTION_KEY))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise WrongEncryptionKey(
            "A stored API key cannot be decrypted with ENCRYPTION_KEY: the key was changed or "
            "is wrong. Put the key the secrets were saved with back into ENCRYPTION_KEY (a new "
            "key goes first, the old one after it), or enter the API keys again in admin."
        ) from exc
