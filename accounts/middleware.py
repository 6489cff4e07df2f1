"""Pending accounts (sign-up in approval mode) see only the waiting page; the API refuses them."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse

from chatsite.api.exceptions import json_error

from .errors import AccountPending


class PendingApprovalMiddleware:
    """A signed-in user whose account waits for approval is sent to the waiting page from every
    page but that one, sign-out, the language switch and admin; a session-authenticated API call
    answers 403 ``account_pending``.

    It reads ``request.user``, which the session already loads for a signed-in browser (the pages
    and the API's session authentication read it too); a request without a session cookie (a bearer
    token, a probe) costs no query. Pending users are never given a token (``/api/auth/token/``
    answers them 403 ``account_pending``). After ``AuthenticationMiddleware`` in ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path.startswith("/api/") and "HTTP_AUTHORIZATION" in request.META:
            # A bearer token names its own user (never a pending one): the session's is not read.
            return self.get_response(request)
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and getattr(user, "is_pending", False)
            and not self._allowed(request)
        ):
            if request.path.startswith("/api/"):
                error = AccountPending()
                return json_error(error.detail, error.code, error.status_code)
            return redirect("accounts:pending")
        return self.get_response(request)

    @staticmethod
    def _allowed(request: HttpRequest) -> bool:
        path = request.path
        allowed = (
            reverse("accounts:pending"),
            reverse("accounts:logout"),
            reverse("set_language"),
        )
        return path in allowed or path.startswith(reverse("admin:index"))
