"""The user's usage page in chromium: reached from the chat, its figures are GET /api/usage/'s,
and it speaks the browser's language (conversations/usage_views.py, static/js/usage.js)."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from conversations import selectors
from conversations.models import Message
from governance.models import SitePolicy
from tests.factories import ConversationFactory, MessageFactory

from .helpers import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def used_today(user) -> None:
    policy = SitePolicy.get()
    policy.day_messages = 50
    policy.month_tokens = 100_000
    policy.month_cost_cny = Decimal("20")
    policy.save()
    conversation = ConversationFactory(user=user)
    for seq, tokens in [(2, 1200), (4, 345)]:
        MessageFactory(
            conversation=conversation,
            seq=seq,
            role=Message.Role.ASSISTANT,
            prompt_tokens=tokens - 100,
            completion_tokens=100,
            total_tokens=tokens,
            charged_tokens=tokens,
            cost_cny=Decimal("0.012345"),
        )


def cell(page, period: str, kind: str, column: str):
    return page.locator(f'[data-period="{period}"] td[data-kind="{kind}"][data-col="{column}"]')


def test_the_usage_page_shows_the_api_figures(open_page, spark, user, screenshot_dir):
    used_today(user)
    report = selectors.usage_report(user_id=user.pk)
    assert report["day"]["used"]["messages"] == 2
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    page.get_by_role("link", name="Your usage").click()
    expect(page).to_have_url(b.url("/usage/"))
    expect(page.get_by_role("heading", name="Your usage", level=1)).to_be_visible()
    expect(page.get_by_role("heading", name="Today")).to_be_visible()

    day, month = report["day"], report["month"]
    expect(cell(page, "day", "messages", "used")).to_have_text(str(day["used"]["messages"]))
    expect(cell(page, "day", "messages", "limit")).to_have_text("50")
    expect(cell(page, "day", "messages", "remaining")).to_have_text(
        str(day["remaining"]["messages"])
    )
    expect(cell(page, "day", "tokens", "used")).to_have_text("1,545")
    expect(cell(page, "day", "tokens", "limit")).to_have_text("No limit")
    expect(cell(page, "month", "tokens", "remaining")).to_have_text(
        f"{month['remaining']['tokens']:,}"
    )
    expect(cell(page, "month", "cost_cny", "used")).to_have_text("0.02469")
    expect(cell(page, "month", "cost_cny", "remaining")).to_have_text("19.97531")
    expect(page.locator('[data-period="day"] meter')).to_have_attribute("max", "50")
    expect(page.locator("#usage-zone")).to_have_text("Periods are counted in Asia/Shanghai.")
    page.screenshot(path=str(screenshot_dir / "usage-desktop-en.png"), full_page=True)
    b.watch.assert_clean()


def test_the_usage_page_in_chinese(open_page, user, screenshot_dir):
    used_today(user)
    b = open_page(user=user, locale="zh-CN", viewport=PHONE)
    page = b.page
    page.goto(b.url("/usage/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("heading", name="我的用量", level=1)).to_be_visible()
    for name in ("今天", "本周", "本月"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(cell(page, "day", "messages", "used")).to_have_text("2")
    expect(cell(page, "week", "tokens", "limit")).to_have_text("不限")
    expect(page.locator('[data-period="day"] .usage-period__reset').first).to_have_text(
        re.compile(r"重置$")
    )
    page.screenshot(path=str(screenshot_dir / "usage-phone-zh.png"), full_page=True)
    b.watch.assert_clean()


def test_the_usage_page_needs_a_signed_in_user(open_page):
    b = open_page()
    b.page.goto(b.url("/usage/"))
    expect(b.page).to_have_url(re.compile(r"/accounts/login/\?next=/usage/"))
