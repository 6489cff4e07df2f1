"""The usage dashboard in admin (*Conversations → Usage*): charts and tables of the replies'
tokens, cost and errors, with filters and a CSV export.

Staff with the ``conversations.view_message`` permission only. The figures reach the page's
script as JSON data blocks (``json_script``): the CSP runs no inline script.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from . import catalog, dashboard

PERMISSION = "conversations.view_message"


def urls(site: AdminSite) -> list[URLPattern]:
    """The dashboard's URLs, under the conversations' admin (``ConversationAdmin.get_urls``)."""
    return [
        path(
            "usage/",
            site.admin_view(lambda request: usage_dashboard(request, site)),
            name="conversations_usage_dashboard",
        ),
        path(
            "usage/export.csv",
            site.admin_view(usage_export),
            name="conversations_usage_export",
        ),
    ]


def _require_permission(request: HttpRequest) -> None:
    # admin_view has already sent anyone who is not active staff to the sign-in page.
    if not (request.user.is_staff and request.user.has_perm(PERMISSION)):
        raise PermissionDenied


def _filters(request: HttpRequest) -> tuple[dashboard.Filters, list[str]]:
    """The query string's filters; a ``username`` field stands for ``user`` (the form's)."""
    params: dict[str, str] = {key: request.GET.get(key, "") for key in request.GET}
    username = params.pop("username", "").strip()
    invalid: list[str] = []
    if username and not params.get("user"):
        user_id = (
            get_user_model()
            ._default_manager.filter(**{get_user_model().USERNAME_FIELD: username})
            .values_list("pk", flat=True)
            .first()
        )
        if user_id is None:
            invalid.append("username")
        else:
            params["user"] = str(user_id)
    filters, more = dashboard.filters_from(params)
    return filters, invalid + more


def js_strings() -> dict[str, str]:
    """The strings the dashboard's script shows (charts' titles, axes and legends)."""
    return {
        "tokens": _("Tokens"),
        "cost_cny": _("Cost (CNY)"),
        "messages": _("Replies"),
        "errors": _("Errors"),
        "no_group": _("(no group)"),
        "no_model": _("(no model)"),
        "chart_days": _("Tokens and cost per day"),
        "chart_models": _("Tokens by model"),
        "chart_groups": _("Tokens by group"),
        "chart_users": _("Top users by tokens"),
        "chart_errors": _("Errors by code"),
        "no_data": _("No replies in this range."),
    }


def usage_dashboard(request: HttpRequest, site: AdminSite) -> HttpResponse:
    _require_permission(request)
    filters, invalid = _filters(request)
    data = dashboard.usage_dashboard(filters)
    user = None
    if filters.user_id is not None:
        user = get_user_model()._default_manager.filter(pk=filters.user_id).first()
    query = QueryDict(mutable=True)
    query.update(filters.query())
    others = QueryDict(mutable=True)
    others.update({k: v for k, v in filters.query().items() if k != "user"})
    models = sorted(set(catalog.current().models) | {row["model"] for row in data["models"]})
    context = {
        **site.each_context(request),
        "title": _("Usage"),
        "data": data,
        "filters": filters,
        "invalid": invalid,
        "filter_user": user,
        "groups": Group.objects.order_by("name"),
        "models": [m for m in models if m],
        "export_url": f"{reverse('admin:conversations_usage_export')}?{query.urlencode()}",
        "users_query": others.urlencode(),
        "strings": js_strings(),
    }
    return TemplateResponse(request, "admin/usage/dashboard.html", context)


def _cell(value: Any) -> Any:
    # A username may start with "=", "+", "-" or "@", which a spreadsheet would run as a
    # formula (CSV injection): such text is quoted with a leading apostrophe.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


class _Echo:
    """A file-like object whose ``write`` returns the line, for ``csv.writer`` to stream."""

    def write(self, value: str) -> str:
        return value


def usage_export(request: HttpRequest) -> StreamingHttpResponse:
    _require_permission(request)
    filters, _invalid = _filters(request)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[Any]:
        # A byte-order mark first, so that spreadsheet programs read the file as UTF-8.
        yield "\ufeff" + writer.writerow(dashboard.CSV_HEADER)
        for row in dashboard.csv_rows(filters):
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    name = f"usage-{filters.start.isoformat()}-{filters.end.isoformat()}-{stamp}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
