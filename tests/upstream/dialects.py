"""What a provider's chat API looks like on the wire: its checks, chunks and error shapes.

The server (server.py) does the HTTP, the timing and the faults; a ``Dialect`` decides what the
bytes say. Sources: docs/spark-protocol.md for Spark v1, providers-protocol.md (§ numbers below)
for the rest. Tags such as [U] are that page's: where a fact is unconfirmed the stand-in picks one
plausible reading and says so.

- ``SparkDialect`` ("spark", ``/v1``) and ``SparkXDialect`` ("spark-x", Spark X1.5 on ``/v2``):
  integer ``code`` in every 200 body and chunk, string codes in up-front errors.
- ``OpenAIDialect`` ("openai", a generic OpenAI-compatible server) and its variants
  ``DeepSeekDialect``, ``QwenDialect``, ``GLMDialect``, ``KimiDialect``, ``DoubaoDialect``,
  ``QianfanDialect``, ``HunyuanDialect``, ``OllamaDialect``, ``VLLMDialect``: mostly tables
  (where usage arrives, the reasoning field and its switch, ``errors``: one ``ErrorRow`` per
  error class) plus a few overridden render methods.
- ``DIALECTS`` maps each name to its class, ``ALL_DIALECTS`` lists the names,
  ``make_dialect(name)`` builds one.

A dialect renders one request (a ``Turn``) through ``chunk``, ``search_chunk``, ``closing``,
``chunk_error``, ``completion``, ``completion_error`` and refuses through ``error(kind, ...)``
(kinds: ``ERROR_CLASSES`` plus ``invalid``, ``parameter``, ``not_found``), ``rejection(code)``
(``[[upstream:CODE]]``), ``auth_rejection`` and ``nonjson_rejection``.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, NamedTuple

from .plan import estimate_tokens

__all__ = [
    "ALL_DIALECTS",
    "DIALECTS",
    "DeepSeekDialect",
    "Dialect",
    "DoubaoDialect",
    "ErrorRow",
    "GLMDialect",
    "HunyuanDialect",
    "KimiDialect",
    "OllamaDialect",
    "OpenAIDialect",
    "QianfanDialect",
    "QwenDialect",
    "Rejection",
    "SparkDialect",
    "SparkXDialect",
    "Turn",
    "VLLMDialect",
    "make_dialect",
]


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


class ErrorRow(NamedTuple):
    """How a provider refuses one class of request: the HTTP status and the error's fields
    (which of them appear in the body is the dialect's ``envelope``)."""

    status: int
    code: str | int | None
    type: str
    message: str


@dataclass
class Turn:
    """One chat request being answered: what rendering its chunks needs. ``sent`` counts the
    chunks rendered so far (OpenAI-style streams carry the role on the first one only)."""

    sid: str
    created: int
    body: dict[str, Any]
    usage: dict[str, int]
    sent: int = 0

    @property
    def model(self) -> str:
        return str(self.body.get("model") or "")

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(content: object) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return ""


class Dialect:
    """The provider-neutral part: an OpenAI-style ``POST {base}/chat/completions`` with a
    Bearer key, and Spark's strict message rules. Subclasses fill in the models, the error
    codes and the JSON shapes."""

    name = "generic"
    base_path = "/v1"
    done = "[DONE]"  # the data of the stream's last event
    data_space = False  # "data: " rather than Spark's documented "data:" ([[space]] forces it)
    reason_header = "X-Stand-In-Reason"  # not part of any API: why the stand-in said no
    # Codes for [[inband]] / [[midstream]] / [[stream_error]] without a value.
    inband_default = 10013
    midstream_default = 10014
    model_windows: dict[str, int] = {}  # model id -> context window (tokens); {} accepts any
    model_max_tokens: dict[str, int] = {}
    default_max_tokens: int | None = 8192  # max_tokens limit of a model not in the table
    error_names: dict[int, str] = {}
    upstream_status: dict[int, int] = {}  # HTTP status of an up-front rejection, by code
    parameter_ranges: dict[str, tuple[float, float, bool]] = {  # (low, high, low is exclusive)
        "temperature": (0, 2, False),
        "top_p": (0, 1, True),
        "top_k": (1, 6, False),
        "presence_penalty": (-2, 2, False),
        "frequency_penalty": (-2, 2, False),
    }
    reasoning_field: str | None = None  # None: the models do not reason
    # How a request switches reasoning off (see ``thinking``): "thinking" ({"type": ...}),
    # "enable_thinking" (a boolean), "reasoning_effort" ("none"), "chat_template_kwargs".
    thinking_switch = "thinking"
    thinking_types: tuple[str, ...] = ("enabled", "disabled")
    usage_on_last_content = False  # Spark v1: usage rides on the last content chunk
    done_after_error = False  # vLLM: [DONE] follows an error event
    nonjson_body = b"<html><body>Bad Gateway</body></html>"  # a gateway answering for the API

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    @property
    def chat_path(self) -> str:
        return f"{self.base_path}/chat/completions"

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
                problem = "parameter", f"unknown model {model!r}"
        if problem is not None:
            kind, reason = problem
            raise self.error(kind, sid, reason)

    def body_problem(self, body: Any, require_alternation: bool) -> tuple[str, str] | None:
        """(kind, reason): kind "invalid" (malformed) or "parameter" (a value out of range)."""
        if not isinstance(body, dict):
            return "invalid", "body is not a JSON object"
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "invalid", "model is missing"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "invalid", "messages must be a non-empty list"
        reason = self.messages_problem(messages, require_alternation)
        if reason is not None:
            return "invalid", reason
        return self.parameter_problem(body, model)

    def messages_problem(self, messages: list[Any], require_alternation: bool) -> str | None:
        previous = None
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                return f"messages[{index}] is not an object"
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "user", "assistant"):
                return f"messages[{index}].role {role!r} is not system/user/assistant"
            # A non-empty string; an empty assistant message in the history has been seen to
            # cause invalid data, so whitespace-only is refused too.
            if not isinstance(content, str) or not content.strip():
                return f"messages[{index}].content must be a non-empty string"
            if role == "system" and index != 0:
                return f"messages[{index}]: a system message may only come first"
            if require_alternation and role != "system" and role == previous:
                return f"messages[{index}]: two {role} turns in a row"
            previous = role
        if messages[-1].get("role") != "user":
            return "the last message must have role user"
        return None

    def parameter_problem(self, body: dict[str, Any], model: str) -> tuple[str, str] | None:
        for name, (low, high, exclusive) in self.parameter_ranges.items():
            if name not in body:
                continue
            value = body[name]
            if not _is_number(value) or not low <= value <= high or (exclusive and value == low):
                return "parameter", f"{name}={value!r} is out of range"
        if "top_k" in body and not isinstance(body["top_k"], int):
            return "parameter", "top_k must be an integer"
        if "max_tokens" in body:
            value = body["max_tokens"]
            limit = self.model_max_tokens.get(model, self.default_max_tokens)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return "parameter", f"max_tokens={value!r} is not a positive integer"
            if limit is not None and value > limit:
                return "parameter", f"max_tokens={value!r} is outside 1..{limit} for {model}"
        if "stream" in body and not isinstance(body["stream"], bool):
            return "parameter", "stream must be a boolean"
        if "user" in body and not isinstance(body["user"], str):
            return "parameter", "user must be a string"
        return self.thinking_problem(body)

    def thinking_problem(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if self.reasoning_field is None:
            return None
        if self.thinking_switch == "thinking" and "thinking" in body:
            thinking = body["thinking"]
            if not isinstance(thinking, dict) or thinking.get("type") not in self.thinking_types:
                return "parameter", f"thinking.type must be one of {self.thinking_types}"
        enable = body.get("enable_thinking")
        if self.thinking_switch == "enable_thinking" and not isinstance(enable, bool | None):
            return "parameter", "enable_thinking must be a boolean"
        return None

    def prompt_tokens(self, body: dict[str, Any], sid: str) -> int:
        """The prompt's size; raises the "too long" rejection over the model's window."""
        tokens = sum(estimate_tokens(_text(m.get("content"))) for m in body["messages"])
        window = self.window(body["model"])
        if window is not None and tokens > window:
            reason = f"about {tokens} prompt tokens > {window} for {body['model']}"
            raise self.error("context", sid, reason)
        return tokens

    def window(self, model: str) -> int | None:
        return self.model_windows.get(model)

    def thinking(self, body: dict[str, Any]) -> bool:
        """Whether a reasoning model may reason for this request (on unless switched off)."""
        if self.reasoning_field is None:
            return False
        switch = self.thinking_switch
        if switch == "thinking":
            thinking = body.get("thinking")
            return not (isinstance(thinking, dict) and thinking.get("type") == "disabled")
        if switch == "enable_thinking":
            return body.get("enable_thinking") is not False
        if switch == "reasoning_effort":
            return body.get("reasoning_effort") != "none"
        kwargs = body.get("chat_template_kwargs")  # "chat_template_kwargs"
        return not (isinstance(kwargs, dict) and kwargs.get("enable_thinking") is False)

    def question(self, body: dict[str, Any]) -> str:
        """The text the ``[[directives]]`` are read from: the last user message's."""
        for message in reversed(body["messages"]):
            if isinstance(message, dict) and message.get("role") == "user":
                return _text(message.get("content"))
        return ""

    # ---- refusals ----------------------------------------------------------------------------

    def error(self, kind: str, sid: str, reason: str = "") -> Rejection:
        """Refused up front for a class of reason: ``ERROR_CLASSES`` ("auth", "balance",
        "rate_limit", "moderation", "context", "unavailable"), "invalid" (malformed request),
        "parameter" (a value out of range, an unknown model), "not_found" (no such endpoint)."""
        raise NotImplementedError

    def rejection(
        self, code: int, sid: str, reason: str = "", *, status: int | None = None
    ) -> Rejection:
        """Refused up front with a provider code (``[[upstream:CODE]]``)."""
        raise NotImplementedError

    def auth_rejection(self, reason: str) -> Rejection:
        return self.error("auth", "", reason)

    def nonjson_rejection(self) -> Rejection:
        return Rejection(502, self.nonjson_body, "[[upstream:nonjson]]", "text/html; charset=utf-8")

    def not_found(self) -> Rejection:
        return self.error("not_found", "", "no such endpoint")

    # ---- rendering ---------------------------------------------------------------------------

    def new_sid(self) -> str:
        return f"req-{next(self._ids)}-{secrets.token_hex(6)}"

    def error_name(self, code: int) -> str:
        return self.error_names.get(code, f"error {code}")

    def usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def stream_preamble(self, turn: Turn) -> bytes:
        """Bytes sent right after the response head, before the first-token delay."""
        return b""

    def completion_prefix(self, turn: Turn) -> bytes:
        """Bytes before a non-streaming JSON body (keep-alive blank lines)."""
        return b""

    def chunk(
        self,
        turn: Turn,
        content: str | None = None,
        *,
        reasoning: str | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        """One streamed chunk: answer text, or reasoning text, or neither (a closing chunk)."""
        raise NotImplementedError

    def search_chunk(self, turn: Turn) -> dict[str, Any] | None:
        """Web search results before the answer (``[[search]]``); None: not this dialect or
        not enabled by the request."""
        return None

    def closing(self, turn: Turn, finish: str | None, usage_sent: bool) -> list[dict[str, Any]]:
        """The chunks after the answer, before [DONE]: the finish chunk (``finish``, None for a
        normal end) and usage, wherever this dialect puts them."""
        raise NotImplementedError

    def chunk_error(self, turn: Turn, code: int) -> dict[str, Any]:
        """A streamed event that carries an error (in-band or mid-stream)."""
        raise NotImplementedError

    def completion(
        self, turn: Turn, content: str, *, reasoning: str | None, finish: str | None
    ) -> dict[str, Any]:
        """The non-streaming reply (``finish``: None for a normal end)."""
        raise NotImplementedError

    def completion_error(self, turn: Turn, code: int) -> dict[str, Any] | Rejection:
        """A non-streaming reply that carries an error: an HTTP 200 body, or a Rejection."""
        raise NotImplementedError

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---- Spark ---------------------------------------------------------------------------------------

# Two results; providers-protocol.md §5 calls the shape [L, U], the SDK demo's is used.
_SEARCH_OUTPUTS = [
    {"index": 1, "title": "Example result A", "link": "https://example.com/a"},
    {"index": 2, "title": "Example result B", "link": "https://example.com/b"},
]


class SparkDialect(Dialect):
    """iFlytek Spark's HTTP chat API, as docs/spark-protocol.md describes it."""

    name = "spark"
    reason_header = "X-Spark-Test-Reason"
    # v1: usage on the last content chunk and no finish_reason; an empty closing chunk carries
    # usage when no content chunk did ([[usage:separate]], an empty reply), or [[finish]].
    usage_on_last_content = True
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
    # The code for each class of refusal (providers-protocol.md §3, the Spark row).
    class_codes = {
        "invalid": 10003,
        "parameter": 10005,
        "context": 10907,
        "balance": 11200,
        "rate_limit": 11202,
        "moderation": 10013,
        "unavailable": 10012,
    }

    def new_sid(self) -> str:
        # The shape of the documented example "cha000b0003@dx1905cd86d6bb86d552".
        return f"cha000b000{next(self._ids)}@dx{secrets.token_hex(9)}"

    def error(self, kind: str, sid: str, reason: str = "") -> Rejection:
        if kind == "auth":
            # A wrong APIPassword gives 401 with "code": null and the message "invalid user".
            body = {
                "error": {
                    "message": "invalid user",
                    "type": "api_error",
                    "param": None,
                    "code": None,
                }
            }
            return Rejection(401, body, reason)
        if kind == "not_found":
            # "There is no models endpoint (GET /v1/models is 404)."
            body = {
                "error": {"message": "Not Found", "type": "api_error", "param": None, "code": None}
            }
            return Rejection(404, body, reason)
        return self.rejection(self.class_codes[kind], sid, reason)

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

    def search_enabled(self, body: dict[str, Any]) -> bool:
        """§5: web search is a ``web_search`` tool; ``enable: false`` stops it."""
        tools = body.get("tools")
        for tool in tools if isinstance(tools, list) else []:
            if isinstance(tool, dict) and tool.get("type") == "web_search":
                options = tool.get("web_search")
                return not (isinstance(options, dict) and options.get("enable") is False)
        return False

    def completion(
        self, turn: Turn, content: str, *, reasoning: str | None, finish: str | None
    ) -> dict[str, Any]:
        message = {"role": "assistant", "content": content}
        if reasoning is not None and self.reasoning_field:
            message[self.reasoning_field] = reasoning
        choice: dict[str, Any] = {"message": message, "index": 0}
        if finish is not None:
            choice["finish_reason"] = finish
        return {
            "code": 0,
            "message": "Success",
            "sid": turn.sid,
            "choices": [choice],
            "usage": turn.usage,
        }

    def completion_error(self, turn: Turn, code: int) -> dict[str, Any] | Rejection:
        # "Errors: two shapes" (2): HTTP 200 whose integer code is non-zero.
        return {"code": code, "message": self.error_name(code), "sid": turn.sid}

    def _envelope(self, turn: Turn, choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "code": 0,
            "message": "Success",
            "sid": turn.sid,
            "id": turn.sid,
            "created": turn.created,
            "choices": [choice],
        }

    def chunk(
        self,
        turn: Turn,
        content: str | None = None,
        *,
        reasoning: str | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        # role repeats on every chunk.
        delta = {"role": "assistant", "content": content or ""}
        if reasoning is not None and self.reasoning_field:
            delta[self.reasoning_field] = reasoning
        choice: dict[str, Any] = {"delta": delta, "index": 0}
        if finish_reason is not None:
            choice["finish_reason"] = finish_reason
        payload = self._envelope(turn, choice)
        if usage is not None:
            payload["usage"] = usage
        turn.sent += 1
        return payload

    def search_chunk(self, turn: Turn) -> dict[str, Any] | None:
        if not self.search_enabled(turn.body):
            return None
        call = {"type": "web_search", "web_search": {"outputs": _SEARCH_OUTPUTS}}
        delta = {"role": "tool", "tool_calls": [call]}
        turn.sent += 1
        return self._envelope(turn, {"delta": delta, "index": 0})

    def closing(self, turn: Turn, finish: str | None, usage_sent: bool) -> list[dict[str, Any]]:
        if finish is None and usage_sent:
            return []
        usage = None if usage_sent else turn.usage
        return [self.chunk(turn, "", usage=usage, finish_reason=finish)]

    def chunk_error(self, turn: Turn, code: int) -> dict[str, Any]:
        payload = self.chunk(turn, "")
        payload.update(code=code, message=self.error_name(code))
        return payload


class SparkXDialect(SparkDialect):
    """Spark X1.5 on ``/v2`` (providers-protocol.md §1, §2 and §5): reasoning chunks before the
    answer, usage on a separate final chunk, ``finish_reason`` "stop"."""

    name = "spark-x"
    base_path = "/v2"
    model_windows = {"spark-x": 65536, "x1": 65536}  # "v2 64K in / 64K out"; x1 is routed
    model_max_tokens = {"spark-x": 65535, "x1": 65535}
    parameter_ranges = {**SparkDialect.parameter_ranges, "temperature": (0, 2, True)}  # (0,2]
    reasoning_field = "reasoning_content"
    thinking_switch = "thinking"
    thinking_types = ("enabled", "disabled", "auto")  # default enabled
    usage_on_last_content = False

    def parameter_problem(self, body: dict[str, Any], model: str) -> tuple[str, str] | None:
        tools = body.get("tools")
        functions = isinstance(tools, list) and any(
            isinstance(t, dict) and t.get("type") == "function" for t in tools
        )
        if functions and self.search_enabled(body):
            # "v2 forbids mixing it with function tools".
            return "parameter", "web_search cannot be mixed with function tools on v2"
        return super().parameter_problem(body, model)

    def completion_prefix(self, turn: Turn) -> bytes:
        # "keep_alive:true puts blank lines before a non-stream body".
        return b"\n\n" if turn.body.get("keep_alive") is True else b""

    def completion(
        self, turn: Turn, content: str, *, reasoning: str | None, finish: str | None
    ) -> dict[str, Any]:
        return super().completion(turn, content, reasoning=reasoning, finish=finish or "stop")

    def closing(self, turn: Turn, finish: str | None, usage_sent: bool) -> list[dict[str, Any]]:
        return [self.chunk(turn, "", usage=turn.usage, finish_reason=finish or "stop")]


# ---- OpenAI-compatible ---------------------------------------------------------------------------


class OpenAIDialect(Dialect):
    """A generic OpenAI-compatible server, and the base of the providers that follow its shape.

    Tables a variant overrides: ``errors`` (an ``ErrorRow`` per kind, rendered by ``envelope``),
    ``usage_at`` (where usage arrives: "extra", an empty-choices chunk only when the request has
    ``stream_options.include_usage``; "finish", on the finish chunk always; "choice", inside
    ``choices[0].usage`` of the finish chunk always), ``reasoning_field``, ``thinking_switch``,
    ``has_object`` / ``repeat_role`` (chunk quirks), ``parameter_ranges``, ``context_window``.
    """

    name = "openai"
    data_space = True
    inband_default = 500
    midstream_default = 500
    default_max_tokens = None  # per model: none of the stand-in's business
    reasoning_field = "reasoning_content"
    thinking_switch = "reasoning_effort"
    usage_at = "extra"
    has_object = True  # chunks carry "object": "chat.completion.chunk"
    repeat_role = False  # the role on every chunk, not only the first
    parameter_ranges = {"temperature": (0, 2, False), "top_p": (0, 1, True)}  # §4
    context_window: int | None = None  # for any model not in model_windows; None: no limit
    id_prefix = "chatcmpl-"
    # OpenAI's own shapes; a variant replaces the rows its page documents.
    errors: dict[str, ErrorRow] = {
        "auth": ErrorRow(401, "invalid_api_key", "invalid_request_error", "Incorrect API key"),
        "balance": ErrorRow(
            429,
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        "rate_limit": ErrorRow(
            429, "rate_limit_exceeded", "requests", "Rate limit reached for requests."
        ),
        "moderation": ErrorRow(
            400,
            "content_policy_violation",
            "invalid_request_error",
            "Your request was rejected as a result of our safety system.",
        ),
        "context": ErrorRow(
            400,
            "context_length_exceeded",
            "invalid_request_error",
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in more tokens. Please reduce the length of the messages.",
        ),
        "unavailable": ErrorRow(
            503, None, "server_error", "The server is overloaded or not ready yet."
        ),
        "invalid": ErrorRow(400, None, "invalid_request_error", "Invalid request."),
        "parameter": ErrorRow(400, None, "invalid_request_error", "Invalid parameter."),
        "not_found": ErrorRow(404, None, "invalid_request_error", "Not found."),
        # An error event inside a 200 stream ([[stream_error]], [[midstream]], [[inband]]).
        "stream": ErrorRow(
            500, None, "server_error", "The server had an error while processing your request."
        ),
    }

    def new_sid(self) -> str:
        return f"{self.id_prefix}{secrets.token_hex(12)}"

    # ---- checks --------------------------------------------------------------------------

    def messages_problem(self, messages: list[Any], require_alternation: bool) -> str | None:
        # OpenAI's rules: tool turns, content parts, an assistant turn with only tool_calls.
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                return f"messages[{index}] is not an object"
            role, content = message.get("role"), message.get("content")
            if role not in ("system", "developer", "user", "assistant", "tool"):
                return f"messages[{index}].role {role!r} is not a chat role"
            if not (isinstance(content, str | list) or (content is None and role == "assistant")):
                return f"messages[{index}].content must be a string or a list of parts"
        return None

    def parameter_problem(self, body: dict[str, Any], model: str) -> tuple[str, str] | None:
        if "stream_options" in body and not isinstance(body["stream_options"], dict):
            return "parameter", "stream_options must be an object"
        return super().parameter_problem(body, model)

    def window(self, model: str) -> int | None:
        return self.model_windows.get(model, self.context_window)

    # ---- refusals ------------------------------------------------------------------------

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        """The error body: OpenAI's ``{"error": {message, type, param, code}}``."""
        return {
            "error": {"message": row.message, "type": row.type, "param": None, "code": row.code}
        }

    def error(self, kind: str, sid: str, reason: str = "") -> Rejection:
        row = self.errors[kind]
        return Rejection(row.status, self.envelope(row, sid), reason)

    def rejection(
        self, code: int, sid: str, reason: str = "", *, status: int | None = None
    ) -> Rejection:
        # [[upstream:CODE]]: CODE is the HTTP status; the body is this dialect's envelope.
        status = status or (code if 400 <= code <= 599 else 400)
        row = ErrorRow(status, str(code), "api_error", f"upstream error {code}")
        return Rejection(status, self.envelope(row, sid), reason)

    def stream_row(self, code: int) -> ErrorRow:
        row = self.errors["stream"]
        return row if code == row.status else row._replace(status=code, code=str(code))

    # ---- rendering -----------------------------------------------------------------------

    def _head(self, turn: Turn, kind: str) -> dict[str, Any]:
        head: dict[str, Any] = {"id": turn.sid}
        if self.has_object:
            head["object"] = kind
        head.update(created=turn.created, model=turn.model)
        return head

    def chunk(
        self,
        turn: Turn,
        content: str | None = None,
        *,
        reasoning: str | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if self.repeat_role or turn.sent == 0:
            delta["role"] = "assistant"
        if reasoning is not None and self.reasoning_field:
            delta[self.reasoning_field] = reasoning
        if content is not None:
            delta["content"] = content
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        payload = {**self._head(turn, "chat.completion.chunk"), "choices": [choice]}
        if usage is not None:
            payload["usage"] = usage
        elif turn.include_usage and self.usage_at == "extra":
            payload["usage"] = None  # OpenAI: every chunk has usage null, the extra one a value
        turn.sent += 1
        return payload

    def closing(self, turn: Turn, finish: str | None, usage_sent: bool) -> list[dict[str, Any]]:
        reason = finish or "stop"
        closing_content = "" if self.repeat_role else None
        if self.usage_at == "finish":
            return [self.chunk(turn, closing_content, usage=turn.usage, finish_reason=reason)]
        last = self.chunk(turn, closing_content, finish_reason=reason)
        if self.usage_at == "choice":
            last["choices"][0]["usage"] = turn.usage
            return [last]
        if not turn.include_usage:
            return [last]
        extra = {**self._head(turn, "chat.completion.chunk"), "choices": [], "usage": turn.usage}
        return [last, extra]

    def chunk_error(self, turn: Turn, code: int) -> dict[str, Any]:
        return self.envelope(self.stream_row(code), turn.sid)

    def completion(
        self, turn: Turn, content: str, *, reasoning: str | None, finish: str | None
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning is not None and self.reasoning_field:
            message[self.reasoning_field] = reasoning
        choice = {"index": 0, "message": message, "finish_reason": finish or "stop"}
        return {**self._head(turn, "chat.completion"), "choices": [choice], "usage": turn.usage}

    def completion_error(self, turn: Turn, code: int) -> dict[str, Any] | Rejection:
        # No 200-with-error shape outside Spark: the failure is an HTTP error.
        row = self.stream_row(code)
        return Rejection(row.status, self.envelope(row, turn.sid), f"error {code}")


class DeepSeekDialect(OpenAIDialect):
    """DeepSeek: ``: keep-alive`` comments before the first chunk and blank lines before a
    non-streaming body (§2); 402 for balance; 422 for bad parameters (§3)."""

    name = "deepseek"
    base_path = "/v1"
    thinking_switch = "thinking"
    context_window = 1_048_576  # "1M / 384K" [H DS5]
    errors = {
        **OpenAIDialect.errors,
        "auth": ErrorRow(
            401,
            "invalid_request_error",
            "authentication_error",
            "Authentication Fails, Your api key: ****abcd is invalid",
        ),
        "balance": ErrorRow(402, "invalid_request_error", "unknown_error", "Insufficient Balance"),
        # The code and type of a 429 are [U]; the message is the error-code page's.
        "rate_limit": ErrorRow(
            429, "rate_limit_exceeded", "rate_limit_error", "Rate Limit Reached"
        ),
        # Undocumented, seen in the wild [M].
        "moderation": ErrorRow(
            400, "invalid_request_error", "invalid_request_error", "Content Exists Risk"
        ),
        # [U]: OpenAI's wording.
        "context": ErrorRow(
            400,
            "invalid_request_error",
            "invalid_request_error",
            "This model's maximum context length is 1048576 tokens. However, you requested "
            "more tokens. Please reduce the length of the messages.",
        ),
        "unavailable": ErrorRow(503, "server_overloaded", "server_error", "Server Overloaded"),
        "invalid": ErrorRow(
            400, "invalid_request_error", "invalid_request_error", "Invalid Format"
        ),
        "parameter": ErrorRow(
            422, "invalid_request_error", "invalid_request_error", "Invalid Parameters"
        ),
        "stream": ErrorRow(500, "internal_error", "server_error", "Server Error"),
    }

    def new_sid(self) -> str:
        return str(uuid.uuid4())

    def stream_preamble(self, turn: Turn) -> bytes:
        # "`: keep-alive` comments while queued".
        return b": keep-alive\n\n"

    def completion_prefix(self, turn: Turn) -> bytes:
        # "blank lines before non-stream JSON".
        return b"\n\n"

    def chunk(
        self,
        turn: Turn,
        content: str | None = None,
        *,
        reasoning: str | None = None,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        payload = super().chunk(
            turn, content, reasoning=reasoning, usage=usage, finish_reason=finish_reason
        )
        if reasoning is not None:
            # Captures show "content": null beside reasoning_content: a client must cope.
            payload["choices"][0]["delta"]["content"] = None
        return payload


class QwenDialect(OpenAIDialect):
    """Qwen on DashScope's compatible mode: ``enable_thinking`` in the body; errors carry a
    ``request_id``; Arrearage (balance) is a 400 (§3)."""

    name = "qwen"
    base_path = "/compatible-mode/v1"
    thinking_switch = "enable_thinking"
    errors = {
        **OpenAIDialect.errors,
        "auth": ErrorRow(
            401, "InvalidApiKey", "invalid_request_error", "Invalid API-key provided."
        ),
        "balance": ErrorRow(
            400,
            "Arrearage",
            "Arrearage",
            "Access denied, please make sure your account is in good standing.",
        ),
        "rate_limit": ErrorRow(
            429,
            "Throttling.RateQuota",
            "Throttling.RateQuota",
            "Requests rate limit exceeded, please try again later.",
        ),
        "moderation": ErrorRow(
            400,
            "data_inspection_failed",
            "data_inspection_failed",
            "Input data may contain inappropriate content.",
        ),
        "context": ErrorRow(
            400,
            "InvalidParameter",
            "invalid_request_error",
            "Range of input length should be [1, 129024]",
        ),
        # [U]: no documented "unavailable" row; DashScope's generic overload code.
        "unavailable": ErrorRow(
            503,
            "ServiceUnavailable",
            "ServiceUnavailable",
            "The service is temporarily unavailable, please try again later.",
        ),
        "invalid": ErrorRow(400, "InvalidParameter", "invalid_request_error", "Invalid request."),
        "parameter": ErrorRow(
            400, "InvalidParameter", "invalid_request_error", "Invalid parameter."
        ),
        "stream": ErrorRow(
            500,
            "InternalError",
            "InternalError",
            "An internal error has occured, please try again later.",
        ),
    }

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        return {**super().envelope(row, sid), "request_id": sid}

    def parameter_problem(self, body: dict[str, Any], model: str) -> tuple[str, str] | None:
        # Open thinking models are stream-only [H QW4]; here: when thinking is asked for.
        if body.get("enable_thinking") is True and body.get("stream") is not True:
            return "thinking", "parameter.enable_thinking must be set to false for non-streaming"
        return super().parameter_problem(body, model)

    def error(self, kind: str, sid: str, reason: str = "") -> Rejection:
        if kind == "thinking":
            row = self.errors["parameter"]._replace(
                message="parameter.enable_thinking must be set to false for non-streaming calls"
            )
            return Rejection(row.status, self.envelope(row, sid), reason)
        return super().error(kind, sid, reason)


class GLMDialect(OpenAIDialect):
    """Zhipu GLM: usage on the finish chunk whether or not ``include_usage`` is sent, chunks
    without ``object`` that repeat the role (§2); digit-string codes, 1113 balance (§3)."""

    name = "glm"
    base_path = "/api/paas/v4"
    thinking_switch = "thinking"
    usage_at = "finish"
    has_object = False
    repeat_role = True
    parameter_ranges = {"temperature": (0, 1, False), "top_p": (0, 1, True)}  # §4
    id_prefix = ""
    # The envelope has only code and message: the type column is unused.
    errors = {
        "auth": ErrorRow(401, "1000", "", "Authentication failed"),
        "balance": ErrorRow(
            429, "1113", "", "Your account is in arrears, please recharge and try again."
        ),
        "rate_limit": ErrorRow(
            429,
            "1302",
            "",
            "High concurrency usage of this API, please reduce concurrency or contact customer "
            "service to increase limits.",
        ),
        "moderation": ErrorRow(
            400,
            "1301",
            "",
            "The system detected potentially unsafe or sensitive content in the input or "
            "generation.",
        ),
        "context": ErrorRow(400, "1261", "", "Prompt exceeds max length"),  # [U] (1261 reported)
        "unavailable": ErrorRow(
            429, "1305", "", "The service may be temporarily overloaded, please try again later."
        ),
        "invalid": ErrorRow(400, "1214", "", "Invalid request parameters"),  # [U]
        "parameter": ErrorRow(400, "1214", "", "Invalid request parameters"),  # [U]
        "not_found": ErrorRow(404, "404", "", "Not Found"),  # [U]
        "stream": ErrorRow(500, "500", "", "Internal server error"),  # [U]
    }

    def new_sid(self) -> str:
        return time.strftime("%Y%m%d%H%M%S") + secrets.token_hex(8)

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        return {"error": {"code": row.code, "message": row.message}}


class KimiDialect(OpenAIDialect):
    """Moonshot Kimi: usage inside ``choices[0].usage`` of the final chunk (§2); errors with a
    ``type`` and no ``code``, balance a 429 (§3)."""

    name = "kimi"
    base_path = "/v1"
    thinking_switch = "thinking"
    usage_at = "choice"
    parameter_ranges = {"temperature": (0, 1, False), "top_p": (0, 1, True)}  # §4: Moonshot v1
    context_window = 262144  # "exceeded model token limit: 262144"
    errors = {
        "auth": ErrorRow(401, None, "invalid_authentication_error", "Invalid Authentication"),
        # The help page says 403; captures show 429 [M].
        "balance": ErrorRow(
            429,
            None,
            "exceeded_current_quota_error",
            "Your account is suspended, please check your plan and billing details",
        ),
        "rate_limit": ErrorRow(
            429,
            None,
            "rate_limit_reached_error",
            "Your account reached max request, please try again later",
        ),
        "moderation": ErrorRow(
            400,
            None,
            "content_filter",
            "The request was rejected because it was considered high risk",
        ),
        "context": ErrorRow(
            400,
            None,
            "invalid_request_error",
            "Invalid request: Your request exceeded model token limit: 262144",
        ),
        "unavailable": ErrorRow(
            429,
            None,
            "engine_overloaded_error",
            "The engine is currently overloaded, please try again later",
        ),
        "invalid": ErrorRow(400, None, "invalid_request_error", "Invalid request"),
        "parameter": ErrorRow(400, None, "invalid_request_error", "Invalid request parameters"),
        "not_found": ErrorRow(404, None, "resource_not_found_error", "Not found"),
        "stream": ErrorRow(500, None, "server_error", "Internal server error"),  # [U]
    }

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        return {"error": {"message": row.message, "type": row.type}}


class DoubaoDialect(OpenAIDialect):
    """Doubao on Volcengine Ark: ``thinking`` enabled/disabled/auto (§2); messages that end
    with ``Request ID: …``, balance a 403 (§3)."""

    name = "doubao"
    base_path = "/api/v3"
    thinking_switch = "thinking"
    thinking_types = ("enabled", "disabled", "auto")
    errors = {
        "auth": ErrorRow(
            401,
            "AuthenticationError",
            "Unauthorized",
            "The API key or AK/SK in the request is missing or invalid.",
        ),
        "balance": ErrorRow(
            403,
            "AccountOverdueError",
            "Forbidden",
            "The request failed because your account has an overdue balance.",
        ),
        "rate_limit": ErrorRow(
            429,
            "RateLimitExceeded.EndpointRPMExceeded",
            "TooManyRequests",
            "The request has exceeded the RPM rate limit of the endpoint.",
        ),
        "moderation": ErrorRow(
            400,
            "InputTextSensitiveContentDetected",
            "BadRequest",
            "The request failed because the input text may contain sensitive information.",
        ),
        "context": ErrorRow(
            400,
            "OutofContextError",
            "BadRequest",
            "The request exceeded the model's maximum context length.",
        ),
        "unavailable": ErrorRow(
            429,
            "ServerOverloaded",
            "TooManyRequests",
            "The service is currently unable to handle additional requests due to server overload.",
        ),
        "invalid": ErrorRow(
            400,
            "InvalidParameter",
            "BadRequest",
            "A parameter specified in the request is not valid.",
        ),
        "parameter": ErrorRow(
            400,
            "InvalidParameter",
            "BadRequest",
            "A parameter specified in the request is not valid.",
        ),
        "not_found": ErrorRow(
            404,
            "InvalidEndpointOrModel.NotFound",
            "NotFound",
            "The model or endpoint does not exist or you do not have access to it.",
        ),
        "stream": ErrorRow(
            500,
            "InternalServiceError",
            "InternalServiceError",
            "The service encountered an unexpected internal error.",
        ),
    }

    def new_sid(self) -> str:
        return f"021{int(time.time() * 1000)}{secrets.token_hex(12)}"

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        message = f"{row.message} Request ID: {sid}"
        return {"error": {"code": row.code, "message": message, "param": "", "type": row.type}}


class QianfanDialect(OpenAIDialect):
    """Baidu Qianfan v2 (ERNIE): ``{"error": {code, message, type}, "id": "as-…"}`` (§3).
    Usage position is [U]: the empty-choices last chunk when ``include_usage`` is sent."""

    name = "qianfan"
    base_path = "/v2"
    thinking_switch = "enable_thinking"  # [U]
    id_prefix = "as-"
    errors = {
        **OpenAIDialect.errors,  # [U] rows (balance, unavailable, stream): OpenAI's shapes
        "auth": ErrorRow(
            401, "invalid_iam_token", "invalid_request_error", "IAM Certification failed"
        ),
        "rate_limit": ErrorRow(
            429, "rpm_rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached for RPM"
        ),
        "moderation": ErrorRow(
            403, "system_unsafe", "invalid_request_error", "The input contains unsafe content"
        ),
        "context": ErrorRow(
            400, "tokens_too_long", "invalid_request_error", "Prompt tokens too long"
        ),
        "invalid": ErrorRow(400, "invalid_argument", "invalid_request_error", "Invalid argument"),
        "parameter": ErrorRow(400, "invalid_argument", "invalid_request_error", "Invalid argument"),
    }

    def new_sid(self) -> str:
        return f"as-{secrets.token_hex(5)}"

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        return {"error": {"code": row.code, "message": row.message, "type": row.type}, "id": sid}


class HunyuanDialect(OpenAIDialect):
    """Tencent Hunyuan's OpenAI-compatible API. Almost all of it is [U] (§2, §3): OpenAI's error
    shapes, ``reasoning_content`` switched by ``enable_thinking``, usage on the empty-choices
    last chunk with ``include_usage``; ``[[finish:sensitive]]`` is its moderation."""

    name = "hunyuan"
    base_path = "/v1"
    thinking_switch = "enable_thinking"


class OllamaDialect(OpenAIDialect):
    """Ollama's ``/v1``: no authentication at all, the ``reasoning`` field switched off by
    ``reasoning_effort: "none"`` (§2); ``{"error": {message, type}}`` bodies (§3)."""

    name = "ollama"
    base_path = "/v1"
    reasoning_field = "reasoning"
    thinking_switch = "reasoning_effort"
    # Rows marked "—" in §3 (auth, balance, moderation) are what a proxy in front might say.
    errors = {
        "auth": ErrorRow(401, None, "api_error", "unauthorized"),
        "balance": ErrorRow(429, None, "api_error", "you have reached your usage limit"),
        "rate_limit": ErrorRow(
            429,
            None,
            "api_error",
            "server busy, please try again. maximum pending requests exceeded",
        ),
        "moderation": ErrorRow(400, None, "invalid_request_error", "content rejected"),
        "context": ErrorRow(
            400, None, "invalid_request_error", "the input length exceeds the context length"
        ),
        "unavailable": ErrorRow(503, None, "api_error", "server busy, please try again"),
        "invalid": ErrorRow(400, None, "invalid_request_error", "invalid request"),
        "parameter": ErrorRow(400, None, "invalid_request_error", "invalid parameter"),
        "not_found": ErrorRow(404, None, "api_error", 'model "x" not found, try pulling it first'),
        "stream": ErrorRow(
            500, None, "api_error", "an error was encountered while running the model"
        ),
    }

    def new_sid(self) -> str:
        return f"chatcmpl-{next(self._ids)}"

    def check_auth(self, authorization: str | None, body: Any, passwords: dict | None) -> None:
        # Ollama reads no key (the SDKs send a dummy one); with passwords set, a proxy in front.
        if passwords is not None:
            super().check_auth(authorization, body, passwords)

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        return {"error": {"message": row.message, "type": row.type}}


class VLLMDialect(OpenAIDialect):
    """vLLM's OpenAI server: a key only if started with ``--api-key`` (here: if passwords are
    set); the ``reasoning`` field, off with ``chat_template_kwargs:
    {"enable_thinking": false}`` (§2); the ≥0.10.1 envelope whose ``code`` is the HTTP status,
    and errors after the 200 as ``data: {"error": …}`` then [DONE] (§2, §3)."""

    name = "vllm"
    base_path = "/v1"
    reasoning_field = "reasoning"
    thinking_switch = "chat_template_kwargs"
    done_after_error = True
    # Rows marked "—" in §3 (balance, rate limit, moderation, unavailable) are what a gateway
    # in front might say, in vLLM's envelope.
    errors = {
        "auth": ErrorRow(401, 401, "Unauthorized", "Unauthorized"),
        "balance": ErrorRow(429, 429, "RateLimitError", "Insufficient quota"),
        "rate_limit": ErrorRow(429, 429, "RateLimitError", "Too many requests"),
        "moderation": ErrorRow(
            400, 400, "BadRequestError", "The request was rejected by content moderation"
        ),
        "context": ErrorRow(
            400,
            400,
            "BadRequestError",
            "This model's maximum context length is 32768 tokens. However, you requested more "
            "tokens in the messages, Please reduce the length of the messages.",
        ),
        "unavailable": ErrorRow(503, 503, "ServiceUnavailableError", "The server is overloaded"),
        "invalid": ErrorRow(400, 400, "BadRequestError", "Invalid request"),
        "parameter": ErrorRow(400, 400, "BadRequestError", "Invalid parameter"),
        "not_found": ErrorRow(404, 404, "NotFoundError", "Not Found"),
        "stream": ErrorRow(500, 500, "InternalServerError", "Internal server error"),
    }

    def check_auth(self, authorization: str | None, body: Any, passwords: dict | None) -> None:
        # "Bearer if --api-key" (§1): without passwords, a server started without one.
        if passwords is not None:
            super().check_auth(authorization, body, passwords)

    def error(self, kind: str, sid: str, reason: str = "") -> Rejection:
        if kind == "auth":
            # vLLM's --api-key middleware answers a flat body, not the envelope.
            return Rejection(401, {"error": "Unauthorized"}, reason)
        return super().error(kind, sid, reason)

    def envelope(self, row: ErrorRow, sid: str) -> dict[str, Any]:
        return {
            "error": {"message": row.message, "type": row.type, "param": None, "code": row.status}
        }


DIALECTS: dict[str, type[Dialect]] = {
    cls.name: cls
    for cls in (
        SparkDialect,
        SparkXDialect,
        DeepSeekDialect,
        QwenDialect,
        GLMDialect,
        KimiDialect,
        DoubaoDialect,
        QianfanDialect,
        HunyuanDialect,
        OllamaDialect,
        VLLMDialect,
        OpenAIDialect,
    )
}
ALL_DIALECTS = tuple(DIALECTS)


def make_dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]()
    except KeyError:
        raise ValueError(f"no dialect {name!r}; expected one of {', '.join(DIALECTS)}") from None
