"""The everyday journey and the reply controls: stream, stop, regenerate, retry, thinking timer."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, Message
from tests.factories import PASSWORD

from .helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORDS = " ".join(f"word{i}" for i in range(1, 31))


def send(page, text: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(text)
    box.press("Enter")


def last_reply(page):
    return page.locator("li.msg--assistant").last


def test_sign_up_chat_reload_rename_search_delete(open_page, spark):
    b = open_page()
    page = b.page
    # Anonymous visitors are sent to sign in; from there, to sign up, and back to the chat.
    page.goto(b.url("/"))
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Email address").fill("ada@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(b.url("/"))
    expect(page.get_by_text("How can I help you today?")).to_be_visible()

    # A streamed reply arrives token by token: a partial state is visible before the end.
    send(page, f"Tell me a story [[reply:{WORDS}]] [[interval:0.08]]")
    user = page.locator("li.msg--user").last
    expect(user).to_contain_text("Tell me a story")
    body = last_reply(page).locator(".msg__body")
    expect(body).to_contain_text("word3")
    partial = body.inner_text()
    assert "word30" not in partial, "the whole reply arrived at once"
    expect(body).to_contain_text("word30", timeout=10_000)
    expect(last_reply(page).locator(".msg__meta")).to_contain_text("tokens")
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}/$"))
    conversation = Conversation.objects.get()
    assert conversation.messages.filter(role="assistant", status="complete").count() == 1

    # After a reload the sidebar lists it, and opening it shows the history.
    page.goto(b.url("/"))
    item = page.locator("#conversation-list li.conv").first
    expect(item).to_contain_text("Tell me a story")
    item.locator(".conv__link").click()
    expect(page).to_have_url(b.url(f"/c/{conversation.id}/"))
    expect(last_reply(page).locator(".msg__body")).to_contain_text("word30")
    expect(page.locator("li.msg--user")).to_contain_text("Tell me a story")

    # Rename.
    item.get_by_role("button", name=re.compile("^Rename")).click()
    title_input = item.get_by_label("New title")
    title_input.fill("Bedtime stories")
    title_input.press("Enter")
    expect(item.locator(".conv__title")).to_have_text("Bedtime stories")
    expect(page.locator("#conversation-title")).to_have_text("Bedtime stories")
    wait_until(lambda: Conversation.objects.filter(title="Bedtime stories").exists())

    # Search finds it by title and by message text, and reports when nothing matches.
    search = page.get_by_label("Search conversations")
    search.fill("no such thing")
    expect(page.locator("#conversations-empty")).to_have_text("No conversation matches.")
    expect(page.locator("#conversation-list li")).to_have_count(0)
    search.fill("word17")
    expect(page.locator("#conversation-list li")).to_have_count(1)
    search.fill("bedtime")
    expect(page.locator("#conversation-list li .conv__title")).to_have_text(["Bedtime stories"])

    # Delete, after confirming.
    page.locator("#conversation-list li").first.get_by_role(
        "button", name=re.compile("^Delete")
    ).click()
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Bedtime stories")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert Conversation.objects.count() == 1
    page.locator("#conversation-list li").first.get_by_role(
        "button", name=re.compile("^Delete")
    ).click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#conversation-list li")).to_have_count(0)
    expect(page).to_have_url(b.url("/"))
    wait_until(lambda: not Conversation.objects.filter(deleted_at__isnull=True).exists())
    b.watch.assert_clean()


def test_stop_keeps_partial_reply_after_reload(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, f"Count [[reply:{WORDS}]] [[interval:0.15]]")
    body = last_reply(page).locator(".msg__body")
    expect(body).to_contain_text("word4")
    page.get_by_role("button", name="Stop the reply").click()
    expect(last_reply(page).locator(".msg__notice")).to_contain_text("Stopped")
    expect(page.get_by_role("button", name="Stop the reply")).to_be_hidden()
    shown = body.inner_text()
    assert "word30" not in shown

    saved = wait_until(
        lambda: Message.objects.filter(role="assistant", status="interrupted").first(), timeout=10
    )
    assert saved.content.startswith("word1 word2 word3 word4")
    assert "word30" not in saved.content

    page.reload()
    reply = last_reply(page)
    expect(reply.locator(".msg__body")).to_contain_text("word4")
    expect(reply.locator(".msg__notice")).to_contain_text("Stopped")
    expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
    b.watch.assert_clean()


def test_regenerate_replaces_the_last_reply(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    spark.reply = "The first answer."
    send(page, "Question")
    expect(last_reply(page).locator(".msg__body")).to_have_text("The first answer.")
    spark.reply = "A better second answer."
    last_reply(page).get_by_role("button", name="Regenerate").click()
    expect(last_reply(page).locator(".msg__body")).to_have_text("A better second answer.")
    expect(page.locator("li.msg--assistant")).to_have_count(1)
    page.reload()
    expect(page.locator("li.msg--assistant")).to_have_count(1)
    expect(last_reply(page).locator(".msg__body")).to_have_text("A better second answer.")
    assert Message.objects.filter(role="assistant", replaced=False).count() == 1
    b.watch.assert_clean()


def test_upstream_error_shows_its_message_and_retry_works(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, "Tell me [[reply:Half an answer and then]] [[midstream:10014]]")
    reply = last_reply(page)
    notice = reply.locator(".msg__notice--error")
    expect(notice).to_be_visible()
    failed = wait_until(lambda: Message.objects.filter(role="assistant", status="error").first())
    assert failed.error_detail
    expect(notice).to_contain_text(failed.error_detail)
    expect(page.locator("li.msg--user")).to_contain_text("Tell me")
    retry = reply.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()

    # The upstream trouble goes away (the directive that caused it is removed), then Retry.
    Message.objects.filter(role="user").update(content="Tell me [[reply:A whole answer.]]")
    retry.click()
    expect(last_reply(page).locator(".msg__body")).to_have_text("A whole answer.")
    expect(last_reply(page).locator(".msg__notice")).to_be_hidden()
    expect(page.locator("li.msg--assistant")).to_have_count(1)
    page.reload()
    expect(last_reply(page).locator(".msg__body")).to_have_text("A whole answer.")
    expect(page.locator("li.msg--user")).to_have_count(1)
    b.watch.assert_clean()


def test_thinking_timer_counts_until_the_first_token(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, "Slow one [[delay:2]] [[reply:Finally here.]]")
    thinking = last_reply(page).locator(".msg__thinking")
    expect(thinking).to_have_text(re.compile(r"^Thinking… 0\.\d s$"))
    expect(thinking).to_have_text(re.compile(r"^Thinking… 1\.\d s$"), timeout=3_000)
    expect(last_reply(page).locator(".msg__body")).to_have_text("Finally here.", timeout=5_000)
    expect(thinking).to_be_hidden()
    b.watch.assert_clean()


def scroll_state(page) -> dict:
    return page.locator("#scroller").evaluate(
        "el => ({top: el.scrollTop, max: el.scrollHeight - el.clientHeight})"
    )


def test_auto_scroll_follows_the_reply_until_the_reader_scrolls_up(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    lines = "\\n".join(f"Line {i} of a long reply." for i in range(1, 81))
    spark.reply = lines.replace("\\n", "\n\n")
    spark.token_interval = 0.015
    send(page, "A long one please")
    body = last_reply(page).locator(".msg__body")
    expect(body).to_contain_text("Line 30 ", timeout=10_000)
    state = scroll_state(page)
    assert state["max"] > 0, state
    assert state["max"] - state["top"] < 70, state  # following
    expect(page.locator("#jump-latest")).to_be_hidden()

    # The reader scrolls up: the view stays where they put it while text keeps coming.
    page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(300)
    held = scroll_state(page)
    assert held["top"] == 0, (state, held)
    assert held["max"] > state["max"], (state, held)
    expect(page.locator("#jump-latest")).to_be_visible()
    expect(body).to_contain_text("Line 80 ", timeout=15_000)
    assert scroll_state(page)["top"] == 0

    page.locator("#jump-latest").click()
    final = scroll_state(page)
    assert final["max"] - final["top"] < 70
    expect(page.locator("#jump-latest")).to_be_hidden()
    b.watch.assert_clean()


def test_a_reply_keeps_streaming_while_another_conversation_is_open(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, f"Slow story [[reply:{WORDS}]] [[interval:0.1]]")
    expect(last_reply(page).locator(".msg__body")).to_contain_text("word2")
    first_url = page.url
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_text("How can I help you today?")).to_be_visible()
    page.go_back()
    expect(page).to_have_url(first_url)
    reply = last_reply(page)
    expect(reply.locator(".msg__body")).to_contain_text("word30", timeout=10_000)
    expect(page.locator("li.msg--assistant")).to_have_count(1)
    expect(reply.get_by_role("button", name="Regenerate")).to_be_visible()
    b.watch.assert_clean()


def test_keyboard_reaches_the_composer_and_the_sidebar(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    skip = page.get_by_role("link", name="Skip to the message box")
    skip.focus()
    expect(skip).to_be_in_viewport()  # hidden until focused, then shown
    page.keyboard.press("Enter")
    expect(page.get_by_label("Message", exact=True)).to_be_focused()
    page.keyboard.type("typed with the keyboard [[reply:ok]]")
    page.keyboard.press("Enter")
    expect(last_reply(page).locator(".msg__body")).to_have_text("ok")
    # Tab moves from the composer to the send button; the sidebar is reachable in order too.
    page.get_by_role("button", name="New chat").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Search conversations")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#conversation-list .conv__link").first).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#conversation-list .conv__pin").first).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#conversation-list .conv__rename").first).to_be_focused()
    expect(page.locator("#conversation-list .conv__rename").first).to_be_visible()
    assert page.locator("#message-list").get_attribute("aria-live") == "polite"
    # Every button on the page has an accessible name.
    unnamed = page.locator("button:visible").evaluate_all(
        "buttons => buttons.filter(b => !(b.getAttribute('aria-label') || b.textContent.trim()))"
        ".map(b => b.outerHTML)"
    )
    assert not unnamed, unnamed
    b.watch.assert_clean()
