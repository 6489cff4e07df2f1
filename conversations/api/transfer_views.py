"""Export, import and share through the API (docs/export-and-share.md).

``GET /api/conversations/<id>/export/?format=md|json|pdf``, ``GET /api/conversations/export/``
(a zip of every conversation as JSON), ``POST /api/conversations/import/`` (multipart ``file``),
and ``POST``/``DELETE /api/conversations/<id>/share/``. The work is in ``conversations.transfer``.
"""

from __future__ import annotations

from typing import Any

from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatsite.errors import AppError

from .. import selectors, transfer
from .serializers import StrictBooleanField

FORMATS = {
    "md": ("text/markdown; charset=utf-8", "md"),
    "json": ("application/json", "json"),
    "pdf": ("application/pdf", "pdf"),
}

INVALID_IMPORT = {
    "invalid_import": (
        "The file is not a chatsite export this site can read (format or version, a field's type "
        "or size, too many messages, a zip too large once uncompressed or with files in folders); "
        "`detail` says what. Nothing was imported."
    )
}


def _attachment(response: HttpResponseBase, name: str) -> HttpResponseBase:
    # Django writes `filename*=utf-8''…` (RFC 5987) for a name that is not ASCII.
    response["Content-Disposition"] = content_disposition_header(True, name) or "attachment"
    response["Cache-Control"] = "no-store"
    return response


class ExportApi(APIView):
    """One conversation as Markdown, JSON (every branch, re-importable) or PDF."""

    error_statuses = {"GET": (503,)}  # PDF: the font of PDF_FONT_PATH is missing

    @extend_schema(
        operation_id="conversations_export_one",
        description=(
            "Download the conversation: `md` (the active branch, Markdown), `json` (every message "
            "of every branch, what POST /api/conversations/import/ reads) or `pdf` (the active "
            "branch, fonts embedded). Sent as an attachment named after the title."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                {"type": "string", "enum": list(FORMATS)},
                required=True,
                description="md, json or pdf",
            )
        ],
        responses={
            (200, "text/markdown"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "application/pdf"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request, conversation_id: Any) -> HttpResponse:
        conversation = selectors.conversation_get(
            user_id=request.user.pk, conversation_id=conversation_id
        )
        values = request.query_params.getlist("format")
        if len(values) != 1 or values[0] not in FORMATS:
            raise AppError("format: must be given once, as md, json or pdf.", code="invalid")
        kind = values[0]
        content_type, extension = FORMATS[kind]
        if kind == "md":
            body = transfer.export_markdown(conversation).encode()
        elif kind == "json":
            body = transfer.export_json(conversation)
        else:
            body = transfer.export_pdf(conversation)
        response = HttpResponse(body, content_type=content_type)
        _attachment(response, transfer.filename(conversation, extension))
        return response


class ExportAllApi(APIView):
    """Every conversation of the caller (not deleted ones), one JSON export each, in a zip."""

    @extend_schema(
        operation_id="conversations_export_all",
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request) -> FileResponse:
        selectors.user_check(user_id=request.user.pk)
        archive = transfer.export_all(request.user.pk)
        response = FileResponse(archive, content_type="application/zip")
        _attachment(response, "chatsite-conversations.zip")
        return response


class ImportInputSerializer(serializers.Serializer):
    # An empty file is the import's to refuse (`invalid_import`), like any file it cannot read.
    file = serializers.FileField(
        allow_empty_file=True,
        help_text="A JSON export (GET …/export/?format=json) or a zip of them (GET …/export/).",
    )


class ImportOutputSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    conversations = serializers.ListField(child=serializers.UUIDField())


class ImportApi(APIView):
    """Import conversations exported as JSON: new conversations of the caller, all or none."""

    parser_classes = [MultiPartParser]
    error_codes = {"POST": {400: INVALID_IMPORT}}

    @extend_schema(
        operation_id="conversations_import",
        request=ImportInputSerializer,
        responses={201: ImportOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        selectors.user_check(user_id=request.user.pk)
        serializer = ImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        created = transfer.import_file(user=request.user, upload=upload, size=upload.size)
        return Response(
            {"imported": len(created), "conversations": [str(c.pk) for c in created]},
            status=status.HTTP_201_CREATED,
        )


class ShareInputSerializer(serializers.Serializer):
    public = StrictBooleanField(
        required=False,
        default=False,
        help_text="Readable without signing in (only where staff allow public links).",
    )


class ShareOutputSerializer(serializers.Serializer):
    url = serializers.URLField()


class ShareApi(APIView):
    """A read-only link to a snapshot of the active branch (POST), or its revocation (DELETE)."""

    error_statuses = {"POST": (403,)}

    @extend_schema(
        operation_id="conversations_share_create",
        description=(
            "Share a snapshot of the active branch (title and messages; no system prompt, usage, "
            "reasoning or other branches) at a new link, which replaces the conversation's "
            "previous link. The link asks for a login unless `public` is true, which is refused "
            "with 403 `public_links_disabled` unless staff allow public links."
        ),
        request=ShareInputSerializer,
        responses={201: ShareOutputSerializer},
    )
    def post(self, request: Request, conversation_id: Any) -> Response:
        conversation = selectors.conversation_get(
            user_id=request.user.pk, conversation_id=conversation_id
        )
        serializer = ShareInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        share = transfer.share_create(
            conversation=conversation,
            user=request.user,
            public=serializer.validated_data["public"],
            request=request,
        )
        url = request.build_absolute_uri(reverse("share:page", args=[share.token]))
        return Response({"url": url}, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="conversations_share_destroy",
        description="Revoke the link: it then answers 404. Idempotent.",
        responses={204: OpenApiResponse(description="Revoked (or there was no link).")},
    )
    def delete(self, request: Request, conversation_id: Any) -> Response:
        conversation = selectors.conversation_get(
            user_id=request.user.pk, conversation_id=conversation_id
        )
        transfer.share_revoke(conversation=conversation, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
