from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from chatsite import metrics
from chatsite.ratelimit import client_ip


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness plus a database round trip."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any database failure means "not healthy"
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: a bearer token from METRICS_TOKEN, or loopback when none is set."""
    token = settings.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        allowed = hmac.compare_digest(supplied.encode(), token.encode())
    else:
        # The client's address as the trusted proxy reports it (CLIENT_IP_HEADER), else the
        # socket's: behind nginx on the same host every request comes from loopback.
        allowed = _is_loopback(client_ip(request)) and not request.headers.get("X-Forwarded-For")
    if not allowed:
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return HttpResponse(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")
