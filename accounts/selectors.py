"""Reads of the accounts app."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError

from .models import SignupMode, SignupSettings, parse_domains

logger = logging.getLogger(__name__)


def signup_mode_from_settings() -> str:
    """``SIGNUP_MODE`` (default ``open``); an unknown value reads as ``closed`` (accounts.E001)."""
    mode = str(getattr(settings, "SIGNUP_MODE", SignupMode.OPEN) or SignupMode.OPEN).strip().lower()
    if mode not in SignupMode.values:
        logger.error("SIGNUP_MODE=%r is not one of %s: sign-up is closed", mode, SignupMode.values)
        return SignupMode.CLOSED
    return mode


def signup_domains_from_settings() -> str:
    value = getattr(settings, "SIGNUP_EMAIL_DOMAINS", "") or ""
    if isinstance(value, list | tuple):
        value = ",".join(value)
    return "\n".join(parse_domains(str(value)))


def signup_settings_get() -> SignupSettings:
    """The sign-up settings row, created from ``SIGNUP_MODE`` and ``SIGNUP_EMAIL_DOMAINS`` the
    first time it is read; staff change it in admin from then on. One query."""
    row, _created = SignupSettings.objects.get_or_create(
        pk=SignupSettings.SINGLETON_PK,
        defaults={
            "mode": signup_mode_from_settings(),
            "allowed_email_domains": signup_domains_from_settings(),
        },
    )
    return row


def signup_mode_current() -> str:
    """The mode in force, without writing: the row's if it exists, else ``SIGNUP_MODE``. Safe
    before ``migrate`` (no table yet), so the system checks can call it."""
    try:
        mode = (
            SignupSettings.objects.filter(pk=SignupSettings.SINGLETON_PK)
            .values_list("mode", flat=True)
            .first()
        )
    except DatabaseError:
        mode = None
    return mode or signup_mode_from_settings()
