"""One shape for every API error: ``{"detail": "...", "code": "..."}`` with a fitting status."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from chatsite.errors import AppError, RequestTooLarge


def _first_error(detail: Any) -> tuple[str, str, str]:
    """(field path, message, code) of the first validation error in DRF's nested structure."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field, message, code = _first_error(value)
            path = key if key != "non_field_errors" else ""
            return (f"{path}.{field}" if path and field else path or field, message, code)
    if isinstance(detail, list) and detail:
        return _first_error(detail[0])
    if isinstance(detail, exceptions.ErrorDetail):
        return ("", str(detail), detail.code or "invalid")
    return ("", str(detail), "invalid")


def _app_error_response(exc: AppError) -> Response:
    response = Response(
        {"detail": exc.detail, "code": exc.code, **exc.extra}, status=exc.status_code
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's one error edge: every error becomes ``{"detail", "code"}`` with its status.

    Apps raise :class:`chatsite.errors.AppError` (plain Python, with a code and a status); DRF's
    own exceptions (validation, authentication, 404, 405...) are reshaped here too.
    """
    if isinstance(exc, RequestDataTooBig):
        # DRF reads JSON through request.body, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE.
        exc = RequestTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            extra={"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
        )
    if isinstance(exc, AppError):
        return _app_error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    # DRF's handler answers only an APIException (Http404 and PermissionDenied became one above).
    assert isinstance(exc, exceptions.APIException)  # noqa: S101 - an invariant, narrows for mypy
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_error(exc.detail)
        data: dict[str, Any] = {
            "detail": f"{field}: {message}" if field else message,
            "code": code if code != "invalid" or not field else "invalid",
            "errors": exc.detail,
        }
        if field:
            data["field"] = field
    elif isinstance(exc.detail, dict) and "detail" in exc.detail:
        # simplejwt's InvalidToken carries {"detail", "code", "messages"}.
        inner = exc.detail
        data = {"detail": str(inner["detail"]), "code": str(inner.get("code") or "token_not_valid")}
    else:
        codes = exc.get_codes()
        data = {"detail": str(exc.detail), "code": codes if isinstance(codes, str) else "error"}
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            data["code"] = codes if isinstance(codes, str) else "not_authenticated"
        if isinstance(exc, exceptions.Throttled):
            # DRF sets Throttled.wait in __init__; the stubs leave the attribute out.
            wait: float | None = exc.wait  # type: ignore[attr-defined]
            if wait is not None:
                response["Retry-After"] = str(max(1, math.ceil(wait)))
    response.data = data
    return response


def json_error(detail: str, code: str, status_code: int, **extra: Any) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code, **extra}, status=status_code)


def ratelimited_view(request: HttpRequest, exception: Exception) -> HttpResponse:
    """django-ratelimit's handler for limits hit outside DRF views (e.g. the sign-in page)."""
    retry_after = max(1, int(getattr(exception, "retry_after", 60)))
    if request.path.startswith("/api/") or "json" in request.headers.get("Accept", ""):
        response: HttpResponse = json_error(
            "Too many requests. Try again later.", "rate_limited", 429, retry_after=retry_after
        )
    else:
        from django.shortcuts import render

        response = render(request, "429.html", {"retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


@csrf_exempt  # an unknown path is a 404 whatever the method, not a CSRF failure
def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error("Not found.", "not_found", 404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error("Internal server error.", "server_error", 500)
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error("Bad request.", "bad_request", 400)
    from django.views.defaults import bad_request as django_bad_request

    return django_bad_request(request, exception or Exception())


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error(
            "You do not have permission to perform this action.", "permission_denied", 403
        )
    from django.views.defaults import permission_denied as django_permission_denied

    return django_permission_denied(request, exception or PermissionDenied())


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path.startswith("/api/"):
        return json_error("CSRF check failed.", "csrf_failed", 403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
