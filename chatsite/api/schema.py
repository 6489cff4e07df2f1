"""The OpenAPI schema says what the API really answers (checked by schemathesis in .ci/run).

Every operation documents its error statuses with the one error shape (``{"detail", "code"}``):
400 for any malformed request, 401/403 where authentication (and the session's CSRF check)
applies, 404 where an id is in the path or a page is asked for, 413/415 for bodies, and whatever
else the view declares in its ``error_statuses`` attribute (``{"POST": (409, 429)}``: a rate
limit, a conflict, an upstream failure). The apps add their own limits in postprocessing hooks of
their own (listed in ``SPECTACULAR_SETTINGS``); this module knows no app and no URL.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import Direction
from rest_framework import serializers

DESCRIPTIONS = {
    400: "Invalid request (malformed JSON, a NUL character, a field out of bounds).",
    401: "Not authenticated, the token is invalid or expired, or the user is inactive.",
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
        if authenticates:
            statuses.append(401)
        if authenticates and method not in ("GET", "HEAD", "OPTIONS"):
            statuses.append(403)
        if "{" in self.path or (method == "GET" and self._is_list_view() and self._get_paginator()):
            statuses.append(404)
        if has_body:
            statuses += [413, 415]
        declared = getattr(self.view, "error_statuses", {}).get(method, ())
        return sorted(set(statuses).union(declared))

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        error = {
            "application/json": {"schema": self.resolve_serializer(ErrorSerializer, direction).ref}
        }
        for status in self._error_statuses():
            response = responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
            response.setdefault("content", error)
        for key, response in responses.items():
            if int(key) >= 400:
                response.setdefault("content", error)
        return responses
