from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """The project's user, custom from the first migration so fields can be added later."""

    class ApprovalStatus(models.TextChoices):
        APPROVED = "approved", _("Approved")
        PENDING = "pending", _("Pending")
        REJECTED = "rejected", _("Rejected")

    # Sign-up in "approval" mode makes a pending user: signed in to the browser, they see only the
    # waiting page, and the API refuses them (403 account_pending). A rejected user is inactive.
    approval_status = models.CharField(
        _("approval status"),
        max_length=16,
        choices=ApprovalStatus.choices,
        default=ApprovalStatus.APPROVED,
        db_index=True,
    )
    invite = models.ForeignKey(
        "accounts.Invite",
        verbose_name=_("invite"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="users",
        help_text=_("The invite code this user signed up with."),
    )

    class Meta(AbstractUser.Meta):  # type: ignore[name-defined]  # django-stubs lacks Meta
        swappable = "AUTH_USER_MODEL"

    @property
    def is_pending(self) -> bool:
        return self.approval_status == self.ApprovalStatus.PENDING


class SignupMode(models.TextChoices):
    OPEN = "open", _("Open: anyone may sign up")
    APPROVAL = "approval", _("Approval: new accounts wait for a staff member")
    INVITE = "invite", _("Invite only: an invite code is required")
    CLOSED = "closed", _("Closed: nobody may sign up")


class SignupSettings(models.Model):
    """The one row of sign-up settings (pk 1), created from ``SIGNUP_MODE`` and
    ``SIGNUP_EMAIL_DOMAINS`` when first read (``accounts.selectors.signup_settings_get``) and
    edited by staff in admin from then on."""

    SINGLETON_PK = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_PK, editable=False)
    mode = models.CharField(
        _("sign-up mode"), max_length=16, choices=SignupMode.choices, default=SignupMode.OPEN
    )
    allowed_email_domains = models.TextField(
        _("allowed e-mail domains"),
        blank=True,
        help_text=_(
            "One domain a line (or separated by commas), e.g. example.com. New accounts need an "
            "e-mail address at one of them. Empty: any address, or none."
        ),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("sign-up settings")
        verbose_name_plural = _("sign-up settings")

    def __str__(self) -> str:
        return str(_("Sign-up settings"))

    @property
    def email_domains(self) -> list[str]:
        return parse_domains(self.allowed_email_domains)


def parse_domains(text: str) -> list[str]:
    """``"Example.com, b.org\\n"`` -> ``["example.com", "b.org"]`` (lower case, no "@")."""
    parts = text.replace("\n", ",").split(",")
    domains = [part.strip().lstrip("@").strip().lower().rstrip(".") for part in parts]
    return list(dict.fromkeys(domain for domain in domains if domain))


def new_invite_code() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits, URL-safe: fits ?invite= as it is


class Invite(models.Model):
    """An invite code: valid until ``expires_at`` (never when empty) for ``max_uses`` sign-ups,
    each of which joins ``group``. Taken race-free by ``accounts.services.user_register``."""

    code = models.CharField(
        _("code"), max_length=64, unique=True, default=new_invite_code, editable=False
    )
    note = models.CharField(
        _("note"), max_length=200, blank=True, help_text=_("Who it is for (only staff see it).")
    )
    group = models.ForeignKey(
        Group,
        verbose_name=_("group"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The group each user who signs up with this code joins."),
    )
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Empty: never expires.")
    )
    max_uses = models.PositiveIntegerField(_("maximum uses"), default=1)
    uses = models.PositiveIntegerField(_("uses"), default=0, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("invite")
        verbose_name_plural = _("invites")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(uses__lte=models.F("max_uses")), name="invite_uses_within_max"
            )
        ]

    def __str__(self) -> str:
        return self.note or self.code

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_expired and self.uses < self.max_uses
