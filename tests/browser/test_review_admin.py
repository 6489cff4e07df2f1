"""The review queue and an admin transcript in chromium: replies are rendered by the chat page's
renderer under the admin's CSP (Markdown: code blocks, tables), the page fits 1280 px without a
horizontal scroll bar, and claiming works from the item's page (review/admin.py,
static/js/admin-transcript.js)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from conversations.models import Feedback, Message
from review import roles
from review.models import Label, ReviewItem, ReviewNote
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUEUE = "/admin/review/reviewitem/"

REPLY = """Here is the **plan**, with a table:

| day | place | note |
| --- | --- | --- |
| 1 | West Lake | {long} |
| 2 | Lingyin | temple |

```python
def itinerary(days: int) -> list[str]:
    return ["West Lake", "Lingyin", "Longjing tea fields"][:days]  # {long_code}
```

A link to [the lake](https://example.org/west-lake) and inline `code`.

<script>document.body.dataset.pwned = "yes"</script>
"""


@pytest.fixture
def reviewer(db):
    roles.ensure_reviewer_role()
    user = UserFactory(username="rita", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.REVIEWER_GROUP))
    return user


@pytest.fixture
def flagged(db, reviewer):
    owner = UserFactory(username="owner-ann")
    conversation = ConversationFactory(user=owner, title="Weekend in Hangzhou", model="max-32k")
    MessageFactory(
        conversation=conversation,
        seq=1,
        content="Plan two days in Hangzhou for me, " + "please " * 60,
    )
    reply = MessageFactory(
        conversation=conversation,
        seq=2,
        role=Message.Role.ASSISTANT,
        content=REPLY.format(long="crowded-" * 40, long_code="x" * 300),
        reasoning="The user wants **two** days.",
        sid="cha000b0001@dxabc",
        prompt_tokens=20,
        completion_tokens=180,
        total_tokens=200,
        ttft_ms=410,
        duration_ms=2900,
        provider="spark",
        model="max-32k",
    )
    Feedback.objects.create(message=reply, rating="down", comment="Too long " * 30)
    item = ReviewItem.objects.get(message=reply, source=ReviewItem.Source.FEEDBACK)
    item.labels.add(Label.objects.create(name="quality"))
    ReviewNote.objects.create(item=item, author=reviewer, body="Table overflows? " * 10)
    ReviewItem.objects.create(
        conversation=conversation,
        message=reply,
        source=ReviewItem.Source.KEYWORD,
        detail="crowded",
        severity=ReviewItem.Severity.HIGH,
    )
    for n in range(3):
        other = ConversationFactory(title=f"Sampled chat {n}", model="lite")
        MessageFactory(conversation=other, seq=1, content="hello")
        ReviewItem.objects.create(
            conversation=other, source=ReviewItem.Source.SAMPLE, severity="low", detail="sample"
        )
    return item


def no_horizontal_scroll(page) -> bool:
    return page.evaluate(
        "() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth + 1"
    )


def test_a_reviewer_reads_the_queue_and_a_rendered_transcript(
    open_page, reviewer, flagged, screenshot_dir
):
    b = open_page(user=reviewer)
    page = b.page

    page.goto(b.url(QUEUE))
    expect(page.locator("#result_list")).to_contain_text("Weekend in Hangzhou")
    expect(page.locator("#result_list tbody tr")).to_have_count(5)
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(screenshot_dir / "review-queue.png"), full_page=True)

    page.get_by_role("link", name=f"#{flagged.pk}", exact=True).click()
    transcript = page.locator("[data-transcript]")
    expect(transcript).to_have_attribute("data-rendered", "true")
    reply = page.locator(f"#message-{flagged.message_id} .tx-msg__body")
    # Rendered as on the chat page: a code block (highlighted), a table, a safe link.
    expect(reply.locator("pre code")).to_contain_text("def itinerary")
    expect(reply.locator("table")).to_have_count(1)
    expect(reply.locator("table td").first).to_have_text("1")
    expect(reply.locator("strong")).to_have_text("plan")
    expect(reply.locator("a[href='https://example.org/west-lake']")).to_have_attribute(
        "rel", "noopener noreferrer nofollow"
    )
    expect(transcript).to_have_attribute("data-highlighted", "true")
    expect(reply.locator("pre code.hljs")).to_have_count(1)
    # The model's <script> is shown as text, never run.
    expect(reply).to_contain_text("<script>")
    assert page.evaluate("() => document.body.dataset.pwned") is None
    # The user's message stays plain text; the reasoning is folded and rendered.
    user_text = page.locator(".tx-msg--user .tx-msg__body").first
    expect(user_text).to_contain_text("Plan two days")
    reasoning = page.locator(f"#message-{flagged.message_id} details.tx-reasoning")
    expect(reasoning).not_to_have_attribute("open", "")
    expect(reasoning.locator("strong")).to_have_text("two")
    # This item's message is highlighted; its feedback, flags and note are beside it.
    row = page.locator(f"#message-{flagged.message_id}")
    expect(row).to_have_class("tx-row is-highlighted has-side")
    side = row.locator(".tx-side")
    expect(side).to_contain_text("👎")
    expect(side).to_contain_text("crowded")
    expect(side).to_contain_text("Table overflows?")
    expect(row.locator(".tx-meta")).to_contain_text("20 / 180 / 200 tokens")
    # Long lines wrap and code scrolls inside its block: the page itself does not scroll sideways.
    assert no_horizontal_scroll(page)
    pre_scrolls = reply.locator("pre").evaluate("pre => pre.scrollWidth > pre.clientWidth")
    assert pre_scrolls

    # Claim from the page: the banner says who holds it.
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("[data-claim]")).to_contain_text("You have claimed this item until")
    page.locator(f"#message-{flagged.message_id}").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "review-transcript.png"), full_page=True)
    flagged.refresh_from_db()
    assert flagged.claimed_by == reviewer
    assert flagged.status == ReviewItem.Status.IN_REVIEW
    b.watch.assert_clean()


def test_the_conversation_page_renders_the_same_transcript(open_page, reviewer, flagged):
    b = open_page(user=reviewer)
    page = b.page

    page.goto(b.url(f"/admin/conversations/conversation/{flagged.conversation_id}/change/"))

    reply = page.locator(f"#message-{flagged.message_id} .tx-msg__body")
    expect(reply.locator("table")).to_have_count(1)
    expect(reply.locator("pre code")).to_contain_text("def itinerary")
    expect(page.locator(".tx-notes--conversation")).to_have_count(0)
    assert no_horizontal_scroll(page)
    b.watch.assert_clean()
