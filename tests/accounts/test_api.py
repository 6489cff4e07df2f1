"""Registration, JWT tokens (rotation, blacklist), logout and the current user.

The endpoints are listed in README.md, "Use the API"; token lifetimes and rotation are set in
chatsite/settings.py (``SIMPLE_JWT``).
"""

from __future__ import annotations

import time
from unittest import mock

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import PASSWORD, UserFactory
from tests.fuzz.openapi import documented_codes, openapi, schema_valid, schema_valid_cases
from tests.support.api import assert_json_error

pytestmark = pytest.mark.django_db

User = get_user_model()


def obtain(client: APIClient, username: str, password: str = PASSWORD):
    return client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


# --- registration -------------------------------------------------------------------------------


def test_register_creates_a_user_and_answers_201_without_the_password(anon):
    response = anon.post(
        "/api/auth/register/",
        {
            "username": "alice",
            "password": "a-long-unusual-passphrase-7",
            "email": "alice@example.com",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert "password" not in body
    user = User.objects.get(username="alice")
    assert body["id"] == user.pk
    assert user.check_password("a-long-unusual-passphrase-7")


def test_register_without_email_is_allowed(anon):
    response = anon.post(
        "/api/auth/register/",
        {"username": "bob", "password": "a-long-unusual-passphrase-7"},
        format="json",
    )

    assert response.status_code == 201
    assert User.objects.get(username="bob").email == ""


def test_registered_user_can_obtain_tokens(anon):
    anon.post(
        "/api/auth/register/",
        {"username": "carol", "password": "a-long-unusual-passphrase-7"},
        format="json",
    )

    response = obtain(anon, "carol", "a-long-unusual-passphrase-7")

    assert response.status_code == 200
    assert {"access", "refresh"} <= set(response.json())


@pytest.mark.parametrize("username", ["taken", "TAKEN"])
def test_register_with_a_taken_username_is_400(anon, username):
    UserFactory(username="taken")

    response = anon.post(
        "/api/auth/register/",
        {"username": username, "password": "a-long-unusual-passphrase-7"},
        format="json",
    )

    assert_json_error(response, 400, "username_taken")
    assert User.objects.filter(username__iexact="taken").count() == 1


@pytest.mark.parametrize("password", ["short", "password123", "12345678901", "dave-the-user"])
def test_register_with_a_weak_password_is_400_and_creates_nothing(anon, password):
    response = anon.post(
        "/api/auth/register/", {"username": "dave-the-user", "password": password}, format="json"
    )

    assert_json_error(response, 400, "password_invalid")
    assert not User.objects.filter(username="dave-the-user").exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"username": 123, "password": "a-long-unusual-passphrase-7"},
        {"username": "erin", "password": 12345678901234},
        {"username": ["erin"], "password": "a-long-unusual-passphrase-7"},
    ],
    ids=["int-username", "int-password", "list-username"],
)
def test_register_with_non_string_fields_is_400(anon, payload):
    response = anon.post("/api/auth/register/", payload, format="json")

    assert_json_error(response, 400)
    assert User.objects.count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"username": "frank"},
        {"password": "a-long-unusual-passphrase-7"},
        {"username": "", "password": "x"},
    ],
    ids=["empty", "no-password", "no-username", "blank-username"],
)
def test_register_with_missing_fields_is_400(anon, payload):
    assert_json_error(anon.post("/api/auth/register/", payload, format="json"), 400)
    assert User.objects.count() == 0


def test_register_with_an_invalid_username_is_400(anon):
    response = anon.post(
        "/api/auth/register/",
        {"username": "no spaces!", "password": "a-long-unusual-passphrase-7"},
        format="json",
    )

    assert_json_error(response, 400)


def test_register_with_invalid_json_is_400(anon):
    response = anon.post(
        "/api/auth/register/", data='{"username": "x",', content_type="application/json"
    )

    assert_json_error(response, 400, "parse_error")


def test_register_is_rate_limited_per_ip(anon, settings):
    settings.REGISTER_RATE_LIMIT = "2/m"
    with mock.patch("django_ratelimit.core.time.time", return_value=time.time()):
        for n in range(2):
            anon.post(
                "/api/auth/register/",
                {"username": f"u{n}", "password": "a-long-unusual-passphrase-7"},
                format="json",
            )
        response = anon.post(
            "/api/auth/register/",
            {"username": "u9", "password": "a-long-unusual-passphrase-7"},
            format="json",
        )

    assert_json_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60
    assert not User.objects.filter(username="u9").exists()


# --- tokens -------------------------------------------------------------------------------------


def test_token_obtain_returns_access_and_refresh(anon, user):
    response = obtain(anon, user.username)

    assert response.status_code == 200
    body = response.json()
    assert AccessToken(body["access"])["user_id"] == str(user.pk)
    assert bearer(body["access"]).get("/api/auth/me/").json()["username"] == user.username


def test_token_obtain_with_a_wrong_password_is_401(anon, user):
    assert_json_error(obtain(anon, user.username, "not-the-password"), 401)


def test_token_obtain_is_rate_limited_per_ip(anon, user, settings):
    settings.LOGIN_RATE_LIMIT = "2/m"
    with mock.patch("django_ratelimit.core.time.time", return_value=time.time()):
        obtain(anon, user.username, "wrong")
        obtain(anon, user.username, "wrong")
        response = obtain(anon, user.username)

    assert_json_error(response, 429, "rate_limited")
    assert int(response["Retry-After"]) >= 1


def test_refresh_rotates_and_the_old_refresh_token_is_refused(anon, user):
    tokens = obtain(anon, user.username).json()

    rotated = anon.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh"] != tokens["refresh"]
    assert bearer(new["access"]).get("/api/auth/me/").status_code == 200

    replay = anon.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert_json_error(replay, 401, "token_not_valid")

    again = anon.post("/api/auth/token/refresh/", {"refresh": new["refresh"]}, format="json")
    assert again.status_code == 200


def test_refresh_with_an_access_token_is_401(anon, user):
    tokens = obtain(anon, user.username).json()

    response = anon.post("/api/auth/token/refresh/", {"refresh": tokens["access"]}, format="json")

    assert_json_error(response, 401, "token_not_valid")


# --- logout -------------------------------------------------------------------------------------


def test_logout_blacklists_the_refresh_token(anon, user):
    tokens = obtain(anon, user.username).json()

    response = bearer(tokens["access"]).post(
        "/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json"
    )

    assert response.status_code == 205
    refused = anon.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert_json_error(refused, 401, "token_not_valid")


def test_logout_of_a_rotated_refresh_token_blacklists_it(anon, user):
    tokens = obtain(anon, user.username).json()
    rotated = anon.post(
        "/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    ).json()

    assert (
        anon.post("/api/auth/logout/", {"refresh": rotated["refresh"]}, format="json").status_code
        == 205
    )

    refused = anon.post("/api/auth/token/refresh/", {"refresh": rotated["refresh"]}, format="json")
    assert_json_error(refused, 401, "token_not_valid")


def test_logout_twice_or_with_garbage_is_401(anon, user):
    tokens = obtain(anon, user.username).json()
    anon.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json")

    assert_json_error(
        anon.post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json"), 401
    )
    assert_json_error(
        anon.post("/api/auth/logout/", {"refresh": "not-a-token"}, format="json"), 401
    )


def test_logout_without_a_refresh_token_is_400(anon):
    assert_json_error(anon.post("/api/auth/logout/", {}, format="json"), 400)
    assert_json_error(anon.post("/api/auth/logout/", {"refresh": 7}, format="json"), 400)


# --- me and bearer authentication ---------------------------------------------------------------


def test_me_returns_the_current_user(user):
    response = bearer(str(AccessToken.for_user(user))).get("/api/auth/me/")

    assert response.status_code == 200
    assert response.json() == {
        "id": user.pk,
        "username": user.username,
        "email": user.email,
        "date_joined": response.json()["date_joined"],
    }


def test_anonymous_me_is_401_json(anon):
    response = anon.get("/api/auth/me/")

    assert_json_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_token_is_401_json(user):
    token = AccessToken.for_user(user)
    token.set_exp(lifetime=-settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"])

    body = assert_json_error(bearer(str(token)).get("/api/auth/me/"), 401, "token_not_valid")
    assert "{" not in body["detail"]  # a sentence, not a serialised dict


def test_tampered_access_token_is_401_json(user):
    header, payload, signature = str(AccessToken.for_user(user)).split(".")
    forged_payload = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(payload).replace(str(user.pk).encode(), b"999")
    ).decode()

    assert_json_error(
        bearer(f"{header}.{forged_payload}.{signature}").get("/api/auth/me/"),
        401,
        "token_not_valid",
    )
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert_json_error(
        bearer(f"{header}.{payload}.{flipped}").get("/api/auth/me/"), 401, "token_not_valid"
    )


def test_access_token_signed_with_the_secret_key_is_refused(user):
    claims = dict(AccessToken.for_user(user).payload)
    forged = jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")

    assert_json_error(bearer(forged).get("/api/auth/me/"), 401, "token_not_valid")


def test_jwt_signing_key_is_long_and_not_the_secret_key(user):
    key = settings.SIMPLE_JWT["SIGNING_KEY"]

    assert key != settings.SECRET_KEY
    assert len(key) >= 32
    claims = jwt.decode(str(AccessToken.for_user(user)), key, algorithms=["HS256"])
    assert claims["user_id"] == str(user.pk)


def test_garbage_bearer_token_is_401_json():
    assert_json_error(bearer("not.a.jwt").get("/api/auth/me/"), 401, "token_not_valid")


def test_token_of_a_deleted_user_is_401(user):
    access = str(AccessToken.for_user(user))
    user.delete()

    assert_json_error(bearer(access).get("/api/auth/me/"), 401)


def test_access_token_lifetimes_follow_the_architecture():
    jwt_settings = settings.SIMPLE_JWT
    assert jwt_settings["ACCESS_TOKEN_LIFETIME"].total_seconds() == 15 * 60
    assert jwt_settings["REFRESH_TOKEN_LIFETIME"].days == 7
    assert jwt_settings["ROTATE_REFRESH_TOKENS"]
    assert jwt_settings["BLACKLIST_AFTER_ROTATION"]


@pytest.mark.django_db
def test_register_page_is_an_alias_of_sign_up(client):
    response = client.get("/accounts/register/?next=/c/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/signup/?next=/c/"
    assert client.get(response["Location"]).status_code == 200


# --- the schema says what registration and the token endpoints accept ---------------------------
# (tests/fuzz/run_schemathesis.py holds the running server to the same, over every operation)


def request_field(schema: dict, component: str, field: str) -> dict:
    return schema["components"]["schemas"][component]["properties"][field]


def test_the_schema_states_the_password_validators_it_can(anon, settings):
    password = request_field(openapi(anon), "RegisterInputRequest", "password")

    # MinimumLengthValidator and NumericPasswordValidator (chatsite/settings.py); no NUL.
    assert (password["minLength"], password["maxLength"]) == (8, 128)
    valid = schema_valid(password)
    assert valid("a-long-unusual-passphrase-7")
    assert valid("٣٣٣٣٣٣٣٣")  # only Django's isdigit() knows these are digits: password_invalid
    for refused in ["short", "1234567890", "a-long\x00passphrase", "x" * 129]:
        assert not valid(refused), refused

    # The schema follows the validators configured.
    settings.AUTH_PASSWORD_VALIDATORS = [
        {
            "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
            "OPTIONS": {"min_length": 12},
        }
    ]
    password = request_field(openapi(anon), "RegisterInputRequest", "password")
    assert password["minLength"] == 12
    assert schema_valid(password)("123456789012")


def test_the_schema_states_the_username_rule_exactly_for_ascii(anon, settings):
    settings.REGISTER_RATE_LIMIT = "100000/m"
    valid = schema_valid(request_field(openapi(anon), "RegisterInputRequest", "username"))

    def register(username: str):
        payload = {"username": username, "password": "a-long-unusual-passphrase-7"}
        return anon.post("/api/auth/register/", payload, format="json")

    for accepted in ["alice", "a.b@c+d-e_f", " carol\n", "José", "张伟"]:
        assert valid(accepted), accepted
        assert register(accepted).status_code == 201, accepted
    for refused in ["no spaces", "semi;colon", "", "   ", "nul\x00", "slash/"]:
        assert not valid(refused), refused
        assert_json_error(register(refused), 400)
    # Beyond ASCII the pattern lets through what Python's \w may not count: a documented code.
    assert valid("°")
    assert_json_error(register("°"), 400, "username_invalid")


def test_schema_valid_registrations_are_accepted_or_refused_with_a_documented_code(anon, settings):
    """Finding 1 of the outside fuzz: a password the validators refuse was schema-valid and
    undocumented. The schema now states the length and "not only digits"; what it cannot state (a
    common password, one like the username, a taken username) is a documented 400 code."""
    settings.REGISTER_RATE_LIMIT = "100000/m"
    schema = openapi(anon)
    documented = documented_codes(schema["paths"]["/api/auth/register/"]["post"])
    assert documented == {
        "password_invalid",
        "username_taken",
        "username_invalid",
        # The sign-up settings' refusals (docs/signup.md); in the default open mode a random
        # invite code is invite_invalid.
        "invite_required",
        "invite_invalid",
        "email_domain_not_allowed",
    }
    forbidden = documented_codes(schema["paths"]["/api/auth/register/"]["post"], status=403)
    assert forbidden == {"signup_closed"}

    statuses = set()
    for case in schema_valid_cases(schema, "/api/auth/register/", "POST"):
        response = anon.post("/api/auth/register/", case.body, format="json")
        statuses.add(response.status_code)
        if response.status_code != 201:
            assert_json_error(response, 400)
            assert response.json()["code"] in documented, (case.body, response.json())
    assert 201 in statuses


def test_schema_valid_refresh_tokens_are_judged_not_refused_as_malformed(anon):
    """Finding 3 of the outside fuzz: a NUL in ``refresh`` was schema-valid and answered 400."""
    schema = openapi(anon)
    refresh = request_field(schema, "TokenRefreshRequest", "refresh")
    valid = schema_valid(refresh)
    for refused in ["a\x00b", "", "  \n"]:
        assert not valid(refused), refused
        response = anon.post("/api/auth/token/refresh/", {"refresh": refused}, format="json")
        assert_json_error(response, 400)

    for case in schema_valid_cases(schema, "/api/auth/token/refresh/", "POST"):
        response = anon.post("/api/auth/token/refresh/", case.body, format="json")
        assert_json_error(response, 401, "token_not_valid")


def test_every_string_a_request_may_hold_excludes_nul_in_the_schema(anon):
    schema = openapi(anon)
    fields = [
        (name, field, definition)
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request")
        for field, definition in component["properties"].items()
        if "boolean" not in str(definition.get("type"))
        and definition.get("format") != "binary"  # an uploaded file's bytes, not text
    ]
    assert len(fields) >= 10
    for name, field, definition in fields:
        # With the components beside it, so that a $ref (an enum's) resolves.
        judged = {**definition, "components": schema["components"]}
        assert not schema_valid(judged)("a\x00b"), f"{name}.{field}"
    search = [
        parameter
        for parameter in schema["paths"]["/api/conversations/"]["get"]["parameters"]
        if parameter["name"] == "search"
    ]
    assert not schema_valid(search[0]["schema"])("a\x00b")
