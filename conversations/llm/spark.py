"""iFlytek Spark (讯飞星火) over its OpenAI-shaped HTTP API.

The quirks handled here (docs/spark-protocol.md, "Errors: two shapes"): a Spark ``code`` inside
200 bodies and inside stream chunks (an integer, non-zero on failure), the same code as a *string*
in the OpenAI-style error envelope, and an HTTP status that cannot be trusted, so errors map on
codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import dialects
from .exceptions import (
    LLMBusy,
    LLMConfigurationError,
    LLMContentRejected,
    LLMContextTooLong,
    LLMError,
    LLMInvalidRequest,
    LLMQuotaExceeded,
    LLMUnavailable,
)
from .openai_compatible import OpenAICompatibleProvider

# Spark codes -> (our error class, message for the user). The codes and their meanings are in
# docs/spark-protocol.md, "From Spark's code to what the user sees"; keep that table in step.
SPARK_ERRORS: dict[str, tuple[type[LLMError], str]] = {
    "10003": (LLMInvalidRequest, "The model service rejected the request as invalid."),
    "10005": (
        LLMConfigurationError,
        "The model service rejected a parameter (is the model name right?).",
    ),
    "10007": (
        LLMBusy,
        "The previous request is still running at the model service. Try again shortly.",
    ),
    "10012": (LLMUnavailable, "The model service is busy. Try again later."),
    "10110": (LLMUnavailable, "The model service had an internal error. Try again later."),
    "10013": (LLMContentRejected, "Your message was blocked by the model's content moderation."),
    "10014": (LLMContentRejected, "The reply was stopped by the model's content moderation."),
    "10019": (
        LLMContentRejected,
        "The conversation was blocked by the model's content moderation.",
    ),
    "10907": (
        LLMContextTooLong,
        "The conversation is too long for this model. Start a new conversation.",
    ),
    "11200": (
        LLMConfigurationError,
        "This model is not licensed or has no quota for this account.",
    ),
    "11201": (
        LLMQuotaExceeded,
        "The model's daily request limit has been reached. Try again tomorrow.",
    ),
    "11202": (LLMBusy, "Too many requests per second to the model service. Try again in a moment."),
    "11203": (LLMBusy, "Too many concurrent requests to the model service. Try again in a moment."),
}


class SparkProvider(OpenAICompatibleProvider):
    name = "spark"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dialect", dialects.SPARK)
        super().__init__(**kwargs)

    def _error_for_code(self, code: str, *, sid: str, upstream_message: str) -> LLMError:
        error_class, detail = SPARK_ERRORS.get(
            code, (LLMError, f"The model service failed with code {code}.")
        )
        return error_class(
            detail, code=code, sid=sid, upstream_message=upstream_message, upstream_code=code
        )

    def _classified(
        self, *, status: int, code: str, error_type: str, message: str, sid: str
    ) -> LLMError:
        # Spark's own codes are kept as the error code (docs/spark-protocol.md); anything else
        # (a 401 with "code": null, a gateway's 502) is classified like any provider's.
        if code.isdigit():
            return self._error_for_code(code, sid=sid, upstream_message=message)
        return super()._classified(
            status=status, code=code, error_type=error_type, message=message, sid=sid
        )

    def _raise_for_payload(self, payload: Mapping[str, Any], *, sid: str = "") -> None:
        # Spark reports failures inside a 200 (a whole body, or any stream chunk, including
        # 10014 output moderation mid-stream) as a non-zero integer ``code``.
        code = payload.get("code")
        if code not in (None, 0, "0"):
            raise self._error_for_code(
                str(code),
                sid=self._sid_of(payload) or sid,
                upstream_message=str(payload.get("message") or ""),
            )
        super()._raise_for_payload(payload, sid=sid)
