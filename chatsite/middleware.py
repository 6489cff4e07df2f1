from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from chatsite import metrics


class RequestMetricsMiddleware:
    """Count requests by route pattern (not by URL: that would explode the label set) and status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        metrics.observe_request(route, request.method or "", response.status_code)
        return response


class RejectNulMiddleware:
    """Answer 400 to a NUL character in the path or the query string.

    No stored text can hold NUL (input fields refuse it) and PostgreSQL errors on it in a query, so
    a ``?search=%00`` or an admin filter ``?model=%00`` would otherwise be a 500. Last in the
    middleware list, so the 400 still carries the security headers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            from chatsite.api.exceptions import bad_request, json_error

            if request.path.startswith("/api/"):
                return json_error("The request contains a NUL character.", "nul_character", 400)
            return bad_request(request)
        return self.get_response(request)
