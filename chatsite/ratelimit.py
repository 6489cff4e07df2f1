"""Rate limits on top of django-ratelimit's counters, in the shared cache.

Views call :func:`enforce` so that DRF views and plain Django views answer the same 429 with a
``Retry-After`` that is never negative.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from rest_framework import status

from chatsite.api.exceptions import AppError


class RateLimited(AppError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many requests. Try again later."
    default_code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(extra={"retry_after": retry_after})
        self.retry_after = retry_after
        # DRF's exception handler turns ``wait`` into the ``Retry-After`` header.
        self.wait = retry_after


def client_ip(request: HttpRequest) -> str:
    """The client address: the socket's, or the header a trusted proxy sets (CLIENT_IP_HEADER).

    ``X-Forwarded-For`` is never trusted by default: anyone can send it and reset their limits.
    """
    header = settings.CLIENT_IP_HEADER
    if header:
        value = request.META.get(header, "")
        if value:
            return value.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def user_or_ip(group: str, request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


def ip_key(group: str, request: HttpRequest) -> str:
    return f"ip:{client_ip(request)}"


def enforce(request: HttpRequest, *, group: str, rate: str, per_user: bool = True) -> None:
    """Count this request against ``rate``; raise :class:`RateLimited` once over it."""
    usage = get_usage(
        request,
        group=group,
        key=user_or_ip if per_user else ip_key,
        rate=rate,
        increment=True,
    )
    if usage is not None and usage["should_limit"]:
        # django-ratelimit's time_left can be negative at a window's edge.
        raise RateLimited(retry_after=max(1, int(usage["time_left"])))
