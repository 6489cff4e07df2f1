"""The API's message object, built without DRF's field walk, equals DRF's own."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from conversations.api.serializers import MessageOutputSerializer
from conversations.models import Message
from tests.factories import MessageFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {},
        {
            "role": Message.Role.ASSISTANT,
            "status": Message.Status.ERROR,
            "error_code": "10014",
            "error_detail": "stopped",
            "sid": "cha000b@dx1",
            "prompt_tokens": 6,
            "completion_tokens": 42,
            "total_tokens": 48,
            "ttft_ms": 120,
            "duration_ms": 900,
        },
    ],
    ids=["user", "failed-reply"],
)
def test_message_output_equals_the_declared_fields(fields) -> None:
    message = MessageFactory(**fields)
    fresh = Message.objects.get(pk=message.pk)
    declared = dict(MessageOutputSerializer._declared_fields)

    class Generic(serializers.Serializer):
        locals().update(declared)

    for instance in (message, fresh):  # in memory (enums, local datetimes) and from the database
        assert MessageOutputSerializer(instance).data == Generic(instance).data
        assert set(MessageOutputSerializer(instance).data) == set(declared)
