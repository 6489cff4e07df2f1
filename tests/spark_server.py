"""A fake iFlytek Spark HTTP chat server for tests and benchmarks (stdlib only).

It speaks the wire protocol described in /work/shared/spark-protocol.md:

* ``POST {base}/chat/completions`` with ``Authorization: Bearer <APIPassword>``;
* non-streaming JSON replies
  ``{"code":0,"message":"Success","sid":...,"choices":[...],"usage":...}``;
* streaming server-sent events: ``data:{json}`` frames ending in ``data:[DONE]``,
  with ``usage`` on the last content chunk;
* both error shapes: rejected up front (non-2xx, OpenAI-style envelope, Spark code
  as a *string*, sid in the message) and in-band (HTTP 200, integer non-zero
  ``code``, possibly mid-stream).

Tests steer it through plain attributes (``first_token_delay``, ``token_interval``,
``tokens``, ``reply``, ``data_space``, ``framing``) or per request through
``[[directives]]`` in the last user message, e.g.
``"hello [[delay:0.5]] [[midstream:10014]]"``.  See ``SparkServer`` and
``_parse_directives`` for the full list.

Benchmark use::

    python -m tests.spark_server --port 8081 --first-token-delay 0.5 \\
        --token-interval 0.05 --tokens 40
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = ["MODEL_WINDOWS", "SparkServer", "estimate_tokens", "main", "split_tokens"]

CHAT_PATH = "/v1/chat/completions"

# spark-protocol.md "Models and context windows": context window per model id ("general"
# is the old name of "lite").
MODEL_WINDOWS: dict[str, int] = {
    "lite": 8192,
    "general": 8192,
    "generalv3": 8192,
    "pro-128k": 131072,
    "generalv3.5": 8192,
    "max-32k": 32768,
    "4.0Ultra": 8192,
}

# spark-protocol.md "Models and context windows": the max_tokens column.
MODEL_MAX_TOKENS: dict[str, int] = {
    "lite": 4096,
    "general": 4096,
    "generalv3": 8192,
    "pro-128k": 4096,
    "generalv3.5": 8192,
    "max-32k": 8192,
    "4.0Ultra": 8192,
}

# Human-readable names used in error messages.  Up-front errors carry "<Name> (sid:
# <sid>)" in the envelope message (spark-protocol.md "Errors: two shapes", e.g.
# "AppIdNoAuthError (sid: cha...)").
ERROR_NAMES: dict[int, str] = {
    10003: "invalid data",
    10005: "invalid parameter",
    10007: "user request is still running",
    10012: "EngineInternalError",
    10013: "input content moderation",
    10014: "output content moderation",
    10019: "content tends towards violation",
    10110: "service busy",
    10907: "token count exceeds the limit",
    11200: "AppIdNoAuthError",
    11201: "AppIdOutOfDailyLimitError",
    11202: "AppIdQpsOverFlowError",
    11203: "AppIdConcurrencyOverFlowError",
}

# HTTP status for up-front rejections ([[upstream:CODE]]).  The table in
# spark-protocol.md says the status is not reliable (11200 has been seen with 500);
# these are the statuses we simulate.
UPSTREAM_STATUS: dict[int, int] = {
    10003: 400,
    10005: 400,
    10907: 400,
    10007: 429,
    11201: 429,
    11202: 429,
    11203: 429,
    11200: 500,
    10012: 503,
    10110: 503,
}

INVALID_USER_BODY: dict[str, Any] = {
    # spark-protocol.md: a wrong APIPassword gives 401, "code": null, "invalid user".
    "error": {
        "message": "invalid user",
        "type": "api_error",
        "param": None,
        "code": None,
    }
}

NONJSON_BODY = b"<html><body>Bad Gateway</body></html>"

FRAMINGS = ("chunked", "close")

# CJK ideographs, kana, CJK punctuation and full-width forms: one streamed chunk per
# character and about 1.5 characters per token (spark-protocol.md "Rough size rule").
_CJK = (
    "\u3000-\u303f"  # CJK symbols and punctuation
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff00-\uffef"  # half-width and full-width forms
)
_CJK_RE = re.compile(f"[{_CJK}]")
# A CJK character, or a word, each with the whitespace after it; a leading run of
# whitespace stands alone only at the very start of the text.
_TOKEN_RE = re.compile(f"[{_CJK}]\\s*|[^\\s{_CJK}]+\\s*|\\s+")

_DIRECTIVE_NAMES = (
    "reply",
    "delay",
    "interval",
    "tokens",
    "space",
    "close",
    "comments",
    "usage",
    "upstream",
    "inband",
    "midstream",
    "drop",
    "stall",
)
# [[name]] or [[name:VALUE]]; VALUE may hold anything but "]]" (HTML, newlines...).
_DIRECTIVE_RE = re.compile(r"\[\[(" + "|".join(_DIRECTIVE_NAMES) + r")(?::(.*?))?\]\]", re.DOTALL)

# Non-blocking peek to notice a client that hung up (Linux/BSD; elsewhere only a
# failed write tells us).
_CAN_PEEK = hasattr(socket, "MSG_DONTWAIT")
_PEEK_FLAGS = socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)
_WAIT_SLICE = 0.1  # how often long waits look for a stop() or a client that went away


def estimate_tokens(text: str) -> int:
    """Rough token count: a CJK character is 1/1.5 token, anything else 1/4 token.

    Deliberately on the low side (spark-protocol.md's rule of thumb is 1 token ~ 0.8
    English words) so the fake only answers 10907 when a prompt is clearly over.
    """
    cjk = len(_CJK_RE.findall(text))
    return math.ceil(cjk / 1.5 + (len(text) - cjk) / 4)


def split_tokens(text: str, count: int | None = None) -> list[str]:
    """Split reply text into streamed chunks.

    Without ``count``: one chunk per word (with the whitespace that follows it) and
    one per CJK character.  With ``count``: exactly ``count`` roughly equal pieces;
    text shorter than ``count`` characters is first padded by repeating its words so
    that no piece is empty.
    """
    if count is None:
        return _TOKEN_RE.findall(text)
    if count <= 0:
        return []
    words = text.split() or ["token"]
    padded = text
    for word in itertools.cycle(words):
        if len(padded) >= count:
            break
        padded = f"{padded} {word}" if padded else word
    size = len(padded)
    return [padded[i * size // count : (i + 1) * size // count] for i in range(count)]


def _error_envelope(code: str | None, message: str) -> dict[str, Any]:
    # spark-protocol.md "Errors: two shapes" (1): code is a string, sid is in message.
    return {"error": {"message": message, "type": "api_error", "param": None, "code": code}}


def _error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class _Headers(dict[str, str]):
    """A plain dict of request headers (keys as the client spelled them) with
    case-insensitive lookups: ``headers["authorization"]`` and
    ``headers["Authorization"]`` both work."""

    def _key(self, key: object) -> object:
        if isinstance(key, str) and not dict.__contains__(self, key):
            for existing in self.keys():
                if existing.lower() == key.lower():
                    return existing
        return key

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, self._key(key))  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, self._key(key), default)  # type: ignore[call-overload]


class _Rejection(Exception):
    """A request refused before any reply is produced (HTTP status + JSON body)."""

    def __init__(self, status: int, body: dict[str, Any], reason: str = "") -> None:
        super().__init__(reason or str(body))
        self.status = status
        self.body = body
        self.reason = reason


class _ClientGone(Exception):
    """The client closed its end while we were still sending."""


class _Stopped(Exception):
    """stop() was called while this request was in progress."""


@dataclass
class _Plan:
    """Behaviour for one request: the server attributes, overridden by directives."""

    first_token_delay: float
    token_interval: float
    tokens: int | None
    reply: str | None
    data_space: bool
    framing: str
    comments: bool = False
    usage_separate: bool = False
    upstream: str | None = None
    inband: int | None = None
    midstream: int | None = None
    drop: bool = False
    stall: float | None = None


def _parse_directives(content: str, plan: _Plan) -> str:
    """Apply ``[[...]]`` directives in ``content`` to ``plan``; return the rest.

    Raises ValueError for a malformed directive (the handler answers 400 / 10003 and
    says why in the ``X-Spark-Test-Reason`` header), so a typo in a test fails loudly
    instead of being echoed.
    """

    def number(name: str, value: str | None) -> float:
        try:
            result = float(value or "")
        except ValueError:
            raise ValueError(f"[[{name}:{value}]] needs a number") from None
        if result < 0 or math.isnan(result):
            raise ValueError(f"[[{name}:{value}]] must be >= 0")
        return result

    def code(name: str, value: str | None, default: int | None = None) -> int:
        if value is None and default is not None:
            return default
        try:
            result = int(value or "")
        except ValueError:
            raise ValueError(f"[[{name}:{value}]] needs an integer code") from None
        if result == 0:
            raise ValueError(f"[[{name}:0]]: an in-band error code is non-zero")
        return result

    def flag(name: str, value: str | None) -> bool:
        if value is not None:
            raise ValueError(f"[[{name}]] takes no value")
        return True

    for match in _DIRECTIVE_RE.finditer(content):
        name, value = match.group(1), match.group(2)
        if name == "reply":
            plan.reply = value or ""
        elif name == "delay":
            plan.first_token_delay = number(name, value)
        elif name == "interval":
            plan.token_interval = number(name, value)
        elif name == "tokens":
            if value is None or not value.strip().isdigit():
                raise ValueError(f"[[tokens:{value}]] needs a non-negative integer")
            plan.tokens = int(value)
        elif name == "space":
            plan.data_space = flag(name, value)
        elif name == "close":
            flag(name, value)
            plan.framing = "close"
        elif name == "comments":
            plan.comments = flag(name, value)
        elif name == "usage":
            if value not in ("separate", "last"):
                raise ValueError(f"[[usage:{value}]]: expected 'separate' or 'last'")
            plan.usage_separate = value == "separate"
        elif name == "upstream":
            if value is None or not (value in ("auth", "nonjson") or value.strip().isdigit()):
                raise ValueError(f"[[upstream:{value}]]: expected auth, nonjson or a numeric code")
            plan.upstream = value.strip()
        elif name == "inband":
            # Default 10013 (input moderation): the typical in-band refusal.
            plan.inband = code(name, value, default=10013)
        elif name == "midstream":
            plan.midstream = code(name, value, default=10014)
        elif name == "drop":
            plan.drop = flag(name, value)
        elif name == "stall":
            plan.stall = 30.0 if value is None else number(name, value)
    return _DIRECTIVE_RE.sub("", content).strip()


def _validate(body: Any, require_alternation: bool) -> tuple[int, str] | None:
    """Check a request body against spark-protocol.md "Request body".

    Returns ``(spark_code, reason)`` for the first problem found, or None.
    Structural problems with the body and messages give 10003; out-of-range optional
    parameters give 10005 (like an unknown model, which the caller checks).
    """
    if not isinstance(body, dict):
        return 10003, "body is not a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return 10003, "model is missing"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return 10003, "messages must be a non-empty list"
    previous_role: str | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return 10003, f"messages[{index}] is not an object"
        role = message.get("role")
        content = message.get("content")
        if role not in ("system", "user", "assistant"):
            return (
                10003,
                f"messages[{index}].role {role!r} is not system/user/assistant",
            )
        # "content is a non-empty string"; an empty assistant message in the history
        # has been seen to cause 10003, so whitespace-only is refused too.
        if not isinstance(content, str) or not content.strip():
            return 10003, f"messages[{index}].content must be a non-empty string"
        if role == "system" and index != 0:
            return 10003, f"messages[{index}]: a system message may only come first"
        if require_alternation and role != "system" and role == previous_role:
            return 10003, f"messages[{index}]: two {role} turns in a row"
        previous_role = role
    if messages[-1].get("role") != "user":
        return 10003, "the last message must have role user"

    ranges: dict[str, tuple[float, float, bool]] = {
        # name: (low, high, low is exclusive)
        "temperature": (0, 2, False),
        "top_p": (0, 1, True),
        "top_k": (1, 6, False),
        "presence_penalty": (-2, 2, False),
        "frequency_penalty": (-2, 2, False),
    }
    for name, (low, high, exclusive) in ranges.items():
        if name not in body:
            continue
        value = body[name]
        if not _is_number(value) or value > high or value < low or (exclusive and value == low):
            return 10005, f"{name}={value!r} is out of range"
    if "top_k" in body and not isinstance(body["top_k"], int):
        return 10005, "top_k must be an integer"
    if "max_tokens" in body:
        value = body["max_tokens"]
        limit = MODEL_MAX_TOKENS.get(model, 8192)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
            return 10005, f"max_tokens={value!r} is outside 1..{limit} for {model}"
    if "stream" in body and not isinstance(body["stream"], bool):
        return 10005, "stream must be a boolean"
    if "user" in body and not isinstance(body["user"], str):
        return 10005, "user must be a string"
    return None


class _HTTPServer(ThreadingHTTPServer):
    # One thread per connection; hundreds of concurrent streams in benchmarks.
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True
    spark: SparkServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(): a possibly slow DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up (or stop() cutting connections) is normal: stay quiet.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or self.spark._stop_event.is_set():
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for keep-alive and chunked responses
    server: _HTTPServer
    server_version = "SparkFake/1.0"

    # ---- connection bookkeeping ------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Frames are small and must leave at once: benchmarks measure first-token
        # latency, and Nagle + delayed ACK would add ~40 ms.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.spark._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.spark._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.spark.verbose:
            super().log_message(format, *args)

    # ---- dispatch --------------------------------------------------------------------

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_POST

    def _handle(self) -> None:
        spark = self.server.spark
        sid = spark._new_sid()
        try:
            raw = self._read_body()
        except ValueError:
            raw = b""
            self.close_connection = True
        try:
            parsed: Any = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            parsed = None
        # Recorded before any validation: tests inspect exactly what the client sent.
        spark._record(
            {
                "method": self.command,
                "path": self.path,
                "headers": _Headers(self.headers.items()),
                "json": parsed,
                "authorization": self.headers.get("Authorization"),
                "body": raw.decode("utf-8", "replace"),
                "sid": sid,
                # (host, port) of the client's end: tells a reused connection from a new one.
                "client": tuple(self.client_address),
            }
        )
        try:
            self._serve(sid, parsed)
        except _Rejection as rejection:
            self._send_json(rejection.status, rejection.body, reason=rejection.reason)

    def _serve(self, sid: str, body: Any) -> None:
        spark = self.server.spark
        # spark-protocol.md: only POST {base}/chat/completions exists (no /v1/models).
        if self.command != "POST" or urlsplit(self.path).path != CHAT_PATH:
            raise _Rejection(404, _error_envelope(None, "Not Found"), "no such endpoint")

        self._check_auth(body)

        problem = _validate(body, spark.require_alternation)
        if problem:
            code, reason = problem
            message = f"{_error_name(code)} (sid: {sid})"
            raise _Rejection(400, _error_envelope(str(code), message), reason)
        model: str = body["model"]
        messages: list[dict[str, str]] = body["messages"]
        if model not in MODEL_WINDOWS:
            message = f"{_error_name(10005)} (sid: {sid})"
            raise _Rejection(400, _error_envelope("10005", message), f"unknown model {model!r}")

        plan = spark._plan()
        try:
            question = _parse_directives(messages[-1]["content"], plan)
        except ValueError as exc:
            message = f"{_error_name(10003)} (sid: {sid})"
            raise _Rejection(
                400, _error_envelope("10003", message), f"bad directive: {exc}"
            ) from None

        if plan.upstream is not None:
            self._reject_upstream(plan.upstream, sid)
            return

        prompt_tokens = sum(estimate_tokens(m["content"]) for m in messages)
        window = MODEL_WINDOWS[model]
        if prompt_tokens > window:
            message = f"{_error_name(10907)} (sid: {sid})"
            reason = f"about {prompt_tokens} prompt tokens > {window} for {model}"
            raise _Rejection(400, _error_envelope("10907", message), reason)

        text = plan.reply if plan.reply is not None else f"Echo: {question}"
        chunks = split_tokens(text, plan.tokens)
        if body.get("stream") is True:
            self._stream(sid, plan, chunks, prompt_tokens)
        else:
            self._reply(sid, plan, chunks, prompt_tokens)

    def _check_auth(self, body: Any) -> None:
        spark = self.server.spark
        header = self.headers.get("Authorization") or ""
        scheme, _, password = header.partition(" ")
        if scheme.lower() != "bearer" or not password.strip():
            raise _Rejection(401, INVALID_USER_BODY, "missing or malformed Authorization header")
        passwords = spark.passwords
        if passwords is None:
            return
        # spark-protocol.md: each model version has its own APIPassword, sent verbatim.
        model = body.get("model") if isinstance(body, dict) else None
        expected = passwords.get(model) if isinstance(model, str) else None
        if expected is None:
            expected = passwords.get("*")
        if expected is None or password != expected:
            raise _Rejection(401, INVALID_USER_BODY, f"wrong APIPassword for model {model!r}")

    def _reject_upstream(self, what: str, sid: str) -> None:
        if what == "auth":
            raise _Rejection(401, INVALID_USER_BODY, "[[upstream:auth]]")
        if what == "nonjson":
            # A gateway in front of Spark answering with HTML.
            self._send(502, NONJSON_BODY, "text/html; charset=utf-8")
            return
        code = int(what)
        status = UPSTREAM_STATUS.get(code, 400)
        message = f"{_error_name(code)} (sid: {sid})"
        raise _Rejection(status, _error_envelope(str(code), message), f"[[upstream:{code}]]")

    # ---- non-streaming ---------------------------------------------------------------

    def _reply(self, sid: str, plan: _Plan, chunks: list[str], prompt_tokens: int) -> None:
        try:
            self._wait(plan.first_token_delay)
            if plan.drop:
                # Close without sending any response at all.
                self.close_connection = True
                return
            if plan.stall is not None:
                self._wait(plan.stall)
                self.close_connection = True
                return
        except (_ClientGone, _Stopped):
            self.close_connection = True
            return
        code = plan.inband if plan.inband is not None else plan.midstream
        if code is not None:
            # spark-protocol.md "Errors" (2): HTTP 200 whose integer code is non-zero.
            self._send_json(200, {"code": code, "message": _error_name(code), "sid": sid})
            return
        completion = len(chunks)
        self._send_json(
            200,
            {
                "code": 0,
                "message": "Success",
                "sid": sid,
                "choices": [
                    {
                        "message": {"role": "assistant", "content": "".join(chunks)},
                        "index": 0,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": prompt_tokens + completion,
                },
            },
        )

    # ---- streaming -------------------------------------------------------------------

    def _stream(self, sid: str, plan: _Plan, chunks: list[str], prompt_tokens: int) -> None:
        spark = self.server.spark
        chunked = plan.framing != "close"
        spark._stream_delta(+1)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                # Close-delimited: no Content-Length, no chunking; body ends at EOF.
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.flush()
            self._send_frames(sid, plan, chunks, prompt_tokens, chunked)
        except _ClientGone:
            spark._client_gone()
            self.close_connection = True
        except _Stopped:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            if not spark._stop_event.is_set():
                spark._client_gone()
            self.close_connection = True
        except OSError:
            # stop() shut the socket down under us.
            if not spark._stop_event.is_set():
                raise
            self.close_connection = True
        finally:
            spark._stream_delta(-1)

    def _send_frames(
        self,
        sid: str,
        plan: _Plan,
        chunks: list[str],
        prompt_tokens: int,
        chunked: bool,
    ) -> None:
        created = int(time.time())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(chunks),
            "total_tokens": prompt_tokens + len(chunks),
        }

        def frame(content: str, *, code: int = 0, with_usage: bool = False) -> None:
            payload: dict[str, Any] = {
                "code": code,
                "message": "Success" if code == 0 else _error_name(code),
                "sid": sid,
                "id": sid,
                "created": created,
                # spark-protocol.md: role repeats on every chunk.
                "choices": [{"delta": {"role": "assistant", "content": content}, "index": 0}],
            }
            if with_usage:
                payload["usage"] = usage
            self._write_event(json.dumps(payload, ensure_ascii=False, separators=(",", ":")), plan)

        self._wait(plan.first_token_delay)
        if plan.comments:
            # spark-protocol.md "Streaming reply": ignore blank lines and comments.
            self._write(b": ping\n\n\n", chunked)

        if plan.inband is not None:
            # In-band refusal as the very first chunk; the stream ends without [DONE].
            frame("", code=plan.inband)
            self._end(chunked)
            return

        cut_short = plan.midstream is not None or plan.drop or plan.stall is not None
        count = len(chunks) // 2 if cut_short else len(chunks)
        for index in range(count):
            if index:
                self._wait(plan.token_interval)
            last = index == len(chunks) - 1
            frame(chunks[index], with_usage=last and not plan.usage_separate)

        if plan.midstream is not None:
            # spark-protocol.md: output moderation (10014) arrives in a 200 mid-stream,
            # after some text.
            self._wait(plan.token_interval)
            frame("", code=plan.midstream)
            self._end(chunked)
            return
        if plan.drop:
            # Abrupt close: no [DONE] and, when chunked, no terminating zero chunk.
            self.close_connection = True
            return
        if plan.stall is not None:
            self._wait(plan.stall)
            self.close_connection = True
            return

        if not chunks or plan.usage_separate:
            # usage on a final chunk with empty content (as in spark-protocol.md).
            self._wait(plan.token_interval if chunks else 0)
            frame("", with_usage=True)
        self._write_event("[DONE]", plan)
        self._end(chunked, close=not chunked)

    def _end(self, chunked: bool, close: bool = True) -> None:
        """End the body cleanly (zero chunk if chunked); maybe drop the connection."""
        if chunked:
            self._write(b"", chunked, final=True)
        if close:
            self.close_connection = True

    def _write_event(self, data: str, plan: _Plan) -> None:
        # spark-protocol.md: the documents print "data:" with no space; real traffic
        # has been seen with "data: ".
        prefix = b"data: " if plan.data_space else b"data:"
        self._write(prefix + data.encode("utf-8") + b"\n\n", plan.framing != "close")

    def _write(self, data: bytes, chunked: bool, final: bool = False) -> None:
        if self.server.spark._stop_event.is_set():
            raise _Stopped
        if self._peer_closed():
            raise _ClientGone
        if chunked:
            data = b"0\r\n\r\n" if final else b"%x\r\n%b\r\n" % (len(data), data)
        # wfile is unbuffered (one sendall per frame), so each frame leaves immediately.
        self.wfile.write(data)
        self.wfile.flush()

    # ---- helpers ---------------------------------------------------------------------

    def _peer_closed(self) -> bool:
        """True when the client has closed its end (EOF pending on the socket)."""
        if not _CAN_PEEK:
            return False
        try:
            return self.connection.recv(1, _PEEK_FLAGS) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def _wait(self, seconds: float) -> None:
        """Sleep; raise early on stop() or when the client goes away."""
        stop = self.server.spark._stop_event
        if stop.is_set():
            raise _Stopped
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if stop.wait(min(remaining, _WAIT_SLICE)):
                raise _Stopped
            if self._peer_closed():
                raise _ClientGone

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str, reason: str = "") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if reason:
                # Not part of Spark: tells a test author why the fake said no.
                self.send_header("X-Spark-Test-Reason", reason.encode("ascii", "replace").decode())
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _send_json(self, status: int, obj: dict[str, Any], reason: str = "") -> None:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self._send(status, body, "application/json", reason)


class SparkServer:
    """A fake Spark endpoint: ``url`` is the base (``http://127.0.0.1:PORT/v1``).

    Behaviour attributes (``first_token_delay``, ``token_interval``, ``tokens``,
    ``reply``, ``data_space``, ``framing``, ``passwords``) may be changed at any time
    and apply to the next request; ``reset()`` restores the constructor values and
    clears ``requests``.

    Extras beyond the agreed interface: ``require_alternation`` (default False; when
    True two user or two assistant turns in a row give 10003), ``verbose`` (log
    requests to stderr), ``wait_idle()``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        passwords: dict[str, str] | None = None,
        first_token_delay: float = 0.0,
        token_interval: float = 0.0,
        tokens: int | None = None,
        reply: str | None = None,
        data_space: bool = False,
        framing: str = "chunked",
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        self._defaults: dict[str, Any] = {
            "passwords": dict(passwords) if passwords is not None else None,
            "first_token_delay": first_token_delay,
            "token_interval": token_interval,
            "tokens": tokens,
            "reply": reply,
            "data_space": data_space,
            "framing": framing,
            "require_alternation": False,
        }
        self.passwords: dict[str, str] | None = None
        self.first_token_delay: float = 0.0
        self.token_interval: float = 0.0
        self.tokens: int | None = None
        self.reply: str | None = None
        self.data_space: bool = False
        self.framing: str = "chunked"
        self.require_alternation: bool = False
        self._restore_defaults()
        self.verbose = False

        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._sids = itertools.count(1)
        self._active_streams = 0
        self._closed_early = 0
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False

        # Bound (and listening) right away so ``url`` is known before start().
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.spark = self
        self.host = host
        self.port: int = self._httpd.server_address[1]
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = f"http://{url_host}:{self.port}/v1"

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._stopped:
            raise RuntimeError("a stopped SparkServer cannot be restarted")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"spark-server-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; returns quickly even with streams in progress or stalled."""
        if self._stopped:
            return
        self._stopped = True
        self._stop_event.set()  # wakes every stalled / delayed handler
        if self._thread is not None:
            self._httpd.shutdown()  # only safe once serve_forever() is running
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # Unblocks handlers waiting on keep-alive reads and clients waiting on us.
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- state for tests -------------------------------------------------------------

    def reset(self) -> None:
        """Forget recorded requests and counters; restore constructor behaviour."""
        with self._lock:
            self.requests.clear()
            self._closed_early = 0
        self._restore_defaults()

    @property
    def active_streams(self) -> int:
        """Streaming responses in progress (including their first-token delay)."""
        return self._active_streams

    @property
    def closed_early(self) -> int:
        """Streams whose client disconnected before the end."""
        return self._closed_early

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no stream is in progress; True if that happened in time."""
        deadline = time.monotonic() + timeout
        while self._active_streams:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    # ---- internals used by the handler -----------------------------------------------

    def _restore_defaults(self) -> None:
        for name, value in self._defaults.items():
            setattr(self, name, dict(value) if isinstance(value, dict) else value)

    def _plan(self) -> _Plan:
        framing = self.framing if self.framing in FRAMINGS else "chunked"
        return _Plan(
            first_token_delay=float(self.first_token_delay or 0.0),
            token_interval=float(self.token_interval or 0.0),
            tokens=self.tokens,
            reply=self.reply,
            data_space=bool(self.data_space),
            framing=framing,
        )

    def _new_sid(self) -> str:
        # Shape of spark-protocol.md's example "cha000b0003@dx1905cd86d6bb86d552".
        with self._lock:
            number = next(self._sids)
        return f"cha000b000{number}@dx{secrets.token_hex(9)}"

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(entry)

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _stream_delta(self, delta: int) -> None:
        with self._lock:
            self._active_streams += delta

    def _client_gone(self) -> None:
        with self._lock:
            self._closed_early += 1


# ---- command line --------------------------------------------------------------------


def _parse_passwords(values: list[str] | None) -> dict[str, str] | None:
    """``MODEL=PASSWORD`` or just ``PASSWORD`` (meaning any model, key "*")."""
    if not values:
        return None
    passwords: dict[str, str] = {}
    for value in values:
        model, sep, password = value.partition("=")
        if sep and (model in MODEL_WINDOWS or model == "*"):
            passwords[model] = password
        else:
            passwords["*"] = value  # APIPasswords look like "key:secret" and may contain "="
    return passwords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.spark_server",
        description="Serve a fake iFlytek Spark chat API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--first-token-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--token-interval", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--tokens", type=int, default=None, help="chunks per streamed reply")
    parser.add_argument("--reply", default=None, help="fixed reply text (default: echo)")
    parser.add_argument("--data-space", action="store_true", help='send "data: " with a space')
    parser.add_argument("--framing", choices=FRAMINGS, default="chunked")
    parser.add_argument(
        "--password",
        action="append",
        metavar="[MODEL=]PASSWORD",
        help="expected APIPassword (repeatable); without MODEL= it applies to all",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    server = SparkServer(
        host=args.host,
        port=args.port,
        passwords=_parse_passwords(args.password),
        first_token_delay=args.first_token_delay,
        token_interval=args.token_interval,
        tokens=args.tokens,
        reply=args.reply,
        data_space=args.data_space,
        framing=args.framing,
    )
    server.verbose = args.verbose
    # SIGTERM (e.g. from a benchmark harness) exits through the finally block below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
