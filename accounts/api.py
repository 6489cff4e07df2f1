"""Registration, JWT tokens, logout and the current user."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from chatsite.api.fields import StrictCharField
from chatsite.errors import AppError
from chatsite.ratelimit import enforce

from .errors import (
    AccountPending,
    EmailDomainNotAllowed,
    InviteInvalid,
    InviteRequired,
    SignupClosed,
)
from .models import SignupMode
from .selectors import signup_settings_get
from .serializers import RegisterInputSerializer, UserOutputSerializer
from .services import UsernameTaken, user_register


class RegisterApi(APIView):
    # 403 when sign-up is closed; 429 per-IP rate limit (chatsite/api/schema.py).
    error_statuses = {"POST": (403, 429)}
    # Refusals the schema cannot foresee (accounts/serializers.py says what it does state).
    error_codes = {
        "POST": {
            400: {
                "password_invalid": (
                    "A password validator refused the password: too common, too like the "
                    "username or email, or only digits other than 0-9."
                ),
                "username_taken": "This username is taken (in any letter case).",
                "username_invalid": (
                    "The username holds a character other than a letter, a digit or _.@+- "
                    "(as Python's Unicode database has them)."
                ),
                InviteRequired.code: (
                    "Sign-up is by invite only (docs/signup.md) and no `invite` was sent."
                ),
                InviteInvalid.code: "The `invite` code is unknown, expired or used up.",
                EmailDomainNotAllowed.code: (
                    "The sign-up settings allow only e-mail addresses at some domains, and `email` "
                    "is not at one of them (or missing)."
                ),
            },
            403: {SignupClosed.code: "Sign-up is closed (docs/signup.md)."},
        }
    }
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    @extend_schema(request=RegisterInputSerializer, responses={201: UserOutputSerializer})
    def post(self, request: Request) -> Response:
        enforce(request, group="register", rate=settings.REGISTER_RATE_LIMIT, per_user=False)
        signup = signup_settings_get()
        if signup.mode == SignupMode.CLOSED:
            raise SignupClosed()  # whatever the body says
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            user = user_register(**serializer.validated_data, signup=signup)
        except DjangoValidationError as exc:
            raise AppError(" ".join(exc.messages), code="password_invalid") from exc
        except UsernameTaken as exc:
            raise AppError("This username is taken.", code="username_taken") from exc
        return Response(UserOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class TokenObtainInputSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user: Any) -> Token:
        # Called once the password is checked, before any token exists: a pending account gets
        # none (403 account_pending), so it can never use the API.
        if getattr(user, "is_pending", False):
            raise AccountPending()
        return super().get_token(user)


class TokenObtainApi(TokenObtainPairView):
    # It authenticates no one, but answers a wrong password with 401, an account waiting for
    # approval with 403 (account_pending); rate limited per IP.
    error_statuses = {"POST": (401, 403, 429)}
    error_codes = {"POST": {403: {AccountPending.code: AccountPending.default_detail}}}
    serializer_class = TokenObtainInputSerializer

    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        enforce(request, group="login", rate=settings.LOGIN_RATE_LIMIT, per_user=False)
        return super().post(request, *args, **kwargs)


class TokenRefreshApi(TokenRefreshView):
    error_statuses = {"POST": (401,)}  # an invalid, expired or rotated refresh token


class LogoutInputSerializer(serializers.Serializer):
    refresh = StrictCharField()


class LogoutApi(APIView):
    """Blacklist a refresh token. The caller may be authenticated or hold only the refresh token."""

    permission_classes = [AllowAny]

    @extend_schema(request=LogoutInputSerializer, responses={205: None})
    def post(self, request: Request) -> Response:
        serializer = LogoutInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
            token.blacklist()
        except TokenError as exc:
            raise AppError(
                "Token is invalid or expired.", code="token_not_valid", status_code=401
            ) from exc
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=UserOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(UserOutputSerializer(request.user).data)
