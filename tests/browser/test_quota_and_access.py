"""Quotas and model access on the chat page (docs/governance.md): a refused send says why and
keeps the draft; a model the user's group may not use is not offered."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from conversations.models import Message
from governance.models import GroupPolicy, SitePolicy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_send_over_the_daily_limit_says_so_and_keeps_the_message(open_page, spark, user):
    policy = SitePolicy.get()
    policy.day_messages = 1
    policy.save()
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the second send answers 429 quota_exceeded
    page = b.page
    page.goto(b.url("/"))
    box = page.get_by_label("Message", exact=True)
    box.fill("first [[reply:the only reply today]]")
    box.press("Enter")
    expect(page.get_by_text("the only reply today", exact=True)).to_be_visible()

    box.fill("second")
    box.press("Enter")

    # The refused message stays on the page, marked, with Retry and Edit: nothing typed is lost.
    expect(page.get_by_text("Your daily message limit is reached").first).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_be_visible()
    assert Message.objects.filter(role="user").count() == 1
    b.watch.assert_clean()


def test_the_picker_offers_only_the_groups_models(open_page, spark, user):
    students = Group.objects.create(name="students")
    GroupPolicy.objects.create(group=students, allowed_models=["lite", "generalv3.5"])
    user.groups.add(students)
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))

    picker = page.get_by_label("Model", exact=True)
    expect(picker.locator("option")).to_have_count(2)
    values = picker.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert values == ["lite", "generalv3.5"]
    b.watch.assert_clean()
