"""The upload's multipart parser: it refuses an unsafe file name instead of renaming it.

Django's parser quietly reduces ``../../etc/passwd.txt`` to ``passwd.txt`` and drops control
characters; a user who sent such a name should hear that it was refused (docs/attachments.md,
"Refused files"), and the file should not be kept under a name they did not give. So the raw
name is checked here (``sniff.clean_name``); an unsafe one becomes a marker that the upload
refuses as ``invalid_file_name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from . import sniff

# Never a name a user can give: clean_name refuses NUL.
REFUSED_NAME = "\x00unsafe-name"


class _StrictNames(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name: str) -> str | None:
        try:
            sniff.clean_name(file_name)
        except sniff.FileRejected:
            return REFUSED_NAME
        return super().sanitize_file_name(file_name)


class MultiPartParser(parsers.MultiPartParser):
    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        context = parser_context or {}
        request = context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            data, files = _StrictNames(
                meta,
                stream,
                request.upload_handlers,
                context.get("encoding", settings.DEFAULT_CHARSET),
            ).parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        return parsers.DataAndFiles(data, files)
