"""The page of a shared conversation, ``/s/<token>/`` (docs/export-and-share.md, "Share").

Included by chatsite/urls.py as ``include("conversations.share_views")`` (a string: the project
package imports no app), so this module holds its own ``urlpatterns``.

A link asks for a login unless it was made public (where ``SHARE_PUBLIC_LINKS`` allowed it); an
unknown token, a revoked link and a link to a conversation its owner deleted all answer the site's
404 page. The page is read-only, says ``noindex`` to search engines and sends no referrer when a
reader follows a link in it.
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from chatsite.errors import NotFound

from . import transfer

app_name = "share"


def js_strings() -> dict[str, str]:
    """What static/js/render.js shows (code block labels and copy buttons)."""
    return {
        "code": _("code"),
        "copy": _("Copy"),
        "copied": _("Copied"),
        "copy_code": _("Copy code"),
        "image": _("Image"),
    }


@require_safe
def shared_page(request: HttpRequest, token: str) -> HttpResponse:
    try:
        share = transfer.share_get(token)
    except NotFound as exc:
        raise Http404 from exc
    if not share.public and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    response = render(
        request,
        "conversations/shared.html",
        {
            "title": share.title or _("Untitled conversation"),
            "shared_at": share.created_at,
            "messages": share.snapshot,
            "js_strings": js_strings(),
        },
    )
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [path("<str:token>/", shared_page, name="page")]
