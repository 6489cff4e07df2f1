from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from chatsite.api.fields import StrictCharField

from ..models import Feedback, Message
from ..shapes import conversation_data, message_data


class StrictBooleanField(serializers.BooleanField):
    """Only JSON ``true``/``false``: ``"yes"`` or ``1`` are refused rather than guessed."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictNumberField(serializers.FloatField):
    """A JSON number only: ``"0.7"`` is refused rather than parsed."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ConversationInputSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200, required=False, allow_blank=True)
    model = StrictCharField(max_length=64, required=False)
    system_prompt = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
    # The conversation's parameters; null = the model's default. Checked against the model's
    # range by services.py (400 ``invalid_parameter`` with the allowed range).
    temperature = StrictNumberField(required=False, allow_null=True, min_value=0, max_value=2)
    max_tokens = StrictIntegerField(
        required=False, allow_null=True, min_value=1, max_value=1_000_000
    )
    reasoning = StrictBooleanField(required=False, allow_null=True)
    web_search = StrictBooleanField(required=False, allow_null=True)
    pinned = StrictBooleanField(required=False)

    def validate_system_prompt(self, value: str) -> str:
        if len(value) > settings.MAX_SYSTEM_PROMPT_CHARS:
            raise serializers.ValidationError(
                f"Ensure this field has no more than {settings.MAX_SYSTEM_PROMPT_CHARS} "
                "characters.",
                code="max_length",
            )
        return value


class ConversationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    model = serializers.CharField()
    system_prompt = serializers.CharField()
    temperature = serializers.FloatField(allow_null=True)
    max_tokens = serializers.IntegerField(allow_null=True)
    reasoning = serializers.BooleanField(allow_null=True)
    web_search = serializers.BooleanField(allow_null=True)
    pinned = serializers.BooleanField(help_text="Pinned to the top of the sidebar")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        # A page of 20 conversations through DRF's field walk cost ~3 ms of a ~10 ms list request;
        # the fields above describe the shape for the schema, shapes.py builds it.
        return conversation_data(instance)


PARENT_HELP = (
    "Branches: the reply this message answers, or the user message it replaces (an edit, "
    "added beside the original). Omitted: after the active branch's last message."
)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "uuid"},
            {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "pages": {"type": "string", "maxLength": 100, "example": "1-12,15"},
                },
                "required": ["id"],
                "additionalProperties": False,
            },
        ],
        "description": "An uploaded file's id (POST /api/files/), or {id, pages} for a page "
        "range of a PDF or slides of a presentation",
    }
)
class AttachmentRefField(serializers.Field):
    default_error_messages = {
        "invalid": "Each attachment is a file id, or an object with id and optional pages.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            data = {"id": data}
        if not isinstance(data, dict) or set(data) - {"id", "pages"} or "id" not in data:
            self.fail("invalid")
        identifier = serializers.UUIDField().run_validation(data["id"])
        pages = data.get("pages") or ""
        if not isinstance(pages, str) or len(pages) > 100:
            self.fail("invalid")
        return {"id": identifier, "pages": pages}

    def to_representation(self, value: Any) -> Any:
        return value


class MessageInputSerializer(serializers.Serializer):
    content = StrictCharField(trim_whitespace=False, allow_blank=True)
    stream = StrictBooleanField(required=False)
    # DRF's metaclass moves declared fields out of the class: this never shadows Field.parent.
    parent = serializers.UUIDField(  # type: ignore[assignment]
        required=False, allow_null=True, help_text=PARENT_HELP
    )
    attachments = serializers.ListField(
        child=AttachmentRefField(), required=False, max_length=20, help_text="Files to send with it"
    )

    def validate_content(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("The message is empty.", code="blank")
        if len(value) > settings.MAX_MESSAGE_CHARS:
            raise serializers.ValidationError(
                f"The message is longer than {settings.MAX_MESSAGE_CHARS} characters.",
                code="max_length",
            )
        return value


class RegenerateInputSerializer(serializers.Serializer):
    stream = StrictBooleanField(required=False)
    parent = serializers.UUIDField(  # type: ignore[assignment]  # a field, not Field.parent
        required=False,
        allow_null=True,
        help_text="The reply to answer again (added beside it). Omitted: the active branch's last.",
    )


class StopInputSerializer(serializers.Serializer):
    shown = StrictIntegerField(
        min_value=0,
        max_value=10_000_000,
        help_text="How many characters (Unicode code points) of the reply the page showed",
    )


class BranchInputSerializer(serializers.Serializer):
    message = serializers.UUIDField(
        help_text="A message of the branch to show: the active branch becomes the path to the "
        "newest message at or under it."
    )


class BranchOutputSerializer(serializers.Serializer):
    leaf = serializers.UUIDField(help_text="The active branch's last message")
    count = serializers.IntegerField(help_text="Messages on the active branch")


class UsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()


class ReferenceSerializer(serializers.Serializer):
    title = serializers.CharField()
    url = serializers.URLField()


FEEDBACK_COMMENT_MAX = 2000


class FeedbackInputSerializer(serializers.Serializer):
    rating = serializers.ChoiceField(choices=Feedback.Rating.choices)
    reason = StrictCharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text=(
            "The code of an enabled reason offered with this rating (GET /api/feedback/reasons/);"
            " empty or left out: none"
        ),
    )
    comment = StrictCharField(max_length=FEEDBACK_COMMENT_MAX, required=False, allow_blank=True)


class FeedbackOutputSerializer(serializers.Serializer):
    # A plain string here: an enum of the same name in two components makes drf-spectacular's
    # enum naming collide with the reasons' `rating` (up, down, any).
    rating = serializers.CharField(help_text="up (👍) or down (👎)")
    reason = serializers.CharField(help_text="A reason code, or empty")
    comment = serializers.CharField()
    updated_at = serializers.DateTimeField()


class FeedbackReasonSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField(  # type: ignore[assignment]
        help_text="In the request's language (Accept-Language, or the language cookie)"
    )
    rating = serializers.ChoiceField(
        choices=["up", "down", "any"],
        help_text="Offered with 👍 (up), 👎 (down) or both (any)",
    )


class SentFileSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    kind = serializers.CharField()
    size = serializers.IntegerField()
    pages = serializers.CharField(help_text="The page range sent, or empty for all of it")


class MessageOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    conversation = serializers.UUIDField(source="conversation_id")
    seq = serializers.IntegerField()
    role = serializers.ChoiceField(choices=Message.Role.choices)
    content = serializers.CharField()
    reasoning = serializers.CharField(help_text="What the model thought before answering")
    reasoning_ms = serializers.IntegerField(allow_null=True)
    references = ReferenceSerializer(many=True)
    status = serializers.ChoiceField(choices=Message.Status.choices)
    model = serializers.CharField()
    provider = serializers.CharField()
    error_code = serializers.CharField()
    error_detail = serializers.CharField()
    sid = serializers.CharField()
    usage = UsageSerializer(allow_null=True)
    cost_cny = serializers.CharField(
        allow_null=True, help_text="A decimal string; null: unpriced model or still streaming"
    )
    ttft_ms = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    parent = serializers.UUIDField(  # type: ignore[assignment]  # a field, not Field.parent
        source="parent_id", allow_null=True, help_text="The message this one follows"
    )
    siblings = serializers.ListField(
        source="sibling_ids",
        child=serializers.UUIDField(),
        allow_null=True,
        help_text="This message and its siblings (edits, regenerations) in order, in listings",
    )
    active = serializers.BooleanField(help_text="On the active branch")
    attachments = serializers.ListField(
        source="sent_attachments",
        child=SentFileSerializer(),
        help_text="The files a user message was sent with (POST /api/files/)",
    )
    feedback = FeedbackOutputSerializer(
        allow_null=True,
        help_text="The user's rating of a reply (PUT /api/messages/{id}/feedback/); null: none",
    )

    def to_representation(self, instance: Message) -> dict[str, Any]:
        # The fields above describe the shape for the schema; shapes.py builds it (DRF's walk over
        # the declared fields cost about 1 ms a message).
        return message_data(instance)


class TemperatureRangeSerializer(serializers.Serializer):
    min = serializers.FloatField()
    max = serializers.FloatField()
    default = serializers.FloatField(allow_null=True, help_text="null: the provider's default")


class CapabilitiesSerializer(serializers.Serializer):
    reasoning = serializers.BooleanField(help_text="The model thinks before it answers")
    reasoning_switch = serializers.BooleanField(help_text="Reasoning can be switched off")
    web_search = serializers.BooleanField()
    vision = serializers.BooleanField()
    temperature = TemperatureRangeSerializer()


class ModelOutputSerializer(serializers.Serializer):
    id = serializers.CharField()
    # DRF's metaclass moves declared fields out of the class, so this never shadows Field.label;
    # the stubs cannot say so.
    label = serializers.CharField()  # type: ignore[assignment]
    provider = serializers.CharField()
    provider_label = serializers.CharField()
    dialect = serializers.CharField()
    context_window = serializers.IntegerField()
    max_tokens = serializers.IntegerField(help_text="The output limit (same as max_output)")
    max_output = serializers.IntegerField()
    default = serializers.BooleanField()
    capabilities = CapabilitiesSerializer()
    configured = serializers.BooleanField(help_text="Whether an API key is configured")


class MessagePageSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Visible messages in the conversation")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = MessageOutputSerializer(many=True)


class ReplyOutputSerializer(serializers.Serializer):
    user_message = MessageOutputSerializer(allow_null=True)
    assistant_message = MessageOutputSerializer()


class UsedSerializer(serializers.Serializer):
    messages = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    tokens = serializers.IntegerField(help_text="Charged tokens, with what replies in flight hold")
    cost_cny = serializers.CharField(help_text="A decimal string")


class LimitsSerializer(serializers.Serializer):
    messages = serializers.IntegerField(allow_null=True)
    tokens = serializers.IntegerField(allow_null=True)
    cost_cny = serializers.CharField(allow_null=True, help_text="A decimal string")


class PeriodUsageSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()
    used = UsedSerializer()
    limits = LimitsSerializer(help_text="null: no limit")
    remaining = LimitsSerializer(help_text="null: no limit")


class UsageOutputSerializer(serializers.Serializer):
    time_zone = serializers.CharField()
    day = PeriodUsageSerializer()
    week = PeriodUsageSerializer()
    month = PeriodUsageSerializer()
