"""The conversations API (ARCHITECTURE.md §5). Thin views: validate, call a service, render."""

from __future__ import annotations

import dataclasses
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatsite.api.exceptions import AppError
from chatsite.ratelimit import enforce

from .. import selectors, services
from ..llm import registry
from ..llm.exceptions import LLMNotConfigured
from ..models import Conversation, Message
from ..streaming import KEEPALIVE, sse_frame
from .serializers import (
    ConversationInputSerializer,
    ConversationOutputSerializer,
    MessageInputSerializer,
    MessageOutputSerializer,
    MessagePageSerializer,
    ModelOutputSerializer,
    RegenerateInputSerializer,
    ReplyOutputSerializer,
)

ERROR_RESPONSE = OpenApiResponse(description='JSON error: {"detail": "...", "code": "..."}')


def _owned_conversation(
    request: Request, conversation_id: Any, *, with_message_count: bool = False
) -> Conversation:
    try:
        return selectors.conversation_get(
            user=request.user,
            conversation_id=conversation_id,
            with_message_count=with_message_count,
        )
    except Conversation.DoesNotExist as exc:
        # Another user's conversation answers exactly like one that does not exist.
        raise NotFound("Conversation not found.", code="not_found") from exc


def _message_data(message: Message | None) -> dict[str, Any] | None:
    return MessageOutputSerializer(message).data if message is not None else None


class ModelListApi(APIView):
    @extend_schema(responses={200: ModelOutputSerializer(many=True), 503: ERROR_RESPONSE})
    def get(self, request: Request) -> Response:
        if not registry.any_model_configured():
            raise LLMNotConfigured()
        models = [
            {**dataclasses.asdict(info), "configured": registry.is_configured(info.id)}
            for info in registry.available_models()
        ]
        return Response(ModelOutputSerializer(models, many=True).data)


class ConversationListApi(generics.GenericAPIView):
    serializer_class = ConversationOutputSerializer

    def get_queryset(self) -> Any:
        return selectors.conversation_list(
            user=self.request.user, search=self.request.query_params.get("search", "")
        )

    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="Matches titles and message text")],
        responses=ConversationOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ConversationOutputSerializer(page, many=True).data)

    @extend_schema(
        request=ConversationInputSerializer, responses={201: ConversationOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        serializer = ConversationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = services.conversation_create(user=request.user, **serializer.validated_data)
        return Response(
            ConversationOutputSerializer(conversation).data, status=status.HTTP_201_CREATED
        )


class ConversationDetailApi(APIView):
    @extend_schema(responses=ConversationOutputSerializer)
    def get(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        return Response(ConversationOutputSerializer(conversation).data)

    @extend_schema(request=ConversationInputSerializer, responses=ConversationOutputSerializer)
    def patch(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        serializer = ConversationInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        conversation = services.conversation_update(
            conversation=conversation, **serializer.validated_data
        )
        return Response(ConversationOutputSerializer(conversation).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: Any) -> Response:
        services.conversation_delete(conversation=_owned_conversation(request, conversation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _int_param(
    request: Request, name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError as exc:
        raise AppError(f"{name}: must be an integer.", code="invalid") from exc
    if value < minimum or (maximum is not None and value > maximum):
        bounds = (
            f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        )
        raise AppError(f"{name}: must be {bounds}.", code="invalid")
    return value


def _wants_stream(request: Request, requested: bool | None) -> bool:
    if requested is not None:
        return requested
    return "text/event-stream" in request.headers.get("Accept", "")


def _reply_response(request: Request, start: services.ReplyStart, *, stream: bool) -> Any:
    if stream:
        response = StreamingHttpResponse(
            _sse_events(start, _client_gone_probe(request)),
            content_type="text/event-stream; charset=utf-8",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"
        return response
    message, error = services.reply_complete(start)
    body = {
        "user_message": _message_data(start.user_message),
        "assistant_message": _message_data(message),
    }
    if error is not None:
        # The user's message and the failed reply stay saved; the error says why.
        raise AppError(error.detail, code=error.code, status_code=error.status_code, extra=body)
    return Response(body, status=status.HTTP_201_CREATED)


def _unpatched_poll() -> Callable[[], Any]:
    try:
        from gevent.monkey import get_original

        # A zero-timeout check needs no greenlet switch: the original poll() will do.
        return get_original("select", "poll")  # type: ignore[no-any-return]
    except ImportError:
        return select.poll


def _client_gone_probe(request: Request) -> Callable[[], bool] | None:
    """A check that the client closed its connection, where the server exposes the socket.

    gunicorn puts the client socket in the WSGI environ. A closed connection reads as end-of-file;
    pending bytes (a pipelined request) do not count as gone. ``poll()``, not ``select()``:
    a worker holding thousands of streams has descriptors past select's limit of 1024.
    """
    sock = request.META.get("gunicorn.socket")
    if sock is None:
        return None
    make_poller = _unpatched_poll()

    def gone() -> bool:
        try:
            poller = make_poller()
            poller.register(sock.fileno(), select.POLLIN)
            if not poller.poll(0):
                return False
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    return gone


def _sse_events(
    start: services.ReplyStart, client_gone: Callable[[], bool] | None = None
) -> Iterator[bytes]:
    yield sse_frame(
        "start",
        {
            "user_message": _message_data(start.user_message),
            "assistant_message": _message_data(start.assistant_message),
        },
    )
    for event in services.reply_stream(start, client_gone=client_gone):
        if event is services.KEEPALIVE:
            yield KEEPALIVE
        elif isinstance(event, services.Delta):
            yield sse_frame("delta", {"content": event.content})
        elif isinstance(event, services.Done):
            yield sse_frame("done", {"message": _message_data(event.message)})
        elif isinstance(event, services.Failed):
            yield sse_frame(
                "error",
                {
                    "code": event.message.error_code or "upstream_error",
                    "detail": event.message.error_detail,
                    "message": _message_data(event.message),
                },
            )


class MessageListApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Messages after this seq"),
            OpenApiParameter(
                "before", int, description="Messages before this seq (newest first page)"
            ),
            OpenApiParameter("latest", bool, description="The newest page"),
            OpenApiParameter("limit", int, description="Page size, 1-200 (default 50)"),
            OpenApiParameter("page_size", int, description="Another name for limit"),
            OpenApiParameter(
                "page", int, description="Page number, oldest first (instead of after/before)"
            ),
        ],
        responses=MessagePageSerializer,
    )
    def get(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id, with_message_count=True)
        after = _int_param(request, "after", minimum=0)
        before = _int_param(request, "before", minimum=0)
        page_number = _int_param(request, "page", minimum=1)
        limit = (
            _int_param(request, "limit", minimum=1, maximum=200)
            or _int_param(request, "page_size", minimum=1, maximum=200)
            or 50
        )
        latest = request.query_params.get("latest", "").lower() in ("1", "true", "yes")
        if page_number is not None and (after is not None or before is not None or latest):
            raise AppError("page cannot be combined with after, before or latest.", code="invalid")
        count = conversation.message_count
        base = request.build_absolute_uri(request.path)
        next_url = previous_url = None
        if page_number is not None:
            offset = (page_number - 1) * limit
            if page_number > 1 and offset >= count:
                raise NotFound("Invalid page.", code="not_found")
            messages, more = selectors.message_list(
                conversation=conversation, limit=limit, offset=offset
            )
            next_url = f"{base}?page={page_number + 1}&limit={limit}" if more else None
            if page_number > 1:
                previous_url = f"{base}?page={page_number - 1}&limit={limit}"
            return self._page(count, next_url, previous_url, messages)
        messages, more = selectors.message_list(
            conversation=conversation, after=after, before=before, latest=latest, limit=limit
        )
        backwards = before is not None or latest
        if messages:
            if backwards:
                previous_url = f"{base}?before={messages[0].seq}&limit={limit}" if more else None
                next_url = (
                    f"{base}?after={messages[-1].seq}&limit={limit}" if before is not None else None
                )
            else:
                next_url = f"{base}?after={messages[-1].seq}&limit={limit}" if more else None
                previous_url = (
                    f"{base}?before={messages[0].seq}&limit={limit}" if after is not None else None
                )
        return self._page(count, next_url, previous_url, messages)

    @staticmethod
    def _page(
        count: int, next_url: str | None, previous_url: str | None, messages: list[Message]
    ) -> Response:
        return Response(
            {
                "count": count,
                "next": next_url,
                "previous": previous_url,
                "results": MessageOutputSerializer(messages, many=True).data,
            }
        )

    @extend_schema(
        request=MessageInputSerializer,
        responses={
            201: ReplyOutputSerializer,
            (200, "text/event-stream"): OpenApiTypes.STR,
            409: ERROR_RESPONSE,
            429: ERROR_RESPONSE,
            502: ERROR_RESPONSE,
            503: ERROR_RESPONSE,
            504: ERROR_RESPONSE,
        },
    )
    def post(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        serializer = MessageInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        enforce(request, group="chat", rate=settings.CHAT_RATE_LIMIT)
        start = services.reply_start(
            user=request.user,
            conversation=conversation,
            content=serializer.validated_data["content"],
        )
        return _reply_response(
            request, start, stream=_wants_stream(request, serializer.validated_data.get("stream"))
        )


class RegenerateApi(APIView):
    @extend_schema(
        request=RegenerateInputSerializer,
        responses={201: ReplyOutputSerializer, (200, "text/event-stream"): OpenApiTypes.STR},
    )
    def post(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        serializer = RegenerateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        enforce(request, group="chat", rate=settings.CHAT_RATE_LIMIT)
        start = services.reply_start(
            user=request.user, conversation=conversation, content=None, regenerate=True
        )
        return _reply_response(
            request, start, stream=_wants_stream(request, serializer.validated_data.get("stream"))
        )
