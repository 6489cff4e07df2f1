from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.request import Request

from chatsite.errors import AppError


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> Any:
        # DRF silently ignores a page_size that is not a positive integer; say so instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is not None and not (raw.isascii() and raw.isdigit() and int(raw) > 0):
            raise AppError(
                f"{self.page_size_query_param}: must be a positive integer.", code="invalid"
            )
        return super().get_page_size(request)
