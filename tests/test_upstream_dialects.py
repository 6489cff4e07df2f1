"""The loopback stand-in (tests/upstream/) speaks every provider dialect of providers-protocol.md.

One ``MultiDialectServer`` serves them all, each under its own prefix; every check goes through
real HTTP. What is checked, per dialect: where usage arrives with and without
``stream_options.include_usage``, the reasoning field and the request switch that turns it off,
each error class's status and body, an error inside the 200 stream, ``finish_reason``, a
dropped stream, and the quirks the page names (DeepSeek keep-alive, GLM chunks, Spark search).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.sse import parse_events
from tests.upstream import ALL_DIALECTS, DEFAULT_REASONING, ERROR_CLASSES, MultiDialectServer

AUTH = {"Authorization": "Bearer sk-test"}
MODELS = {"spark": "lite", "spark-x": "spark-x"}  # the others take any model id
OPENAI_STYLE = [name for name in ALL_DIALECTS if not name.startswith("spark")]

# Where usage arrives (§2), without and with include_usage: "content" on the last content chunk,
# "finish" on the finish chunk, "choice" inside choices[0].usage, "extra" on a last chunk with
# choices [], None nowhere.
USAGE_AT: dict[str, tuple[str | None, str]] = {
    "spark": ("content", "content"),
    "spark-x": ("finish", "finish"),
    "glm": ("finish", "finish"),
    "kimi": ("choice", "choice"),
    **dict.fromkeys(("deepseek", "qwen", "doubao", "qianfan", "hunyuan"), (None, "extra")),
    **dict.fromkeys(("ollama", "vllm", "openai"), (None, "extra")),
}
REASONING_FIELD = {"spark": None, "ollama": "reasoning", "vllm": "reasoning"}
THINKING_OFF: dict[str, dict[str, Any]] = {
    **{n: {"thinking": {"type": "disabled"}} for n in ("spark-x", "deepseek", "glm", "kimi")},
    "doubao": {"thinking": {"type": "disabled"}},
    **{n: {"enable_thinking": False} for n in ("qwen", "qianfan", "hunyuan")},
    "ollama": {"reasoning_effort": "none"},
    "vllm": {"chat_template_kwargs": {"enable_thinking": False}},
    "openai": {"reasoning_effort": "none"},
}

# (status, the body's distinguishing value: see ``error_key``) for each error class (§3).
_SPARK_ERRORS = {
    "auth": (401, None),
    "balance": (500, "11200"),
    "rate_limit": (429, "11202"),
    "moderation": (400, "10013"),
    "context": (400, "10907"),
    "unavailable": (503, "10012"),
}
_OPENAI_ERRORS = {
    "auth": (401, "invalid_api_key"),
    "balance": (429, "insufficient_quota"),
    "rate_limit": (429, "rate_limit_exceeded"),
    "moderation": (400, "content_policy_violation"),
    "context": (400, "context_length_exceeded"),
    "unavailable": (503, None),
}
ERRORS: dict[str, dict[str, tuple[int, Any]]] = {
    "spark": _SPARK_ERRORS,
    "spark-x": _SPARK_ERRORS,
    "deepseek": {  # the message tells them apart: the codes are mostly "invalid_request_error"
        "auth": (401, "Authentication Fails, Your api key: ****abcd is invalid"),
        "balance": (402, "Insufficient Balance"),
        "rate_limit": (429, "Rate Limit Reached"),
        "moderation": (400, "Content Exists Risk"),
        "context": (400, "This model's maximum context length is"),
        "unavailable": (503, "Server Overloaded"),
    },
    "qwen": {
        "auth": (401, "InvalidApiKey"),
        "balance": (400, "Arrearage"),
        "rate_limit": (429, "Throttling.RateQuota"),
        "moderation": (400, "data_inspection_failed"),
        "context": (400, "InvalidParameter"),
        "unavailable": (503, "ServiceUnavailable"),
    },
    "glm": {
        "auth": (401, "1000"),
        "balance": (429, "1113"),
        "rate_limit": (429, "1302"),
        "moderation": (400, "1301"),
        "context": (400, "1261"),
        "unavailable": (429, "1305"),
    },
    "kimi": {  # the type: Kimi errors have no code
        "auth": (401, "invalid_authentication_error"),
        "balance": (429, "exceeded_current_quota_error"),
        "rate_limit": (429, "rate_limit_reached_error"),
        "moderation": (400, "content_filter"),
        "context": (400, "invalid_request_error"),
        "unavailable": (429, "engine_overloaded_error"),
    },
    "doubao": {
        "auth": (401, "AuthenticationError"),
        "balance": (403, "AccountOverdueError"),
        "rate_limit": (429, "RateLimitExceeded.EndpointRPMExceeded"),
        "moderation": (400, "InputTextSensitiveContentDetected"),
        "context": (400, "OutofContextError"),
        "unavailable": (429, "ServerOverloaded"),
    },
    "qianfan": {
        **_OPENAI_ERRORS,  # [U] rows
        "auth": (401, "invalid_iam_token"),
        "rate_limit": (429, "rpm_rate_limit_exceeded"),
        "moderation": (403, "system_unsafe"),
        "context": (400, "tokens_too_long"),
    },
    "hunyuan": _OPENAI_ERRORS,
    "openai": _OPENAI_ERRORS,
    "ollama": {  # the message: Ollama errors have no code
        "auth": (401, "unauthorized"),
        "balance": (429, "you have reached your usage limit"),
        "rate_limit": (429, "server busy, please try again. maximum pending requests exceeded"),
        "moderation": (400, "content rejected"),
        "context": (400, "the input length exceeds the context length"),
        "unavailable": (503, "server busy, please try again"),
    },
    "vllm": {  # the code, which is the HTTP status; auth is vLLM's flat {"error": "Unauthorized"}
        "auth": (401, "Unauthorized"),
        "balance": (429, 429),
        "rate_limit": (429, 429),
        "moderation": (400, 400),
        "context": (400, 400),
        "unavailable": (503, 503),
    },
}
# The keys of the error object, and what else sits beside it at the top level.
ENVELOPES: dict[str, tuple[set[str], set[str]]] = {
    "glm": ({"code", "message"}, set()),
    "kimi": ({"message", "type"}, set()),
    "ollama": ({"message", "type"}, set()),
    "doubao": ({"code", "message", "param", "type"}, set()),
    "qianfan": ({"code", "message", "type"}, {"id"}),
    "qwen": ({"message", "type", "param", "code"}, {"request_id"}),
}


@pytest.fixture(scope="module")
def shared() -> Iterator[MultiDialectServer]:
    with MultiDialectServer() as server:
        yield server


@pytest.fixture
def server(shared: MultiDialectServer) -> Iterator[MultiDialectServer]:
    shared.reset()
    yield shared
    shared.wait_idle(2.0)


def post(
    server: MultiDialectServer,
    name: str,
    text: str = "hello there",
    *,
    stream: bool = True,
    headers: dict[str, str] | None = None,
    lazy: bool = False,
    **extra: Any,
) -> requests.Response:
    """POST a chat request to dialect ``name``; ``lazy``: leave the body to ``read()``."""
    body = {
        "model": MODELS.get(name, "test-model"),
        "messages": [{"role": "user", "content": text}],
    }
    body.update(stream=stream, **extra)
    url = server.base_url(name) + "/chat/completions"
    headers = AUTH if headers is None else headers
    return requests.post(url, json=body, headers=headers, timeout=5, stream=lazy)


def read(resp: requests.Response) -> tuple[bytes, bool]:
    """The body as far as it came, and whether it came whole (a chunked body cut before its
    zero chunk raises in requests)."""
    data = b""
    try:
        for piece in resp.iter_content(None):
            data += piece
    except requests.exceptions.ChunkedEncodingError:
        return data, False
    return data, True


def chunks_of(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    """The JSON events of a stream, and whether it ended with [DONE]."""
    data = [event.data for event in parse_events(raw)]
    done = data[-1:] == ["[DONE]"]
    return [json.loads(d) for d in (data[:-1] if done else data)], done


def stream(server: MultiDialectServer, name: str, text: str, **extra: Any) -> list[dict]:
    resp = post(server, name, text, **extra)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "text/event-stream"
    chunks, done = chunks_of(resp.content)
    assert done
    return chunks


def delta(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices") or [{}]
    return choices[0].get("delta") or {}


def content_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(delta(c).get("content") or "" for c in chunks)


def usage_places(chunks: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(index, how) for every chunk carrying usage; how as in ``USAGE_AT``."""
    places = []
    for index, chunk in enumerate(chunks):
        choices = chunk.get("choices")
        if choices and choices[0].get("usage"):
            places.append((index, "choice"))
        elif chunk.get("usage"):
            if choices == []:
                places.append((index, "extra"))
            elif choices[0].get("finish_reason") is not None:
                places.append((index, "finish"))
            else:
                places.append((index, "content" if delta(chunk).get("content") else "empty"))
    return places


def error_key(name: str, body: dict[str, Any]) -> Any:
    """The value that tells one error class from another in this dialect's body."""
    error = body["error"]
    if isinstance(error, str):
        return error
    field = {"kimi": "type", "ollama": "message", "deepseek": "message"}.get(name, "code")
    if name == "deepseek" and field == "message" and "maximum context" in error["message"]:
        return "This model's maximum context length is"
    return error[field]


# ---- routing -------------------------------------------------------------------------------------


def test_base_urls_one_prefix_per_dialect(shared: MultiDialectServer) -> None:
    origin = shared.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", origin)
    assert shared.base_url("spark") == origin + "/spark/v1"
    assert shared.base_url("spark-x") == origin + "/spark-x/v2"
    assert shared.base_url("deepseek") == origin + "/deepseek/v1"
    assert shared.base_url("qwen") == origin + "/qwen/compatible-mode/v1"
    assert shared.base_url("glm") == origin + "/glm/api/paas/v4"
    assert shared.base_url("doubao") == origin + "/doubao/api/v3"
    assert shared.base_url("qianfan") == origin + "/qianfan/v2"
    assert set(shared.dialects) == set(ALL_DIALECTS)
    with pytest.raises(KeyError):
        shared.base_url("gemini")


def test_each_request_records_its_dialect(server: MultiDialectServer) -> None:
    for name in ALL_DIALECTS:
        assert post(server, name, stream=False).status_code == 200
    assert [r["dialect"] for r in server.requests] == list(ALL_DIALECTS)

    resp = requests.post(server.url + "/gemini/v1/chat/completions", json={}, timeout=5)
    assert resp.status_code == 404
    assert server.requests[-1]["dialect"] is None
    assert requests.post(server.url + "/v1/chat/completions", json={}, timeout=5).status_code == 404


def test_passwords_per_dialect(server: MultiDialectServer) -> None:
    server.passwords = {"deepseek": {"*": "sk-ds"}, "spark": {"lite": "key:secret"}}

    assert post(server, "deepseek", headers={"Authorization": "Bearer sk-ds"}).status_code == 200
    assert post(server, "deepseek").status_code == 401
    assert post(server, "spark", headers={"Authorization": "Bearer key:secret"}).status_code == 200
    assert post(server, "spark").json()["error"]["message"] == "invalid user"
    assert post(server, "glm").status_code == 200  # not listed: any non-empty key
    assert post(server, "glm", headers={}).status_code == 401
    assert post(server, "ollama", headers={}).status_code == 200  # Ollama reads no key
    assert post(server, "vllm", headers={}).status_code == 200  # vLLM without --api-key
    server.passwords = {"vllm": {"*": "vk"}}
    assert post(server, "vllm", headers={}).json() == {"error": "Unauthorized"}
    assert post(server, "vllm", headers={"Authorization": "Bearer vk"}).status_code == 200
    server.reset()
    assert post(server, "deepseek").status_code == 200


# ---- streaming shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_DIALECTS)
@pytest.mark.parametrize("include_usage", [False, True])
def test_usage_arrives_where_the_dialect_puts_it(
    server: MultiDialectServer, name: str, include_usage: bool
) -> None:
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = stream(server, name, "one two three", **extra)

    assert content_of(chunks) == "Echo: one two three"
    expected = USAGE_AT[name][include_usage]
    places = usage_places(chunks)
    if expected is None:
        assert places == []
        return
    assert places == [(len(chunks) - 1, expected)]  # once, on the last chunk
    last = chunks[-1]
    usage = last["choices"][0]["usage"] if expected == "choice" else last["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4


@pytest.mark.parametrize("name", ALL_DIALECTS)
def test_a_normal_reply_ends_with_stop(server: MultiDialectServer, name: str) -> None:
    chunks = stream(server, name, "a b", stream_options={"include_usage": True})

    reasons = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")]
    if name == "spark":
        assert reasons == [None] * len(reasons)  # Spark v1 sends none
    else:
        assert reasons[-1] == "stop"
        assert reasons[:-1] == [None] * (len(reasons) - 1)


@pytest.mark.parametrize("name", OPENAI_STYLE)
def test_openai_style_chunk_shapes(server: MultiDialectServer, name: str) -> None:
    resp = post(server, name, "a b c")
    chunks, _ = chunks_of(resp.content)
    sid = server.requests[-1]["sid"]

    assert all(c["id"] == sid for c in chunks)
    assert all(c["model"] == "test-model" for c in chunks)
    roles = [delta(c).get("role") for c in chunks]
    if name == "glm":
        # Chunks lack "object" and repeat the role (§2).
        assert all("object" not in c for c in chunks)
        assert roles == ["assistant"] * len(chunks)
    else:
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        assert roles == ["assistant"] + [None] * (len(chunks) - 1)
    if name == "deepseek":
        assert resp.content.startswith(b": keep-alive\n\n")  # before the first chunk (§2)


@pytest.mark.parametrize("name", ALL_DIALECTS)
def test_non_streaming_reply(server: MultiDialectServer, name: str) -> None:
    resp = post(server, name, "a b [[reasoning:mull it over]]", stream=False)

    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    if name == "deepseek":
        assert resp.content.startswith(b"\n\n{")  # blank lines before the JSON (§2)
    data = resp.json()
    message = data["choices"][0]["message"]
    assert message["content"] == "Echo: a b"
    field = REASONING_FIELD.get(name, "reasoning_content")
    if field is None:
        assert set(message) == {"role", "content"}
    else:
        assert message[field] == "mull it over"
    assert data["usage"]["completion_tokens"] == 3 + (3 if field else 0)
    if name == "spark":
        assert data["code"] == 0
    else:
        assert data["choices"][0]["finish_reason"] == "stop"


def test_spark_x_keep_alive_puts_blank_lines_before_the_body(server: MultiDialectServer) -> None:
    assert post(server, "spark-x", stream=False, keep_alive=True).content.startswith(b"\n\n{")
    assert post(server, "spark-x", stream=False).content.startswith(b"{")


# ---- reasoning -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_DIALECTS)
def test_reasoning_comes_first_in_the_dialect_field(server: MultiDialectServer, name: str) -> None:
    chunks = stream(server, name, "a b [[reasoning]]")

    field = REASONING_FIELD.get(name, "reasoning_content")
    assert content_of(chunks) == "Echo: a b"
    if field is None:  # Spark v1 models do not reason
        assert all(set(delta(c)) == {"role", "content"} for c in chunks)
        return
    thinking = [bool(delta(c).get(field)) for c in chunks]
    answering = [bool(delta(c).get("content")) for c in chunks]
    assert "".join(delta(c).get(field) or "" for c in chunks) == DEFAULT_REASONING
    first_answer = answering.index(True)
    assert all(thinking[:first_answer])
    assert not any(thinking[first_answer:])
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    assert all(other not in delta(c) for c in chunks)


@pytest.mark.parametrize("name", [n for n in ALL_DIALECTS if n in THINKING_OFF])
def test_the_request_can_switch_reasoning_off(server: MultiDialectServer, name: str) -> None:
    chunks = stream(server, name, "a b [[reasoning]]", **THINKING_OFF[name])

    field = REASONING_FIELD.get(name, "reasoning_content")
    assert all(not delta(c).get(field) for c in chunks)
    assert content_of(chunks) == "Echo: a b"


def test_thinking_auto_and_bad_types(server: MultiDialectServer) -> None:
    auto = {"thinking": {"type": "auto"}}
    assert any(
        delta(c).get("reasoning_content")
        for c in stream(server, "spark-x", "[[reasoning]]", **auto)
    )
    assert post(server, "doubao", "[[reasoning]]", **auto).status_code == 200
    assert post(server, "deepseek", **auto).status_code == 422  # DeepSeek: enabled|disabled
    resp = post(server, "spark-x", thinking={"type": "maybe"})
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "10005")
    assert post(server, "qwen", enable_thinking="yes").status_code == 400


def test_qwen_thinking_is_stream_only(server: MultiDialectServer) -> None:
    resp = post(server, "qwen", stream=False, enable_thinking=True)
    assert resp.status_code == 400
    assert "enable_thinking must be set to false" in resp.json()["error"]["message"]
    assert post(server, "qwen", stream=True, enable_thinking=True).status_code == 200


# ---- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_DIALECTS)
@pytest.mark.parametrize("error_class", ERROR_CLASSES)
def test_error_classes(server: MultiDialectServer, name: str, error_class: str) -> None:
    resp = post(server, name, f"hi [[error:{error_class}]]", stream=error_class == "balance")

    status, key = ERRORS[name][error_class]
    assert resp.status_code == status
    assert resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert error_key(name, body) == key
    error = body["error"]
    if isinstance(error, str):
        return
    keys, beside = ENVELOPES.get(name, ({"message", "type", "param", "code"}, set()))
    assert set(error) == keys
    assert set(body) == {"error"} | beside
    sid = server.requests[-1]["sid"]
    if name == "doubao":
        assert error["message"].endswith(f"Request ID: {sid}")
    if name == "qianfan":
        assert body["id"] == sid
        assert sid.startswith("as-")
    if name == "glm":
        assert error["code"].isdigit()
    if name == "vllm":
        assert error["code"] == status
    if name.startswith("spark") and error_class != "auth":
        assert error["message"].endswith(f"(sid: {sid})")


def test_real_refusals_use_the_same_shapes(server: MultiDialectServer) -> None:
    # Not by directive: a missing key, a bad parameter, an over-long prompt.
    assert (
        post(server, "kimi", headers={}).json()["error"]["type"] == "invalid_authentication_error"
    )
    resp = post(server, "glm", temperature=1.5)  # GLM takes [0, 1] (§4)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "1214")
    assert post(server, "deepseek", temperature=1.5).status_code == 200
    resp = post(server, "spark-x", max_tokens=65536)
    assert (resp.status_code, resp.json()["error"]["code"]) == (400, "10005")
    resp = post(server, "spark-x", temperature=0)  # (0, 2]
    assert resp.status_code == 400
    assert post(server, "spark-x", model="x1", max_tokens=65535).status_code == 200
    resp = post(server, "kimi", "你" * 400_000)  # about 267K tokens > 256K
    assert resp.json()["error"]["message"].endswith("exceeded model token limit: 262144")
    resp = post(server, "openai", "hi [[error:nonsense]]")
    assert resp.status_code == 400  # a typo in a directive fails loudly


@pytest.mark.parametrize("name", ALL_DIALECTS)
def test_stream_error_after_half_the_reply(server: MultiDialectServer, name: str) -> None:
    resp = post(server, name, "a b c d e [[stream_error]]", lazy=True)

    assert resp.status_code == 200
    raw, whole = read(resp)
    assert whole  # the server ends the body properly; the error is in it
    chunks, done = chunks_of(raw)
    assert content_of(chunks[:-1]) == "Echo: a b "
    last = chunks[-1]
    if name.startswith("spark"):
        assert [c["code"] for c in chunks] == [0, 0, 0, 10014]
        assert not done
        return
    assert set(last) >= {"error"}
    assert "choices" not in last
    assert done is (name == "vllm")  # vLLM: data: {"error": ...} then [DONE]
    if name == "vllm":
        assert last["error"]["code"] == 500


@pytest.mark.parametrize("name", ALL_DIALECTS)
@pytest.mark.parametrize("reason", ["sensitive", "content_filter"])
def test_finish_reason_after_half_the_reply(
    server: MultiDialectServer, name: str, reason: str
) -> None:
    chunks = stream(server, name, f"a b c d e [[finish:{reason}]]")

    assert content_of(chunks) == "Echo: a b "
    reasons = [c["choices"][0].get("finish_reason") for c in chunks if c.get("choices")]
    assert reasons[-1] == reason
    assert reasons.count(reason) == 1


@pytest.mark.parametrize("name", ALL_DIALECTS)
def test_finish_reason_without_streaming(server: MultiDialectServer, name: str) -> None:
    data = post(server, name, "a b c d e [[finish:network_error]]", stream=False).json()
    assert data["choices"][0]["finish_reason"] == "network_error"
    assert data["choices"][0]["message"]["content"] == "Echo: a b "


@pytest.mark.parametrize("name", ALL_DIALECTS)
def test_drop_closes_before_done(server: MultiDialectServer, name: str) -> None:
    resp = post(server, name, "a b c d e [[drop]]", lazy=True)

    raw, whole = read(resp)
    assert not whole  # no zero chunk: the connection was cut
    chunks, done = chunks_of(raw)
    assert not done
    assert content_of(chunks) == "Echo: a b "


def test_inband_and_upstream_in_an_openai_dialect(server: MultiDialectServer) -> None:
    chunks, done = chunks_of(post(server, "doubao", "[[inband]]").content)
    assert not done
    assert chunks[0]["error"]["code"] == "InternalServiceError"
    resp = post(server, "doubao", "[[upstream:502]]")
    assert resp.status_code == 502
    assert resp.json()["error"]["message"].startswith("upstream error 502 Request ID: ")
    assert post(server, "vllm", "x", stream=False, messages="no").status_code == 400


def test_fail_next_arms_an_error_class_for_one_request(server: MultiDialectServer) -> None:
    server.fail_next(error="balance")
    assert post(server, "glm", stream=False).json()["error"]["code"] == "1113"
    assert post(server, "glm", stream=False).status_code == 200
    with pytest.raises(ValueError, match="error must be one of"):
        server.fail_next(error="bankrupt")


# ---- Spark web search ----------------------------------------------------------------------------

SEARCH = {"type": "web_search", "web_search": {"enable": True, "search_mode": "normal"}}


@pytest.mark.parametrize("name", ["spark", "spark-x"])
def test_search_results_come_first(server: MultiDialectServer, name: str) -> None:
    chunks = stream(server, name, "news? [[search]]", tools=[SEARCH])

    first = delta(chunks[0])
    assert first["role"] == "tool"
    (call,) = first["tool_calls"]
    assert call["type"] == "web_search"
    outputs = call["web_search"]["outputs"]
    assert [o["index"] for o in outputs] == [1, 2]
    assert all(o["title"] and o["link"].startswith("https://example.com/") for o in outputs)
    assert chunks[0]["code"] == 0
    assert content_of(chunks) == "Echo: news?"

    off = {**SEARCH, "web_search": {"enable": False}}
    for tools in ([off], None):
        extra = {"tools": tools} if tools else {}
        assert delta(stream(server, name, "news? [[search]]", **extra)[0])["role"] == "assistant"


def test_search_is_spark_only(server: MultiDialectServer) -> None:
    chunks = stream(server, "qwen", "news? [[search]]", tools=[SEARCH])
    assert all(delta(c).get("role") != "tool" for c in chunks)
    function = {"type": "function", "function": {"name": "f", "parameters": {}}}
    resp = post(server, "spark-x", tools=[SEARCH, function])  # v2 forbids mixing them
    assert resp.json()["error"]["code"] == "10005"


# ---- the command line ----------------------------------------------------------------------------


def test_command_line_serves_several_dialects() -> None:
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "tests.spark_server", "--port", "0"]
    command += ["--dialect", "deepseek", "--dialect", "glm"]
    with subprocess.Popen(  # noqa: S603 - runs the stand-in's own command line
        command, cwd=root, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            origin = proc.stdout.readline().strip()
            lines = [proc.stdout.readline().split() for _ in range(2)]
            assert lines == [
                ["deepseek", origin + "/deepseek/v1"],
                ["glm", origin + "/glm/api/paas/v4"],
            ]
            body = {"model": "m", "messages": [{"role": "user", "content": "[[error:balance]]"}]}
            resp = requests.post(
                lines[1][1] + "/chat/completions", json=body, headers=AUTH, timeout=5
            )
            assert resp.json()["error"]["code"] == "1113"
        finally:
            proc.terminate()
            assert proc.wait(5) == 0
