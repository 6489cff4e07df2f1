"""The providers chatsite speaks, and what differs between them on the wire.

Every provider here answers an OpenAI-shaped ``POST {base}/chat/completions``; one client
(``openai_compatible.py``) talks to all of them and asks the provider's ``Dialect`` where they
differ: whether usage must be asked for, how reasoning is switched, the temperature range, whether
a key is needed, and which error codes mean what. docs/providers.md has the table, with the
vendors' documents behind each row.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exceptions import (
    LLMBusy,
    LLMConfigurationError,
    LLMContentRejected,
    LLMContextTooLong,
    LLMError,
    LLMInvalidRequest,
    LLMModelNotFound,
    LLMQuotaExceeded,
    LLMUnavailable,
)

# How a request switches a model's reasoning on or off (None in the options sends nothing).
THINKING_OBJECT = "thinking"  # {"thinking": {"type": "enabled" | "disabled"}}
ENABLE_THINKING = "enable_thinking"  # {"enable_thinking": true | false}
REASONING_EFFORT = "reasoning_effort"  # {"reasoning_effort": "none"} switches it off
TEMPLATE_KWARGS = "chat_template_kwargs"  # vLLM: {"chat_template_kwargs": {"enable_thinking": …}}


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    label: str
    default_base_url: str
    needs_key: bool = True
    # stream_options.include_usage: without it most providers send no usage on a stream.
    include_usage: bool = True
    thinking: str = ""
    temperature_min: float = 0.0
    temperature_max: float = 2.0
    web_search: bool = False  # Spark's web_search tool
    # Assistant turns in the history carry their reasoning back (Kimi keeps it).
    history_reasoning: bool = False
    # Open reasoning models refuse non-streaming calls with thinking on (Qwen).
    no_thinking_without_stream: bool = False

    def apply_options(self, body: dict[str, Any], options: Any, *, stream: bool) -> None:
        """Put a conversation's parameters into a request body, in this dialect's words."""
        if options is not None:
            if options.temperature is not None:
                body["temperature"] = options.temperature
            if options.max_tokens is not None:
                body["max_tokens"] = options.max_tokens
            if options.reasoning is not None:
                self._switch_reasoning(body, options.reasoning)
            if self.web_search and options.web_search is not None:
                body["tools"] = [
                    {
                        "type": "web_search",
                        "web_search": {
                            "enable": options.web_search,
                            "show_ref_label": False,
                            "search_mode": "normal",
                        },
                    }
                ]
        if self.no_thinking_without_stream and not stream:
            self._switch_reasoning(body, False)

    def _switch_reasoning(self, body: dict[str, Any], on: bool) -> None:
        if self.thinking == THINKING_OBJECT:
            body["thinking"] = {"type": "enabled" if on else "disabled"}
        elif self.thinking == ENABLE_THINKING:
            body["enable_thinking"] = on
        elif self.thinking == REASONING_EFFORT:
            if on:
                body.pop("reasoning_effort", None)  # on by default
            else:
                body["reasoning_effort"] = "none"
        elif self.thinking == TEMPLATE_KWARGS:
            body["chat_template_kwargs"] = {"enable_thinking": on}


SPARK = Dialect(
    name="spark",
    label="iFlytek Spark",
    default_base_url="https://spark-api-open.xf-yun.com/v1",
    include_usage=False,
    thinking=THINKING_OBJECT,  # X1.5 on /v2
    web_search=True,
)

DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        SPARK,
        Dialect("deepseek", "DeepSeek", "https://api.deepseek.com", thinking=THINKING_OBJECT),
        Dialect(
            "qwen",
            "Qwen (DashScope)",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            thinking=ENABLE_THINKING,
            no_thinking_without_stream=True,
        ),
        Dialect(
            "glm",
            "Zhipu GLM",
            "https://open.bigmodel.cn/api/paas/v4",
            thinking=THINKING_OBJECT,
            temperature_max=1.0,
        ),
        Dialect(
            "kimi",
            "Moonshot Kimi",
            "https://api.moonshot.cn/v1",
            thinking=THINKING_OBJECT,
            temperature_max=1.0,
            history_reasoning=True,
        ),
        Dialect(
            "doubao",
            "Doubao (Ark)",
            "https://ark.cn-beijing.volces.com/api/v3",
            thinking=THINKING_OBJECT,
        ),
        Dialect(
            "qianfan",
            "ERNIE (Qianfan)",
            "https://qianfan.baidubce.com/v2",
            thinking=ENABLE_THINKING,
        ),
        Dialect(
            "hunyuan",
            "Tencent Hunyuan",
            "https://api.hunyuan.cloud.tencent.com/v1",
            thinking=ENABLE_THINKING,
        ),
        Dialect(
            "ollama",
            "Ollama",
            "http://localhost:11434/v1",
            needs_key=False,
            thinking=REASONING_EFFORT,
        ),
        Dialect(
            "vllm", "vLLM", "http://localhost:8000/v1", needs_key=False, thinking=TEMPLATE_KWARGS
        ),
        Dialect(
            "openai",
            "OpenAI-compatible",
            "https://api.openai.com/v1",
            thinking=REASONING_EFFORT,
        ),
    )
}


def get(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}") from None


# -- errors ----------------------------------------------------------------------------------------
# The error classes by what went wrong, each with chatsite's code (the class's) and the message the
# user reads. A provider's body code decides the class, not the HTTP status: balance errors come
# as 402 (DeepSeek), 400 (Qwen), 403 (Ark) or 429 (GLM, Kimi). docs/providers.md, "Errors".

AUTH = (LLMConfigurationError, "The model service refused the API key.")
BALANCE = (
    LLMQuotaExceeded,
    "The model service account has no balance or quota left. Ask an administrator.",
)
RATE = (LLMBusy, "The model service is rate limiting requests. Try again in a moment.")
MODERATION = (LLMContentRejected, "The message was blocked by the model's content moderation.")
CONTEXT = (
    LLMContextTooLong,
    "The conversation is too long for this model. Start a new conversation.",
)
UNAVAILABLE = (LLMUnavailable, "The model service is unavailable. Try again later.")
NOT_FOUND = (
    LLMModelNotFound,
    "The model service does not know this model (is the model id right?).",
)
INVALID = (LLMInvalidRequest, "The model service rejected the request.")

Category = tuple[type[LLMError], str]

# Body codes (or, where a provider sends none, error types) of every dialect, in one table: the
# vendors' codes do not collide.
ERROR_CODES: dict[str, Category] = {
    # authentication
    "invalid_api_key": AUTH,
    "InvalidApiKey": AUTH,  # Qwen
    "authentication_error": AUTH,
    "invalid_authentication_error": AUTH,  # Kimi
    "AuthenticationError": AUTH,  # Doubao
    "invalid_iam_token": AUTH,  # Qianfan
    "invalid_appid": AUTH,
    "1000": AUTH,  # GLM 1000-1004
    "1001": AUTH,
    "1002": AUTH,
    "1003": AUTH,
    "1004": AUTH,
    # balance or quota used up: never retried
    "insufficient_quota": BALANCE,
    "insufficient_balance": BALANCE,
    "Arrearage": BALANCE,  # Qwen, HTTP 400
    "Throttling.AllocationQuota": BALANCE,  # Qwen, HTTP 429
    "1113": BALANCE,  # GLM, HTTP 429
    "exceeded_current_quota_error": BALANCE,  # Kimi, HTTP 429 (or 403)
    "AccountOverdueError": BALANCE,  # Doubao, HTTP 403
    "SetLimitExceeded": BALANCE,  # Doubao: the account's own spending limit
    # rate limits
    "rate_limit_exceeded": RATE,
    "Throttling": RATE,
    "Throttling.RateQuota": RATE,
    "limit_requests": RATE,
    "1302": RATE,
    "1303": RATE,
    "1305": RATE,
    "rate_limit_reached_error": RATE,
    "engine_overloaded_error": RATE,
    "RateLimitExceeded.EndpointRPMExceeded": RATE,
    "RateLimitExceeded.EndpointTPMExceeded": RATE,
    "rpm_rate_limit_exceeded": RATE,
    "tpm_rate_limit_exceeded": RATE,
    # moderation
    "content_filter": MODERATION,  # Kimi
    "content_policy_violation": MODERATION,
    "data_inspection_failed": MODERATION,  # Qwen
    "1301": MODERATION,  # GLM
    "InputTextSensitiveContentDetected": MODERATION,  # Doubao
    "OutputTextSensitiveContentDetected": MODERATION,
    "system_unsafe": MODERATION,  # Qianfan
    # context too long
    "context_length_exceeded": CONTEXT,
    "OutofContextError": CONTEXT,  # Doubao
    "tokens_too_long": CONTEXT,  # Qianfan
    "characters_too_long": CONTEXT,
    "1261": CONTEXT,  # GLM (reported)
    # the provider's own trouble
    "ServerOverloaded": UNAVAILABLE,  # Doubao
    "InternalServiceError": UNAVAILABLE,
    "internal_error": UNAVAILABLE,
    "server_error": UNAVAILABLE,
    "service_unavailable_error": UNAVAILABLE,
}
# Code families: a prefix and the class of every code that starts with it.
ERROR_PREFIXES: tuple[tuple[str, Category], ...] = (
    ("SensitiveContentDetected", MODERATION),  # Doubao SensitiveContentDetected.*
    ("RateLimitExceeded", RATE),
    ("Throttling", RATE),
)
# Providers without a precise code (or with a generic one such as "invalid_request_error") say
# what happened in the message: lower-case fragments, looked for only when the code did not decide.
ERROR_MESSAGES: tuple[tuple[str, Category], ...] = (
    ("maximum context length", CONTEXT),  # DeepSeek, vLLM
    ("exceeded model token limit", CONTEXT),  # Kimi
    ("input token length too long", CONTEXT),
    ("range of input length", CONTEXT),  # Qwen
    ("context length", CONTEXT),  # Ollama
    ("content exists risk", MODERATION),  # DeepSeek (undocumented)
    ("inappropriate content", MODERATION),
    ("considered high risk", MODERATION),  # Kimi
    ("insufficient balance", BALANCE),  # DeepSeek 402
    ("try pulling it first", NOT_FOUND),  # Ollama: model not pulled
)
# Finally the status, which is the least reliable witness.
ERROR_STATUSES: dict[int, Category] = {
    401: AUTH,
    402: BALANCE,  # DeepSeek
    403: AUTH,
    404: NOT_FOUND,
    429: RATE,
}

# Finish reasons that end a stream in failure, after any partial text.
FAILED_FINISH_REASONS: dict[str, Category] = {
    "sensitive": (
        LLMContentRejected,
        "The reply was stopped by the model's content moderation.",
    ),  # GLM, Hunyuan
    "content_filter": (
        LLMContentRejected,
        "The reply was stopped by the model's content moderation.",
    ),
    "network_error": (
        LLMUnavailable,
        "The model service failed while writing the reply. Try again.",
    ),  # GLM
    "insufficient_system_resource": (
        LLMUnavailable,
        "The model service ran out of capacity while writing the reply. Try again.",
    ),  # DeepSeek
}


def classify(*, status: int, code: str, error_type: str, message: str) -> Category:
    """The class of an OpenAI-style error envelope: body code, then type, then message, then
    status."""
    for key in (code, error_type):
        if key:
            category = ERROR_CODES.get(key)
            if category is None:
                category = next((c for p, c in ERROR_PREFIXES if key.startswith(p)), None)
            if category is not None:
                return category
    lowered = message.lower()
    for fragment, category in ERROR_MESSAGES:
        if fragment in lowered:
            return category
    if len(code) == 3 and code.isdigit():
        status = int(code)  # vLLM puts the HTTP status in ``code``, also inside a 200 stream
    if status in ERROR_STATUSES:
        return ERROR_STATUSES[status]
    if status >= 500 or status < 300:
        # An error event inside a 200 stream that says nothing more: the provider failed.
        return UNAVAILABLE
    return INVALID


def references_from(
    value: Any, found: list[tuple[str, str]] | None = None
) -> list[tuple[str, str]]:
    """(title, url) pairs from a web-search result of any reasonable shape.

    Spark's web search results arrive as a ``role: "tool"`` delta with a ``tool_calls`` array
    whose exact shape is not documented; any object with a ``link`` or ``url`` and a ``title``
    counts, including inside a JSON string.
    """
    found = [] if found is None else found
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):
                references_from(json.loads(text), found)
    elif isinstance(value, Mapping):
        url = value.get("link") or value.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            title = value.get("title")
            pair = (title if isinstance(title, str) and title else url, url)
            if pair not in found:
                found.append(pair)
        else:
            for item in value.values():
                references_from(item, found)
    elif isinstance(value, list):
        for item in value:
            references_from(item, found)
    return found
