"""A shared link opened by another signed-in user: the snapshot's Markdown renders with the chat
page's renderer, read-only, without the system prompt (docs/export-and-share.md, "Share")."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from rest_framework.test import APIClient

from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SYSTEM_PROMPT = "SYSTEM-PROMPT-NEVER-SHARED"
REPLY = """## 小结 Summary

This is **bold** and a [link](https://example.com/page).

```python
def greet():
    return "你好"
```

| Name | Value |
| --- | --- |
| 苹果 | apple |

<img src="https://tracker.example/x.png">
"""


def test_shared_link_renders_markdown_for_another_user(open_page, user, screenshot_dir):
    conversation = ConversationFactory(user=user, title="分享的对话", system_prompt=SYSTEM_PROMPT)
    first = MessageFactory(
        conversation=conversation, seq=1, role="user", content="请总结一下 **原样**"
    )
    MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        parent=first,
        content="OLD BRANCH",
        replaced=True,
    )
    MessageFactory(conversation=conversation, seq=3, role="assistant", parent=first, content=REPLY)
    owner = APIClient()
    owner.force_authenticate(user)
    response = owner.post(f"/api/conversations/{conversation.id}/share/", {}, format="json")
    assert response.status_code == 201
    path = urlsplit(response.json()["url"]).path

    reader = UserFactory()
    b = open_page(user=reader)
    page = b.page
    page.goto(b.url(path))
    expect(page.locator("html[data-rendered='yes']")).to_have_count(1)
    expect(page.locator("#shared-title")).to_have_text("分享的对话")
    # The user's message is plain text, as on the chat page.
    question = page.locator(".shared-msg--user .shared-msg__body")
    expect(question).to_have_text("请总结一下 **原样**")
    expect(question.locator("strong")).to_have_count(0)
    body = page.locator(".shared-msg--assistant .shared-msg__body")
    expect(body.locator("h2")).to_have_text("小结 Summary")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator(".codeblock pre code")).to_contain_text('return "你好"')
    expect(body.locator("table td").first).to_have_text("苹果")
    link = body.locator("a", has_text="link")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    # Raw HTML from the model is text, never an image that would load.
    expect(body.locator("img")).to_have_count(0)
    expect(page.locator(".codeblock code.hljs")).to_have_count(1)  # highlight.js ran
    # Read-only: no composer, no buttons but the code block's copy.
    expect(page.locator("textarea, #composer-input")).to_have_count(0)
    content = page.content()
    assert SYSTEM_PROMPT not in content
    assert "OLD BRANCH" not in content
    assert page.locator("meta[name='robots']").get_attribute("content") == "noindex, nofollow"
    assert page.locator("meta[name='referrer']").get_attribute("content") == "no-referrer"
    page.screenshot(path=str(screenshot_dir / "shared-page.png"), full_page=True)
    b.watch.assert_clean()


def test_revoked_link_shows_the_not_found_page(open_page, user):
    conversation = ConversationFactory(user=user)
    MessageFactory(conversation=conversation, seq=1, role="user", content="hello")
    owner = APIClient()
    owner.force_authenticate(user)
    url = owner.post(f"/api/conversations/{conversation.id}/share/", {}, format="json")
    path = urlsplit(url.json()["url"]).path
    assert owner.delete(f"/api/conversations/{conversation.id}/share/").status_code == 204
    b = open_page(user=UserFactory())
    b.watch.allow_http_errors = True
    response = b.page.goto(b.url(path))
    assert response is not None
    assert response.status == 404
    expect(b.page.locator("h1")).to_have_text("Not found")
