"""Application errors: plain Python exceptions with a stable ``code`` and an HTTP status.

Apps (and the model clients in ``conversations/llm``) raise these without knowing about DRF or
HTTP responses; one edge, ``chatsite.api.exceptions.exception_handler``, turns any of them into
``{"detail": "...", "code": "...", **extra}`` with ``status_code``. See docs/architecture.md,
"Layers".
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error the API answers with ``status_code`` and ``{"detail", "code", **extra}``."""

    status_code = 400
    code = "invalid"
    default_detail = "Invalid request."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.extra: dict[str, Any] = extra or {}
        super().__init__(self.detail)

    @property
    def headers(self) -> dict[str, str]:
        """Response headers this error calls for (``Retry-After`` on a 429)."""
        return {}


class UserInactive(AppError):
    """The token is valid, but its user was deactivated (or deleted) since it was issued."""

    status_code = 401
    code = "user_inactive"
    default_detail = "User is inactive."

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="api"'}


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class RequestTooLarge(AppError):
    status_code = 413
    code = "request_too_large"
    default_detail = "The request body is too large."


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many requests. Try again later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(detail, extra={"retry_after": self.retry_after})

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
