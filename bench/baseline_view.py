"""The baseline of benchmark 4: the cheapest Django view, constant JSON, no database."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

BODY = {"status": "ok", "items": [], "count": 0}


def baseline(request: HttpRequest) -> JsonResponse:
    return JsonResponse(BODY)
