"""Forged and misused JWTs, beyond tests/accounts/test_api.py (expired, tampered, signed with
SECRET_KEY, rotated refresh reuse, logout): each is refused with a 401 JSON error."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

pytestmark = pytest.mark.django_db


def _me(token: str) -> tuple[int, dict]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get("/api/auth/me/")
    return response.status_code, response.json()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user) -> dict:
    return dict(AccessToken.for_user(user).payload)


def test_token_signed_with_another_key_is_refused(user):
    forged = jwt.encode(_claims(user), secrets.token_urlsafe(64), algorithm="HS256")
    status, body = _me(forged)
    assert status == 401
    assert body["code"] == "token_not_valid"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_alg_none_token_is_refused(user, alg):
    forged = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(_claims(user))}."
    status, body = _me(forged)
    assert status == 401
    assert body["code"] == "token_not_valid"


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_token_with_another_algorithm_is_refused_even_with_the_right_key(user, alg):
    forged = jwt.encode(_claims(user), settings.SIMPLE_JWT["SIGNING_KEY"], algorithm=alg)
    status, _ = _me(forged)
    assert status == 401


def test_refresh_token_is_not_accepted_as_an_access_token(user):
    status, body = _me(str(RefreshToken.for_user(user)))
    assert status == 401
    assert body["code"] == "token_not_valid"


def test_expired_refresh_token_cannot_be_refreshed(anon, user):
    refresh = RefreshToken.for_user(user)
    refresh.set_exp(lifetime=-timedelta(seconds=1))
    response = anon.post("/api/auth/token/refresh/", {"refresh": str(refresh)}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_token_without_a_user_id_is_refused(user):
    claims = _claims(user)
    del claims["user_id"]
    forged = jwt.encode(claims, settings.SIMPLE_JWT["SIGNING_KEY"], algorithm="HS256")
    status, _ = _me(forged)
    assert status == 401


def test_deactivated_user_is_refused_with_both_tokens(anon, user):
    access = str(AccessToken.for_user(user))
    refresh = str(RefreshToken.for_user(user))
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert _me(access)[0] == 401
    response = anon.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert response.status_code == 401
    response = anon.post(
        "/api/auth/token/",
        {"username": user.username, "password": "correct-horse-battery-9"},
        format="json",
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Bearer a b", "Basic dXNlcjpwYXNz", "Bearer \u00e9\u00e8", "Token abc"],
    ids=["no-token", "empty-token", "two-parts", "basic-scheme", "non-ascii", "other-scheme"],
)
def test_malformed_authorization_headers_are_401_json(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/auth/me/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"]
