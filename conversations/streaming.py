"""Server-sent event frames (ARCHITECTURE.md §5)."""

from __future__ import annotations

import json
from typing import Any

KEEPALIVE = b": keepalive\n\n"


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {payload}\n\n".encode()
