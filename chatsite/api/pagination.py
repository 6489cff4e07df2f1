from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.request import Request

from chatsite.errors import AppError


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        _single(request, self.page_query_param)
        return super().get_page_number(request, paginator)

    def get_page_size(self, request: Request) -> Any:
        # DRF silently ignores a page_size that is not a positive integer; say so instead.
        raw = _single(request, self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
            raise AppError(
                f"{self.page_size_query_param}: must be a positive integer.", code="invalid"
            )
        return super().get_page_size(request)


def _single(request: Request, name: str) -> str | None:
    """The parameter's value; a 400 when it is given more than once (DRF would take the last)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise AppError(f"{name}: must be given once.", code="invalid")
    return values[0] if values else None
