"""The user's own usage page (``/usage/``): today's, this week's and this month's use and what
remains. The page is a shell; its script reads ``GET /api/usage/`` (docs/governance.md,
"Seeing usage"), so the page and programs see the same figures."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import pgettext


def js_strings() -> dict[str, str]:
    """The strings the usage page's script shows, in the request's language (a JSON data block,
    as on the chat page; ``%(name)s`` placeholders)."""
    return {
        "day": _("Today"),
        "week": _("This week"),
        "month": _("This month"),
        # "Messages" is already the chat's message list: a count here needs its own wording.
        "messages": pgettext("usage", "Messages"),
        "tokens": _("Tokens"),
        "cost_cny": _("Cost (CNY)"),
        "used": _("Used"),
        "limit": _("Limit"),
        "remaining": _("Remaining"),
        "no_limit": _("No limit"),
        "resets_at": _("Resets %(time)s"),
        "token_split": _("%(prompt)s in, %(completion)s out"),
        "time_zone": _("Periods are counted in %(zone)s."),
        "load_failed": _("Your usage could not be loaded. Try again later."),
        "used_of": _("%(used)s of %(limit)s used"),
    }


@login_required
def usage_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "conversations/usage.html",
        {
            "usage_config": {
                "usageUrl": reverse("conversations-api:usage"),
                "chatUrl": reverse("conversations:chat"),
            },
            "js_strings": js_strings(),
        },
    )
