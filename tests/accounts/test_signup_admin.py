"""Staff in admin: approve or reject pending users (in bulk and from the change page), the
sign-up settings row, invites."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import Invite, SignupSettings
from tests.factories import PASSWORD, UserFactory
from tests.support.api import assert_json_error

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def admin_client() -> Client:
    staff = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def obtain(username: str):
    return Client().post(
        "/api/auth/token/",
        {"username": username, "password": PASSWORD},
        content_type="application/json",
    )


def test_the_list_filters_by_status(admin_client):
    UserFactory(username="waiting-one", approval_status="pending")
    UserFactory(username="fine-one")

    page = admin_client.get("/admin/accounts/user/?approval_status__exact=pending")

    assert page.status_code == 200
    content = page.content.decode()
    assert "waiting-one" in content
    assert "fine-one" not in content


def test_bulk_approve_lets_pending_users_in(admin_client):
    pending = [UserFactory(approval_status="pending") for _ in range(3)]
    left_alone = UserFactory(approval_status="pending")
    assert_json_error(obtain(pending[0].username), 403, "account_pending")

    response = admin_client.post(
        "/admin/accounts/user/",
        {"action": "approve", "_selected_action": [user.pk for user in pending]},
        follow=True,
    )

    assert response.status_code == 200
    assert "3 users approved." in response.content.decode()
    for user in pending:
        user.refresh_from_db()
        assert user.approval_status == "approved"
        assert user.is_active
        assert obtain(user.username).status_code == 200
    left_alone.refresh_from_db()
    assert left_alone.approval_status == "pending"


def test_bulk_reject_deactivates_and_ends_their_sessions(admin_client):
    pending = [UserFactory(approval_status="pending") for _ in range(2)]
    session = Client()
    session.force_login(pending[0])
    assert session.get("/")["Location"] == "/accounts/pending/"
    staff = User.objects.get(username="boss")

    response = admin_client.post(
        "/admin/accounts/user/",
        {"action": "reject", "_selected_action": [*(u.pk for u in pending), staff.pk]},
        follow=True,
    )

    assert "2 users rejected and deactivated." in response.content.decode()
    for user in pending:
        user.refresh_from_db()
        assert (user.approval_status, user.is_active) == ("rejected", False)
        assert obtain(user.username).status_code == 401
    # The session is now anonymous: the chat sends it to sign in, the API answers 401/403.
    assert session.get("/")["Location"].startswith("/accounts/login/")
    staff.refresh_from_db()
    assert staff.is_active  # staff are never rejected by the bulk action


def test_the_change_page_approves_and_rejects_one_user(admin_client):
    user = UserFactory(approval_status="pending")
    url = f"/admin/accounts/user/{user.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="_approve"' in page
    assert 'name="_reject"' in page
    form = {
        "username": user.username,
        "email": user.email,
        "is_active": "on",
        "approval_status": "pending",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }

    response = admin_client.post(url, {**form, "_approve": "Approve"})

    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert (user.approval_status, user.is_active) == ("approved", True)
    assert 'name="_approve"' not in admin_client.get(url).content.decode()

    response = admin_client.post(url, {**form, "approval_status": "approved", "_reject": "Reject"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.approval_status, user.is_active) == ("rejected", False)


def test_the_settings_row_is_one_page_that_changes_the_mode_at_once(admin_client, settings):
    settings.SIGNUP_MODE = "approval"
    response = admin_client.get("/admin/accounts/signupsettings/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/accounts/signupsettings/1/change/"
    assert SignupSettings.objects.get().mode == "approval"
    assert admin_client.get("/admin/accounts/signupsettings/add/").status_code == 403

    response = admin_client.post(
        "/admin/accounts/signupsettings/1/change/",
        {"mode": "closed", "allowed_email_domains": "example.com"},
    )

    assert response.status_code == 302
    register = Client().post(
        "/api/auth/register/",
        {"username": "late", "password": "a-long-unusual-passphrase-7"},
        content_type="application/json",
    )
    assert_json_error(register, 403, "signup_closed")


def test_staff_create_an_invite_and_see_its_link(admin_client):
    group = Group.objects.create(name="beta")

    response = admin_client.post(
        "/admin/accounts/invite/add/",
        {
            "note": "for Ann",
            "group": group.pk,
            "max_uses": 5,
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )

    assert response.status_code == 302
    invite = Invite.objects.get()
    assert (invite.max_uses, invite.uses, invite.group) == (5, 0, group)
    assert invite.created_by.username == "boss"
    page = admin_client.get(f"/admin/accounts/invite/{invite.pk}/change/").content.decode()
    assert f"/accounts/signup/?invite={invite.code}" in page
