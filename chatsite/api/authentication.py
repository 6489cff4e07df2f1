"""Bearer-token authentication that does not read the user from the database on every request.

A valid access token already says who is calling. ``request.user`` becomes a lazy user whose
``pk``/``id`` come from the token; the user row is read only if a view touches any other
attribute, and then an inactive or deleted user is refused (401) exactly as simplejwt's own
authentication refuses them. Views on the hot paths never touch it: their queries scope by the
user's id and check ``is_active`` in the same statement (conversations/selectors.py), so a
deactivated user is still refused, without a query of its own. See docs/architecture.md, "Who is
calling".
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.utils.functional import SimpleLazyObject
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from chatsite.errors import UserInactive


def _load_active_user(user_id: Any) -> Any:
    model = get_user_model()
    try:
        user = model.objects.get(pk=user_id)
    except model.DoesNotExist:
        raise UserInactive("User not found.", code="user_not_found") from None
    if not user.is_active:
        raise UserInactive()
    return user


class TokenUser(SimpleLazyObject):
    """The caller of a bearer-token request: ``pk`` without a query, the rest on first use."""

    def __init__(self, user_id: Any) -> None:
        super().__init__(lambda: _load_active_user(user_id))
        # Instance attributes are found before LazyObject's proxying __getattr__.
        self.__dict__.update(pk=user_id, id=user_id, is_authenticated=True, is_anonymous=False)

    def __bool__(self) -> bool:  # DRF's IsAuthenticated asks ``bool(request.user)`` first
        return True


class LazyUserJWTAuthentication(JWTAuthentication):
    """simplejwt's bearer-token authentication with a :class:`TokenUser` for the caller."""

    def get_user(self, validated_token: Token) -> Any:
        try:
            raw_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        try:
            user_id = get_user_model()._meta.pk.to_python(raw_id)
        except Exception as exc:
            raise InvalidToken("Token contained no recognizable user identification") from exc
        return TokenUser(user_id)


class LazyUserJWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme: the same bearer token as simplejwt's own."""

    # The base (OpenApiAuthenticationExtension) takes a class or a dotted path; SimpleJWTScheme's
    # unannotated string narrows the attribute to str for mypy.
    target_class = LazyUserJWTAuthentication  # type: ignore[assignment]
