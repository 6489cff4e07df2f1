"""SparkProvider against the loopback Spark server, over real HTTP (docs/spark-protocol.md)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from conversations.llm.base import ChatMessage, ChatStream, Usage
from conversations.llm.exceptions import (
    LLMBusy,
    LLMConfigurationError,
    LLMContentRejected,
    LLMContextTooLong,
    LLMError,
    LLMIncompleteStream,
    LLMInvalidRequest,
    LLMNotConfigured,
    LLMQuotaExceeded,
    LLMTimeout,
    LLMUnavailable,
)
from conversations.llm.spark import SparkProvider
from tests.conftest import SPARK_KEY
from tests.spark_server import SparkServer, estimate_tokens

# docs/spark-protocol.md, "From Spark's code to what the user sees": each Spark code, the class it
# becomes and the status we answer with.
ERROR_TABLE: list[tuple[int, type[LLMError], int]] = [
    (10003, LLMInvalidRequest, 502),
    (10005, LLMConfigurationError, 503),
    (10007, LLMBusy, 503),
    (10012, LLMUnavailable, 503),
    (10013, LLMContentRejected, 502),
    (10014, LLMContentRejected, 502),
    (10019, LLMContentRejected, 502),
    (10110, LLMUnavailable, 503),
    (10907, LLMContextTooLong, 502),
    (11200, LLMConfigurationError, 503),
    (11201, LLMQuotaExceeded, 503),
    (11202, LLMBusy, 503),
    (11203, LLMBusy, 503),
]


def make_provider(spark: SparkServer, **overrides: object) -> SparkProvider:
    options: dict = {
        "base_url": spark.url,
        "api_keys": {"*": SPARK_KEY},
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    options.update(overrides)
    return SparkProvider(**options)


@pytest.fixture
def provider(spark: SparkServer) -> Iterator[SparkProvider]:
    client = make_provider(spark)
    yield client
    client.close()
    spark.wait_idle(2.0)


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage("user", text)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reply(provider: SparkProvider, messages: list[ChatMessage], *, streaming: bool) -> None:
    """Ask for one reply, streamed to the end or complete: for the tests where it fails."""
    if streaming:
        list(provider.stream(model="lite", messages=messages))
    else:
        provider.complete(model="lite", messages=messages)


def read_into(received: list[str], stream: ChatStream) -> None:
    """Read ``stream`` to its end, keeping each chunk's text as it comes (before any error)."""
    for chunk in stream:
        received.append(chunk.content)


# --- non-streaming ------------------------------------------------------------------------------


def test_complete_returns_content_usage_and_sid(provider, spark):
    completion = provider.complete(model="lite", messages=ask("hello there"))

    assert completion.content == "Echo: hello there"
    prompt = estimate_tokens("hello there")
    assert completion.usage == Usage(
        prompt_tokens=prompt, completion_tokens=3, total_tokens=prompt + 3
    )
    assert completion.sid == spark.requests[-1]["sid"]
    assert completion.sid.startswith("cha")


def test_complete_posts_model_messages_and_user_as_json(provider, spark):
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "hi")]
    provider.complete(model="generalv3", messages=messages, user="42")

    request = spark.requests[-1]
    assert request["method"] == "POST"
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["json"] == {
        "model": "generalv3",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "stream": False,
        "user": "42",
    }


def test_complete_sends_non_ascii_text_intact(provider, spark):
    completion = provider.complete(model="lite", messages=ask("你好，星火"))

    assert spark.requests[-1]["json"]["messages"][0]["content"] == "你好，星火"
    assert completion.content == "Echo: 你好，星火"


# --- streaming ----------------------------------------------------------------------------------


def test_stream_yields_the_reply_token_by_token(provider, spark):
    stream = provider.stream(model="lite", messages=ask("[[reply:one two three]]"))

    chunks = list(stream)

    assert [c.content for c in chunks] == ["one ", "two ", "three"]
    assert all(c.sid == spark.requests[-1]["sid"] for c in chunks)
    assert spark.requests[-1]["json"]["stream"] is True
    assert "text/event-stream" in spark.requests[-1]["headers"]["Accept"]


@pytest.mark.parametrize("framing", ["", "[[close]]"], ids=["chunked", "close-delimited"])
def test_stream_delivers_each_token_as_it_arrives(provider, framing):
    # Four short tokens 0.25 s apart: the first must be in hand long before the last is sent
    # (requests' iter_lines() would wait for 512 bytes on a close-delimited body and hold them back;
    # docs/spark-protocol.md, "Streaming reply").
    stream = provider.stream(
        model="lite", messages=ask(f"[[reply:a b c d]] [[interval:0.25]] {framing}")
    )
    started = time.monotonic()

    first = next(stream)
    first_at = time.monotonic() - started
    arrivals = [first_at]
    for _ in stream:
        arrivals.append(time.monotonic() - started)

    assert first.content == "a "
    assert first_at < 0.5  # the last token is sent at 0.75 s: this one was not held back
    assert arrivals[-1] >= 0.7
    assert len(arrivals) == 4
    # Evenly spread, not delivered in a burst at the end.
    assert arrivals[1] - arrivals[0] > 0.15


@pytest.mark.parametrize("space", ["", "[[space]]"], ids=["data:", "data: "])
def test_stream_accepts_data_with_or_without_a_space(provider, space):
    chunks = list(provider.stream(model="lite", messages=ask(f"[[reply:x y]] {space}")))

    assert "".join(c.content for c in chunks) == "x y"


def test_stream_ignores_comments_and_blank_lines(provider):
    chunks = list(provider.stream(model="lite", messages=ask("[[reply:x y]] [[comments]]")))

    assert [c.content for c in chunks] == ["x ", "y"]


def test_stream_reads_usage_from_the_last_content_chunk(provider):
    chunks = list(provider.stream(model="lite", messages=ask("[[reply:x y z]]")))

    assert [c.usage for c in chunks[:-1]] == [None, None]
    assert chunks[-1].content == "z"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 3


def test_stream_reads_usage_from_a_separate_empty_chunk(provider):
    chunks = list(provider.stream(model="lite", messages=ask("[[reply:x y z]] [[usage:separate]]")))

    assert [c.content for c in chunks] == ["x ", "y ", "z", ""]
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_stream_that_ends_without_done_is_incomplete(provider, spark):
    stream = provider.stream(model="lite", messages=ask("[[reply:a b c d]] [[drop]]"))
    received = []

    with pytest.raises(LLMIncompleteStream) as caught:
        read_into(received, stream)

    assert received == ["a ", "b "]
    assert caught.value.code == "upstream_incomplete"
    assert caught.value.status_code == 502
    assert caught.value.sid == spark.requests[-1]["sid"]
    assert len(spark.requests) == 1  # never retried once a byte has streamed


# --- Spark's error codes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_class", "status"), ERROR_TABLE, ids=[str(c[0]) for c in ERROR_TABLE]
)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_rejection_envelope_with_string_code_maps_to_typed_error(
    provider, spark, code, error_class, status, streaming
):
    messages = ask(f"hi [[upstream:{code}]]")

    with pytest.raises(error_class) as caught:
        reply(provider, messages, streaming=streaming)

    error = caught.value
    assert error.code == str(code)
    assert error.status_code == status
    # The sid travels inside the envelope's message: "... (sid: cha...)".
    assert error.sid == spark.requests[-1]["sid"]
    assert error.detail
    assert SPARK_KEY not in error.detail
    assert len(spark.requests) == 1  # an answered request is never retried


@pytest.mark.parametrize(
    ("code", "error_class", "status"), ERROR_TABLE, ids=[str(c[0]) for c in ERROR_TABLE]
)
@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_in_band_integer_code_maps_to_typed_error(
    provider, spark, code, error_class, status, streaming
):
    messages = ask(f"hi [[inband:{code}]]")

    with pytest.raises(error_class) as caught:
        reply(provider, messages, streaming=streaming)

    assert caught.value.code == str(code)
    assert caught.value.status_code == status
    assert caught.value.sid == spark.requests[-1]["sid"]


def test_in_band_code_mid_stream_comes_after_the_text_already_sent(provider, spark):
    stream = provider.stream(model="lite", messages=ask("[[reply:a b c d]] [[midstream:10014]]"))
    received = []

    with pytest.raises(LLMContentRejected) as caught:
        read_into(received, stream)

    assert received == ["a ", "b "]
    assert caught.value.code == "10014"
    assert caught.value.sid == spark.requests[-1]["sid"]


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_unknown_spark_code_is_still_an_upstream_error_with_that_code(provider, streaming):
    with pytest.raises(LLMError) as caught:
        reply(provider, ask("hi [[inband:12345]]"), streaming=streaming)

    assert caught.value.code == "12345"
    assert caught.value.status_code == 502


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_invalid_user_401_is_an_auth_configuration_error(spark, streaming):
    provider = make_provider(spark, api_keys={"*": "wrong:key"})

    with pytest.raises(LLMConfigurationError) as caught:
        reply(provider, ask("hi"), streaming=streaming)

    assert caught.value.code == "upstream_auth"
    assert caught.value.status_code == 503
    assert caught.value.upstream_message == "invalid user"
    assert "wrong:key" not in caught.value.detail


def test_invalid_user_directive_is_an_auth_configuration_error(provider):
    with pytest.raises(LLMConfigurationError) as caught:
        provider.complete(model="lite", messages=ask("hi [[upstream:auth]]"))

    assert caught.value.code == "upstream_auth"


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_non_json_error_body_is_an_upstream_failure(provider, spark, streaming):
    with pytest.raises(LLMUnavailable) as caught:
        reply(provider, ask("hi [[upstream:nonjson]]"), streaming=streaming)

    assert caught.value.code == "upstream_unavailable"
    assert caught.value.status_code == 503
    assert len(spark.requests) == 1


# --- timeouts and connections -------------------------------------------------------------------


def test_stalled_stream_times_out_after_the_read_timeout(spark):
    provider = make_provider(spark, read_timeout=0.5)
    stream = provider.stream(model="lite", messages=ask("[[reply:a b c d]] [[stall:5]]"))
    received = []
    started = time.monotonic()

    with pytest.raises(LLMTimeout) as caught:
        read_into(received, stream)

    assert time.monotonic() - started < 3.0  # 0.5 s read timeout, against a 5 s stall
    assert received == ["a ", "b "]
    assert caught.value.code == "upstream_timeout"
    assert caught.value.status_code == 504
    assert caught.value.sid == spark.requests[-1]["sid"]
    assert len(spark.requests) == 1


def test_slow_first_byte_past_the_read_timeout_times_out(spark):
    provider = make_provider(spark, read_timeout=0.5)
    started = time.monotonic()

    with pytest.raises(LLMTimeout):
        provider.complete(model="lite", messages=ask("hi [[stall:5]]"))
    with pytest.raises(LLMTimeout):
        list(provider.stream(model="lite", messages=ask("hi [[delay:5]]")))

    assert time.monotonic() - started < 4.0  # two 0.5 s timeouts, against 5 s stalls


def test_slow_first_byte_within_the_read_timeout_succeeds(spark):
    provider = make_provider(spark, read_timeout=2.0)

    completion = provider.complete(model="lite", messages=ask("hi [[delay:0.3]]"))

    assert completion.content == "Echo: hi"


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
def test_connection_refused_is_unreachable(spark, streaming):
    provider = make_provider(spark, base_url=f"http://127.0.0.1:{closed_port()}/v1")

    with pytest.raises(LLMUnavailable) as caught:
        reply(provider, ask("hi"), streaming=streaming)

    assert caught.value.code == "upstream_unreachable"
    assert caught.value.status_code == 503


def test_connection_dropped_before_any_answer_is_not_called_unreachable(provider, spark):
    # The request reached Spark, which closed the connection without a reply.
    with pytest.raises(LLMError) as caught:
        provider.complete(model="lite", messages=ask("hi [[drop]]"))

    assert caught.value.code != "upstream_unreachable"
    assert caught.value.status_code == 502
    assert len(spark.requests) == 1


# --- credentials --------------------------------------------------------------------------------


def test_authorization_header_is_bearer_with_the_api_password_verbatim(provider, spark):
    provider.complete(model="lite", messages=ask("hi"))

    assert spark.requests[-1]["authorization"] == f"Bearer {SPARK_KEY}"


def test_per_model_api_password_overrides_the_shared_one(spark):
    spark.passwords = {"*": SPARK_KEY, "generalv3": "pro-key:pro-secret"}
    provider = make_provider(spark, api_keys={"*": SPARK_KEY, "generalv3": "pro-key:pro-secret"})

    pro = provider.complete(model="generalv3", messages=ask("hi"))
    pro_auth = spark.requests[-1]["authorization"]
    lite = provider.complete(model="lite", messages=ask("hi"))
    lite_auth = spark.requests[-1]["authorization"]

    assert pro.content == lite.content == "Echo: hi"
    assert pro_auth == "Bearer pro-key:pro-secret"
    assert lite_auth == f"Bearer {SPARK_KEY}"


def test_missing_api_password_raises_not_configured_without_a_request(spark):
    provider = make_provider(spark, api_keys={})

    with pytest.raises(LLMNotConfigured) as caught:
        provider.complete(model="lite", messages=ask("hi"))

    assert caught.value.code == "model_not_configured"
    assert caught.value.status_code == 503
    assert spark.requests == []


# --- closing a stream from another thread ------------------------------------------------------


def test_close_from_another_thread_interrupts_a_stalled_read(provider, spark):
    stream: ChatStream = provider.stream(
        model="lite", messages=ask("[[reply:a b c d]] [[stall:20]]")
    )
    assert next(stream).content == "a "
    outcome: list[object] = []

    def consume() -> None:
        try:
            outcome.extend(chunk.content for chunk in stream)
            outcome.append("ended")
        except LLMError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(0.3)  # the reader is now blocked on the stalled socket
    assert reader.is_alive()
    closed_at = time.monotonic()

    stream.close()
    reader.join(timeout=5.0)

    assert not reader.is_alive()
    assert time.monotonic() - closed_at < 3.0  # the stall lasts 20 s
    # Either way the reader stops; it never reports a normal end of the reply.
    assert "ended" not in outcome or outcome[:-1] == ["b "]
    deadline = time.monotonic() + 2.0
    while spark.closed_early == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert spark.closed_early == 1


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _provider_against(handler: type[BaseHTTPRequestHandler]) -> Iterator[SparkProvider]:
    """A provider talking to a one-off loopback server whose handler answers as the test needs."""
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = SparkProvider(
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
        api_keys={"*": SPARK_KEY},
        connect_timeout=2.0,
        read_timeout=5.0,
    )
    try:
        yield client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("body", "error_class", "code"),
    [
        (
            b'{"code":10013,"message":"input moderation","sid":"cha0bare"}',
            LLMContentRejected,
            "10013",
        ),
        (
            b'{"error":{"message":"AppIdNoAuthError (sid: cha0bare)","type":"api_error",'
            b'"param":null,"code":"11200"}}',
            LLMConfigurationError,
            "11200",
        ),
    ],
    ids=["in-band-code", "envelope"],
)
def test_a_bare_json_error_answering_a_stream_request_keeps_its_code(body, error_class, code):
    # A 200 labelled text/event-stream whose body is one JSON error, without "data:" framing.
    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(body) + 1))
            self.end_headers()
            self.wfile.write(body + b"\n")

    with _provider_against(Handler) as client, pytest.raises(error_class) as caught:
        list(client.stream(model="lite", messages=ask("hi")))
    assert caught.value.code == code
    assert caught.value.sid == "cha0bare"


# --- connection reuse ---------------------------------------------------------------------------


def _drain(stream: ChatStream) -> str:
    return "".join(chunk.content for chunk in stream)


def test_a_finished_stream_hands_its_connection_to_the_next_request(provider, spark):
    # Over HTTPS a new connection per reply would cost a TLS handshake before every first token.
    assert _drain(provider.stream(model="lite", messages=ask("[[reply:a b]]"))) == "a b"
    assert _drain(provider.stream(model="lite", messages=ask("[[reply:c d]]"))) == "c d"
    assert provider.complete(model="lite", messages=ask("[[reply:e]]")).content == "e"

    clients = [request["client"] for request in spark.requests]
    assert clients[0] == clients[1] == clients[2]


@pytest.mark.parametrize(
    "directive", ["[[midstream:10014]]", "[[drop]]", "[[close]]"], ids=["error", "drop", "close"]
)
def test_a_stream_that_did_not_end_cleanly_never_lends_its_connection(provider, spark, directive):
    with contextlib.suppress(LLMError):
        _drain(provider.stream(model="lite", messages=ask(f"[[reply:a b c d]] {directive}")))
    assert _drain(provider.stream(model="lite", messages=ask("[[reply:next]]"))) == "next"

    first, second = (request["client"] for request in spark.requests)
    assert first != second


def test_closing_a_finished_stream_later_does_not_cut_the_next_one(provider, spark):
    # The client leaves just as the model finishes: the late close() must not reach the
    # connection, which already serves the next reply.
    finished = provider.stream(model="lite", messages=ask("[[reply:a b]]"))
    assert _drain(finished) == "a b"
    following = provider.stream(model="lite", messages=ask("[[reply:c d e]] [[interval:0.1]]"))
    assert next(following).content == "c "

    finished.close()

    assert "".join(chunk.content for chunk in following) == "d e"
    assert spark.requests[0]["client"] == spark.requests[1]["client"]


def test_proxy_settings_from_the_environment_are_read_once_per_provider(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    remote = SparkProvider(base_url="https://spark.example/v1", api_keys={"*": SPARK_KEY})
    local = SparkProvider(base_url="http://127.0.0.1:9/v1", api_keys={"*": SPARK_KEY})
    try:
        assert remote.session.proxies.get("https") == "http://127.0.0.1:3128"
        assert remote.session.verify == "/etc/ssl/certs/ca-certificates.crt"
        assert "https" not in local.session.proxies  # NO_PROXY honoured
        assert not remote.session.trust_env  # not read again on every request
    finally:
        remote.close()
        local.close()


def test_a_body_that_does_not_end_after_done_costs_at_most_a_short_wait():
    # [DONE], then the server neither ends the chunked body nor closes: the reply is complete,
    # the connection is not reused, and the stream ends after the short drain timeout.
    frame = b'data:{"code":0,"sid":"cha0open","choices":[{"delta":{"content":"hi"}}]}\n\n'
    release = threading.Event()

    class Handler(_QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for data in (frame, b"data:[DONE]\n\n"):
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            self.wfile.flush()
            release.wait(5)  # no terminating chunk
            self.close_connection = True

    with _provider_against(Handler) as client:
        try:
            started = time.monotonic()
            assert _drain(client.stream(model="lite", messages=ask("hi"))) == "hi"
            assert time.monotonic() - started < 2.0  # not the 5 s read timeout
        finally:
            release.set()  # before the server shuts down: it serves one request at a time
