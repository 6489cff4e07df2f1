from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import translation
from rest_framework import serializers

from chatsite.api.fields import StrictCharField
from chatsite.api.schema import WHITESPACE, containing

# Django's username rule is Python's Unicode ``\w`` plus ``.@+-``, which an OpenAPI (ECMA) pattern
# cannot spell: ECMA's ``\w`` is ASCII. The pattern is exact for ASCII (letters, digits and
# ``_.@+-``, with the whitespace the field trims around them) and lets any other character but
# whitespace and controls through; a name Django still refuses is a 400 ``username_invalid``.
USERNAME_OUTSIDE = (
    r"\u0000-\u002a\u002c\u002f\u003a-\u003f\u005b-\u005e\u0060\u007b-\u009f" + WHITESPACE
)
USERNAME_PATTERN = rf"^[{WHITESPACE}]*[^{USERNAME_OUTSIDE}]+[{WHITESPACE}]*$"


class UsernameField(StrictCharField):
    def openapi_constraints(self) -> dict[str, Any]:
        return {"pattern": USERNAME_PATTERN}


class PasswordField(StrictCharField):
    """A new password, kept as sent, judged by the password validators (AUTH_PASSWORD_VALIDATORS)
    in ``accounts.services.user_register``: a refusal is a 400 ``password_invalid``.

    The schema states what of them a schema can: the minimum length and "not only the digits 0-9".
    A common password, one too like the username or email, or one of other digits only (Python's
    ``isdigit`` counts Arabic-Indic or superscript digits too) stays a refusal on its merits.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 128)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def openapi_constraints(self) -> dict[str, Any]:
        constraints: dict[str, Any] = {}
        for validator in password_validation.get_default_password_validators():
            if isinstance(validator, password_validation.MinimumLengthValidator):
                constraints["minLength"] = max(1, validator.min_length)
            elif isinstance(validator, password_validation.NumericPasswordValidator):
                constraints["pattern"] = containing("0-9")
        with translation.override("en"):
            texts = password_validation.password_validators_help_texts()
        if texts:
            constraints["description"] = " ".join(str(text) for text in texts)
        return constraints


class RegisterInputSerializer(serializers.Serializer):
    username = UsernameField(max_length=150)
    password = PasswordField()
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    # Required in invite mode (400 invite_required); in open and approval modes an optional code
    # that puts the user in its group (and approves the account at once).
    invite = StrictCharField(required=False, allow_blank=True, max_length=64)

    def validate_username(self, value: str) -> str:
        try:
            UnicodeUsernameValidator()(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                " ".join(exc.messages), code="username_invalid"
            ) from exc
        if get_user_model().objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("This username is taken.", code="username_taken")
        return value


class UserOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()  # may be blank: "" is not an email address
    date_joined = serializers.DateTimeField()
