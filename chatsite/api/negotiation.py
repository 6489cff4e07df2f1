from __future__ import annotations

from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JSONFallbackNegotiation(DefaultContentNegotiation):
    """Answer with the first renderer instead of 406 when nothing in ``Accept`` matches.

    A client asking for ``text/event-stream`` must reach the message view, which decides on its own
    whether to stream; errors still come back as JSON.
    """

    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except Exception:  # noqa: BLE001 - NotAcceptable: fall back to the default renderer
            return (renderers[0], renderers[0].media_type)
