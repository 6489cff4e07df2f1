"""Sign-up modes through the real path: ``POST /api/auth/register/``, ``/api/auth/token/``, the
sign-up and sign-in pages, and a pending user's session. docs/signup.md describes them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Invite, SignupSettings
from accounts.selectors import signup_settings_get
from tests.factories import PASSWORD, UserFactory
from tests.support.api import assert_json_error

pytestmark = pytest.mark.django_db

User = get_user_model()
STRONG = "a-long-unusual-passphrase-7"


@pytest.fixture(autouse=True)
def _no_register_limit(settings) -> None:
    settings.REGISTER_RATE_LIMIT = "100000/m"
    settings.LOGIN_RATE_LIMIT = "100000/m"


def set_mode(mode: str, domains: str = "") -> None:
    row = signup_settings_get()
    row.mode = mode
    row.allowed_email_domains = domains
    row.save()


def register(client: APIClient, username: str = "newcomer", **extra):
    return client.post(
        "/api/auth/register/", {"username": username, "password": STRONG, **extra}, format="json"
    )


def obtain(client: APIClient, username: str, password: str = STRONG):
    return client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json"
    )


# --- the settings row ---------------------------------------------------------------------------


def test_the_row_is_created_from_the_settings_when_first_read(settings):
    settings.SIGNUP_MODE = "invite"
    settings.SIGNUP_EMAIL_DOMAINS = "Example.com, @corp.example.org ,"
    assert not SignupSettings.objects.exists()

    row = signup_settings_get()

    assert row.mode == "invite"
    assert row.email_domains == ["example.com", "corp.example.org"]
    # From then on the row decides, whatever the settings say (staff edit it in admin).
    settings.SIGNUP_MODE = "closed"
    assert signup_settings_get().mode == "invite"


def test_open_is_the_default(settings, anon):
    if hasattr(settings, "SIGNUP_MODE"):
        del settings.SIGNUP_MODE
    assert signup_settings_get().mode == "open"
    assert register(anon).status_code == 201


def test_an_unknown_mode_in_the_settings_closes_sign_up(settings, anon):
    settings.SIGNUP_MODE = "opne"
    assert_json_error(register(anon), 403, "signup_closed")


# --- open ---------------------------------------------------------------------------------------


def test_open_mode_registers_an_approved_user_who_gets_tokens(anon):
    set_mode("open")
    assert register(anon).status_code == 201
    user = User.objects.get(username="newcomer")
    assert user.approval_status == "approved"
    assert obtain(anon, "newcomer").status_code == 200


# --- closed -------------------------------------------------------------------------------------


def test_closed_mode_refuses_every_registration_with_403_signup_closed(anon):
    set_mode("closed")
    Invite.objects.create(code="still-valid", max_uses=5)

    body = assert_json_error(register(anon, invite="still-valid"), 403, "signup_closed")
    assert body["detail"] == "Sign-up is closed."
    # Closed whatever the body holds, even a malformed one.
    assert_json_error(anon.post("/api/auth/register/", {}, format="json"), 403, "signup_closed")
    assert not User.objects.filter(username="newcomer").exists()
    assert Invite.objects.get(code="still-valid").uses == 0


def test_closed_mode_leaves_existing_users_signing_in(anon):
    set_mode("closed")
    UserFactory(username="old-timer")
    assert obtain(anon, "old-timer", PASSWORD).status_code == 200


# --- e-mail domains -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["open", "approval"])
def test_the_domain_allowlist_refuses_other_domains_and_no_address(anon, mode):
    set_mode(mode, domains="example.com\ncorp.example.org")

    body = assert_json_error(
        register(anon, email="eve@elsewhere.net"), 400, "email_domain_not_allowed"
    )
    assert body["field"] == "email"
    assert "example.com, corp.example.org" in body["detail"]
    assert_json_error(register(anon), 400, "email_domain_not_allowed")
    # A sub-domain is another domain: each is listed on its own.
    assert_json_error(register(anon, email="eve@mail.example.com"), 400, "email_domain_not_allowed")
    assert not User.objects.filter(username="newcomer").exists()

    assert register(anon, email="ann@Corp.Example.org").status_code == 201


# --- invite -------------------------------------------------------------------------------------


def test_invite_mode_requires_a_code(anon):
    set_mode("invite")
    body = assert_json_error(register(anon), 400, "invite_required")
    assert body["field"] == "invite"
    assert_json_error(register(anon, invite="   "), 400, "invite_required")
    assert not User.objects.filter(username="newcomer").exists()


@pytest.mark.parametrize("state", ["unknown", "expired", "used-up"])
def test_invite_mode_refuses_an_unusable_code_with_invite_invalid(anon, state):
    set_mode("invite")
    past = timezone.now() - dt.timedelta(seconds=1)
    Invite.objects.create(code="expired", expires_at=past, max_uses=3)
    Invite.objects.create(code="used-up", max_uses=2, uses=2)

    body = assert_json_error(register(anon, invite=state), 400, "invite_invalid")
    assert body["field"] == "invite"
    assert not User.objects.filter(username="newcomer").exists()
    assert Invite.objects.get(code="expired").uses == 0


def test_an_invite_puts_the_user_in_its_group_and_counts_each_use(anon):
    set_mode("invite")
    testers = Group.objects.create(name="testers")
    tomorrow = timezone.now() + dt.timedelta(days=1)
    invite = Invite.objects.create(group=testers, max_uses=2, expires_at=tomorrow)
    assert len(invite.code) >= 20  # secrets.token_urlsafe(16)

    assert register(anon, "first", invite=f"  {invite.code} ").status_code == 201
    assert register(anon, "second", invite=invite.code).status_code == 201
    assert_json_error(register(anon, "third", invite=invite.code), 400, "invite_invalid")

    invite.refresh_from_db()
    assert invite.uses == 2
    for name in ["first", "second"]:
        user = User.objects.get(username=name)
        assert list(user.groups.all()) == [testers]
        assert user.invite == invite
        assert user.approval_status == "approved"
    assert obtain(anon, "first").status_code == 200


def test_a_refused_registration_gives_the_invite_use_back(anon):
    set_mode("invite")
    invite = Invite.objects.create(max_uses=1)
    UserFactory(username="taken")

    # The password validators refuse before the invite is touched...
    response = anon.post(
        "/api/auth/register/",
        {"username": "newcomer", "password": "password123", "invite": invite.code},
        format="json",
    )
    assert_json_error(response, 400, "password_invalid")
    # ...and a username taken at the last moment rolls the taken use back with the user.
    assert_json_error(register(anon, "taken", invite=invite.code), 400, "username_taken")
    invite.refresh_from_db()
    assert invite.uses == 0
    assert register(anon, invite=invite.code).status_code == 201


def test_the_last_use_is_judged_by_the_database_not_a_stale_read(anon):
    """The use is taken by ``UPDATE ... WHERE uses < max_uses``: a copy read before another
    registration took the last use cannot take it again."""
    set_mode("invite")
    invite = Invite.objects.create(max_uses=1)
    stale = Invite.objects.get(pk=invite.pk)
    assert stale.is_usable

    assert register(anon, "first", invite=invite.code).status_code == 201
    assert stale.is_usable  # the stale copy still believes it
    assert_json_error(register(anon, "second", invite=stale.code), 400, "invite_invalid")
    assert Invite.objects.get(pk=invite.pk).uses == 1


@pytest.mark.parametrize("mode", ["open", "approval"])
def test_outside_invite_mode_a_code_is_optional_but_judged(anon, mode):
    set_mode(mode)
    staff = Group.objects.create(name="staff-friends")
    invite = Invite.objects.create(group=staff)

    assert_json_error(register(anon, "wrong", invite="no-such-code"), 400, "invite_invalid")
    assert register(anon, invite=invite.code).status_code == 201
    user = User.objects.get(username="newcomer")
    assert list(user.groups.all()) == [staff]
    # An invited user skips the approval queue.
    assert user.approval_status == "approved"


# --- approval -----------------------------------------------------------------------------------


def test_approval_mode_registers_a_pending_user_who_gets_no_token(anon):
    set_mode("approval")

    response = register(anon, email="pat@example.com")

    assert response.status_code == 201, response.content
    user = User.objects.get(username="newcomer")
    assert user.approval_status == "pending"
    assert user.is_active
    body = assert_json_error(obtain(anon, "newcomer"), 403, "account_pending")
    assert "approval" in body["detail"]
    # No token was made, not even one that was blacklisted.
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    assert not OutstandingToken.objects.filter(user=user).exists()
    # A wrong password says nothing of the account's state.
    assert_json_error(obtain(anon, "newcomer", "not-the-password"), 401)


def test_an_approved_user_gets_tokens(anon):
    set_mode("approval")
    register(anon)
    User.objects.filter(username="newcomer").update(approval_status="approved")
    assert obtain(anon, "newcomer").status_code == 200


def test_a_rejected_user_is_inactive_everywhere(anon):
    set_mode("approval")
    register(anon)
    User.objects.filter(username="newcomer").update(approval_status="rejected", is_active=False)
    response = obtain(anon, "newcomer")
    assert response.status_code == 401
    client = Client()
    response = client.post("/accounts/login/", {"username": "newcomer", "password": STRONG})
    assert response.status_code == 200  # the form again, with its error
    assert "_auth_user_id" not in client.session


def test_a_pending_session_gets_403_account_pending_from_the_api():
    user = UserFactory(approval_status="pending")
    client = Client()
    client.force_login(user)

    for path in ["/api/conversations/", "/api/auth/me/", "/api/models/"]:
        assert_json_error(client.get(path), 403, "account_pending")
    response = client.post("/api/conversations/", {"title": "x"}, content_type="application/json")
    assert_json_error(response, 403, "account_pending")


def test_an_approved_session_reaches_the_api():
    user = UserFactory()
    client = Client()
    client.force_login(user)
    assert client.get("/api/auth/me/").status_code == 200


def test_a_bearer_request_is_not_judged_by_the_session_beside_it(anon):
    approved = UserFactory(username="approved-one")
    access = obtain(anon, "approved-one", PASSWORD).json()["access"]
    client = Client()
    client.force_login(UserFactory(approval_status="pending"))
    response = client.get("/api/auth/me/", HTTP_AUTHORIZATION=f"Bearer {access}")
    assert response.status_code == 200
    assert response.json()["id"] == approved.pk


# --- the pages ----------------------------------------------------------------------------------


def signup_page(client: Client, **fields):
    data = {
        "username": "newcomer",
        "email": "",
        "password1": STRONG,
        "password2": STRONG,
        **fields,
    }
    return client.post("/accounts/signup/", data)


def test_the_page_in_approval_mode_signs_in_to_the_waiting_page():
    set_mode("approval")
    client = Client()
    assert "approves new accounts" in client.get("/accounts/signup/").content.decode()
    zh = Client(HTTP_ACCEPT_LANGUAGE="zh-hans").get("/accounts/signup/").content.decode()
    assert "新账号需经管理员审核后才能开始聊天。" in zh

    response = signup_page(client)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/pending/"
    page = client.get("/accounts/pending/")
    assert page.status_code == 200
    assert "waiting for a staff member" in page.content.decode()
    # Every other page leads back there; sign-out and the language switch still work.
    assert client.get("/")["Location"] == "/accounts/pending/"
    assert client.get("/accounts/signup/")["Location"] == "/accounts/pending/"
    assert client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"}).status_code == 302
    assert client.post("/accounts/logout/").status_code == 302
    assert "_auth_user_id" not in client.session


def test_a_pending_user_signing_in_lands_on_the_waiting_page_and_the_chat_once_approved():
    user = UserFactory(username="waiting", approval_status="pending")
    client = Client()

    response = client.post("/accounts/login/", {"username": "waiting", "password": PASSWORD})

    assert response["Location"] == "/accounts/pending/"
    User.objects.filter(pk=user.pk).update(approval_status="approved")
    assert client.get("/accounts/pending/")["Location"] == "/"
    assert client.get("/").status_code == 200


def test_the_page_shows_each_refusal_as_a_message():
    client = Client()

    set_mode("invite")
    page = client.get("/accounts/signup/").content.decode()
    assert 'name="invite"' in page
    response = signup_page(client)
    assert "An invite code is required to sign up." in response.content.decode()
    response = signup_page(client, invite="nope")
    assert "This invite code is unknown, expired or used up." in response.content.decode()

    set_mode("open", domains="example.com")
    response = signup_page(client, email="eve@elsewhere.net")
    assert "Sign-up needs an e-mail address at one of: example.com." in response.content.decode()

    set_mode("closed")
    response = client.get("/accounts/signup/")
    assert "Sign-up is closed." in response.content.decode()
    assert 'name="password1"' not in response.content.decode()
    assert signup_page(client).status_code == 403
    assert not User.objects.filter(username="newcomer").exists()


def test_the_invite_field_shows_only_in_invite_mode_or_from_a_link():
    client = Client()
    set_mode("open")
    assert 'name="invite"' not in client.get("/accounts/signup/").content.decode()
    page = client.get("/accounts/signup/?invite=abc123").content.decode()
    assert 'name="invite"' in page
    assert 'value="abc123"' in page


def test_the_page_in_invite_mode_joins_the_group_and_opens_the_chat():
    set_mode("invite")
    group = Group.objects.create(name="beta")
    invite = Invite.objects.create(group=group)
    client = Client()

    response = signup_page(client, invite=invite.code)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert User.objects.get(username="newcomer").groups.get() == group


def test_the_refusals_are_translated():
    set_mode("invite")
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    response = signup_page(client, invite="nope")
    assert "邀请码" in response.content.decode()
