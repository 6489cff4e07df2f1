"""Sending messages: the reply flow over JSON and SSE, failures, limits and history.

docs/architecture.md, "The reply flow" and "The HTTP interface".
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, MessageFactory, UserFactory
from tests.spark_server import estimate_tokens
from tests.support.api import assert_json_error, parse_sse

# The reply flow runs inside the test's transaction, as most Django test suites run it: every
# write of the flow, the final one included, happens on the request's own connection.
reply_flow = pytest.mark.django_db

REPLY = "[[reply:alpha beta gamma delta]]"  # four streamed chunks; cut-short streams send two
PARTIAL = "alpha beta "
MESSAGE_FIELDS = {
    "id", "role", "content", "status", "model", "error_code", "error_detail", "sid", "usage",
    "ttft_ms", "duration_ms", "created_at",
}  # fmt: skip


# --- helpers ------------------------------------------------------------------------------------


def messages_url(conversation: Conversation) -> str:
    return f"/api/conversations/{conversation.pk}/messages/"


def send(api, conversation: Conversation, content: object, **extra: object):
    return api.post(messages_url(conversation), {"content": content, **extra}, format="json")


def stream_frames(response) -> list[tuple[str, dict]]:
    assert response.status_code == 200, response.content if not response.streaming else ""
    assert response.streaming
    return parse_sse(b"".join(response.streaming_content))


def sent_messages(spark) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in spark.requests[-1]["json"]["messages"]]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, title="")


# --- success, without streaming -----------------------------------------------------------------


@reply_flow
def test_send_returns_201_with_both_messages_saved(api, spark, conversation):
    response = send(api, conversation, "hello there")

    assert response.status_code == 201, response.content
    body = response.json()
    user_message, assistant = body["user_message"], body["assistant_message"]
    assert set(user_message) >= MESSAGE_FIELDS
    assert set(assistant) >= MESSAGE_FIELDS
    assert (user_message["role"], user_message["content"], user_message["status"]) == (
        "user",
        "hello there",
        "complete",
    )
    assert assistant["role"] == "assistant"
    assert assistant["content"] == "Echo: hello there"
    assert assistant["status"] == "complete"
    assert assistant["model"] == "lite"
    assert assistant["error_code"] == ""
    assert assistant["sid"] == spark.requests[-1]["sid"]
    assert assistant["usage"]["total_tokens"] == (
        assistant["usage"]["prompt_tokens"] + assistant["usage"]["completion_tokens"]
    )
    assert assistant["usage"]["completion_tokens"] == 3
    assert isinstance(assistant["ttft_ms"], int)
    assert isinstance(assistant["duration_ms"], int)

    saved = list(conversation.messages.order_by("seq"))
    assert [(m.seq, m.role, m.content, m.status) for m in saved] == [
        (1, "user", "hello there", "complete"),
        (2, "assistant", "Echo: hello there", "complete"),
    ]
    assert saved[1].sid == assistant["sid"]
    assert saved[1].total_tokens == assistant["usage"]["total_tokens"]
    assert saved[1].worker == ""
    assert saved[1].finished_at is not None


@reply_flow
def test_first_message_names_an_untitled_conversation(api, spark, conversation):
    send(api, conversation, "  Plan a   weekend in Hangzhou " + "x" * 100)

    conversation.refresh_from_db()
    assert conversation.title.startswith("Plan a weekend in Hangzhou x")
    assert len(conversation.title) <= 60


@reply_flow
def test_sending_moves_the_conversation_to_the_top_of_the_list(api, spark, user, conversation):
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=timezone.now() - timedelta(days=1)
    )
    ConversationFactory(user=user)

    send(api, conversation, "bump")

    assert api.get("/api/conversations/").json()["results"][0]["id"] == str(conversation.pk)


@reply_flow
def test_spark_receives_the_whole_history_without_failed_or_empty_replies(api, spark, user):
    conversation = ConversationFactory(user=user, system_prompt="You are terse.")
    history = [
        ("user", "q1", "complete"),
        ("assistant", "a1", "complete"),
        ("user", "q2", "complete"),
        ("assistant", "partial before 10014", "error"),
        ("user", "q3", "complete"),
        ("assistant", "", "interrupted"),
        ("user", "q4", "complete"),
        ("assistant", "half an answer", "interrupted"),
    ]
    for seq, (role, content, status) in enumerate(history, start=1):
        MessageFactory(
            conversation=conversation, seq=seq, role=role, content=content, status=status
        )

    response = send(api, conversation, "q5")

    assert response.status_code == 201, response.content
    sent = sent_messages(spark)
    assert sent == [
        ("system", "You are terse."),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q4"),
        ("assistant", "half an answer"),
        ("user", "q5"),
    ]
    assert spark.requests[-1]["json"]["model"] == "lite"


@reply_flow
def test_a_conversation_without_system_prompt_starts_with_the_user(api, spark, conversation):
    send(api, conversation, "one")
    send(api, conversation, "two")

    assert sent_messages(spark) == [("user", "one"), ("assistant", "Echo: one"), ("user", "two")]


@reply_flow
def test_the_conversations_model_is_used(api, spark, user):
    conversation = ConversationFactory(user=user, model="max-32k")

    body = send(api, conversation, "hi").json()

    assert spark.requests[-1]["json"]["model"] == "max-32k"
    assert body["assistant_message"]["model"] == "max-32k"


# --- success, streaming -------------------------------------------------------------------------


@reply_flow
def test_stream_sends_start_then_deltas_then_done(api, spark, conversation):
    response = send(api, conversation, f"hi {REPLY}", stream=True)

    assert response["Content-Type"].startswith("text/event-stream")
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    frames = stream_frames(response)
    names = [name for name, _ in frames]
    assert names == ["start", "delta", "delta", "delta", "delta", "done"]

    start = frames[0][1]
    assert start["user_message"]["content"] == f"hi {REPLY}"
    assert start["assistant_message"]["status"] == "streaming"
    assert start["assistant_message"]["content"] == ""
    assert [data for name, data in frames[1:-1]] == [
        {"content": "alpha "},
        {"content": "beta "},
        {"content": "gamma "},
        {"content": "delta"},
    ]
    done = frames[-1][1]["message"]
    assert done["id"] == start["assistant_message"]["id"]
    assert done["status"] == "complete"
    assert done["content"] == "alpha beta gamma delta"
    assert done["sid"] == spark.requests[-1]["sid"]
    assert done["usage"]["completion_tokens"] == 4

    saved = Message.objects.get(pk=done["id"])
    assert (saved.status, saved.content, saved.total_tokens) == (
        "complete",
        "alpha beta gamma delta",
        done["usage"]["total_tokens"],
    )
    assert saved.ttft_ms is not None
    assert saved.duration_ms is not None
    assert spark.requests[-1]["json"]["stream"] is True


@reply_flow
def test_accept_event_stream_without_the_stream_flag_streams(api, spark, conversation):
    response = api.post(
        messages_url(conversation),
        {"content": "hi"},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )

    assert response.status_code == 200  # not 406
    assert [name for name, _ in stream_frames(response)][-1] == "done"


@reply_flow
def test_stream_false_wins_over_accept_event_stream(api, spark, conversation):
    response = api.post(
        messages_url(conversation),
        {"content": "hi", "stream": False},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )

    assert response.status_code == 201
    assert response.json()["assistant_message"]["content"] == "Echo: hi"


@reply_flow
def test_stream_sends_keepalives_while_the_model_thinks(api, spark, conversation, settings):
    settings.STREAM_KEEPALIVE_SECONDS = 0.1

    response = send(api, conversation, "hi [[delay:0.45]]", stream=True)
    body = b"".join(response.streaming_content)

    assert body.count(b": keepalive\n\n") >= 2
    assert [name for name, _ in parse_sse(body)] == ["start", "delta", "delta", "done"]


@pytest.mark.django_db(transaction=True)  # a test's own transaction would keep the connection
def test_no_database_connection_is_held_while_streaming(api, spark, conversation):
    response = send(api, conversation, "[[reply:a b c d]] [[interval:0.2]]", stream=True)
    frames = iter(response.streaming_content)
    received = b""
    while b"event: delta" not in received:
        received += next(frames)

    assert connection.connection is None  # a stream never holds a database connection

    rest = b"".join(frames)
    assert b"event: done" in rest
    assert Message.objects.get(conversation=conversation, role="assistant").status == "complete"


@reply_flow
def test_an_unexpected_error_while_streaming_ends_with_an_error_frame(api, spark, conversation):
    with mock.patch(
        "conversations.llm.spark.SparkProvider.stream", side_effect=RuntimeError("boom")
    ):
        frames = stream_frames(send(api, conversation, "hi", stream=True))

    assert [name for name, _ in frames] == ["start", "error"]
    assert frames[-1][1]["code"] == "server_error"
    assert "boom" not in frames[-1][1]["detail"]
    reply = conversation.messages.get(role="assistant")
    assert (reply.status, reply.error_code) == ("error", "server_error")


@reply_flow
def test_an_unexpected_error_without_streaming_is_a_json_500_and_saves_the_failure(
    api, spark, conversation
):
    api.raise_request_exception = False
    with mock.patch(
        "conversations.llm.spark.SparkProvider.complete", side_effect=RuntimeError("boom")
    ):
        response = send(api, conversation, "hi")

    assert_json_error(response, 500, "server_error")
    reply = conversation.messages.get(role="assistant")
    assert (reply.status, reply.error_code) == ("error", "server_error")
    assert conversation.messages.get(role="user").content == "hi"


# --- upstream failures --------------------------------------------------------------------------

# (id, directive, status, code, text kept when streaming, sid known without streaming)
FAILURES = [
    ("invalid-user-401", "[[upstream:auth]]", 503, "upstream_auth", "", False),
    ("10003", "[[upstream:10003]]", 502, "10003", "", True),
    ("10005", "[[upstream:10005]]", 503, "10005", "", True),
    ("10907", "[[upstream:10907]]", 502, "10907", "", True),
    ("11200-http-500", "[[upstream:11200]]", 503, "11200", "", True),
    ("11201", "[[upstream:11201]]", 503, "11201", "", True),
    ("11202", "[[upstream:11202]]", 503, "11202", "", True),
    ("11203", "[[upstream:11203]]", 503, "11203", "", True),
    ("10007", "[[upstream:10007]]", 503, "10007", "", True),
    ("non-json", "[[upstream:nonjson]]", 503, "upstream_unavailable", "", False),
    ("in-band-10013", "[[inband:10013]]", 502, "10013", "", True),
    ("in-band-10019", "[[inband:10019]]", 502, "10019", "", True),
    ("midstream-10014", "[[midstream:10014]]", 502, "10014", PARTIAL, True),
    ("drop", "[[drop]]", 502, "upstream_incomplete", PARTIAL, False),
    ("stall", "[[stall:5]]", 504, "upstream_timeout", PARTIAL, False),
    ("refused", None, 503, "upstream_unreachable", "", False),
]


def _fail_setup(spark, settings, directive: str | None) -> str:
    settings.LLM_READ_TIMEOUT = 1.0
    if directive is None:
        settings.SPARK_BASE_URL = f"http://127.0.0.1:{closed_port()}/v1"
        return f"question {REPLY}"
    return f"question {REPLY} {directive}"


def _assert_next_message_is_accepted(api, spark, settings, conversation) -> None:
    settings.SPARK_BASE_URL = spark.url
    response = send(api, conversation, "next question")
    assert response.status_code == 201, response.content
    assert response.json()["assistant_message"]["content"] == "Echo: next question"
    # Neither the failed reply nor the question it failed on goes back to Spark.
    assert sent_messages(spark) == [("user", "next question")]


@reply_flow
@pytest.mark.parametrize(
    ("directive", "status", "code", "partial", "sid_known"),
    [f[1:] for f in FAILURES],
    ids=[f[0] for f in FAILURES],
)
def test_upstream_failure_without_streaming_answers_json_and_keeps_both_messages(
    api, spark, settings, conversation, directive, status, code, partial, sid_known
):
    content = _fail_setup(spark, settings, directive)

    response = send(api, conversation, content)

    body = assert_json_error(response, status, code)
    assert body["user_message"]["content"] == content
    assert body["assistant_message"]["status"] == "error"
    assert body["assistant_message"]["error_code"] == code
    user_message, assistant = conversation.messages.order_by("seq")
    assert (user_message.role, user_message.content, user_message.status) == (
        "user",
        content,
        "complete",
    )
    assert (assistant.role, assistant.status, assistant.error_code) == ("assistant", "error", code)
    assert assistant.content == ""
    assert assistant.error_detail == body["detail"]
    assert assistant.sid == (spark.requests[-1]["sid"] if sid_known else "")
    assert assistant.duration_ms is not None
    assert assistant.worker == ""
    assert str(assistant.pk) == body["assistant_message"]["id"]

    _assert_next_message_is_accepted(api, spark, settings, conversation)


@reply_flow
@pytest.mark.parametrize(
    ("directive", "status", "code", "partial", "sid_known"),
    [f[1:] for f in FAILURES],
    ids=[f[0] for f in FAILURES],
)
def test_upstream_failure_while_streaming_ends_with_one_error_frame(
    api, spark, settings, conversation, directive, status, code, partial, sid_known
):
    content = _fail_setup(spark, settings, directive)

    frames = stream_frames(send(api, conversation, content, stream=True))

    names = [name for name, _ in frames]
    assert names[0] == "start"
    assert names[-1] == "error"
    assert names.count("error") == 1
    assert "done" not in names
    assert set(names[1:-1]) <= {"delta"}
    assert "".join(data["content"] for name, data in frames if name == "delta") == partial
    error = frames[-1][1]
    assert error["code"] == code
    assert isinstance(error["detail"], str)
    assert error["detail"]
    assert error["message"]["status"] == "error"
    assert error["message"]["content"] == partial
    assert error["message"]["error_code"] == code

    user_message, assistant = conversation.messages.order_by("seq")
    assert (user_message.content, user_message.status) == (content, "complete")
    assert (assistant.status, assistant.error_code, assistant.content) == ("error", code, partial)
    assert assistant.error_detail == error["detail"]
    expect_sid = directive is not None and code not in ("upstream_auth", "upstream_unavailable")
    assert assistant.sid == (spark.requests[-1]["sid"] if expect_sid else "")
    assert str(assistant.pk) == error["message"]["id"]

    _assert_next_message_is_accepted(api, spark, settings, conversation)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        {"content": ""},
        {"content": "   \n\t "},
        {"content": 123},
        {"content": None},
        {"content": ["hi"]},
        {},
        {"content": "a\x00b"},
        {"content": "hi", "stream": "yes"},
        {"content": "hi", "stream": 1},
    ],
    ids=["empty", "whitespace", "int", "null", "list", "missing", "nul", "stream-yes", "stream-1"],
)
def test_bad_message_input_is_400_json_and_saves_nothing(api, spark, conversation, payload):
    response = api.post(messages_url(conversation), payload, format="json")

    assert_json_error(response, 400)
    assert Message.objects.count() == 0
    assert spark.requests == []


@pytest.mark.django_db
def test_message_over_max_message_chars_is_400(api, spark, conversation, settings):
    settings.MAX_MESSAGE_CHARS = 10

    body = assert_json_error(send(api, conversation, "x" * 11), 400, "max_length")

    assert "10" in body["detail"]
    assert Message.objects.count() == 0


@reply_flow
def test_message_of_exactly_max_message_chars_is_accepted(api, spark, conversation, settings):
    settings.MAX_MESSAGE_CHARS = 10

    assert send(api, conversation, "x" * 10).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("body", ['{"content": "hi"', "content=hi", '"just a string"', "[1, 2]"])
def test_invalid_json_body_is_400(api, spark, conversation, body):
    response = api.post(messages_url(conversation), data=body, content_type="application/json")

    assert_json_error(response, 400)
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_non_json_content_type_is_refused_with_json(api, spark, conversation):
    response = api.post(messages_url(conversation), data="content=hi", content_type="text/plain")

    assert_json_error(response, 415)
    assert Message.objects.count() == 0


# --- one reply at a time, rate limits -----------------------------------------------------------


def _reply_in_progress(conversation: Conversation) -> Message:
    MessageFactory(conversation=conversation, seq=1, content="first")
    return MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="",
        status="streaming",
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )


@reply_flow
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_send_while_a_reply_is_streaming_is_409(api, spark, conversation, stream):
    in_progress = _reply_in_progress(conversation)

    response = send(api, conversation, "second", stream=stream)

    assert_json_error(response, 409, "reply_in_progress")
    assert conversation.messages.count() == 2
    in_progress.refresh_from_db()
    assert in_progress.status == "streaming"
    assert spark.requests == []


@reply_flow
def test_regenerate_while_a_reply_is_streaming_is_409(api, spark, conversation):
    in_progress = _reply_in_progress(conversation)

    response = api.post(f"/api/conversations/{conversation.pk}/regenerate/", {}, format="json")

    assert_json_error(response, 409, "reply_in_progress")
    in_progress.refresh_from_db()
    assert (in_progress.status, in_progress.replaced) == ("streaming", False)


@reply_flow
def test_stale_reply_of_a_dead_worker_is_recovered_on_the_next_send(api, spark, conversation):
    MessageFactory(conversation=conversation, seq=1, content="first")
    stale = MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="",
        status="streaming",
        worker=f"{socket.gethostname()}:999999",
    )

    response = send(api, conversation, "second")

    assert response.status_code == 201, response.content
    stale.refresh_from_db()
    assert stale.status == "interrupted"
    assert stale.error_code == "worker_lost"
    assert stale.finished_at is not None


@reply_flow
def test_a_reply_of_a_reused_pid_or_a_zombie_worker_is_recovered_but_a_live_ones_is_not(
    api, spark, conversation
):
    from conversations import recovery

    host = socket.gethostname()
    live = recovery.this_worker()  # this process: alive, same start time
    assert live.startswith(f"{host}:{os.getpid()}:")
    MessageFactory(conversation=conversation, seq=1, content="first")
    in_progress = MessageFactory(
        conversation=conversation, seq=2, role="assistant", status="streaming", worker=live
    )
    assert_json_error(send(api, conversation, "second"), 409, "reply_in_progress")

    # The same pid, but a process that started at another time: the pid was reused.
    Message.objects.filter(pk=in_progress.pk).update(worker=f"{host}:{os.getpid()}:1")
    assert send(api, conversation, "third").status_code == 201
    in_progress.refresh_from_db()
    assert (in_progress.status, in_progress.error_code) == ("interrupted", "worker_lost")

    # A zombie: exited, not yet reaped by its parent.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while recovery.process_start(child.pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(f"/proc/{child.pid}/stat", "rb") as stat:  # still there, as a zombie
        assert stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    zombie = MessageFactory(
        conversation=conversation,
        seq=Message.objects.filter(conversation=conversation).count() + 1,
        role="assistant",
        status="streaming",
        worker=f"{host}:{child.pid}",
    )
    assert send(api, conversation, "fourth").status_code == 201
    zombie.refresh_from_db()
    assert zombie.status == "interrupted"
    child.wait()


@reply_flow
def test_old_streaming_reply_of_another_host_is_recovered_on_the_next_send(
    api, spark, conversation, settings
):
    MessageFactory(conversation=conversation, seq=1, content="first")
    stale = MessageFactory(
        conversation=conversation, seq=2, role="assistant", status="streaming", worker="elsewhere:1"
    )
    Message.objects.filter(pk=stale.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.STALE_STREAM_SECONDS + 5)
    )

    assert send(api, conversation, "second").status_code == 201
    stale.refresh_from_db()
    assert stale.status == "interrupted"


@reply_flow
def test_sending_is_rate_limited_per_user_with_retry_after(api, spark, conversation, settings):
    settings.CHAT_RATE_LIMIT = "2/m"
    other = UserFactory()
    other_conversation = ConversationFactory(user=other)
    other_api = APIClient()
    other_api.force_authenticate(other)

    with mock.patch("django_ratelimit.core.time.time", return_value=time.time()):
        assert send(api, conversation, "one").status_code == 201
        assert send(api, conversation, "two").status_code == 201
        limited = send(api, conversation, "three", stream=True)
        regenerate = api.post(
            f"/api/conversations/{conversation.pk}/regenerate/", {}, format="json"
        )
        other_response = send(other_api, other_conversation, "mine")

    body = assert_json_error(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert body["retry_after"] == int(limited["Retry-After"])
    assert_json_error(regenerate, 429, "rate_limited")
    assert conversation.messages.count() == 4
    assert not conversation.messages.filter(content="three").exists()
    assert other_response.status_code == 201


# --- regenerate ---------------------------------------------------------------------------------


@reply_flow
def test_regenerate_replaces_the_last_reply(api, spark, conversation):
    send(api, conversation, "first question")
    old = send(api, conversation, "second question").json()["assistant_message"]

    response = api.post(f"/api/conversations/{conversation.pk}/regenerate/", {}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user_message"] is None
    new = body["assistant_message"]
    assert new["id"] != old["id"]
    assert (new["status"], new["content"]) == ("complete", "Echo: second question")
    assert sent_messages(spark) == [
        ("user", "first question"),
        ("assistant", "Echo: first question"),
        ("user", "second question"),
    ]
    listed = api.get(messages_url(conversation)).json()["results"]
    assert [m["id"] for m in listed][-1] == new["id"]
    assert old["id"] not in [m["id"] for m in listed]
    assert [m["role"] for m in listed] == ["user", "assistant", "user", "assistant"]
    assert Message.objects.get(pk=old["id"]).replaced is True


@reply_flow
def test_regenerate_streams_without_a_user_message(api, spark, conversation):
    send(api, conversation, f"question {REPLY}")

    response = api.post(
        f"/api/conversations/{conversation.pk}/regenerate/", {"stream": True}, format="json"
    )

    frames = stream_frames(response)
    assert [name for name, _ in frames] == ["start", "delta", "delta", "delta", "delta", "done"]
    assert frames[0][1]["user_message"] is None
    assert frames[-1][1]["message"]["content"] == "alpha beta gamma delta"
    assert conversation.messages.filter(replaced=False).count() == 2


@reply_flow
def test_regenerate_after_a_failed_reply_replaces_the_failure(api, spark, conversation):
    failed = send(api, conversation, "question [[upstream:11202]]").json()["assistant_message"]
    # The directive stays in the saved question: a retry hits the same error, and replaces it.
    response = api.post(f"/api/conversations/{conversation.pk}/regenerate/", {}, format="json")

    assert_json_error(response, 503, "11202")
    assert Message.objects.get(pk=failed["id"]).replaced is True
    assert sent_messages(spark) == [("user", "question [[upstream:11202]]")]
    assert conversation.messages.filter(replaced=False).count() == 2


@reply_flow
def test_regenerate_in_an_empty_conversation_is_400(api, spark, conversation):
    response = api.post(f"/api/conversations/{conversation.pk}/regenerate/", {}, format="json")

    assert_json_error(response, 400, "nothing_to_regenerate")
    assert Message.objects.count() == 0
    assert spark.requests == []


@pytest.mark.django_db
def test_regenerate_with_a_non_boolean_stream_is_400(api, spark, conversation):
    MessageFactory(conversation=conversation, seq=1)

    response = api.post(
        f"/api/conversations/{conversation.pk}/regenerate/", {"stream": "true"}, format="json"
    )

    assert_json_error(response, 400)


# --- the message list ---------------------------------------------------------------------------


def _messages(conversation: Conversation, count: int) -> list[Message]:
    return [
        MessageFactory(
            conversation=conversation,
            seq=seq,
            role="user" if seq % 2 else "assistant",
            content=f"m{seq}",
        )
        for seq in range(1, count + 1)
    ]


def _contents(page: dict) -> list[str]:
    return [m["content"] for m in page["results"]]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", [{"limit": 3}, {"page": 1, "page_size": 3}], ids=["cursor", "page-number"]
)
def test_message_list_pages_forward_oldest_first(api, conversation, query):
    _messages(conversation, 7)

    first = api.get(messages_url(conversation), query).json()
    assert first["count"] == 7
    assert _contents(first) == ["m1", "m2", "m3"]
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    assert _contents(second) == ["m4", "m5", "m6"]
    third = api.get(second["next"]).json()
    assert _contents(third) == ["m7"]
    assert third["next"] is None
    assert _contents(api.get(third["previous"]).json()) == ["m4", "m5", "m6"]


@pytest.mark.django_db
def test_message_list_latest_page_and_previous_links(api, conversation):
    _messages(conversation, 7)

    latest = api.get(messages_url(conversation), {"latest": "true", "limit": 3}).json()
    assert _contents(latest) == ["m5", "m6", "m7"]
    assert latest["next"] is None
    older = api.get(latest["previous"]).json()
    assert _contents(older) == ["m2", "m3", "m4"]
    oldest = api.get(older["previous"]).json()
    assert _contents(oldest) == ["m1"]
    assert oldest["previous"] is None
    assert _contents(api.get(oldest["next"]).json()) == ["m2", "m3", "m4"]


@pytest.mark.django_db
def test_message_list_defaults_to_fifty_and_hides_replaced_replies(api, conversation):
    _messages(conversation, 60)
    Message.objects.filter(conversation=conversation, seq=2).update(replaced=True)

    page = api.get(messages_url(conversation)).json()

    assert len(page["results"]) == 50
    assert page["count"] == 59  # visible messages, replaced replies not counted
    assert "m2" not in _contents(page)
    assert _contents(page)[:2] == ["m1", "m3"]
    assert page["next"]


@pytest.mark.django_db
def test_message_list_page_number_bounds(api, conversation):
    _messages(conversation, 7)

    assert _contents(api.get(messages_url(conversation), {"page": 3, "page_size": 3}).json()) == [
        "m7"
    ]
    assert_json_error(api.get(messages_url(conversation), {"page": 4, "page_size": 3}), 404)
    assert_json_error(api.get(messages_url(conversation), {"page": 0}), 400)
    assert_json_error(api.get(messages_url(conversation), {"page": 2, "after": 1}), 400)


@pytest.mark.django_db
def test_message_list_of_an_empty_conversation(api, conversation):
    page = api.get(messages_url(conversation)).json()
    assert page == {"count": 0, "next": None, "previous": None, "results": []}
    assert api.get(messages_url(conversation), {"page": 1}).json()["count"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "201", "-1", "ten", "1.5"])
def test_message_list_limit_out_of_bounds_is_400(api, conversation, limit):
    assert_json_error(api.get(messages_url(conversation), {"limit": limit}), 400)


@pytest.mark.django_db
@pytest.mark.parametrize(("limit", "expected"), [("1", 1), ("200", 200)])
def test_message_list_limit_bounds_are_inclusive(api, conversation, limit, expected):
    _messages(conversation, 201)

    assert len(api.get(messages_url(conversation), {"limit": limit}).json()["results"]) == expected


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["after", "before"])
def test_message_list_rejects_a_non_integer_cursor(api, conversation, param):
    assert_json_error(api.get(messages_url(conversation), {param: "x"}), 400)


# --- history trimmed to the context window ------------------------------------------------------


@reply_flow
@pytest.mark.parametrize("word", ["lorem ", "汉字"], ids=["english", "chinese"])
def test_history_is_trimmed_to_the_models_context_window(api, spark, user, word, settings):
    # The chat rate limit counts the replies started in its window: the twenty the factory
    # makes below were "started" just now.
    settings.CHAT_RATE_LIMIT = "100/m"
    conversation = ConversationFactory(user=user, model="lite", system_prompt="Stay on topic.")
    long_text = word * 600  # ~750-800 tokens each: forty of them are far over lite's 8K
    for seq in range(1, 41):
        MessageFactory(
            conversation=conversation,
            seq=seq,
            role="user" if seq % 2 else "assistant",
            content=f"{seq}:{long_text}",
        )

    response = send(api, conversation, "newest question")

    assert response.status_code == 201, response.content  # the fake answers 10907 when over
    sent = sent_messages(spark)
    total = sum(estimate_tokens(content) for _, content in sent)
    assert total < 8192
    assert total > 8192 // 2  # trimmed, not emptied
    assert sent[0] == ("system", "Stay on topic.")
    assert sent[1][0] == "user"
    assert sent[-1] == ("user", "newest question")
    roles = [role for role, _ in sent[1:]]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]
    # The newest turns are kept, the oldest dropped.
    kept = [int(content.split(":")[0]) for _, content in sent[1:-1]]
    assert kept == list(range(41 - len(kept), 41))
    assert 1 not in kept


# --- a client that goes away --------------------------------------------------------------------


# response.close() sends request_finished, whose close_old_connections closes a connection
# held in a test's transaction (Django's test client does that, not chatsite).
@pytest.mark.django_db(transaction=True)
def test_disconnecting_client_leaves_an_interrupted_reply_with_the_text_so_far(
    api, spark, conversation
):
    response = send(
        api, conversation, "[[reply:a b c d e f g h i j]] [[interval:0.2]]", stream=True
    )
    frames = iter(response.streaming_content)
    received = b""
    while b"event: delta" not in received:
        received += next(frames)

    response.close()

    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == "interrupted"
    assert reply.error_code == "client_disconnected"
    assert reply.content.startswith("a ")
    assert len(reply.content) < len("a b c d e f g h i j")
    assert reply.worker == ""
    deadline = time.monotonic() + 2.0
    while spark.closed_early == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert spark.closed_early == 1  # the upstream request was aborted too
    # The conversation goes on, and the partial reply is part of its history.
    assert send(api, conversation, "go on").status_code == 201
    assert sent_messages(spark)[1] == ("assistant", reply.content.strip())


# --- who writes the final state -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_reply_is_saved_even_when_the_request_stops_reading_it(
    api, spark, conversation, settings
):
    # The request is stuck (here: nobody iterates the response) while the model finishes: after
    # the grace period the thread reading the model saves the reply itself.
    settings.STREAM_FINISH_GRACE_SECONDS = 0.2
    response = send(api, conversation, f"hi {REPLY}", stream=True)
    frames = iter(response.streaming_content)
    assert b"event: start" in next(frames)
    assert b"event: delta" in next(frames)

    reply = conversation.messages.get(role="assistant")
    deadline = time.monotonic() + 5
    while reply.status == "streaming" and time.monotonic() < deadline:
        time.sleep(0.05)
        reply.refresh_from_db()
    assert (reply.status, reply.content) == ("complete", "alpha beta gamma delta")
    # The request, when it comes back, ends with the same saved message.
    rest = parse_sse(b"".join(frames))
    assert rest[-1][0] == "done"
    assert rest[-1][1]["message"]["id"] == str(reply.pk)
    assert rest[-1][1]["message"]["content"] == "alpha beta gamma delta"


@pytest.mark.django_db(transaction=True)
def test_a_client_leaving_after_the_model_finished_keeps_a_complete_reply(
    api, spark, conversation, settings, monkeypatch
):
    from conversations.replies import Reply

    settings.STREAM_FINISH_GRACE_SECONDS = 60  # the producer leaves the write to the request
    outcome_queued = threading.Event()
    wait_saved = Reply._wait_saved

    def spy(reply, timeout):
        outcome_queued.set()  # the producer waits only once it has queued the outcome
        return wait_saved(reply, timeout)

    monkeypatch.setattr(Reply, "_wait_saved", spy)
    response = send(api, conversation, f"hi {REPLY}", stream=True)
    frames = iter(response.streaming_content)
    assert b"event: start" in next(frames)
    assert b"event: delta" in next(frames)
    assert outcome_queued.wait(5)

    response.close()  # the client goes away before the last frames reach it

    reply = conversation.messages.get(role="assistant")
    assert (reply.status, reply.content, reply.error_code) == (
        "complete",
        "alpha beta gamma delta",
        "",
    )
