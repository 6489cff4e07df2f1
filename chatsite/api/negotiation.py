from __future__ import annotations

from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class JSONFallbackNegotiation(DefaultContentNegotiation):
    """Answer with the first renderer instead of 406 when nothing in ``Accept`` matches.

    A client asking for ``text/event-stream`` must reach the message view, which decides on its own
    whether to stream; errors still come back as JSON.
    """

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        candidates = list(renderers)  # a view's renderers: a list already, read more than once
        if "text/event-stream" in request.META.get("HTTP_ACCEPT", ""):
            # No renderer speaks it (the reply views stream on their own): skip DRF's matching,
            # which would build and raise a NotAcceptable on every streamed send.
            return (candidates[0], candidates[0].media_type)
        try:
            return super().select_renderer(request, candidates, format_suffix)
        except Exception:  # noqa: BLE001 - NotAcceptable: fall back to the default renderer
            return (candidates[0], candidates[0].media_type)
