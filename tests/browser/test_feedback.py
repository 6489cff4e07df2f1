"""👍/👎 under a reply in chromium: rate with the keyboard, give a reason and a comment, see the
rating after a reload, take it back; in Chinese; and a refusal shown next to the buttons."""

from __future__ import annotations

import importlib

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import Feedback, FeedbackReason
from review.models import ReviewItem
from tests.factories import ConversationFactory, MessageFactory

from .helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def reasons(db) -> None:
    # Seeded by a data migration, which a transactional test's flush empties: seeded again here.
    seeded = importlib.import_module("conversations.migrations.0008_feedback_reasons")
    for order, (code, label, label_zh, rating) in enumerate(seeded.REASONS):
        FeedbackReason.objects.get_or_create(
            code=code,
            defaults={"label": label, "label_zh": label_zh, "rating": rating, "order": order},
        )


def send(page, text: str, label: str = "Message") -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Enter")


def test_rate_a_reply_with_the_keyboard_reload_and_take_it_back(
    open_page, spark, user, screenshot_dir
):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, "Capital of France? [[reply:Paris is the capital.]] [[interval:0.15]]")
    reply = page.locator("li.msg--assistant").last
    down = reply.get_by_role("button", name="Bad reply")
    up = reply.get_by_role("button", name="Good reply")
    # Nothing to rate while the reply is being written.
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(down).to_be_hidden()
    expect(reply.locator(".msg__body")).to_have_text("Paris is the capital.")
    expect(down).to_be_visible()
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(up).to_have_attribute("aria-pressed", "false")

    # Keyboard only: from 👍, Tab reaches 👎, Enter presses it; the rating is saved at once.
    up.focus()
    page.keyboard.press("Tab")
    expect(down).to_be_focused()
    page.keyboard.press("Enter")
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    feedback = wait_until(lambda: Feedback.objects.filter(rating="down").first())
    assert (feedback.reason, feedback.comment) == ("", "")
    message_id = str(feedback.message_id)
    assert reply.get_attribute("data-id") == message_id

    # The reasons for a 👎 are offered, the first one focused; 👍's are not.
    form = reply.locator("form.feedback-form")
    expect(form).to_be_visible()
    expect(form.locator("legend")).to_have_text("What went wrong?")
    expect(form.get_by_role("radio")).to_have_count(6)
    expect(form.get_by_label("Helpful", exact=True)).to_have_count(0)
    expect(form.get_by_role("radio").first).to_be_focused()
    page.keyboard.press("ArrowDown")  # radio buttons move with the arrow keys
    page.keyboard.press("ArrowDown")
    expect(form.get_by_label("Incomplete or cut off")).to_be_checked()
    form.get_by_label("Comment (optional)").fill("It stops after one sentence.")
    page.screenshot(path=str(screenshot_dir / "feedback.png"))
    form.get_by_role("button", name="Send").click()

    wait_until(
        lambda: Feedback.objects.filter(
            message_id=message_id, reason="incomplete", comment="It stops after one sentence."
        ).exists()
    )
    expect(form).to_be_hidden()
    expect(reply.locator(".feedback-panel__status")).to_have_text("Thank you for your feedback.")
    expect(down).to_be_focused()
    assert ReviewItem.objects.filter(source="feedback", message_id=message_id).exists()

    # After a reload the rating comes with the message.
    page.reload()
    reply = page.locator(f'li.msg--assistant[data-id="{message_id}"]')
    down = reply.get_by_role("button", name="Bad reply")
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(reply.get_by_role("button", name="Good reply")).to_have_attribute(
        "aria-pressed", "false"
    )

    # Pressing the pressed button takes the rating back.
    down.focus()
    page.keyboard.press("Enter")
    expect(down).to_have_attribute("aria-pressed", "false")
    expect(reply.locator(".feedback-panel__status")).to_have_text("Your rating was taken back.")
    wait_until(lambda: not Feedback.objects.exists())
    page.reload()
    expect(
        page.locator(f'li.msg--assistant[data-id="{message_id}"]').get_by_role(
            "button", name="Bad reply"
        )
    ).to_have_attribute("aria-pressed", "false")
    b.watch.assert_clean()


def _conversation_with_a_reply(user):
    conversation = ConversationFactory(user=user, title="天气")
    MessageFactory(conversation=conversation, seq=1, role="user", content="今天天气怎么样？")
    reply = MessageFactory(
        conversation=conversation, seq=2, role="assistant", content="今天是晴天。"
    )
    return conversation, reply


def test_feedback_in_chinese(open_page, spark, user, screenshot_dir):
    conversation, reply = _conversation_with_a_reply(user)
    b = open_page(user=user, locale="zh-CN")
    page = b.page
    page.goto(b.url(f"/c/{conversation.id}/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    item = page.locator("li.msg--assistant")
    expect(item.locator(".msg__body")).to_have_text("今天是晴天。")
    expect(item.get_by_role("group", name="评价这条回复")).to_be_visible()
    up = item.get_by_role("button", name="回复很好")
    expect(item.get_by_role("button", name="回复不好")).to_be_visible()

    up.focus()
    page.keyboard.press("Enter")
    expect(up).to_have_attribute("aria-pressed", "true")
    wait_until(lambda: Feedback.objects.filter(message=reply, rating="up").exists())
    form = item.locator("form.feedback-form")
    expect(form.locator("legend")).to_have_text("哪里好？")
    expect(form.get_by_label("有帮助")).to_be_visible()
    expect(form.get_by_label("其他")).to_be_visible()
    expect(form.get_by_role("radio")).to_have_count(2)
    form.get_by_label("有帮助").check()
    form.get_by_label("补充说明（可选）").fill("很清楚")
    page.screenshot(path=str(screenshot_dir / "feedback-zh.png"))
    form.get_by_role("button", name="发送").click()
    wait_until(
        lambda: Feedback.objects.filter(
            message=reply, rating="up", reason="helpful", comment="很清楚"
        ).exists()
    )
    expect(item.locator(".feedback-panel__status")).to_have_text("感谢你的反馈。")

    # Cancel keeps the bare rating: 👎 replaces 👍, the form closes without sending its reasons.
    down = item.get_by_role("button", name="回复不好")
    down.click()
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(form.locator("legend")).to_have_text("哪里有问题？")
    expect(form.get_by_label("不准确或编造")).to_be_visible()
    form.get_by_role("button", name="取消").click()
    expect(form).to_be_hidden()
    expect(down).to_be_focused()
    wait_until(lambda: Feedback.objects.filter(message=reply, rating="down", reason="").exists())
    b.watch.assert_clean()


def test_a_refused_rating_is_shown_next_to_the_buttons(open_page, spark, user):
    conversation, reply = _conversation_with_a_reply(user)
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the 404 below is provoked
    page = b.page
    page.goto(b.url(f"/c/{conversation.id}/"))
    item = page.locator("li.msg--assistant")
    up = item.get_by_role("button", name="Good reply")
    expect(up).to_be_visible()
    # Deleted in another tab: the rating is refused, and the page says so next to the buttons.
    conversation.deleted_at = timezone.now()
    conversation.save(update_fields=["deleted_at"])

    up.click()

    error = item.locator(".feedback-panel__error")
    expect(error).to_be_visible()
    expect(error).to_have_text("Your feedback was not saved: Message not found.")
    expect(error).to_have_attribute("role", "alert")
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(item.locator("form.feedback-form")).to_be_hidden()
    assert not Feedback.objects.exists()
    b.watch.assert_clean()
