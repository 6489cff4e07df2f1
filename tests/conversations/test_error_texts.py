"""A failed reply's error reads in the reader's language (issue: "出错： Too many requests per
second to the model service…"): the English text is stored, the API and the stream translate it
on output (conversations/shapes.py:error_text, conversations/locale)."""

from __future__ import annotations

import pytest
from django.utils import translation

from conversations import replies, shapes
from conversations.llm import dialects, exceptions, spark
from conversations.models import Conversation, Message
from tests.factories import ConversationFactory
from tests.support.api import parse_sse

pytestmark = pytest.mark.django_db

BUSY = "Too many requests per second to the model service. Try again in a moment."
BUSY_ZH = "对模型服务的每秒请求过多。请稍后再试。"


def every_error_text() -> set[str]:
    """Each fixed text a reply can end with, read from the code that raises it."""
    texts = {
        cls.default_detail
        for cls in vars(exceptions).values()
        if isinstance(cls, type) and issubclass(cls, exceptions.LLMError)
    }
    for module in (dialects, spark):
        for value in vars(module).values():
            entries = value.values() if isinstance(value, dict) else [value]
            for entry in entries:
                if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], str):
                    texts.add(entry[1])
    texts |= {
        outcome.detail
        for outcome in vars(replies).values()
        if isinstance(outcome, replies._Outcome) and outcome.detail
    }
    return texts


def test_every_error_text_of_the_code_has_a_chinese_translation():
    texts = every_error_text()
    assert len(texts) > 25
    with translation.override("zh-hans"):
        untranslated = sorted(t for t in texts if shapes.error_text(t) == t)
    assert untranslated == []


def test_another_text_is_shown_as_stored():
    with translation.override("zh-hans"):
        assert shapes.error_text("The model service failed with code 99999.") == (
            "The model service failed with code 99999."
        )


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, model="lite")


def test_a_failed_reply_reads_in_chinese_in_json_stream_and_history(api, spark, conversation):
    url = f"/api/conversations/{conversation.pk}/messages/"

    failed = api.post(
        url, {"content": "hi [[upstream:11202]]"}, format="json", HTTP_ACCEPT_LANGUAGE="zh-CN"
    )
    streamed = api.post(
        url,
        {"content": "again [[upstream:11202]]", "stream": True},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-CN",
    )
    frames = parse_sse(b"".join(streamed.streaming_content))
    listed = api.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN").json()["results"]
    english = api.get(url, HTTP_ACCEPT_LANGUAGE="en").json()["results"]

    assert failed.status_code == 503
    assert failed.json()["detail"] == BUSY_ZH
    assert failed.json()["assistant_message"]["error_detail"] == BUSY_ZH
    error = frames[-1][1]
    assert frames[-1][0] == "error"
    assert error["detail"] == BUSY_ZH
    assert error["message"]["error_detail"] == BUSY_ZH
    assert [m["error_detail"] for m in listed if m["role"] == "assistant"] == [BUSY_ZH, BUSY_ZH]
    assert [m["error_detail"] for m in english if m["role"] == "assistant"] == [BUSY, BUSY]
    # Stored as the model client wrote it, for review.
    assert set(Message.objects.filter(role="assistant").values_list("error_detail", flat=True)) == {
        BUSY
    }
