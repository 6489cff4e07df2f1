"""``/api/files/``: upload a file, list, read and delete one's own (docs/attachments.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatsite.errors import AppError

from . import conf, services
from .models import Attachment
from .parsers import MultiPartParser

# Why an upload may be refused (docs/attachments.md, "Refused files"): OpenAPI cannot say.
REFUSALS = {
    "no_file": "The request has no `file` part.",
    "invalid_file_name": "The name holds a path separator, a control character or is too long.",
    "empty_file": "The file is empty.",
    "unsupported_file_type": "The extension is not one chatsite reads.",
    "file_type_mismatch": "The content is not what the extension says.",
    "zip_bomb": "The document's ZIP container unpacks to far more than it weighs.",
    "file_rejected": "The document's container is malformed or encrypted.",
    "xml_entities": "The document declares XML entities (an expansion attack).",
    "too_many_pages": "The PDF has more pages than the limit.",
    "unreadable_file": "The file is damaged or not the format it claims.",
    "no_text_layer": "The PDF has no text (a scan); OCR is not supported.",
}


def file_data(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": str(attachment.id),
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "kind": attachment.kind,
        # Extraction runs at upload: a stored file is always extracted.
        "status": "ready",
        "extraction": {
            "status": "done",
            "chars": attachment.chars,
            "pages": attachment.pages or None,
            "token_estimate": attachment.token_estimate,
            "warnings": attachment.warnings,
        },
        "width": attachment.width,
        "height": attachment.height,
        "conversation": str(attachment.conversation_id) if attachment.conversation_id else None,
        "created_at": attachment.created_at.isoformat().replace("+00:00", "Z"),
    }


class ExtractionSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="done: the text was extracted at upload")
    chars = serializers.IntegerField()
    pages = serializers.IntegerField(allow_null=True, help_text="PDF pages or slides")
    token_estimate = serializers.IntegerField()
    warnings = serializers.ListField(child=serializers.CharField())


class FileOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    size = serializers.IntegerField()
    content_type = serializers.CharField()
    kind = serializers.ChoiceField(choices=Attachment.Kind.choices)
    status = serializers.CharField()
    extraction = ExtractionSerializer()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    conversation = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return file_data(instance)


class FileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The file (multipart/form-data)")


class FileListApi(generics.GenericAPIView):
    parser_classes = [MultiPartParser]
    serializer_class = FileOutputSerializer
    error_statuses = {"POST": (413, 422)}
    error_codes = {"POST": {400: REFUSALS}}

    def get_queryset(self) -> Any:
        return Attachment.objects.filter(owner_id=self.request.user.pk).order_by("-created_at")

    @extend_schema(responses=FileOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([file_data(a) for a in page or []])

    @extend_schema(request=FileUploadSerializer, responses={201: FileOutputSerializer})
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            raise AppError("Send the file as the multipart part named `file`.", code="no_file")
        if len(request.FILES.getlist("file")) > 1:
            raise AppError("One file per request.", code="too_many_files")
        attachment = services.upload(owner=request.user, upload=upload)
        return Response(file_data(attachment), status=status.HTTP_201_CREATED)


class FileDetailApi(APIView):
    error_statuses = {"DELETE": (409,)}

    @extend_schema(responses=FileOutputSerializer)
    def get(self, request: Request, file_id: Any) -> Response:
        return Response(file_data(services.owned(owner_id=request.user.pk, attachment_id=file_id)))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, file_id: Any) -> Response:
        services.delete(attachment=services.owned(owner_id=request.user.pk, attachment_id=file_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


__all__ = ["FileDetailApi", "FileListApi", "conf"]
