from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from conversations import metrics


class RequestMetricsMiddleware:
    """Count requests by route pattern (not by URL, which would explode the label set) and status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "unmatched"
        metrics.observe_request(route, request.method or "", response.status_code)
        return response
