"""What a provider's chat API looks like on the wire: its checks, chunks and error shapes.

The server (server.py) does the HTTP, the timing and the faults; a ``Dialect`` decides what the
bytes say. ``SparkDialect`` follows docs/spark-protocol.md. Another provider (an OpenAI-compatible
variant such as DeepSeek, Qwen or GLM) is a subclass that overrides the render methods
(``chunk``, ``chunk_error``, ``completion``, ``completion_error``, ``rejection``) and its
tables (models, error statuses), and is passed as ``SparkServer(dialect=...)`` /
``UpstreamServer(dialect=...)``.
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

from .plan import estimate_tokens

__all__ = ["Dialect", "Rejection", "SparkDialect"]


class Rejection(Exception):
    """A request refused before any reply: HTTP status, body, and (for test authors) why."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any] | bytes,
        reason: str = "",
        content_type: str = "application/json",
    ) -> None:
        super().__init__(reason or repr(body))
        self.status = status
        self.body = body
        self.reason = reason
        self.content_type = content_type


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Dialect:
    """The provider-neutral part: an OpenAI-style ``POST {base}/chat/completions`` with a
    Bearer key. Subclasses fill in the models, the error codes and the JSON shapes."""

    name = "generic"
    base_path = "/v1"
    chat_path = "/v1/chat/completions"
    done = "[DONE]"  # the data of the stream's last event
    reason_header = "X-Stand-In-Reason"  # not part of any API: why the stand-in said no
    # Codes for [[inband]] / [[midstream]] without a value.
    inband_default = 10013
    midstream_default = 10014
    model_windows: dict[str, int] = {}  # model id -> context window (tokens); {} accepts any
    model_max_tokens: dict[str, int] = {}
    error_names: dict[int, str] = {}
    upstream_status: dict[int, int] = {}  # HTTP status of an up-front rejection, by code
    invalid_data_code = 10003
    invalid_parameter_code = 10005
    too_long_code = 10907
    nonjson_body = b"<html><body>Bad Gateway</body></html>"  # a gateway answering for the API

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    # ---- checks (raise Rejection) ------------------------------------------------------------

    def check_auth(self, authorization: str | None, body: Any, passwords: dict | None) -> None:
        """``passwords`` maps a model id (or "*", any model) to the key it expects; None
        accepts any non-empty Bearer key."""
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise self.auth_rejection("missing or malformed Authorization header")
        if passwords is None:
            return
        model = body.get("model") if isinstance(body, dict) else None
        expected = passwords.get(model) if isinstance(model, str) else None
        if expected is None:
            expected = passwords.get("*")
        if expected is None or key != expected:
            raise self.auth_rejection(f"wrong key for model {model!r}")

    def validate(self, body: Any, *, require_alternation: bool, sid: str) -> None:
        """The request body: structure (invalid data), then parameters and model."""
        problem = self.body_problem(body, require_alternation)
        if problem is None:
            model = body["model"]
            if self.model_windows and model not in self.model_windows:
                problem = self.invalid_parameter_code, f"unknown model {model!r}"
        if problem is not None:
            code, reason = problem
            raise self.rejection(code, sid, reason, status=400)

    def body_problem(self, body: Any, require_alternation: bool) -> tuple[int, str] | None:
        bad = self.invalid_data_code
        if not isinstance(body, dict):
            return bad, "body is not a JSON object"
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return bad, "model is missing"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return bad, "messages must be a non-empty list"
        previous = None
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                return bad, f"messages[{index}] is not an object"
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user", "assistant"):
                return bad, f"messages[{index}].role {role!r} is not system/user/assistant"
            # A non-empty string; an empty assistant message in the history has been seen to
            # cause invalid data, so whitespace-only is refused too.
            if not isinstance(content, str) or not content.strip():
                return bad, f"messages[{index}].content must be a non-empty string"
            if role == "system" and index != 0:
                return bad, f"messages[{index}]: a system message may only come first"
            if require_alternation and role != "system" and role == previous:
                return bad, f"messages[{index}]: two {role} turns in a row"
            previous = role
        if messages[-1].get("role") != "user":
            return bad, "the last message must have role user"
        return self.parameter_problem(body, model)

    def parameter_problem(self, body: dict[str, Any], model: str) -> tuple[int, str] | None:
        bad = self.invalid_parameter_code
        ranges = {  # name: (low, high, low is exclusive)
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
            if not _is_number(value) or not low <= value <= high or (exclusive and value == low):
                return bad, f"{name}={value!r} is out of range"
        if "top_k" in body and not isinstance(body["top_k"], int):
            return bad, "top_k must be an integer"
        if "max_tokens" in body:
            value, limit = body["max_tokens"], self.model_max_tokens.get(model, 8192)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
                return bad, f"max_tokens={value!r} is outside 1..{limit} for {model}"
        if "stream" in body and not isinstance(body["stream"], bool):
            return bad, "stream must be a boolean"
        if "user" in body and not isinstance(body["user"], str):
            return bad, "user must be a string"
        return None

    def prompt_tokens(self, body: dict[str, Any], sid: str) -> int:
        """The prompt's size; raises the "too long" rejection over the model's window."""
        tokens = sum(estimate_tokens(m["content"]) for m in body["messages"])
        window = self.model_windows.get(body["model"])
        if window is not None and tokens > window:
            reason = f"about {tokens} prompt tokens > {window} for {body['model']}"
            raise self.rejection(self.too_long_code, sid, reason, status=400)
        return tokens

    # ---- rendering ---------------------------------------------------------------------------

    def new_sid(self) -> str:
        return f"req-{next(self._ids)}-{secrets.token_hex(6)}"

    def error_name(self, code: int) -> str:
        return self.error_names.get(code, f"error {code}")

    def rejection(
        self, code: int, sid: str, reason: str = "", *, status: int | None = None
    ) -> Rejection:
        """Refused up front: non-2xx with an OpenAI-style error envelope."""
        body = {
            "error": {
                "message": self.error_name(code),
                "type": "api_error",
                "param": None,
                "code": code,
            }
        }
        return Rejection(status or self.upstream_status.get(code, 400), body, reason)

    def auth_rejection(self, reason: str) -> Rejection:
        body = {
            "error": {"message": "invalid key", "type": "api_error", "param": None, "code": None}
        }
        return Rejection(401, body, reason)

    def nonjson_rejection(self) -> Rejection:
        return Rejection(502, self.nonjson_body, "[[upstream:nonjson]]", "text/html; charset=utf-8")

    def not_found(self) -> Rejection:
        body = {"error": {"message": "Not Found", "type": "api_error", "param": None, "code": None}}
        return Rejection(404, body, "no such endpoint")

    def usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def completion(self, sid: str, content: str, usage: dict[str, int]) -> dict[str, Any]:
        raise NotImplementedError

    def completion_error(self, sid: str, code: int) -> dict[str, Any]:
        """A non-streaming HTTP 200 that carries an error."""
        raise NotImplementedError

    def chunk(
        self, sid: str, created: int, content: str, usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def chunk_error(self, sid: str, created: int, code: int) -> dict[str, Any]:
        """A streamed chunk that carries an error (in-band or mid-stream)."""
        raise NotImplementedError

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class SparkDialect(Dialect):
    """iFlytek Spark's HTTP chat API, as docs/spark-protocol.md describes it."""

    name = "spark"
    reason_header = "X-Spark-Test-Reason"
    # "Models and context windows" ("general" is the old name of "lite").
    model_windows = {
        "lite": 8192,
        "general": 8192,
        "generalv3": 8192,
        "pro-128k": 131072,
        "generalv3.5": 8192,
        "max-32k": 32768,
        "4.0Ultra": 8192,
    }
    model_max_tokens = {
        "lite": 4096,
        "general": 4096,
        "generalv3": 8192,
        "pro-128k": 4096,
        "generalv3.5": 8192,
        "max-32k": 8192,
        "4.0Ultra": 8192,
    }
    # Up-front errors carry "<Name> (sid: <sid>)" as the message ("AppIdNoAuthError (sid: ...)").
    error_names = {
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
    # The HTTP status is not reliable (11200 has been seen with 500): these are the ones we send.
    upstream_status = {
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

    def new_sid(self) -> str:
        # The shape of the documented example "cha000b0003@dx1905cd86d6bb86d552".
        return f"cha000b000{next(self._ids)}@dx{secrets.token_hex(9)}"

    def rejection(
        self, code: int, sid: str, reason: str = "", *, status: int | None = None
    ) -> Rejection:
        # "Errors: two shapes" (1): the code is a string and the sid sits inside the message.
        body = {
            "error": {
                "message": f"{self.error_name(code)} (sid: {sid})",
                "type": "api_error",
                "param": None,
                "code": str(code),
            }
        }
        return Rejection(status or self.upstream_status.get(code, 400), body, reason)

    def auth_rejection(self, reason: str) -> Rejection:
        # A wrong APIPassword gives 401 with "code": null and the message "invalid user".
        body = {
            "error": {"message": "invalid user", "type": "api_error", "param": None, "code": None}
        }
        return Rejection(401, body, reason)

    def completion(self, sid: str, content: str, usage: dict[str, int]) -> dict[str, Any]:
        return {
            "code": 0,
            "message": "Success",
            "sid": sid,
            "choices": [{"message": {"role": "assistant", "content": content}, "index": 0}],
            "usage": usage,
        }

    def completion_error(self, sid: str, code: int) -> dict[str, Any]:
        # "Errors: two shapes" (2): HTTP 200 whose integer code is non-zero.
        return {"code": code, "message": self.error_name(code), "sid": sid}

    def chunk(
        self, sid: str, created: int, content: str, usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "code": 0,
            "message": "Success",
            "sid": sid,
            "id": sid,
            "created": created,
            # role repeats on every chunk.
            "choices": [{"delta": {"role": "assistant", "content": content}, "index": 0}],
        }
        if usage is not None:
            payload["usage"] = usage
        return payload

    def chunk_error(self, sid: str, created: int, code: int) -> dict[str, Any]:
        payload = self.chunk(sid, created, "")
        payload.update(code=code, message=self.error_name(code))
        return payload
