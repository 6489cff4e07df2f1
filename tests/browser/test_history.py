"""Long histories open at once and page backwards; the sidebar pages forwards."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, Message
from tests.browser.helpers import wait_until
from tests.factories import ConversationFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def make_messages(conversation, count: int) -> None:
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            seq=seq,
            role="user" if seq % 2 else "assistant",
            content=f"message number {seq}" + ("\n\n- a\n- **b**" if seq % 2 == 0 else ""),
            status="complete",
            model="lite",
        )
        for seq in range(1, count + 1)
    )


def test_thousand_message_conversation_opens_at_once_and_pages_back(open_page, spark, user):
    conversation = ConversationFactory(user=user, title="Very long")
    make_messages(conversation, 1000)
    b = open_page(user=user)
    page = b.page
    started = time.monotonic()
    page.goto(b.url(f"/c/{conversation.id}/"))
    newest = page.locator("li.msg", has_text="message number 1000")
    expect(newest).to_be_in_viewport()
    assert time.monotonic() - started < 5
    assert page.locator("li.msg").count() <= 100  # one page, not the whole conversation

    # Scrolling up loads older pages; what the reader was looking at stays in place.
    before = page.locator("li.msg").count()
    anchor = page.locator("li.msg").first
    # The bubble's text: the message's own buttons (Edit, Copy) are under every user message.
    anchor_text = anchor.locator(".msg__bubble").inner_text()
    page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
    expect(page.locator("li.msg")).not_to_have_count(before)
    assert page.locator("li.msg").count() > before
    anchored = page.locator("li.msg", has_text=anchor_text.splitlines()[-1]).first
    box = anchored.bounding_box()
    assert box is not None
    assert 0 < box["y"] < 800, "the view jumped when older messages came in"
    # Keep going back to the very first message.
    for _ in range(40):
        if page.locator("li.msg").first.get_attribute("data-seq") == "1":
            break
        page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
        page.wait_for_timeout(100)
    first = page.locator("li.msg").first
    expect(first).to_contain_text("message number 1")
    assert first.get_attribute("data-seq") == "1"
    expect(page.locator("#history-more")).to_be_hidden()
    b.watch.assert_clean()


def test_sidebar_loads_conversations_page_by_page(open_page, spark, user):
    for number in range(1, 26):
        ConversationFactory(user=user, title=f"Topic {number:02d}")
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    items = page.locator("#conversation-list li.conv")
    expect(items).to_have_count(20)
    expect(items.first).to_contain_text("Topic 25")  # newest first
    page.locator(".sidebar__scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    expect(items).to_have_count(25)
    expect(items.last).to_contain_text("Topic 01")
    expect(page.locator("#conversations-more")).to_be_hidden()
    b.watch.assert_clean()


def test_a_list_answered_before_a_delete_does_not_bring_the_conversation_back(
    open_page, spark, user
):
    # The race CI once hit: a search whose answer left the server before the delete arrives after.
    ConversationFactory(user=user, title="Keep me")
    doomed = ConversationFactory(user=user, title="Bedtime stories")
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    items = page.locator("#conversation-list li.conv")
    expect(items).to_have_count(2)

    held = []
    page.route("**/api/conversations/?*search=bedtime*", lambda route: held.append(route))
    page.get_by_label("Search conversations").fill("bedtime")
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the search request was not sent"
    # The search is in flight (its answer will still list the conversation); delete it meanwhile.
    response = held[0].fetch()
    assert doomed.title in response.text()
    items.filter(has_text="Bedtime stories").get_by_role(
        "button", name=re.compile("^Delete")
    ).click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete").click()
    expect(items.filter(has_text="Bedtime stories")).to_have_count(0)
    wait_until(lambda: Conversation.objects.filter(pk=doomed.pk, deleted_at__isnull=False).exists())

    held[0].fulfill(response=response)
    page.wait_for_function(
        "!document.getElementById('conversation-list').hasAttribute('aria-busy')"
    )
    expect(items.filter(has_text="Bedtime stories")).to_have_count(0)
    expect(page.locator("#conversations-empty")).to_have_text("No conversation matches.")
    page.get_by_label("Search conversations").fill("")
    expect(items).to_have_text([re.compile("Keep me")])
    b.watch.assert_clean()
