"""Tests for the fake Spark server (tests/spark_server.py).

Plain pytest, no Django: run with ``pytest tests/test_spark_server.py -p no:django``.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.spark_server import SparkServer, estimate_tokens, split_tokens

SID_RE = re.compile(r"^cha000b000\d+@dx[0-9a-f]+$")
AUTH = {"Authorization": "Bearer key:secret"}


@pytest.fixture(scope="module")
def shared() -> Iterator[SparkServer]:
    with SparkServer() as server:
        yield server


@pytest.fixture
def server(shared: SparkServer) -> Iterator[SparkServer]:
    shared.reset()
    yield shared
    shared.wait_idle(2.0)


def body(
    text: str = "hello world",
    *,
    stream: bool = False,
    model: str = "lite",
    **extra: Any,
) -> dict:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
    }
    if stream:
        payload["stream"] = True
    payload.update(extra)
    return payload


def post(
    server: SparkServer, payload: Any, headers: dict | None = None, **kwargs: Any
) -> requests.Response:
    return requests.post(
        server.url + "/chat/completions",
        json=payload,
        headers=AUTH if headers is None else headers,
        timeout=5,
        **kwargs,
    )


def sse_data(text: str) -> list[str]:
    """Data payloads of an SSE body ("data:" or "data: "), skipping comments."""
    out = []
    for line in text.split("\n"):
        if line.startswith("data:"):
            value = line[5:]
            out.append(value.removeprefix(" "))
        else:
            assert line == "" or line.startswith(":"), line
    return out


def stream_chunks(resp: requests.Response) -> tuple[list[dict], bool]:
    """Parsed JSON chunks and whether the stream ended with [DONE]."""
    payloads = sse_data(resp.content.decode("utf-8"))
    done = bool(payloads) and payloads[-1] == "[DONE]"
    if done:
        payloads = payloads[:-1]
    assert "[DONE]" not in payloads
    return [json.loads(p) for p in payloads], done


def raw_request(
    server: SparkServer, payload: dict, timeout: float = 5
) -> tuple[str, dict[str, str], bytes]:
    """POST over a raw socket with Connection: close.

    Returns (status line, lower-cased headers, raw body bytes)."""
    parts = urlsplit(server.url)
    data = json.dumps(payload).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: Bearer pw\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, raw_body = received.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, raw_body


def dechunk(raw: bytes) -> tuple[bytes, bool]:
    """Decode a chunked body; also say whether the zero chunk ended it."""
    out = b""
    while raw:
        size_line, _, raw = raw.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out, True
        out += raw[:size]
        assert raw[size : size + 2] == b"\r\n"
        raw = raw[size + 2 :]
    return out, False


# ---- helpers -------------------------------------------------------------------------


def test_split_tokens() -> None:
    assert split_tokens("Echo: hello  world") == ["Echo: ", "hello  ", "world"]
    assert split_tokens("你好 ok") == ["你", "好 ", "ok"]
    assert split_tokens("abcdefgh", 4) == ["ab", "cd", "ef", "gh"]
    padded = split_tokens("hi", 10)
    assert len(padded) == 10 and all(padded) and "".join(padded).startswith("hi hi")
    assert split_tokens("x", 0) == []


def test_estimate_tokens() -> None:
    assert estimate_tokens("abcd" * 10) == 10
    assert estimate_tokens("你好你") == 2


# ---- non-streaming -------------------------------------------------------------------


def test_non_streaming_success_shape(server: SparkServer) -> None:
    resp = post(server, body("hello world"))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    data = resp.json()
    assert data["code"] == 0 and data["message"] == "Success"
    assert SID_RE.match(data["sid"])
    assert data["choices"] == [
        {"message": {"role": "assistant", "content": "Echo: hello world"}, "index": 0}
    ]
    usage = data["usage"]
    assert usage["completion_tokens"] == 3
    assert usage["prompt_tokens"] >= 1
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_sids_are_unique(server: SparkServer) -> None:
    sids = {post(server, body()).json()["sid"] for _ in range(5)}
    assert len(sids) == 5


def test_requests_are_recorded_before_validation(server: SparkServer) -> None:
    post(
        server,
        body("hi", temperature=0.5),
        headers={"Authorization": "Bearer abc:def", "X-Trace": "1"},
    )
    resp = requests.post(
        server.url + "/chat/completions",
        data=b"not json",
        headers={"Authorization": "Bearer x"},
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "10003"
    first, second = server.requests
    assert first["path"] == "/v1/chat/completions"
    assert first["json"] == body("hi", temperature=0.5)
    assert first["authorization"] == "Bearer abc:def"
    assert first["headers"]["x-trace"] == "1" and first["headers"]["X-Trace"] == "1"
    assert second["json"] is None and second["body"] == "not json"


def test_reply_and_tokens_attributes(server: SparkServer) -> None:
    server.reply = "fixed answer here"
    assert post(server, body()).json()["choices"][0]["message"]["content"] == "fixed answer here"
    server.tokens = 7
    resp = post(server, body(stream=True))
    chunks, done = stream_chunks(resp)
    assert done and len(chunks) == 7
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks).startswith(
        "fixed answer here"
    )
    server.reset()
    assert server.reply is None and server.tokens is None and server.requests == []


def test_cjk_echo_and_unknown_path(server: SparkServer) -> None:
    resp = post(server, body("你好", stream=True))
    chunks, done = stream_chunks(resp)
    assert done and [c["choices"][0]["delta"]["content"] for c in chunks] == [
        "Echo: ",
        "你",
        "好",
    ]
    assert requests.get(server.url + "/models", timeout=5).status_code == 404
    resp = requests.post(server.url + "/chat", json=body(), headers=AUTH, timeout=5)
    assert resp.status_code == 404 and "error" in resp.json()


# ---- streaming -----------------------------------------------------------------------


def test_streaming_frames_order_done_and_usage(server: SparkServer) -> None:
    resp = post(server, body("one two three", stream=True))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    text = resp.content.decode()
    assert text.startswith("data:{") and "data: " not in text
    assert text.endswith("data:[DONE]\n\n")
    chunks, done = stream_chunks(resp)
    assert done
    contents = [c["choices"][0]["delta"]["content"] for c in chunks]
    assert contents == ["Echo: ", "one ", "two ", "three"]
    sid = chunks[0]["sid"]
    for chunk in chunks:
        assert chunk["code"] == 0 and chunk["message"] == "Success"
        assert chunk["sid"] == sid == chunk["id"] and isinstance(chunk["created"], int)
        assert chunk["choices"][0]["delta"]["role"] == "assistant"
    assert [("usage" in c) for c in chunks] == [False, False, False, True]
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + 4


def test_streaming_chunked_encoding_is_well_formed(server: SparkServer) -> None:
    status, headers, raw = raw_request(server, body("a b", stream=True))
    assert status.startswith("HTTP/1.1 200")
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    decoded, terminated = dechunk(raw)
    assert terminated
    assert sse_data(decoded.decode())[-1] == "[DONE]"


def test_data_space_attribute_and_directive(server: SparkServer) -> None:
    server.data_space = True
    text = post(server, body("x", stream=True)).content.decode()
    assert text.startswith("data: {") and text.endswith("data: [DONE]\n\n")
    server.reset()
    text = post(server, body("x [[space]]", stream=True)).content.decode()
    assert text.startswith("data: {")
    assert stream_chunks(post(server, body("x [[space]]", stream=True)))[1]


def test_close_framing_raw_socket(server: SparkServer) -> None:
    server.framing = "close"
    status, headers, raw = raw_request(server, body("a b c", stream=True))
    assert status.startswith("HTTP/1.1 200")
    assert headers["connection"] == "close"
    assert "transfer-encoding" not in headers and "content-length" not in headers
    text = raw.decode()
    assert text.startswith("data:{") and text.endswith("data:[DONE]\n\n")


def test_close_directive_with_requests(server: SparkServer) -> None:
    resp = post(server, body("a b [[close]]", stream=True), stream=True)
    assert "Transfer-Encoding" not in resp.headers and resp.headers["Connection"] == "close"
    chunks, done = stream_chunks(resp)
    assert done and "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "Echo: a b"


# ---- directives ----------------------------------------------------------------------


def test_reply_directive_with_html_removed_from_echo(server: SparkServer) -> None:
    reply = "<script>alert('x')</script> [a] & b"
    data = post(server, body(f"question [[reply:{reply}]]")).json()
    assert data["choices"][0]["message"]["content"] == reply
    data = post(server, body("before [[tokens:3]] after")).json()
    assert "[[" not in data["choices"][0]["message"]["content"]


def test_delay_and_interval_directives(server: SparkServer) -> None:
    started = time.monotonic()
    post(server, body("x [[delay:0.2]]"))
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    resp = post(server, body("a b c d [[interval:0.05]]", stream=True))
    assert time.monotonic() - started >= 0.2  # five chunks, four intervals
    assert stream_chunks(resp)[1]


def test_tokens_directive(server: SparkServer) -> None:
    chunks, done = stream_chunks(post(server, body("short [[tokens:12]]", stream=True)))
    assert done and len(chunks) == 12 and chunks[-1]["usage"]["completion_tokens"] == 12


def test_comments_directive(server: SparkServer) -> None:
    text = post(server, body("a [[comments]]", stream=True)).content.decode()
    assert text.startswith(": ping\n\n\n")
    assert sse_data(text)[-1] == "[DONE]"


def test_usage_separate_directive(server: SparkServer) -> None:
    chunks, done = stream_chunks(post(server, body("a b [[usage:separate]]", stream=True)))
    assert done
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == [
        "Echo: ",
        "a ",
        "b",
        "",
    ]
    assert [("usage" in c) for c in chunks] == [False, False, False, True]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("10003", 400),
        ("10005", 400),
        ("10907", 400),
        ("11201", 429),
        ("11202", 429),
        ("11203", 429),
        ("10007", 429),
        ("11200", 500),
        ("10012", 503),
        ("10110", 503),
        ("10013", 400),
    ],
)
def test_upstream_directive(server: SparkServer, code: str, status: int) -> None:
    for stream in (False, True):
        resp = post(server, body(f"hi [[upstream:{code}]]", stream=stream))
        assert resp.status_code == status
        error = resp.json()["error"]
        assert error["code"] == code and error["type"] == "api_error" and error["param"] is None
        assert re.search(r"\(sid: cha000b000\d+@dx[0-9a-f]+\)$", error["message"])


def test_upstream_auth_and_nonjson(server: SparkServer) -> None:
    resp = post(server, body("hi [[upstream:auth]]"))
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {
            "message": "invalid user",
            "type": "api_error",
            "param": None,
            "code": None,
        }
    }
    resp = post(server, body("hi [[upstream:nonjson]]", stream=True))
    assert resp.status_code == 502 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.text == "<html><body>Bad Gateway</body></html>"


def test_inband_directive(server: SparkServer) -> None:
    resp = post(server, body("hi [[inband:10013]]"))
    assert resp.status_code == 200
    data = resp.json()
    assert data["code"] == 10013 and SID_RE.match(data["sid"]) and data["message"]
    resp = post(server, body("hi [[inband:11200]]", stream=True))
    chunks, done = stream_chunks(resp)
    assert not done and len(chunks) == 1
    assert chunks[0]["code"] == 11200 and chunks[0]["choices"][0]["delta"]["content"] == ""


def test_midstream_directive(server: SparkServer) -> None:
    resp = post(server, body("a b c d e [[midstream:10014]]", stream=True))
    chunks, done = stream_chunks(resp)
    assert not done
    # Six tokens: the first half is sent, then the error chunk.
    assert [c["code"] for c in chunks] == [0, 0, 0, 10014]
    assert chunks[-1]["message"] == "output content moderation"
    assert all("usage" not in c for c in chunks)
    data = post(server, body("a [[midstream:10014]]")).json()
    assert data["code"] == 10014


def test_drop_directive(server: SparkServer) -> None:
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(server, body("a b c d [[drop]]", stream=True))
    _, _, raw = raw_request(server, body("a b c d [[drop]]", stream=True))
    decoded, terminated = dechunk(raw)
    assert not terminated
    assert len(sse_data(decoded.decode())) == 2 and b"[DONE]" not in decoded
    with pytest.raises(requests.exceptions.ConnectionError):
        post(server, body("a [[drop]]"))
    assert server.closed_early == 0  # the server hung up, not the client


def test_stall_directive_then_close(server: SparkServer) -> None:
    started = time.monotonic()
    _, _, raw = raw_request(server, body("a b c d [[stall:0.3]] [[close]]", stream=True))
    assert time.monotonic() - started >= 0.3
    assert len(sse_data(raw.decode())) == 2


def test_combined_directives(server: SparkServer) -> None:
    resp = post(
        server,
        body("[[reply:x y z]] [[space]] [[usage:separate]] [[tokens:2]]", stream=True),
    )
    assert resp.content.startswith(b"data: {")
    chunks, done = stream_chunks(resp)
    assert done and len(chunks) == 3 and chunks[-1]["usage"]["completion_tokens"] == 2


def test_bad_directive_is_rejected(server: SparkServer) -> None:
    resp = post(server, body("[[delay:soon]]"))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "10003"
    assert "delay" in resp.headers["X-Spark-Test-Reason"]


# ---- auth and validation -------------------------------------------------------------


def test_auth(server: SparkServer) -> None:
    invalid_user = {
        "error": {
            "message": "invalid user",
            "type": "api_error",
            "param": None,
            "code": None,
        }
    }
    resp = post(server, body(), headers={})
    assert resp.status_code == 401 and resp.json() == invalid_user
    server.passwords = {"lite": "lite:pw", "*": "any:pw"}
    assert post(server, body(), headers={"Authorization": "Bearer lite:pw"}).status_code == 200
    resp = post(server, body(), headers={"Authorization": "Bearer any:pw"})
    assert resp.status_code == 401 and resp.json() == invalid_user
    assert (
        post(server, body(model="max-32k"), headers={"Authorization": "Bearer any:pw"}).status_code
        == 200
    )
    server.passwords = {"lite": "lite:pw"}
    assert (
        post(server, body(model="max-32k"), headers={"Authorization": "Bearer lite:pw"}).status_code
        == 401
    )


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": "   "}],
        [{"role": "user", "content": 5}],
        [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "q"},
        ],
        [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}],
        [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "system", "content": "s"},
        ],
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        [{"role": "bot", "content": "q"}],
    ],
)
def test_validation_10003(server: SparkServer, messages: list) -> None:
    resp = post(server, {"model": "lite", "messages": messages})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "10003" and error["type"] == "api_error" and error["param"] is None
    assert re.fullmatch(r"invalid data \(sid: cha000b000\d+@dx[0-9a-f]+\)", error["message"])


def test_missing_model_is_10003_and_unknown_model_10005(server: SparkServer) -> None:
    resp = post(server, {"messages": [{"role": "user", "content": "q"}]})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "10003"
    resp = post(server, body(model="gpt-4"))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "10005"
    for model in (
        "lite",
        "general",
        "generalv3",
        "pro-128k",
        "generalv3.5",
        "max-32k",
        "4.0Ultra",
    ):
        assert post(server, body(model=model)).status_code == 200


def test_parameter_ranges_10005(server: SparkServer) -> None:
    assert post(server, body(temperature=2.5)).json()["error"]["code"] == "10005"
    # lite allows max_tokens 1..4096.
    assert post(server, body(max_tokens=8192)).json()["error"]["code"] == "10005"
    assert (
        post(server, body(model="generalv3", max_tokens=8192, top_k=4, top_p=1)).status_code == 200
    )


def test_alternation_is_optional(server: SparkServer) -> None:
    twice = {
        "model": "lite",
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
        ],
    }
    assert post(server, twice).status_code == 200
    server.require_alternation = True
    assert post(server, twice).json()["error"]["code"] == "10003"


def test_context_window_10907(server: SparkServer) -> None:
    long_cjk = "你" * 15000  # ~10000 tokens: over 8K, within 32K
    resp = post(server, body(long_cjk))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "10907"
    assert post(server, body(long_cjk, model="max-32k")).status_code == 200
    # About 7500 tokens: fits in 8K.
    assert post(server, body("x" * 30000)).status_code == 200


# ---- concurrency, disconnects, shutdown ----------------------------------------------


def test_active_streams_and_closed_early(server: SparkServer) -> None:
    parts = urlsplit(server.url)
    data = json.dumps(body("a b c d e f g h [[interval:0.05]]", stream=True)).encode()
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer pw\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(data), data)
    )
    # Headers and frames may arrive in separate segments.
    received = b""
    while b"data:" not in received:
        received += sock.recv(65536)
    assert server.active_streams == 1
    sock.close()
    deadline = time.monotonic() + 2
    while server.closed_early == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.closed_early == 1
    assert server.wait_idle(2) and server.active_streams == 0


def test_many_concurrent_streams(server: SparkServer) -> None:
    server.tokens = 5
    server.first_token_delay = 0.1

    def one(_: int) -> bool:
        return stream_chunks(post(server, body(stream=True)))[1]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=100) as pool:
        assert all(pool.map(one, range(100)))
    assert time.monotonic() - started < 8  # one after another would take over 10 s


def test_stop_with_stalled_stream_returns_quickly() -> None:
    server = SparkServer().start()
    errors: list[Exception] = []
    got_first = threading.Event()

    def client() -> None:
        try:
            resp = post(server, body("a b c d [[stall:30]]", stream=True), stream=True)
            for _ in resp.iter_content(chunk_size=None):
                got_first.set()
        except requests.RequestException as exc:  # the stream is cut by stop()
            errors.append(exc)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert got_first.wait(2)
    assert server.active_streams == 1
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(2)
    assert not thread.is_alive()
    assert errors  # the client saw the stream cut short, not a clean end
    assert server.closed_early == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        post(server, body())


def test_cli_prints_url_and_serves() -> None:
    root = Path(__file__).resolve().parent.parent
    args = ["-m", "tests.spark_server", "--port", "0", "--tokens", "4"]
    args += ["--password", "k:s"]
    with subprocess.Popen(
        [sys.executable, *args], cwd=root, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
            resp = requests.post(
                url + "/chat/completions",
                json=body(stream=True),
                headers={"Authorization": "Bearer k:s"},
                timeout=5,
            )
            chunks, done = stream_chunks(resp)
            assert done and len(chunks) == 4
        finally:
            proc.terminate()
            assert proc.wait(5) == 0
