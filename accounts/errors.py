"""Refusals of sign-up and of pending accounts: :class:`chatsite.errors.AppError` with the codes the
API answers (``{"detail", "code"}``, chatsite/api/exceptions.py). The sign-up page shows each as a
translated message (accounts/forms.py)."""

from __future__ import annotations

from chatsite.errors import AppError


class SignupRefused(AppError):
    """A registration the sign-up settings refuse (the mode, the invite, the e-mail domain)."""

    field = ""  # the input at fault, "" for the request as a whole

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, extra={"field": self.field} if self.field else None)


class SignupClosed(SignupRefused):
    status_code = 403
    code = "signup_closed"
    default_detail = "Sign-up is closed."


class InviteRequired(SignupRefused):
    status_code = 400
    code = "invite_required"
    default_detail = "An invite code is required to sign up."
    field = "invite"


class InviteInvalid(SignupRefused):
    status_code = 400
    code = "invite_invalid"
    default_detail = "This invite code is unknown, expired or used up."
    field = "invite"


class EmailDomainNotAllowed(SignupRefused):
    status_code = 400
    code = "email_domain_not_allowed"
    default_detail = "Sign-up needs an e-mail address at one of the allowed domains."
    field = "email"


class AccountPending(AppError):
    status_code = 403
    code = "account_pending"
    default_detail = "This account is waiting for a staff member's approval."
