"""Chinese from the browser's language, the language switch, and screenshots of the chat page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Message
from tests.factories import ConversationFactory

from .helpers import DESKTOP, PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_chinese_ui_when_the_browser_prefers_zh_cn(open_page, spark, user, screenshot_dir):
    b = open_page(user=user, locale="zh-CN")
    page = b.page
    page.goto(b.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("button", name="新对话")).to_be_visible()
    expect(page.locator("#conversation-title")).to_have_text("新对话")
    box = page.get_by_label("消息", exact=True)
    expect(box).to_have_attribute("placeholder", re.compile("发消息"))
    box.fill("你好 [[delay:1.2]] [[reply:你好！]]")
    box.press("Enter")
    thinking = page.locator("li.msg--assistant .msg__thinking")
    expect(thinking).to_have_text(re.compile(r"^正在思考，已耗时 \d\.\d 秒$"))
    expect(page.locator("li.msg--assistant .msg__body")).to_have_text("你好！")
    expect(page.locator("li.msg--assistant .msg__meta")).to_contain_text("个词元")
    page.screenshot(path=str(screenshot_dir / "chat-desktop-light-zh.png"))
    box.fill("")
    box.press("Enter")
    expect(page.locator("#composer-error")).to_have_text("请先输入消息。")

    # The switch changes the language and stays on the same conversation.
    url = page.url
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert page.url == url
    expect(page.get_by_role("button", name="New chat")).to_be_visible()
    page.get_by_role("button", name="简体中文").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    b.watch.assert_clean()


def test_sign_in_page_in_chinese(open_page):
    b = open_page(locale="zh-CN")
    page = b.page
    page.goto(b.url("/accounts/login/"))
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    expect(page.get_by_role("link", name="创建账号")).to_be_visible()
    b.watch.assert_clean()


SAMPLE_REPLY = """Here is a **short** overview, with a table and some code.

## Steps

1. Read the input.
2. Check it, then *answer*.

| Model | Context | Notes |
| --- | ---: | --- |
| Spark Lite | 8K | fast |
| Spark Max-32K | 32K | long documents |

```python
def is_palindrome(text: str) -> bool:
    cleaned = [c.lower() for c in text if c.isalnum()]
    return cleaned == cleaned[::-1]  # compare with its reverse
```

> Quotes and `inline code` work too. See [the docs](https://example.org/docs).
"""


def conversation_with_history(user):
    conversation = ConversationFactory(
        user=user, title="Palindromes in Python", system_prompt="Answer briefly."
    )
    for number in range(1, 8):
        ConversationFactory(user=user, title=f"Earlier conversation {number}")
    conversation.save()  # newest: first in the sidebar
    rows = [
        ("user", "How do I check whether a string is a palindrome in Python?", "complete", {}),
        (
            "assistant",
            SAMPLE_REPLY,
            "complete",
            {"prompt_tokens": 42, "completion_tokens": 96, "total_tokens": 138},
        ),
        ("user", "And in one line?", "complete", {}),
        ("assistant", "Use slicing: `s == s[::-1]`, after", "interrupted", {}),
        ("user", "Try again please", "complete", {}),
        ("assistant", "", "error", {}),
    ]
    for seq, (role, content, status, usage) in enumerate(rows, start=1):
        Message.objects.create(
            conversation=conversation,
            seq=seq,
            role=role,
            content=content,
            status=status,
            model="lite",
            error_code="10014" if status == "error" else "",
            error_detail="The message was blocked by the model's content moderation."
            if status == "error"
            else "",
            ttft_ms=420 if usage else None,
            duration_ms=1830 if usage else None,
            **usage,
        )
    return conversation


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_screenshots(open_page, spark, user, screenshot_dir, scheme, device):
    conversation = conversation_with_history(user)
    viewport = DESKTOP if device == "desktop" else PHONE
    b = open_page(user=user, color_scheme=scheme, viewport=viewport)
    page = b.page
    page.goto(b.url(f"/c/{conversation.id}/"))
    expect(page.locator(".codeblock code.hljs")).to_be_visible()  # highlighted
    expect(page.locator("li.msg--assistant .msg__notice--error")).to_be_visible()
    page.locator("#scroller").evaluate("el => { el.scrollTop = 0; }")
    page.wait_for_timeout(200)
    page.screenshot(path=str(screenshot_dir / f"chat-{device}-{scheme}.png"))
    page.locator("#scroller").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_timeout(100)
    page.screenshot(path=str(screenshot_dir / f"chat-{device}-{scheme}-end.png"))
    if device == "phone":
        page.get_by_role("button", name="Show the conversation list").click()
        expect(page.locator("#sidebar")).to_be_in_viewport()
        page.wait_for_timeout(300)
        page.screenshot(path=str(screenshot_dir / f"chat-{device}-{scheme}-sidebar.png"))
        page.keyboard.press("Escape")
        expect(page.locator("#sidebar")).not_to_be_in_viewport()
    else:
        page.get_by_role("button", name="New chat").click()
        expect(page.get_by_text("How can I help you today?")).to_be_visible()
        page.screenshot(path=str(screenshot_dir / f"chat-{device}-{scheme}-new.png"))
    b.watch.assert_clean()


def test_screenshot_sign_in(open_page, screenshot_dir):
    b = open_page(viewport=PHONE)
    page = b.page
    page.goto(b.url("/accounts/signup/"))
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator(".field__errors").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "signup-phone-light-errors.png"), full_page=True)
    b.watch.assert_clean()
