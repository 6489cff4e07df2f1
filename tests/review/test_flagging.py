"""What puts a conversation in the review queue (docs/review.md, "What gets flagged"), through
the real path: the API, the reply engine, the client and a loopback upstream that refuses."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations.models import ChatModel, Conversation, Message, Provider
from review import flagging
from review.models import FlagKeyword, ReviewItem, ReviewSettings
from tests.factories import ConversationFactory
from tests.support.api import parse_sse
from tests.upstream import MultiDialectServer

pytestmark = pytest.mark.django_db

REPLY = "[[reply:alpha beta gamma delta]]"


@pytest.fixture(autouse=True)
def _fresh_rules() -> Iterator[None]:
    flagging.forget_rules()
    yield
    flagging.forget_rules()


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, model="lite")


def send(api, conversation: Conversation, content: str, *, stream: bool = False):
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, "stream": stream},
        format="json",
    )
    if stream:
        assert response.status_code == 200
        return parse_sse(b"".join(response.streaming_content))
    return response


def reply_of(conversation: Conversation) -> Message:
    return Message.objects.filter(conversation=conversation, role="assistant").latest("seq")


# --- moderation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directive", "code", "stream"),
    [
        ("[[inband:10013]]", "10013", False),
        ("[[inband:10013]]", "10013", True),
        ("[[inband:10019]]", "10019", True),
        ("[[midstream:10014]]", "10014", True),
    ],
    ids=["10013-json", "10013-stream", "10019-stream", "10014-midstream"],
)
def test_a_spark_moderation_refusal_queues_one_high_severity_item(
    api, spark, conversation, directive, code, stream
):
    send(api, conversation, f"tell me {REPLY} {directive}", stream=stream)

    reply = reply_of(conversation)
    assert (reply.status, reply.error_code) == ("error", code)
    item = ReviewItem.objects.get()
    assert item.conversation_id == conversation.pk
    assert item.message_id == reply.pk
    assert item.source == ReviewItem.Source.MODERATION
    assert item.severity == ReviewItem.Severity.HIGH
    assert item.status == ReviewItem.Status.NEW
    assert code in item.detail


def test_a_second_flag_of_the_same_message_and_source_is_a_no_op(api, spark, conversation):
    send(api, conversation, f"tell me {REPLY} [[inband:10013]]")
    reply = reply_of(conversation)

    again = flagging.flag(
        conversation_id=conversation.pk, message_id=reply.pk, source=ReviewItem.Source.MODERATION
    )

    assert again is None
    assert ReviewItem.objects.count() == 1


def test_a_failure_that_is_not_moderation_is_not_flagged(api, spark, conversation):
    send(api, conversation, f"tell me {REPLY} [[upstream:11202]]")

    assert reply_of(conversation).error_code == "11202"
    assert not ReviewItem.objects.exists()


@pytest.fixture(scope="module")
def upstream() -> Iterator[MultiDialectServer]:
    server = MultiDialectServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "directive", ["[[error:moderation]]", "[[finish:content_filter]]", "[[finish:sensitive]]"]
)
def test_another_dialects_moderation_is_flagged_too(api, user, upstream, settings, directive):
    upstream.reset()
    settings.LLM_READ_TIMEOUT = 5.0
    provider = Provider(name="deepseek", dialect="deepseek", base_url=upstream.base_url("deepseek"))
    provider.set_api_key("sk-deepseek-test")
    provider.save()
    ChatModel.objects.create(provider=provider, model_id="ds-chat", upstream_id="deepseek-chat")
    conversation = ConversationFactory(user=user, model="ds-chat")

    send(api, conversation, f"hi {REPLY} {directive}", stream=True)

    reply = reply_of(conversation)
    assert reply.status == "error"
    item = ReviewItem.objects.get()
    assert (item.source, item.message_id) == (ReviewItem.Source.MODERATION, reply.pk)


# --- keywords -----------------------------------------------------------------------------------


def test_a_keyword_in_the_users_message_flags_the_reply_with_its_severity(api, spark, conversation):
    FlagKeyword.objects.create(phrase="Secret Plan", severity="high")
    FlagKeyword.objects.create(phrase="unused phrase")

    response = send(api, conversation, f"about the SECRET plan {REPLY}")

    assert response.status_code == 201
    item = ReviewItem.objects.get()
    assert (item.source, item.message_id) == (ReviewItem.Source.KEYWORD, reply_of(conversation).pk)
    assert item.detail == "SECRET plan"
    assert item.severity == "high"


def test_a_keyword_only_in_the_reply_flags_it(api, spark, conversation):
    FlagKeyword.objects.create(phrase="gamma")  # the stand-in's reply, not the question

    send(api, conversation, f"anything {REPLY}", stream=True)

    assert reply_of(conversation).content == "alpha beta gamma delta"
    assert ReviewItem.objects.get().detail == "gamma"


def test_a_disabled_keyword_flags_nothing_and_a_new_one_applies_at_once(api, spark, conversation):
    FlagKeyword.objects.create(phrase="alpha", enabled=False)
    send(api, conversation, f"one {REPLY}")
    assert not ReviewItem.objects.exists()

    FlagKeyword.objects.create(phrase="beta")  # this worker reloads its rules on the save
    send(api, conversation, f"two {REPLY}")

    assert ReviewItem.objects.get().detail == "beta"


def test_chinese_keywords_match(api, spark, conversation):
    FlagKeyword.objects.create(phrase="机密")

    send(api, conversation, f"这是机密文件吗 {REPLY}")

    assert ReviewItem.objects.get().detail == "机密"


# --- sampling -----------------------------------------------------------------------------------


def test_the_sample_is_off_by_default(api, spark, conversation):
    send(api, conversation, f"hi {REPLY}")

    assert ReviewSettings.get().sample_percent == 0
    assert not ReviewItem.objects.exists()


def test_a_full_sample_queues_each_conversation_once(api, spark, user):
    settings_row = ReviewSettings.get()
    settings_row.sample_percent = Decimal(100)
    settings_row.save()
    first, second = ConversationFactory(user=user), ConversationFactory(user=user)

    for conversation in (first, first, second):
        assert send(api, conversation, f"hi {REPLY}").status_code == 201

    items = ReviewItem.objects.filter(source=ReviewItem.Source.SAMPLE)
    assert sorted(str(i.conversation_id) for i in items) == sorted([str(first.pk), str(second.pk)])
    assert all(i.message_id is None and i.severity == "low" for i in items)


def test_the_sample_takes_about_its_share_and_every_worker_agrees():
    day = "2026-12-02"
    ids = [f"00000000-0000-0000-0000-{n:012d}" for n in range(4000)]

    chosen = [i for i in ids if flagging.sampled(i, Decimal(5), day)]

    assert 140 < len(chosen) < 260  # 5 % of 4,000 is 200
    assert chosen == [i for i in ids if flagging.sampled(i, Decimal(5), day)]
    assert not any(flagging.sampled(i, Decimal(0), day) for i in ids)
    assert all(flagging.sampled(i, Decimal(100), day) for i in ids)


# --- cost and failures --------------------------------------------------------------------------


def test_a_reply_that_raises_no_flag_costs_no_query_once_the_rules_are_loaded(conversation):
    FlagKeyword.objects.create(phrase="nothing like it")
    flagging.rules()
    reply = Message(conversation=conversation, seq=2, role="assistant", content="plain")

    with CaptureQueriesContext(connection) as queries:
        flagging.on_reply_saved(
            message=reply, prompt="plain question", conversation=conversation, moderated=False
        )

    assert len(queries) == 0


def test_a_failing_flag_never_fails_the_reply(api, spark, conversation, caplog):
    FlagKeyword.objects.create(phrase="alpha")
    with (
        mock.patch.object(flagging, "flag", side_effect=RuntimeError("review is down")),
        caplog.at_level(logging.ERROR, logger="conversations.replies"),
    ):
        response = send(api, conversation, f"hi {REPLY}")

    assert response.status_code == 201
    assert reply_of(conversation).content == "alpha beta gamma delta"
    assert "reply_saved receiver" in caplog.text
