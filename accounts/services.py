"""Writes of the accounts app: registration under the sign-up settings, approval of accounts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .errors import EmailDomainNotAllowed, InviteInvalid, InviteRequired, SignupClosed
from .models import Invite, SignupMode, SignupSettings, User
from .selectors import signup_settings_get


class UsernameTaken(Exception):
    pass


def signup_refusal_check(*, signup: SignupSettings, email: str = "", invite: str = "") -> None:
    """Raise the refusal the sign-up settings give before any write (the invite's validity is
    judged when it is taken): ``signup_closed``, ``email_domain_not_allowed``,
    ``invite_required``."""
    if signup.mode == SignupMode.CLOSED:
        raise SignupClosed()
    domains = signup.email_domains
    if domains:
        domain = email.rpartition("@")[2].strip().lower().rstrip(".") if "@" in email else ""
        if domain not in domains:
            raise EmailDomainNotAllowed(
                "Sign-up needs an e-mail address at one of: " + ", ".join(domains) + "."
            )
    if signup.mode == SignupMode.INVITE and not invite.strip():
        raise InviteRequired()


def _invite_take(code: str) -> Invite:
    """Take one use of the invite ``code`` in one conditional UPDATE, so two registrations can
    never both take its last use; raise :class:`InviteInvalid` when it is unknown, expired or used
    up. Call inside the registration's transaction: a failed registration gives the use back."""
    now = timezone.now()
    usable = Q(code=code, uses__lt=F("max_uses")) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    if not Invite.objects.filter(usable).update(uses=F("uses") + 1):
        raise InviteInvalid()
    return Invite.objects.select_related("group").get(code=code)


def user_register(
    *,
    username: str,
    password: str,
    email: str = "",
    invite: str = "",
    signup: SignupSettings | None = None,
) -> User:
    """Register a user under the sign-up settings.

    Closed: ``signup_closed``. An e-mail domain outside a non-empty allowlist:
    ``email_domain_not_allowed``. Invite mode without a code: ``invite_required``. A code (in any
    mode but closed) that is unknown, expired or used up: ``invite_invalid``; a valid one is taken
    in the same transaction as the user is saved and puts the user in its group. In approval mode
    the account is pending, unless it came with a valid invite. Raises ``ValidationError`` for a
    password the validators refuse and :class:`UsernameTaken`.
    """
    signup = signup or signup_settings_get()
    invite = invite.strip()
    signup_refusal_check(signup=signup, email=email, invite=invite)
    user_model = get_user_model()
    candidate = user_model(username=username, email=email)
    validate_password(password, user=candidate)
    candidate.set_password(password)
    if signup.mode == SignupMode.APPROVAL and not invite:
        candidate.approval_status = User.ApprovalStatus.PENDING
    try:
        with transaction.atomic():
            taken = _invite_take(invite) if invite else None
            candidate.invite = taken
            candidate.save()
            if taken is not None and taken.group is not None:
                candidate.groups.add(taken.group)
    except IntegrityError as exc:
        raise UsernameTaken(username) from exc
    return candidate


def users_approve(*, users: Iterable[User]) -> int:
    """Approve users (pending or rejected): they become active. Returns how many changed."""
    ids = [user.pk for user in users]
    return (
        get_user_model()
        .objects.filter(pk__in=ids)
        .exclude(approval_status=User.ApprovalStatus.APPROVED, is_active=True)
        .update(approval_status=User.ApprovalStatus.APPROVED, is_active=True)
    )


def users_reject(*, users: Iterable[User]) -> int:
    """Reject users: they are deactivated (sign-in and tokens answer as for any inactive user).
    Staff members are left alone. Returns how many changed."""
    ids = [user.pk for user in users]
    return (
        get_user_model()
        .objects.filter(pk__in=ids, is_staff=False)
        .exclude(approval_status=User.ApprovalStatus.REJECTED, is_active=False)
        .update(approval_status=User.ApprovalStatus.REJECTED, is_active=False)
    )


def invite_create(
    *,
    created_by: User | None = None,
    max_uses: int = 1,
    expires_at: datetime | None = None,
    group: Group | None = None,
    note: str = "",
) -> Invite:
    return Invite.objects.create(
        created_by=created_by, max_uses=max_uses, expires_at=expires_at, group=group, note=note
    )
