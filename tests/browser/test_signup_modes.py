"""The sign-up page in each sign-up mode, in chromium: the invite field, each refusal shown as a
visible (and translated) message, and the waiting page of an account in approval mode."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from accounts.checks import MIDDLEWARE_PATH
from accounts.models import Invite
from accounts.selectors import signup_settings_get
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

User = get_user_model()


@pytest.fixture(autouse=True)
def _no_register_limit(settings) -> None:
    settings.REGISTER_RATE_LIMIT = "100000/m"


def set_mode(mode: str, domains: str = "") -> None:
    row = signup_settings_get()
    row.mode = mode
    row.allowed_email_domains = domains
    row.save()


def fill(page, username: str = "ada", email: str = "") -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)


def test_closed_shows_the_message_and_no_form(open_page):
    set_mode("closed")
    b = open_page()
    page = b.page
    page.goto(b.url("/accounts/signup/"))
    expect(page.get_by_role("alert")).to_have_text(
        "Sign-up is closed. Ask the site's administrator for an account."
    )
    expect(page.get_by_label("Username")).to_have_count(0)
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    b.watch.assert_clean()


def test_closed_in_chinese(open_page):
    set_mode("closed")
    b = open_page(locale="zh-CN")
    page = b.page
    page.goto(b.url("/accounts/signup/"))
    expect(page.get_by_role("alert")).to_have_text("注册已关闭。如需账号，请联系网站管理员。")
    b.watch.assert_clean()


def test_invite_mode_asks_for_a_code_then_joins_its_group(open_page, spark):
    set_mode("invite")
    group = Group.objects.create(name="beta")
    invite = Invite.objects.create(group=group, max_uses=1)
    b = open_page()
    page = b.page
    page.goto(b.url("/accounts/signup/"))
    code_box = page.get_by_label("Invite code")
    expect(code_box).to_be_visible()
    expect(code_box).to_have_value("")

    fill(page)
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_invite_errors")).to_have_text("An invite code is required to sign up.")

    fill(page)
    page.get_by_label("Invite code").fill("not-a-code")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_invite_errors")).to_have_text(
        "This invite code is unknown, expired or used up."
    )
    assert not User.objects.filter(username="ada").exists()

    # The link staff hand out fills the code in.
    page.goto(b.url(f"/accounts/signup/?invite={invite.code}"))
    expect(page.get_by_label("Invite code")).to_have_value(invite.code)
    fill(page)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(b.url("/"))
    expect(page.get_by_text("How can I help you today?")).to_be_visible()
    assert User.objects.get(username="ada").groups.get() == group
    b.watch.assert_clean()


def test_a_used_up_invite_is_refused_in_chinese(open_page):
    set_mode("invite")
    invite = Invite.objects.create(max_uses=1, uses=1)
    b = open_page(locale="zh-CN")
    page = b.page
    page.goto(b.url(f"/accounts/signup/?invite={invite.code}"))
    page.get_by_label("用户名").fill("ada")
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.locator("button[type=submit].btn--primary").click()
    expect(page.locator("#id_invite_errors")).to_have_text("该邀请码无效、已过期或已用完。")
    b.watch.assert_clean()


def test_the_email_domain_allowlist(open_page, spark):
    set_mode("open", domains="example.com")
    b = open_page()
    page = b.page
    page.goto(b.url("/accounts/signup/"))
    expect(page.get_by_text("An address at one of: example.com.")).to_be_visible()
    expect(page.get_by_label("Invite code")).to_have_count(0)

    fill(page, email="ada@elsewhere.net")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_email_errors")).to_have_text(
        "Sign-up needs an e-mail address at one of: example.com."
    )
    fill(page, email="ada@example.com")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(b.url("/"))
    expect(page.get_by_text("How can I help you today?")).to_be_visible()
    b.watch.assert_clean()


def test_approval_mode_waits_then_opens_the_chat(open_page, spark, screenshot_dir):
    set_mode("approval")
    b = open_page()
    page = b.page
    page.goto(b.url("/accounts/signup/"))
    fill(page, email="ada@example.com")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(b.url("/accounts/pending/"))
    expect(page.get_by_role("heading", name="Waiting for approval")).to_be_visible()
    expect(page.locator("#pending-message")).to_contain_text("waiting for a staff member")
    page.screenshot(path=str(screenshot_dir / "signup-pending.png"))
    if MIDDLEWARE_PATH in settings.MIDDLEWARE:  # chatsite/settings.py lists it (accounts.W002)
        page.goto(b.url("/"))
        expect(page).to_have_url(b.url("/accounts/pending/"))

    User.objects.filter(username="ada").update(approval_status="approved")
    page.reload()
    expect(page).to_have_url(b.url("/"))
    expect(page.get_by_text("How can I help you today?")).to_be_visible()
    b.watch.assert_clean()


def test_a_pending_user_can_sign_out_from_the_waiting_page(open_page):
    user = User.objects.create_user("waiting", password=PASSWORD, approval_status="pending")
    b = open_page()
    page = b.page
    page.goto(b.url("/accounts/login/"))
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(b.url("/accounts/pending/"))
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    b.watch.assert_clean()
