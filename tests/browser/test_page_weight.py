"""Bytes of JS and CSS on the first load of the chat page, written to test-artifacts/."""

from __future__ import annotations

import gzip
import json

import pytest
from playwright.sync_api import expect

from conversations.models import Message
from tests.factories import ConversationFactory

from .conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# First load without code in the conversation: highlight.js is fetched only when needed.
# Raised from 200 000 / 64 000 with issue 12 (versions, edit, groups, pins, export, settings);
# then by 18 000 / 6 000 for attached files (attachments.js and .css: 16 200 / 5 200, and their
# wiring in api.js, chat.js, messages.js).
BUDGET_UNCOMPRESSED = 258_000
BUDGET_GZIP = 78_000


def test_first_load_weight_and_lazy_highlighter(open_page, spark, user):
    plain = ConversationFactory(user=user, title="Plain")
    Message.objects.create(conversation=plain, seq=1, role="user", content="hi", model="lite")
    Message.objects.create(
        conversation=plain, seq=2, role="assistant", content="**Hello** there.", model="lite"
    )
    b = open_page(user=user)
    page = b.page
    assets: dict[str, bytes] = {}

    def on_response(response) -> None:
        if response.request.resource_type in ("script", "stylesheet") and response.ok:
            assets[response.url.removeprefix(b.base)] = response.body()

    page.on("response", on_response)
    page.goto(b.url(f"/c/{plain.id}/"))
    expect(page.locator("li.msg--assistant .msg__body strong")).to_have_text("Hello")
    page.wait_for_load_state("networkidle")
    assert not any("highlight" in url for url in assets), "highlight.js loaded without code"

    files = {
        url: {"bytes": len(body), "gzip": len(gzip.compress(body, compresslevel=9))}
        for url, body in sorted(assets.items())
    }
    total = sum(f["bytes"] for f in files.values())
    total_gzip = sum(f["gzip"] for f in files.values())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "page-weight.json").write_text(
        json.dumps({"files": files, "total_bytes": total, "total_gzip": total_gzip}, indent=2)
    )
    assert total < BUDGET_UNCOMPRESSED, files
    assert total_gzip < BUDGET_GZIP, files

    # A reply with code pulls the highlighter in, once.
    code = ConversationFactory(user=user, title="Code")
    Message.objects.create(
        conversation=code, seq=1, role="assistant", content="```js\nlet x = 1;\n```", model="lite"
    )
    with page.expect_response(lambda response: "highlight" in response.url):
        page.goto(b.url(f"/c/{code.id}/"))
    expect(page.locator("code.hljs .hljs-keyword")).to_have_text("let")
    b.watch.assert_clean()
