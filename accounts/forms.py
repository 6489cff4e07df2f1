from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

from .errors import (
    EmailDomainNotAllowed,
    InviteInvalid,
    InviteRequired,
    SignupClosed,
    SignupRefused,
)
from .models import SignupMode, User

# The sign-up page's message for each refusal (the API answers the code with an English detail).
REFUSAL_MESSAGES = {
    SignupClosed.code: _("Sign-up is closed. Ask the site's administrator for an account."),
    InviteRequired.code: _("An invite code is required to sign up."),
    InviteInvalid.code: _("This invite code is unknown, expired or used up."),
    EmailDomainNotAllowed.code: _("Sign-up needs an e-mail address at one of: %(domains)s."),
}


class SignUpForm(UserCreationForm):
    """Username, e-mail, password twice, and the invite code when the mode asks for one (or the
    link carried one). The sign-up settings themselves are applied by
    ``accounts.services.user_register``; :meth:`add_refusal` shows its refusals."""

    invite = forms.CharField(
        label=_("Invite code"),
        max_length=64,
        required=False,
        error_messages={"required": REFUSAL_MESSAGES[InviteRequired.code]},
    )

    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]  # django-stubs lacks Meta
        model = User
        fields = ("username", "email")

    def __init__(
        self,
        *args: Any,
        mode: str = SignupMode.OPEN,
        email_domains: list[str] | None = None,
        show_invite: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.email_domains = email_domains or []
        if mode == SignupMode.INVITE:
            self.fields["invite"].required = True
        elif not show_invite:
            del self.fields["invite"]
        if self.email_domains:
            email = self.fields["email"]
            email.required = True
            email.error_messages["required"] = REFUSAL_MESSAGES[EmailDomainNotAllowed.code] % {
                "domains": ", ".join(self.email_domains)
            }
            email.help_text = _("An address at one of: %(domains)s.") % {
                "domains": ", ".join(self.email_domains)
            }

    def add_refusal(self, error: SignupRefused) -> None:
        message = REFUSAL_MESSAGES.get(error.code, error.detail)
        if isinstance(error, EmailDomainNotAllowed):
            message = message % {"domains": ", ".join(self.email_domains)}
        field = error.field if error.field in self.fields else None
        self.add_error(field, forms.ValidationError(message, code=error.code))
