"""The conversations API (docs/architecture.md, "The HTTP interface").

Thin views: validate with an input serializer, call one selector, service or the reply engine,
render. Errors are raised as ``chatsite.errors.AppError`` and shaped at the API edge.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypedDict, cast

from django.utils import translation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatsite.errors import AppError, NotFound

from .. import branches, selectors, services
from ..models import Conversation, Message
from ..replies import Reply, reply_stop
from ..shapes import feedback_data, message_data
from . import sse
from .serializers import (
    BranchInputSerializer,
    BranchOutputSerializer,
    ConversationInputSerializer,
    ConversationOutputSerializer,
    FeedbackInputSerializer,
    FeedbackOutputSerializer,
    FeedbackReasonSerializer,
    MessageInputSerializer,
    MessageOutputSerializer,
    MessagePageSerializer,
    ModelOutputSerializer,
    RegenerateInputSerializer,
    ReplyOutputSerializer,
    StopInputSerializer,
    UsageOutputSerializer,
)

# Documented in the schema (chatsite/api/schema.py): sending is rate limited, refused while a
# reply is in progress, and may fail with the model service.
# 403: the user's group may not use the conversation's model; 429: rate limit or quota.
REPLY_ERROR_STATUSES = {"POST": (403, 409, 429, 502, 503, 504)}


if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _MessageCount(TypedDict):
    """What ``selectors.conversation_get(with_message_count=True)`` annotates."""

    message_count: int


def _owned_conversation(
    request: Request, conversation_id: Any, *, with_message_count: bool = False
) -> Conversation:
    # Another user's conversation answers exactly like one that does not exist (404).
    return selectors.conversation_get(
        user_id=request.user.pk,
        conversation_id=conversation_id,
        with_message_count=with_message_count,
    )


class UsageApi(APIView):
    """The caller's own usage and what remains, today, this week and this month."""

    @extend_schema(responses=UsageOutputSerializer)
    def get(self, request: Request) -> Response:
        selectors.user_check(user_id=request.user.pk)
        return Response(selectors.usage_report(user_id=request.user.pk))


class ModelListApi(APIView):
    error_statuses = {"GET": (503,)}  # no model configured

    @extend_schema(responses=ModelOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        models = selectors.model_list(user_id=request.user.pk)
        return Response(ModelOutputSerializer(models, many=True).data)


# A parameter the conversation's model cannot take (services._apply_parameters): schema-valid,
# refused on its merits.
INVALID_PARAMETER = {
    "invalid_parameter": (
        "The model cannot take this value of temperature, max_tokens, reasoning or web_search; "
        "`field` names it and `allowed` gives its range."
    )
}


class ConversationListApi(generics.GenericAPIView):
    serializer_class = ConversationOutputSerializer
    error_statuses = {"POST": (403,)}  # a model the user's group may not use
    error_codes = {"POST": {400: INVALID_PARAMETER}}

    def get_queryset(self) -> Any:
        return selectors.conversation_list(
            user_id=self.request.user.pk, search=self.request.query_params.get("search", "")
        )

    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="Matches titles and message text")],
        responses=ConversationOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        if not page:
            # The list query only shows an active user's conversations: an empty page may mean
            # the user was deactivated (checked only then, so the common case costs no query).
            selectors.user_check(user_id=request.user.pk)
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
    error_statuses = {"PATCH": (403,)}  # a model the user's group may not use
    error_codes = {"PATCH": {400: INVALID_PARAMETER}}

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
        services.conversation_delete(
            conversation=_owned_conversation(request, conversation_id), by=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _query_value(request: Request, name: str) -> str | None:
    # One value, as the schema describes it: `?after=` or `?after=1&after=2` is refused rather than
    # read as no value or as the last one.
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1 or values[0] == "":
        raise AppError(f"{name}: must be given once, with a value.", code="invalid")
    return values[0]


def _int_param(
    request: Request, name: str, *, minimum: int, maximum: int | None = None
) -> int | None:
    raw = _query_value(request, name)
    if raw is None:
        return None
    if not re.fullmatch(r"-?[0-9]+", raw):  # int() would take " 1", "+1", "1_0" or "١"
        raise AppError(f"{name}: must be an integer.", code="invalid")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = (
            f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        )
        raise AppError(f"{name}: must be {bounds}.", code="invalid")
    return value


def _bool_param(request: Request, name: str) -> bool:
    # As OpenAPI writes a boolean in a query string: anything else is refused, not read as false.
    raw = _query_value(request, name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise AppError(f"{name}: must be true or false.", code="invalid")


def _reply_response(request: Request, reply: Reply, *, stream: bool | None) -> Any:
    if stream is None:
        stream = "text/event-stream" in request.headers.get("Accept", "")
    if stream:
        return sse.response(reply, request.META)
    return Response(reply.complete(), status=status.HTTP_201_CREATED)


# A message named in a request that is in another conversation of the user (branches.message_in).
INVALID_PARENT = {
    "invalid_parent": "The message named is in another of your conversations, not this one."
}


# Refusals of a message's files (replies._checked_files, attachments.services.choose): the files'
# state and the model's window, which no schema can state (docs/attachments.md).
ATTACHMENT_REFUSALS = {
    "too_many_attachments": "More files than ATTACHMENTS_PER_MESSAGE.",
    "attachment_elsewhere": "A file was sent in another conversation; upload it again here.",
    "model_cannot_see_images": "Images sent to a model without vision.",
    "attachments_too_long": (
        "The files and message do not fit the model's context window; `over_by` says by how "
        "much and `models` which models would take them."
    ),
    "invalid_pages": "A page range outside the file, or not like 1-12,15.",
}

NOT_A_REPLY_TO_REGENERATE = {
    "not_a_reply": "parent names a user message: only a reply can be regenerated.",
}

MESSAGE_PAGE_MAX = 200
PAGE_WITH_CURSOR = "page cannot be combined with after, before or latest=true."


class MessageListApi(APIView):
    error_statuses = REPLY_ERROR_STATUSES
    # Parameters that exclude each other, which OpenAPI cannot state (chatsite/api/schema.py).
    error_codes = {
        "GET": {400: {"conflicting_parameters": PAGE_WITH_CURSOR}},
        "POST": {400: {**INVALID_PARENT, **ATTACHMENT_REFUSALS}},
    }

    @extend_schema(
        description=(
            "One page of the conversation's messages: by cursor (`after`, `before`, "
            "`latest=true`) or by `page` number, oldest first. `page` with a cursor is refused "
            "with 400 `conflicting_parameters`."
        ),
        parameters=[
            OpenApiParameter("after", int, description="Messages after this seq"),
            OpenApiParameter(
                "before", int, description="Messages before this seq (newest first page)"
            ),
            OpenApiParameter("latest", bool, description="The newest page"),
            OpenApiParameter("limit", int, description="Page size, 1-200 (default 50)"),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "maximum": MESSAGE_PAGE_MAX},
                description="Another name for limit",
            ),
            OpenApiParameter(
                "page", int, description="Page number, oldest first (instead of after/before)"
            ),
            OpenApiParameter(
                "branches",
                {"type": "string", "enum": ["active", "all"]},
                description="active (default): the branch the user chose; all: every message "
                "of every branch, in the order written (each says whether it is `active`)",
            ),
        ],
        responses=MessagePageSerializer,
    )
    def get(self, request: Request, conversation_id: Any) -> Response:
        conversation = cast(
            "WithAnnotations[Conversation, _MessageCount]",
            _owned_conversation(request, conversation_id, with_message_count=True),
        )
        after = _int_param(request, "after", minimum=0)
        before = _int_param(request, "before", minimum=0)
        page_number = _int_param(request, "page", minimum=1)
        limit = _int_param(request, "limit", minimum=1, maximum=MESSAGE_PAGE_MAX)
        page_size = _int_param(request, "page_size", minimum=1, maximum=MESSAGE_PAGE_MAX)
        limit = limit or page_size or 50
        latest = _bool_param(request, "latest")
        if page_number is not None and (after is not None or before is not None or latest):
            raise AppError(PAGE_WITH_CURSOR, code="conflicting_parameters")
        scope = _query_value(request, "branches") or "active"
        if scope not in ("active", "all"):
            raise AppError("branches: must be active or all.", code="invalid")
        every = scope == "all"
        count = conversation.message_count if not every else conversation.messages.count()
        kept = f"&branches={scope}" if every else ""
        base = request.build_absolute_uri(request.path)
        next_url = previous_url = None
        if page_number is not None:
            offset = (page_number - 1) * limit
            if page_number > 1 and offset >= count:
                raise NotFound("Invalid page.")
            messages, more = selectors.message_list(
                conversation=conversation, limit=limit, offset=offset, every_branch=every
            )
            next_url = f"{base}?page={page_number + 1}&limit={limit}{kept}" if more else None
            if page_number > 1:
                previous_url = f"{base}?page={page_number - 1}&limit={limit}{kept}"
            return self._page(count, next_url, previous_url, messages)
        messages, more = selectors.message_list(
            conversation=conversation,
            after=after,
            before=before,
            latest=latest,
            limit=limit,
            every_branch=every,
        )
        backwards = before is not None or latest
        if messages:
            if backwards:
                previous_url = (
                    f"{base}?before={messages[0].seq}&limit={limit}{kept}" if more else None
                )
                next_url = (
                    f"{base}?after={messages[-1].seq}&limit={limit}{kept}"
                    if before is not None
                    else None
                )
            else:
                next_url = f"{base}?after={messages[-1].seq}&limit={limit}{kept}" if more else None
                previous_url = (
                    f"{base}?before={messages[0].seq}&limit={limit}{kept}"
                    if after is not None
                    else None
                )
        return self._page(count, next_url, previous_url, messages)

    @staticmethod
    def _page(
        count: int, next_url: str | None, previous_url: str | None, messages: list[Message]
    ) -> Response:
        # Each message's siblings (edits, regenerations) for the page's ‹ 2/3 ›: one query.
        siblings = branches.siblings(messages)
        for message in messages:
            message.sibling_ids = siblings[message.id]  # type: ignore[attr-defined]
        return Response(
            {
                "count": count,
                "next": next_url,
                "previous": previous_url,
                "results": [message_data(message) for message in messages],
            }
        )

    @extend_schema(
        request=MessageInputSerializer,
        responses={201: ReplyOutputSerializer, (200, "text/event-stream"): OpenApiTypes.STR},
    )
    def post(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        serializer = MessageInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply = Reply.start(
            conversation=conversation,
            content=serializer.validated_data["content"],
            parent=serializer.validated_data.get("parent"),
            files=serializer.validated_data.get("attachments"),
        )
        return _reply_response(request, reply, stream=serializer.validated_data.get("stream"))


class RegenerateApi(APIView):
    error_statuses = REPLY_ERROR_STATUSES
    error_codes = {"POST": {400: {**INVALID_PARENT, **NOT_A_REPLY_TO_REGENERATE}}}

    @extend_schema(
        request=RegenerateInputSerializer,
        responses={201: ReplyOutputSerializer, (200, "text/event-stream"): OpenApiTypes.STR},
    )
    def post(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        serializer = RegenerateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply = Reply.start(
            conversation=conversation,
            content=None,
            regenerate=True,
            parent=serializer.validated_data.get("parent"),
        )
        return _reply_response(request, reply, stream=serializer.validated_data.get("stream"))


class BranchApi(APIView):
    """Choose the branch to show (``‹ 2/3 ›``): saved, so a reload shows the same branch."""

    error_statuses = {"PUT": (409,)}
    error_codes = {"PUT": {400: INVALID_PARENT}}

    @extend_schema(request=BranchInputSerializer, responses=BranchOutputSerializer)
    def put(self, request: Request, conversation_id: Any) -> Response:
        conversation = _owned_conversation(request, conversation_id)
        serializer = BranchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        leaf, count = branches.branch_select(
            conversation=conversation, message_id=serializer.validated_data["message"]
        )
        return Response({"leaf": str(leaf), "count": count})


class StopApi(APIView):
    """The page stopped a reply: keep exactly the text it showed (``replies.reply_stop``)."""

    error_statuses = {"POST": (409,)}
    error_codes = {"POST": {400: {"not_a_reply": "Only a reply can be stopped."}}}

    @extend_schema(request=StopInputSerializer, responses=MessageOutputSerializer)
    def post(self, request: Request, message_id: Any) -> Response:
        message = selectors.feedback_message_get(user_id=request.user.pk, message_id=message_id)
        serializer = StopInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stopped = reply_stop(message=message, shown=serializer.validated_data["shown"])
        return Response(message_data(stopped))


# What a rating may be refused with, besides a malformed body (services.feedback_set).
NOT_RATEABLE = {
    "not_a_reply": "Only a reply of the assistant can be rated (this is the user's message).",
    "reply_not_finished": "The reply is still being written: rate it once it is finished.",
}
INVALID_REASON = {
    "invalid_reason": (
        "The reason is not one offered with this rating (unknown, disabled, or for the other "
        "rating); `allowed` lists the codes that are."
    )
}


class FeedbackApi(APIView):
    """The user's 👍/👎 on one of their replies: set or replace it (PUT), take it back (DELETE).

    Another user's message, an unknown one, one of a deleted conversation or a replaced reply
    answers 404 ``not_found``, as a conversation does.
    """

    error_codes = {
        "PUT": {400: {**NOT_RATEABLE, **INVALID_REASON}},
        "DELETE": {400: NOT_RATEABLE},
    }

    @extend_schema(
        description=(
            "Rate a finished reply of the assistant, or replace its rating. `reason` is a code "
            "from GET /api/feedback/reasons/ offered with the rating; `comment` is optional."
        ),
        request=FeedbackInputSerializer,
        responses=FeedbackOutputSerializer,
    )
    def put(self, request: Request, message_id: Any) -> Response:
        message = selectors.feedback_message_get(user_id=request.user.pk, message_id=message_id)
        serializer = FeedbackInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.feedback_set(message=message, **serializer.validated_data)
        return Response(feedback_data(message))

    @extend_schema(
        description=(
            "Take back the rating of a reply. Idempotent: 204 whether or not the reply had one."
        ),
        responses={204: None},
    )
    def delete(self, request: Request, message_id: Any) -> Response:
        message = selectors.feedback_message_get(user_id=request.user.pk, message_id=message_id)
        services.feedback_delete(message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


class FeedbackReasonListApi(APIView):
    """The reasons a user may give with a rating, labelled in the request's language."""

    @extend_schema(responses=FeedbackReasonSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(selectors.feedback_reason_list(language=translation.get_language()))
