"""The staff's usage dashboard in chromium: its charts are drawn by the vendored Chart.js under
the site's CSP, the filters work, and it speaks Chinese (conversations/admin_dashboard.py,
static/js/dashboard.js)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import Message
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

URL = "/admin/conversations/conversation/usage/"
CHARTS = ["chart-days", "chart-models", "chart-groups", "chart-users", "chart-errors"]


@pytest.fixture
def staff(db):
    user = UserFactory(username="auditor", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    return user


@pytest.fixture
def usage(db):
    research = Group.objects.create(name="research")
    alice = UserFactory(username="alice")
    alice.groups.add(research)
    bob = UserFactory(username="bob")
    now = timezone.now()
    rows = [
        (alice, "lite", 1200, "0.012000", "", 0),
        (alice, "deepseek-chat", 800, "0.020000", "", 1),
        (bob, "lite", 300, "0.003000", "", 2),
        (bob, "lite", 0, "0", "upstream_timeout", 2),
    ]
    for user, model, tokens, cost, code, days_ago in rows:
        message = MessageFactory(
            conversation=ConversationFactory(user=user, model=model),
            role=Message.Role.ASSISTANT,
            model=model,
            status=Message.Status.ERROR if code else Message.Status.COMPLETE,
            error_code=code,
            prompt_tokens=tokens // 2,
            completion_tokens=tokens - tokens // 2,
            total_tokens=tokens,
            charged_tokens=tokens,
            cost_cny=Decimal(cost),
        )
        Message.objects.filter(pk=message.pk).update(created_at=now - timedelta(days=days_ago))
    return {"research": research}


def charts_drawn(page) -> dict[str, int]:
    """Each chart's number of data points, as Chart.js holds them."""
    return page.evaluate(
        """ids => Object.fromEntries(ids.map(id => {
            const chart = window.Chart && window.Chart.getChart(id);
            return [id, chart ? chart.data.labels.length : -1];
        }))""",
        CHARTS,
    )


def test_the_dashboard_draws_its_charts_under_the_csp(open_page, staff, usage, screenshot_dir):
    b = open_page(user=staff)
    page = b.page
    page.goto(b.url(URL))
    expect(page.get_by_role("heading", name="Tokens and cost per day")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-charts-ready", "true")
    for chart in CHARTS:
        canvas = page.locator(f"canvas#{chart}")
        expect(canvas).to_be_visible()
        assert canvas.bounding_box()["height"] > 100
    drawn = charts_drawn(page)
    assert drawn == {
        "chart-days": 30,
        "chart-models": 2,
        "chart-groups": 2,
        "chart-users": 2,
        "chart-errors": 1,
    }
    # Pixels were painted: the days chart's canvas is not blank.
    painted = page.evaluate(
        """() => { const c = document.getElementById('chart-days');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }"""
    )
    assert painted > 1000
    expect(page.locator("#usage-totals [data-key=tokens]")).to_have_text("2300")
    expect(page.locator("#table-users tbody tr").first).to_contain_text("alice")
    page.screenshot(path=str(screenshot_dir / "usage-dashboard-en.png"), full_page=True)
    b.watch.assert_clean()
    assert any("/static/vendor/chartjs/chart.umd.min.js" in url for url in b.watch.requests)


def test_the_filters_narrow_the_figures_and_the_export(open_page, staff, usage):
    b = open_page(user=staff)
    page = b.page
    page.goto(b.url(URL))
    page.get_by_label("Group", exact=True).select_option(label="research")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(rf"group={usage['research'].pk}"))
    expect(page.locator("#usage-totals [data-key=tokens]")).to_have_text("2000")
    expect(page.locator("body")).to_have_attribute("data-charts-ready", "true")
    assert charts_drawn(page)["chart-users"] == 1
    href = page.get_by_role("link", name="Download CSV").get_attribute("href")
    assert f"group={usage['research'].pk}" in href
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert "alice" in text
    assert "bob" not in text
    page.get_by_label("User name", exact=True).fill("bob")
    page.get_by_label("Group", exact=True).select_option(value="")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#usage-totals [data-key=errors]")).to_have_text("1")
    b.watch.assert_clean()


def test_the_dashboard_in_chinese(open_page, staff, usage, screenshot_dir):
    b = open_page(user=staff, locale="zh-CN")
    page = b.page
    page.goto(b.url(URL))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("heading", name="每日词元与费用")).to_be_visible()
    expect(page.get_by_role("button", name="应用")).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-charts-ready", "true")
    page.screenshot(path=str(screenshot_dir / "usage-dashboard-zh.png"), full_page=True)
    b.watch.assert_clean()


def test_the_dashboard_is_refused_to_a_user(open_page, usage):
    b = open_page(user=UserFactory())
    b.page.goto(b.url(URL))
    expect(b.page).to_have_url(re.compile(r"/admin/login/"))
