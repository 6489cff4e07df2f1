"""Assertions on chatsite's API answers, shared by the API test modules."""

from __future__ import annotations

import json
import re


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    """The one error shape under /api/: ``{"detail", "code"}`` JSON with the given status."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["code"], str) and body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body


def parse_sse(body: bytes) -> list[tuple[str, dict]]:
    """The frames of an SSE body, strictly ``event: X\\ndata: {compact json}\\n\\n``.

    Keep-alive comments are skipped.
    """
    text = body.decode("utf-8")
    assert text.endswith("\n\n"), text[-80:]
    frames = []
    for block in text[:-2].split("\n\n"):
        if block == ": keepalive":
            continue
        match = re.fullmatch(r"event: ([a-z]+)\ndata: ([^\n]+)", block)
        assert match, f"malformed frame: {block!r}"
        data = json.loads(match.group(2))
        assert isinstance(data, dict)
        assert json.dumps(data, ensure_ascii=False, separators=(",", ":")) == match.group(2)
        frames.append((match.group(1), data))
    return frames
