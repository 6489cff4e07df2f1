"""Rate limits on top of django-ratelimit's counters, in the shared cache.

Views call :func:`enforce` so that DRF views and plain Django views answer the same 429 with a
``Retry-After`` that is never negative.
"""

from __future__ import annotations

import functools
import re

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from chatsite.errors import RateLimited

__all__ = ["RateLimited", "client_ip", "enforce", "parse_rate"]


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


_RATE = re.compile(r"^(\d+)/(\d*)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@functools.lru_cache(maxsize=16)  # read on every send; the setting rarely changes
def parse_rate(rate: str) -> tuple[int, int]:
    """``"10/m"`` -> ``(10, 60)``: how many in how many seconds, read as django-ratelimit does
    (``"5/10s"`` is five in ten seconds)."""
    match = _RATE.match(rate.strip())
    if match is None:
        raise ValueError(f"Invalid rate {rate!r}: expected e.g. '10/m' or '5/10s'.")
    count, multiplier, unit = match.groups()
    return int(count), int(multiplier or 1) * _UNIT_SECONDS[unit]
