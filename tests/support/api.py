"""Assertions on chatsite's API answers, shared by the API test modules."""

from __future__ import annotations

from tests.support.sse import parse_sse_strict as parse_sse  # noqa: F401 - for the API tests


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    """The one error shape under /api/: ``{"detail", "code"}`` JSON with the given status."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["code"], str)
    assert body["code"]
    if code is not None:
        assert body["code"] == code, body
    return body
