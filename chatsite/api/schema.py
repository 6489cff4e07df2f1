"""The OpenAPI schema says what the API really answers (checked by schemathesis in .ci/run).

* Every operation documents its error statuses with the one error shape (``{"detail", "code"}``):
  400 for any malformed request, 401/403 where authentication (and the session's CSRF check)
  applies, 404 where an id is in the path or a page is asked for, 413/415 for bodies, 429 where
  a rate limit applies.
* ``postprocess`` states the limits the views enforce but serializers cannot show: the models on
  offer (from settings), message and system prompt lengths, cursor bounds; and the shape of one
  server-sent event in ``text/event-stream`` responses.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular import openapi
from rest_framework import serializers

# Operations behind chatsite.ratelimit.enforce (429 with Retry-After).
RATE_LIMITED = re.compile(
    r"^/api/(auth/register/|auth/token/|conversations/\{conversation_id\}/(messages|regenerate)/)$"
)
REPLY_PATHS = re.compile(r"^/api/conversations/\{conversation_id\}/(messages|regenerate)/$")

DESCRIPTIONS = {
    400: "Invalid request (malformed JSON, a NUL character, a field out of bounds).",
    401: "Not authenticated, or the token is invalid or expired.",
    403: "Session-authenticated write without a valid CSRF token.",
    404: "Not found (another user's conversation answers the same).",
    409: "A reply is already being written in this conversation.",
    413: "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.",
    415: "The body is not JSON.",
    429: "Rate limited; Retry-After says when to try again.",
    502: "The model service failed or rejected the request.",
    503: "The model service is unavailable, busy, out of quota or not configured.",
    504: "The model service took too long to answer.",
}

SSE_EVENT = {
    "type": "object",
    "description": (
        "One server-sent event: `start` {user_message, assistant_message}, `delta` {content}, "
        "`done` {message} or `error` {code, detail, message}; `data` is compact JSON."
    ),
    "properties": {
        "event": {"type": "string", "enum": ["start", "delta", "done", "error"]},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


class ErrorSerializer(serializers.Serializer):
    """``{"detail": "...", "code": "..."}``; some errors carry more fields (``field``, ``errors``,
    ``retry_after``, the saved messages of a failed reply)."""

    detail = serializers.CharField()
    code = serializers.CharField()


class AutoSchema(openapi.AutoSchema):
    def _error_statuses(self) -> list[int]:
        method = self.method.upper()
        has_body = method in ("POST", "PUT", "PATCH")
        authenticates = bool(getattr(self.view, "authentication_classes", None))
        statuses = [400]
        # The token views authenticate no one but answer a bad credential with 401.
        if authenticates or self.path.startswith("/api/auth/token/"):
            statuses.append(401)
        if authenticates and method not in ("GET", "HEAD", "OPTIONS"):
            statuses.append(403)
        if "{" in self.path or (method == "GET" and self._is_list_view() and self._get_paginator()):
            statuses.append(404)
        if has_body:
            statuses += [413, 415]
        if method == "POST" and RATE_LIMITED.match(self.path):
            statuses.append(429)
        if method == "POST" and REPLY_PATHS.match(self.path):
            statuses += [409, 502, 503, 504]
        return statuses

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        error = {
            "application/json": {"schema": self.resolve_serializer(ErrorSerializer, direction).ref}
        }
        for status in self._error_statuses():
            response = responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            response.setdefault("content", error)
        for status, response in responses.items():
            if int(status) >= 400:
                response.setdefault("content", error)
        return responses


def _set(schema: dict[str, Any], component: str, field: str, **limits: Any) -> None:
    properties = schema["components"]["schemas"].get(component, {}).get("properties", {})
    if field in properties:
        properties[field].update(limits)


def postprocess(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    for component in ("ConversationInputRequest", "PatchedConversationInputRequest"):
        _set(result, component, "model", enum=list(settings.SPARK_MODELS))
        _set(result, component, "system_prompt", maxLength=settings.MAX_SYSTEM_PROMPT_CHARS)
    # A message must hold something besides whitespace, within MAX_MESSAGE_CHARS.
    _set(
        result,
        "MessageInputRequest",
        "content",
        minLength=1,
        maxLength=settings.MAX_MESSAGE_CHARS,
        pattern=r"\S",
    )
    bounds = {
        "after": {"minimum": 0},
        "before": {"minimum": 0},
        "limit": {"minimum": 1, "maximum": 200},
        "page": {"minimum": 1},
        "page_size": {"minimum": 1},
    }
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in bounds:
                    parameter["schema"].update(bounds[parameter["name"]])
            for response in operation.get("responses", {}).values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None:
                    stream["schema"] = SSE_EVENT
    return result
