"""The API's JSON parser: DRF's, turning too-deep nesting into a 400.

Deeply nested JSON (``[[[[...]]]]``, 100,000 levels in a few hundred kilobytes) makes the json
module raise ``RecursionError``, which DRF does not catch: a 500. The body's size is already capped
by Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (DRF reads JSON through ``request.body``; see the 413 in
exceptions.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply.") from exc
