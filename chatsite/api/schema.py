"""The OpenAPI schema says what the API really answers (checked by schemathesis in .ci/run).

Every operation documents its error statuses with the one error shape (``{"detail", "code"}``):
400 for any malformed request, 401/403 where authentication (and the session's CSRF check)
applies, 404 where an id is in the path or a page is asked for, 413/415 for bodies, and whatever
else the view declares in its ``error_statuses`` attribute (``{"POST": (409, 429)}``: a rate
limit, a conflict, an upstream failure). A view names the codes of refusals that no schema can
foresee (a taken username, nothing to regenerate) in its ``error_codes`` attribute
(``{"POST": {400: {"username_taken": "This username is taken."}}}``): each becomes a sentence of
the answer's description and a named example, which the fuzz (tests/fuzz/hooks.py) holds a
schema-valid request's refusal to.

A request's string fields say what DRF's ``CharField`` refuses: NUL anywhere, and (when it trims
and refuses blanks) a value of nothing but whitespace; string query parameters refuse NUL too
(``chatsite.middleware.RejectNulMiddleware``), and DRF's page-number pagination reads ``?page=``
as the first page (``allowEmptyValue``). A field states more of what it accepts in an
``openapi_constraints()`` method (its keywords are merged into the request schema: a password's
length and pattern from the password validators). The apps add their own limits in postprocessing
hooks of their own (listed in ``SPECTACULAR_SETTINGS``); this module knows no app and no URL.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from drf_spectacular import openapi
from drf_spectacular.utils import Direction
from rest_framework import pagination, serializers

DESCRIPTIONS = {
    400: "Invalid request (malformed JSON, a NUL character, a field out of bounds).",
    401: "Not authenticated, the token is invalid or expired, or the user is inactive.",
    403: "Session-authenticated write without a valid CSRF token.",
    404: "Not found (another user's conversation answers the same).",
    409: "A reply is already being written in this conversation.",
    413: (
        "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE, or an uploaded file is "
        "over its limit or the user's file storage."
    ),
    415: "The body is not JSON (multipart/form-data for an upload).",
    422: "The file could not be read in time (its extraction was stopped).",
    429: "Rate limited; Retry-After says when to try again.",
    502: "The model service failed or rejected the request.",
    503: "The model service is unavailable, busy, out of quota or not configured.",
    504: "The model service took too long to answer.",
}

# The characters Python's ``str.isspace()`` is true of, which DRF's ``trim_whitespace`` strips,
# spelt out for a character class: ``\s`` means other sets in other regex dialects (ECMA's and
# Rust's leave out U+001C-U+001F, which Python strips).
WHITESPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\u0000]*$"


def containing(characters: str) -> str:
    r"""A pattern for a string without NUL holding a character outside ``characters`` (the inside
    of a character class): ``containing(WHITESPACE)`` is "not blank", ``containing(r"\d")`` is
    "not only digits"."""
    return rf"^[^\u0000]*[^{characters}\u0000][^\u0000]*$"


NOT_BLANK = containing(WHITESPACE)


def describe_error_codes(response: dict[str, Any], codes: Mapping[str, str]) -> None:
    """Name the ``code`` values an error answer may carry for a well-formed request: a sentence of
    the description each, and a named example of the JSON answer (``{code: detail}``)."""
    sentences = " ".join(f"`{code}`: {detail}" for code, detail in codes.items())
    description = response.get("description", "")
    response["description"] = (
        f"{description} A request the schema allows may still be refused: {sentences}"
    )
    content = copy.deepcopy(response.get("content", {}))
    media = content.setdefault("application/json", {})
    examples = media.setdefault("examples", {})
    for code, detail in codes.items():
        examples[code] = {"value": {"detail": detail, "code": code}}
    response["content"] = content


def _unconstrained_string(schema: Mapping[str, Any]) -> bool:
    """A string schema with no format, pattern or choices of its own."""
    return schema.get("type") == "string" and not {"format", "pattern", "enum"} & schema.keys()


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

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        result = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return result
        properties = result.get("properties", {})
        for name, field in serializer.fields.items():
            schema = properties.get(name)
            if not isinstance(field, serializers.CharField) or not isinstance(schema, dict):
                continue
            if _unconstrained_string(schema):
                # DRF refuses NUL, and "  " as blank when it trims and blanks are not allowed.
                blank_refused = field.trim_whitespace and not field.allow_blank
                schema["pattern"] = NOT_BLANK if blank_refused else NO_NUL
            if hasattr(field, "openapi_constraints"):
                schema.update(field.openapi_constraints())
        return result

    def _get_pagination_parameters(self) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super()._get_pagination_parameters()
        paginator = self._get_paginator()
        if isinstance(paginator, pagination.PageNumberPagination):
            for parameter in parameters:
                # DRF reads `?page=` as the first page (`get_page_number`: `... or 1`).
                if parameter["name"] == paginator.page_query_param:
                    parameter["allowEmptyValue"] = True
        return parameters

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        for parameter in (operation or {}).get("parameters", []):
            if parameter["in"] == "query" and _unconstrained_string(parameter.get("schema", {})):
                parameter["schema"]["pattern"] = NO_NUL
        return operation

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
        declared_codes = getattr(self.view, "error_codes", {}).get(self.method.upper(), {})
        for status, codes in declared_codes.items():
            describe_error_codes(responses[str(status)], codes)
        return responses
