"""Model output runs nothing and fetches nothing; user text is shown as text."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conversations.models import Message

from .helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE_REPLY = "\n\n".join(
    [
        "# Heading",
        "<script>alert('script')</script>",
        "<img src=x onerror=alert('img')>",
        '<a href="javascript:alert(1)">raw link</a>',
        "[markdown link](javascript:alert('link'))",
        "![tracking pixel](http://example.invalid/x.png)",
        '<img src="http://example.invalid/y.png">',
        '<iframe src="http://example.invalid/frame"></iframe>',
        '<span style="color:red" onclick="alert(2)">styled</span>',
        "[fine link](https://example.org/page)",
    ]
)


def test_hostile_reply_runs_nothing_and_loads_nothing(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    spark.reply = HOSTILE_REPLY
    box = page.get_by_label("Message", exact=True)
    box.fill("Show me something")
    box.press("Enter")
    body = page.locator("li.msg--assistant .msg__body").last
    expect(body).to_contain_text("fine link")
    page.wait_for_timeout(500)  # room for anything that would have run or loaded

    assert body.locator("h1").inner_text() == "Heading"
    # Raw HTML from the model is text; no element of it exists.
    expect(body).to_contain_text("<script>alert('script')</script>")
    expect(body).to_contain_text("<img src=x onerror=alert('img')>")
    for selector in ("script", "img", "iframe", "[onerror]", "[onclick]", "[style]"):
        assert body.locator(selector).count() == 0, selector
    assert page.locator("img").count() == 0
    # No javascript: link survives; real links open in a new tab without an opener.
    hrefs = body.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in hrefs if h and h.strip().lower().startswith("javascript")], hrefs
    fine = body.get_by_role("link", name="fine link")
    assert fine.get_attribute("href") == "https://example.org/page"
    assert "noopener" in fine.get_attribute("rel")
    assert fine.get_attribute("target") == "_blank"
    # The external image became a link to click on purpose, never a load.
    expect(body.get_by_role("link", name="Image: tracking pixel")).to_have_attribute(
        "href", "http://example.invalid/x.png"
    )

    # The same after a reload, when the reply comes from the history.
    page.reload()
    expect(page.locator("li.msg--assistant .msg__body").last).to_contain_text("fine link")
    page.wait_for_timeout(300)
    assert page.locator("img").count() == 0
    b.watch.assert_clean()
    assert not b.watch.foreign_requests()


def test_user_message_with_html_is_shown_as_text(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    text = '<b>bold?</b> <img src=x onerror="alert(1)"> <script>alert(2)</script>'
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")
    bubble = page.locator("li.msg--user .msg__text").last
    expect(bubble).to_have_text(text)
    assert bubble.locator("*").count() == 0
    wait_until(lambda: Message.objects.filter(role="assistant", status="complete").exists())
    # The title made from it is text in the sidebar as well.
    expect(page.locator("#conversation-list .conv__title").first).to_contain_text("<b>bold?</b>")
    page.reload()
    expect(page.locator("li.msg--user .msg__text").last).to_have_text(text)
    assert page.locator("li.msg--user .msg__text b, li.msg--user img").count() == 0
    b.watch.assert_clean()
