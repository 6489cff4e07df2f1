"""The composer: Enter and Shift+Enter, refusals with a reason, drafts, the queue, no model."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation, Message
from tests.factories import PASSWORD, ConversationFactory, UserFactory

from .helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_refuses_empty_and_too_long_messages_with_a_reason(open_page, spark, user, settings):
    settings.MAX_MESSAGE_CHARS = 40
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    box = page.get_by_label("Message", exact=True)
    error = page.locator("#composer-error")

    box.fill("   ")
    box.press("Enter")
    expect(error).to_have_text("Type a message first.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(error).to_be_visible()

    box.fill("x" * 41)
    expect(page.locator("#composer-count")).to_have_text("41 / 40 characters")
    box.press("Enter")
    expect(error).to_have_text("Too long: 41 characters, the limit is 40.")
    expect(box).to_have_value("x" * 41)  # nothing is lost
    assert not Message.objects.exists()

    box.press("Backspace")
    expect(error).to_be_hidden()
    box.press("Enter")
    expect(page.locator("li.msg--user")).to_have_count(1)
    b.watch.assert_clean()


def test_shift_enter_new_line_and_draft_survives_reload(open_page, spark, user):
    conversation = ConversationFactory(user=user, title="Drafts")
    b = open_page(user=user)
    page = b.page
    page.goto(b.url(f"/c/{conversation.id}/"))
    box = page.get_by_label("Message", exact=True)
    box.type("first line")
    box.press("Shift+Enter")
    box.type("second line")
    expect(box).to_have_value("first line\nsecond line")
    assert not Message.objects.exists()
    page.reload()  # at once: the draft is saved when the page goes away, not only after a pause
    expect(page.get_by_label("Message", exact=True)).to_have_value("first line\nsecond line")
    # Drafts are per conversation: a new chat starts empty.
    page.get_by_role("button", name="New chat").click()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    page.go_back()
    expect(page.get_by_label("Message", exact=True)).to_have_value("first line\nsecond line")
    page.get_by_label("Message", exact=True).press("Enter")
    expect(page.locator("li.msg--user .msg__text")).to_have_text("first line\nsecond line")
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    wait_until(lambda: Message.objects.filter(role="assistant", status="complete").exists())
    page.reload()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")
    b.watch.assert_clean()


def test_messages_sent_during_a_reply_wait_in_a_queue(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    box = page.get_by_label("Message", exact=True)
    box.fill("one [[reply:first reply is slow]] [[interval:0.3]]")
    box.press("Enter")
    expect(page.locator("li.msg--assistant .msg__body").first).to_contain_text("first")
    box.fill("two [[reply:second reply]]")
    box.press("Enter")
    queued = page.locator("li.msg--user").nth(1)
    expect(queued).to_have_class(re.compile("is-queued"))
    expect(queued).to_contain_text("Queued")
    expect(page.locator("li.msg--assistant").nth(1)).to_have_count(0)
    # When the first reply ends, the queued message goes out by itself.
    expect(page.locator("li.msg--assistant .msg__body").nth(1)).to_have_text(
        "second reply", timeout=10_000
    )
    expect(queued).not_to_have_class(re.compile("is-queued"))
    expect(page.locator("li.msg--assistant .msg__body").first).to_have_text("first reply is slow")
    contents = list(Message.objects.order_by("seq").values_list("role", "status"))
    assert contents == [("user", "complete"), ("assistant", "complete")] * 2
    b.watch.assert_clean()


def test_no_model_configured_shows_a_notice_and_refuses_to_send(open_page, user, settings):
    settings.SPARK_API_PASSWORD = ""
    settings.SPARK_API_PASSWORDS = {}
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # /api/models/ answers 503 model_not_configured
    page = b.page
    page.goto(b.url("/"))
    notice = page.locator("#model-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("No model is configured")
    box = page.get_by_label("Message", exact=True)
    box.fill("hello")
    box.press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("No model is configured")
    expect(box).to_have_value("hello")
    assert not Message.objects.exists()
    b.watch.assert_clean()


def test_anonymous_visitor_signs_in_and_comes_back(open_page, spark):
    owner = UserFactory(username="grace")
    conversation = ConversationFactory(user=owner, title="Kept for later")
    b = open_page()
    page = b.page
    page.goto(b.url(f"/c/{conversation.id}/"))
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".form__errors")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(b.url(f"/c/{conversation.id}/"))
    expect(page.locator("#conversation-title")).to_have_text("Kept for later")
    # Signing out leads back to the sign-in page.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    b.watch.assert_clean()


def test_model_picker_and_system_prompt_apply_to_the_conversation(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    page.get_by_label("Model").select_option("generalv3")
    page.get_by_role("button", name="System prompt").click()
    page.get_by_role("textbox", name="System prompt").fill("Answer like a pirate.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#system-prompt-status")).to_contain_text("Saved")
    box = page.get_by_label("Message", exact=True)
    box.fill("Ahoy?")
    box.press("Enter")
    expect(page.locator("li.msg--assistant .msg__body")).to_contain_text("Echo")
    sent = spark.requests[-1]["json"]
    assert sent["model"] == "generalv3"
    assert sent["messages"][0] == {"role": "system", "content": "Answer like a pirate."}
    expect(page.locator("li.msg--assistant .msg__meta")).to_contain_text("Spark Pro")

    # Changing them on an existing conversation saves them there.
    page.get_by_label("Model").select_option("lite")
    page.get_by_role("textbox", name="System prompt").fill("Answer in one word.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#system-prompt-status")).to_have_text("Saved.")
    conversation = Conversation.objects.get()
    wait_until(lambda: Conversation.objects.filter(pk=conversation.pk, model="lite").exists())
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Answer in one word."
    page.reload()
    expect(page.get_by_label("Model")).to_have_value("lite")
    page.get_by_role("button", name="System prompt").click()
    expect(page.get_by_role("textbox", name="System prompt")).to_have_value("Answer in one word.")
    b.watch.assert_clean()


def test_a_refused_message_stays_with_its_reason_and_can_be_retried(
    open_page, spark, user, settings
):
    settings.CHAT_RATE_LIMIT = "1/m"
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the 429 is the point of this test
    page = b.page
    page.goto(b.url("/"))
    box = page.get_by_label("Message", exact=True)
    box.fill("first")
    box.press("Enter")
    expect(page.locator("li.msg--assistant .msg__body")).to_contain_text("Echo: first")
    box.fill("second, refused by the rate limit")
    box.press("Enter")
    refused = page.locator("li.msg--user").nth(1)
    expect(refused).to_contain_text("Not sent: Too many messages. Try again in")
    assert not Message.objects.filter(content__startswith="second").exists()

    # It survives a reload, still with its Retry.
    page.reload()
    refused = page.locator("li.msg--user", has_text="second, refused")
    expect(refused).to_contain_text("Not sent")
    settings.CHAT_RATE_LIMIT = "1000/m"
    refused.get_by_role("button", name="Retry").click()
    expect(page.locator("li.msg--assistant .msg__body").nth(1)).to_contain_text("Echo: second")
    expect(page.locator("li.msg--user", has_text="second, refused")).not_to_contain_text("Not sent")
    page.reload()
    expect(page.locator("li.msg--user")).to_have_count(2)
    expect(page.locator("li.msg--user.is-unsent")).to_have_count(0)
    b.watch.assert_clean()
