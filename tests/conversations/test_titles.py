"""Generated titles (docs/architecture.md, "Titles") through the API, the reply engine and the
loopback Spark: the title model's request, asked beside the reply, the ``title`` frame before
``done`` (which ends every stream), the rules about titles the user set, failures, and the site
paying for the tokens."""

from __future__ import annotations

import socket
import time

import pytest

from conversations import titles
from conversations.models import ChatModel, Conversation, Provider, SystemUsage
from tests.factories import ConversationFactory
from tests.support.api import parse_sse

pytestmark = pytest.mark.django_db


@pytest.fixture
def titling(settings, spark):
    settings.TITLE_MODEL = "lite"
    return spark


def stream(api, conversation, content):
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, "stream": True},
        format="json",
    )
    assert response.status_code == 200
    return parse_sse(b"".join(response.streaming_content))


def new_conversation(api) -> Conversation:
    response = api.post("/api/conversations/", {"model": "lite"}, format="json")
    assert response.status_code == 201
    return Conversation.objects.get(pk=response.json()["id"])


def test_the_first_reply_comes_with_a_generated_title_before_done(api, titling):
    conversation = new_conversation(api)

    frames = stream(api, conversation, "How do tides work? [[reply:The moon pulls the sea]]")

    kinds = [kind for kind, _ in frames]
    assert kinds[-2:] == ["title", "done"]
    assert kinds.count("done") == 1
    title = frames[-2][1]["title"]
    assert title == "The moon pulls the sea"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == (title, "generated")
    assert api.get(f"/api/conversations/{conversation.pk}/").json()["title"] == title
    # The title model was asked once, beside the reply, with the user's message.
    assert len(titling.requests) == 2
    title_request = next(
        r for r in titling.requests if r["json"]["messages"][0]["role"] == "system"
    )
    reply_request = next(r for r in titling.requests if r is not title_request)
    assert reply_request["json"]["messages"][-1]["content"].startswith("How do tides work?")
    messages = title_request["json"]["messages"]
    assert "At most 20 characters" in messages[0]["content"]
    assert messages[-1]["content"] == "How do tides work? [[reply:The moon pulls the sea]]"
    assert title_request["json"]["max_tokens"] == 48


def test_the_title_tokens_are_the_sites_not_the_users(api, titling):
    conversation = new_conversation(api)

    stream(api, conversation, "hello [[reply:Greeting exchange]]")

    usage = SystemUsage.objects.get()
    assert (usage.purpose, usage.model, str(usage.conversation_id)) == (
        "title",
        "lite",
        str(conversation.pk),
    )
    assert usage.total_tokens > 0
    today = api.get("/api/usage/").json()["day"]["used"]
    assert today["messages"] == 1  # the reply, not the title call


def test_a_chinese_title_is_at_most_20_characters(api, titling):
    conversation = new_conversation(api)

    frames = stream(
        api,
        conversation,
        "介绍一下长城 [[reply:长城是中国古代规模最大的军事防御工程之一，绵延万里]]",
    )

    title = frames[-2][1]["title"]
    assert title == "长城是中国古代规模最大的军事防御工程之一"
    assert len(title) <= 20


def test_a_title_the_user_set_is_never_replaced(api, titling):
    response = api.post(
        "/api/conversations/", {"model": "lite", "title": "My notes"}, format="json"
    )
    conversation = Conversation.objects.get(pk=response.json()["id"])

    frames = stream(api, conversation, "hi [[reply:Something else entirely]]")

    assert [kind for kind, _ in frames][-1] == "done"
    assert len(titling.requests) == 1  # no title request
    conversation.refresh_from_db()
    assert conversation.title == "My notes"


def test_a_rename_while_the_title_is_written_wins(user, titling):
    conversation = ConversationFactory(user=user, model="lite", title="first words")
    Conversation.objects.filter(pk=conversation.pk).update(title_source="message")
    conversation.refresh_from_db()
    # The user renames it just before the title model answers.
    Conversation.objects.filter(pk=conversation.pk).update(title="Mine", title_source="user")

    assert titles.generate(conversation, "q [[reply:Generated]]") is None

    conversation.refresh_from_db()
    assert conversation.title == "Mine"


def test_only_the_first_reply_gets_a_title(api, titling):
    conversation = new_conversation(api)
    stream(api, conversation, "one [[reply:First title]]")

    frames = stream(api, conversation, "two [[reply:Second title]]")

    assert [kind for kind, _ in frames][-1] == "done"
    conversation.refresh_from_db()
    assert conversation.title == "First title"


def test_a_failed_title_call_leaves_the_first_words(api, titling, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    provider = Provider(name="down", dialect="deepseek", base_url=f"http://127.0.0.1:{closed}/v1")
    provider.set_api_key("sk-down")
    provider.save()
    ChatModel.objects.create(provider=provider, model_id="down-model")
    settings.TITLE_MODEL = "down-model"
    conversation = new_conversation(api)

    frames = stream(api, conversation, "What is the capital of France? [[reply:Paris]]")

    assert [kind for kind, _ in frames][-1] == "done"
    conversation.refresh_from_db()
    assert conversation.title == "What is the capital of France? [[reply:Paris]]"
    assert conversation.title_source == "message"
    assert not SystemUsage.objects.exists()


def test_a_failed_reply_gets_no_title(api, titling):
    conversation = new_conversation(api)

    frames = stream(api, conversation, "hi [[reply:x]] [[inband:10013]]")

    assert [kind for kind, _ in frames][-1] == "error"
    assert "title" not in [kind for kind, _ in frames]
    conversation.refresh_from_db()
    assert conversation.title_source == "message"


def test_a_title_not_ready_in_time_is_dropped_and_done_is_not_held(
    api, titling, settings, monkeypatch
):
    settings.TITLE_WAIT_SECONDS = 0.2
    ask = titles.TitleJob._call

    def slow(job, question):  # the title model answers 2 s after the reply
        time.sleep(2)
        ask(job, question)

    monkeypatch.setattr(titles.TitleJob, "_call", slow)
    conversation = new_conversation(api)

    started = time.monotonic()
    frames = stream(api, conversation, "hi [[reply:Slow title]]")

    assert time.monotonic() - started < 1.5
    assert [kind for kind, _ in frames][-1] == "done"
    assert "title" not in [kind for kind, _ in frames]
    conversation.refresh_from_db()
    assert conversation.title_source == "message"


def test_without_a_title_model_nothing_is_asked(api, spark, settings):
    settings.TITLE_MODEL = ""
    conversation = new_conversation(api)

    stream(api, conversation, "hello [[reply:A title]]")

    assert len(spark.requests) == 1


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ('"Tides and the Moon."', "Tides and the Moon"),
        (
            "Title: A very long title that goes on and on and on",
            "A very long title that goes on and",
        ),
        ("标题：《长城的历史》。", "长城的历史"),
        ("\n\n  Rust ownership explained  \nextra line", "Rust ownership explained"),
        ("", ""),
    ],
)
def test_tidy_keeps_one_line_within_the_limits(answer, title):
    assert titles.tidy(answer) == title


def test_a_rename_after_the_first_words_is_the_users(api, titling):
    conversation = new_conversation(api)
    stream(api, conversation, "one [[reply:Generated]]")

    api.patch(f"/api/conversations/{conversation.pk}/", {"title": "Renamed"}, format="json")

    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Renamed", "user")
