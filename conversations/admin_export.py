"""Export of the conversations matching the admin's current filters (issue 11, "Export by
filter"): the admin URL below, wired into ``ConversationAdmin.get_urls``, linked from the
changelist (templates/admin/conversations/conversation/change_list.html).

``export/?format=json|md|csv&<the changelist's query string>`` answers the conversations the
changelist shows for the same query string (its filters, date hierarchy and search, all pages),
streamed (conversations/exports.py), and writes one ``transcript.export`` entry to the audit trail
first: who, the format, the query string and how many conversations.
"""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ALL_VAR, ERROR_FLAG, PAGE_VAR
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path
from django.utils import timezone

from audit import trail

from . import exports
from .models import Conversation

PERMISSION = "conversations.view_conversation"
FORMAT_VAR = "format"
ACTION = "transcript.export"
# Not filters: the export's own parameter, and the changelist's page and "show all" (an export
# holds every page) and its error flag.
_NOT_FILTERS = (FORMAT_VAR, PAGE_VAR, ALL_VAR, ERROR_FLAG)


def urls(model_admin: Any) -> list[URLPattern]:
    opts = model_admin.model._meta
    return [
        path(
            "export/",
            model_admin.admin_site.admin_view(lambda request: export(request, model_admin)),
            name=f"{opts.app_label}_{opts.model_name}_export",
        )
    ]


def _bad_request(text: str) -> HttpResponse:
    return HttpResponseBadRequest(text + "\n", content_type="text/plain; charset=utf-8")


def export(request: HttpRequest, model_admin: Any) -> HttpResponseBase:
    # admin_view has already sent anyone who is not active staff to the sign-in page.
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    kind = request.GET.get(FORMAT_VAR, "")
    if kind not in exports.FORMATS:
        return _bad_request(f"format must be one of: {', '.join(exports.FORMATS)}")
    # The changelist's own queryset for the same query string, so the export holds exactly what
    # the staff member sees (on every page).
    filters = request.GET.copy()
    for name in _NOT_FILTERS:
        filters.pop(name, None)
    changelist_request = copy.copy(request)
    changelist_request.GET = filters  # type: ignore[assignment]  # a copy, mutable
    try:
        changelist = model_admin.get_changelist_instance(changelist_request)
        queryset = changelist.get_queryset(changelist_request)
    except (IncorrectLookupParameters, SuspiciousOperation, OverflowError):
        # What the changelist answers with "?e=1": a filter that does not exist or a value it
        # cannot take (a date hierarchy year past C's integers raises OverflowError).
        return _bad_request("The filters of this export are not valid; go back to the list.")
    query_string = filters.urlencode()
    count = changelist.result_count

    return streamed(
        request,
        queryset,
        kind,
        detail={"format": kind, "filter": query_string, "count": count},
    )


def streamed(
    request: HttpRequest, queryset: Any, kind: str, *, detail: dict[str, Any]
) -> StreamingHttpResponse:
    """The conversations of ``queryset`` as a streamed download in ``kind`` (json, md, csv),
    recorded on the audit trail with ``detail`` first. The changelist's "Download selected"
    actions use it too."""
    chunks, extension, content_type = exports.FORMATS[kind]
    trail.record(ACTION, request=request, target_type=Conversation._meta.label_lower, detail=detail)
    response = StreamingHttpResponse(chunks(queryset), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="conversations-{stamp}.{extension}"'
    # nginx would otherwise buffer the stream (docs/deploy.md).
    response["X-Accel-Buffering"] = "no"
    response["Cache-Control"] = "no-store"
    return response
