"""The one server-sent events parser of tests and benchmarks (stdlib only).

It reads both kinds of stream we see: chatsite's (``event: delta`` / ``data: {json}``) and a
provider's (``data:{json}`` ... ``data:[DONE]``, with or without a space after the colon, see
docs/spark-protocol.md). Comment lines (``: keepalive``) and extra blank lines are skipped.

- ``SSEDecoder``: incremental; ``feed(bytes)`` returns the events completed so far (for streams
  timed as they arrive).
- ``parse_events(body)``: every event of a whole body.
- ``parse_sse(body, strict=False)``: chatsite's frames as ``(event, json data)`` pairs; ``strict``
  (``parse_sse_strict``, the API tests' ``parse_sse``) also asserts chatsite's exact framing
  (``event: X\\ndata: {compact json}\\n\\n``, comments only ``: keepalive``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Event", "SSEDecoder", "parse_events", "parse_sse", "parse_sse_strict"]


@dataclass(frozen=True)
class Event:
    event: str  # "message" when the frame has no event: line
    data: str  # the data lines, joined with "\n", one space after "data:" removed
    lines: tuple[str, ...] = ()  # the frame's lines as received, comments included

    def json(self) -> Any:
        return json.loads(self.data)


class SSEDecoder:
    """Feed bytes as they arrive; get each event once its blank line has arrived."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[str] = []
        self.comments = 0

    def feed(self, data: bytes) -> list[Event]:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(b"\n")
        events = []
        for raw in complete:
            line = raw.removesuffix(b"\r").decode("utf-8")
            if line:
                self._lines.append(line)
            elif self._lines:
                event = self._dispatch(self._lines)
                self._lines = []
                if event is not None:
                    events.append(event)
        return events

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished frame are waiting (a stream cut mid-frame)."""
        return bool(self._buffer or self._lines)

    def _dispatch(self, lines: list[str]) -> Event | None:
        name, data = "message", []
        for line in lines:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if not field:
                self.comments += 1
            elif field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if not data:
            return None  # a comment-only frame: a keep-alive
        return Event(name, "\n".join(data), tuple(lines))


def parse_events(body: bytes | str) -> list[Event]:
    """Every complete event of a whole body."""
    return SSEDecoder().feed(body.encode("utf-8") if isinstance(body, str) else body)


_STRICT_FRAME = re.compile(r"event: ([a-z]+)\ndata: ([^\n]+)")


def parse_sse(body: bytes | str, *, strict: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """chatsite's frames of a whole body as ``(event, data)``; keep-alive comments skipped."""
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    if strict:
        assert text.endswith("\n\n"), text[-80:]
        for block in text[:-2].split("\n\n"):
            assert block == ": keepalive" or _STRICT_FRAME.fullmatch(block), (
                f"malformed frame: {block!r}"
            )
    frames = []
    for event in parse_events(text):
        data = event.json()
        if strict:
            assert isinstance(data, dict)
            compact = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            assert event.data == compact, f"not compact JSON: {event.data!r}"
        frames.append((event.event, data))
    return frames


def parse_sse_strict(body: bytes | str) -> list[tuple[str, dict[str, Any]]]:
    """``parse_sse(body, strict=True)``."""
    return parse_sse(body, strict=True)
