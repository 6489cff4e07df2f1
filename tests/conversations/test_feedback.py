"""Feedback on replies: PUT/DELETE /api/messages/<id>/feedback/, the reasons, and the `feedback`
field of the message objects."""

from __future__ import annotations

import importlib
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from conversations.models import Feedback, FeedbackReason, Message
from conversations.shapes import message_data, message_log_fields
from review.models import ReviewItem
from tests.factories import ConversationFactory, MessageFactory
from tests.fuzz.openapi import documented_codes, openapi, schema_valid_cases
from tests.support.api import assert_json_error

pytestmark = pytest.mark.django_db

FEEDBACK = "/api/messages/{id}/feedback/"
FEEDBACK_PATH = "/api/messages/{message_id}/feedback/"
DOWN_REASONS = ["inaccurate", "unhelpful", "incomplete", "harmful", "refused", "other"]
UP_REASONS = ["helpful", "other"]


def url(message) -> str:
    return FEEDBACK.format(id=message.pk)


def put(client, message, body):
    return client.put(url(message), body, format="json")


def messages_of(client, conversation, **query):
    response = client.get(f"/api/conversations/{conversation.pk}/messages/", query)
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture(autouse=True)
def reasons(db) -> None:
    # Seeded by a data migration; a transactional test elsewhere may have flushed them.
    seeded = importlib.import_module("conversations.migrations.0008_feedback_reasons")
    for order, (code, label, label_zh, rating) in enumerate(seeded.REASONS):
        FeedbackReason.objects.get_or_create(
            code=code,
            defaults={"label": label, "label_zh": label_zh, "rating": rating, "order": order},
        )


@pytest.fixture
def conversation(user):
    return ConversationFactory(user=user)


@pytest.fixture
def reply(conversation) -> Message:
    MessageFactory(conversation=conversation, seq=1, role="user", content="hi")
    return MessageFactory(conversation=conversation, seq=2, role="assistant", content="hello")


# --- setting, replacing, taking back ------------------------------------------------------------


def test_a_rating_is_set_and_shown_on_the_message(api, conversation, reply):
    response = put(api, reply, {"rating": "up"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rating"] == "up"
    assert body["reason"] == ""
    assert body["comment"] == ""
    feedback = Feedback.objects.get(message=reply)
    assert body["updated_at"].endswith("Z")
    assert (feedback.rating, feedback.reason) == ("up", "")
    items = messages_of(api, conversation)
    assert items[0]["feedback"] is None  # the user's message
    assert items[1]["feedback"] == body


def test_a_rating_is_replaced_by_the_next_one(api, conversation, reply):
    put(api, reply, {"rating": "up", "reason": "helpful", "comment": "nice"})

    response = put(
        api, reply, {"rating": "down", "reason": "inaccurate", "comment": "  The date is wrong. "}
    )

    assert response.status_code == 200, response.content
    assert Feedback.objects.count() == 1
    feedback = Feedback.objects.get()
    assert (feedback.rating, feedback.reason, feedback.comment) == (
        "down",
        "inaccurate",
        "The date is wrong.",
    )
    shown = messages_of(api, conversation)[1]["feedback"]
    assert shown["rating"] == "down"
    assert shown["reason"] == "inaccurate"
    assert shown["comment"] == "The date is wrong."


def test_a_rating_is_taken_back(api, conversation, reply):
    put(api, reply, {"rating": "down"})

    response = api.delete(url(reply))

    assert response.status_code == 204
    assert not Feedback.objects.exists()
    assert messages_of(api, conversation)[1]["feedback"] is None
    # Taking back what is not there is the same end state: 204 again.
    assert api.delete(url(reply)).status_code == 204


def test_interrupted_and_failed_replies_can_be_rated(api, conversation):
    for seq, status in ((1, "interrupted"), (2, "error")):
        message = MessageFactory(
            conversation=conversation, seq=seq, role="assistant", status=status
        )
        assert put(api, message, {"rating": "down"}).status_code == 200
    assert Feedback.objects.count() == 2


def test_a_thumbs_down_queues_the_reply_for_review(api, conversation, reply):
    put(api, reply, {"rating": "up"})
    assert not ReviewItem.objects.exists()

    put(api, reply, {"rating": "down", "reason": "harmful", "comment": "rude"})

    item = ReviewItem.objects.get()
    assert item.source == ReviewItem.Source.FEEDBACK
    assert item.message_id == reply.pk
    assert item.conversation_id == conversation.pk
    assert "harmful" in item.detail


def test_jwt_bearer_rates_and_takes_back(user, reply):
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")

    assert put(bearer, reply, {"rating": "up", "reason": "helpful"}).status_code == 200
    assert Feedback.objects.get().reason == "helpful"
    assert bearer.delete(url(reply)).status_code == 204
    assert not Feedback.objects.exists()


def test_a_session_write_needs_the_csrf_token(user, reply):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)

    response = strict.put(url(reply), {"rating": "up"}, content_type="application/json")

    assert response.status_code == 403
    assert not Feedback.objects.exists()
    token = strict.get("/").cookies["csrftoken"].value
    response = strict.put(
        url(reply), {"rating": "up"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200, response.content


def test_anonymous_requests_are_refused(anon, reply):
    assert_json_error(put(anon, reply, {"rating": "up"}), 401, "not_authenticated")
    assert_json_error(anon.delete(url(reply)), 401, "not_authenticated")


# --- 404: nothing of anyone else's, nothing that is gone ----------------------------------------


def test_another_users_reply_is_not_found(api, other_user):
    theirs = MessageFactory(conversation=ConversationFactory(user=other_user), role="assistant")

    assert_json_error(put(api, theirs, {"rating": "down"}), 404, "not_found")
    assert_json_error(api.delete(url(theirs)), 404, "not_found")
    assert not Feedback.objects.exists()


def test_an_unknown_or_malformed_id_is_not_found(api):
    assert_json_error(
        api.put(FEEDBACK.format(id=uuid.uuid4()), {"rating": "up"}, format="json"),
        404,
        "not_found",
    )
    for bad in ("123", "not-a-uuid", "0" * 40):
        assert_json_error(
            api.put(FEEDBACK.format(id=bad), {"rating": "up"}, format="json"), 404, "not_found"
        )
        assert_json_error(api.delete(FEEDBACK.format(id=bad)), 404, "not_found")


def test_a_reply_of_a_deleted_conversation_is_not_found(api, conversation, reply):
    put(api, reply, {"rating": "up"})
    conversation.deleted_at = timezone.now()
    conversation.save(update_fields=["deleted_at"])

    assert_json_error(put(api, reply, {"rating": "down"}), 404, "not_found")
    assert_json_error(api.delete(url(reply)), 404, "not_found")
    assert Feedback.objects.get().rating == "up"


def test_a_replaced_reply_is_not_found(api, conversation, reply):
    Message.objects.filter(pk=reply.pk).update(replaced=True)

    assert_json_error(put(api, reply, {"rating": "down"}), 404, "not_found")


# --- 400: what cannot be rated, what cannot be said ---------------------------------------------


def test_a_users_own_message_cannot_be_rated(api, conversation, reply):
    mine = Message.objects.get(conversation=conversation, role="user")

    assert_json_error(put(api, mine, {"rating": "up"}), 400, "not_a_reply")
    assert_json_error(api.delete(url(mine)), 400, "not_a_reply")
    assert not Feedback.objects.exists()


def test_a_reply_still_being_written_cannot_be_rated(api, conversation):
    streaming = MessageFactory(
        conversation=conversation, role="assistant", status="streaming", content="hal"
    )

    body = assert_json_error(put(api, streaming, {"rating": "up"}), 400, "reply_not_finished")

    assert "still being written" in body["detail"]
    assert not Feedback.objects.exists()


def test_an_unknown_reason_is_refused_with_the_allowed_codes(api, reply):
    body = assert_json_error(
        put(api, reply, {"rating": "down", "reason": "boring"}), 400, "invalid_reason"
    )

    assert body["allowed"] == DOWN_REASONS
    assert body["field"] == "reason"
    assert not Feedback.objects.exists()


def test_a_reason_of_the_other_rating_is_refused(api, reply):
    body = assert_json_error(
        put(api, reply, {"rating": "up", "reason": "inaccurate"}), 400, "invalid_reason"
    )
    assert body["allowed"] == UP_REASONS

    body = assert_json_error(
        put(api, reply, {"rating": "down", "reason": "helpful"}), 400, "invalid_reason"
    )
    assert body["allowed"] == DOWN_REASONS
    assert not Feedback.objects.exists()


def test_a_disabled_reason_is_refused(api, reply):
    FeedbackReason.objects.filter(code="harmful").update(enabled=False)

    body = assert_json_error(
        put(api, reply, {"rating": "down", "reason": "harmful"}), 400, "invalid_reason"
    )

    assert "harmful" not in body["allowed"]


def test_a_comment_of_2000_characters_is_taken_and_one_more_is_refused(api, reply):
    assert put(api, reply, {"rating": "down", "comment": "x" * 2000}).status_code == 200

    body = assert_json_error(put(api, reply, {"rating": "down", "comment": "y" * 2001}), 400)

    assert body["field"] == "comment"
    assert body["code"] == "max_length"
    assert Feedback.objects.get().comment == "x" * 2000


@pytest.mark.parametrize(
    "body",
    [{}, {"rating": "meh"}, {"rating": 1}, {"rating": None}, {"rating": "up", "comment": 5}],
    ids=["missing", "unknown", "number", "null", "comment-not-a-string"],
)
def test_a_bad_rating_is_refused(api, reply, body):
    response = put(api, reply, body)

    assert_json_error(response, 400)
    assert response.json()["field"] in ("rating", "comment")
    assert not Feedback.objects.exists()


# --- the message objects ------------------------------------------------------------------------


def _rated_conversation(user, replies: int):
    conversation = ConversationFactory(user=user)
    for number in range(replies):
        MessageFactory(conversation=conversation, seq=2 * number + 1, role="user")
        reply = MessageFactory(conversation=conversation, seq=2 * number + 2, role="assistant")
        if number % 2 == 0:
            Feedback.objects.create(message=reply, rating="down", comment="meh")
    return conversation


@pytest.mark.parametrize("query", [{}, {"latest": "true"}, {"page": 1}, {"after": 0}])
def test_feedback_costs_no_query_per_message(api, user, query):
    counts = []
    for replies in (1, 10):  # 2 and 20 messages
        conversation = _rated_conversation(user, replies)
        with CaptureQueriesContext(connection) as queries:
            results = messages_of(api, conversation, **query)
        assert len(results) == 2 * replies
        assert [m["feedback"]["rating"] if m["feedback"] else None for m in results][:4] == (
            [None, "down", None, None] if replies > 1 else [None, "down"]
        )
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_message_loaded_without_its_feedback_shows_none_without_a_query(user, reply):
    Feedback.objects.create(message=reply, rating="up")
    fresh = Message.objects.get(pk=reply.pk)

    with CaptureQueriesContext(connection) as queries:
        data = message_data(fresh)

    assert data["feedback"] is None
    assert len(queries) == 0
    loaded = Message.objects.select_related("feedback").get(pk=reply.pk)
    assert message_data(loaded)["feedback"]["rating"] == "up"


def test_the_log_line_leaves_the_feedback_out(reply):
    Feedback.objects.create(message=reply, rating="down", comment="secret words")
    loaded = Message.objects.select_related("feedback").get(pk=reply.pk)

    fields = message_log_fields(loaded)

    assert "feedback" not in fields
    assert "secret words" not in repr(fields)


# --- the reasons --------------------------------------------------------------------------------


def test_the_reasons_are_listed_in_english(api):
    FeedbackReason.objects.filter(code="refused").update(enabled=False)

    response = api.get("/api/feedback/reasons/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    reasons = response.json()
    assert [r["code"] for r in reasons] == [
        "inaccurate",
        "unhelpful",
        "incomplete",
        "harmful",
        "helpful",
        "other",
    ]
    assert reasons[0] == {"code": "inaccurate", "label": "Inaccurate or made up", "rating": "down"}
    assert reasons[-1]["rating"] == "any"


def test_the_reasons_are_listed_in_chinese_with_the_english_label_as_fallback(api):
    FeedbackReason.objects.filter(code="other").update(label_zh="")

    reasons = api.get("/api/feedback/reasons/", HTTP_ACCEPT_LANGUAGE="zh-CN").json()

    labels = {r["code"]: r["label"] for r in reasons}
    assert labels["inaccurate"] == "不准确或编造"
    assert labels["helpful"] == "有帮助"
    assert labels["other"] == "Other"


def test_the_reasons_need_authentication(anon):
    assert_json_error(anon.get("/api/feedback/reasons/"), 401, "not_authenticated")


def test_the_chat_page_carries_the_reasons_in_its_language(user):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    client.force_login(user)

    response = client.get("/")

    assert response.status_code == 200
    text = response.content.decode()
    assert 'id="feedback-reasons"' in text
    assert "\\u4e0d\\u51c6\\u786e\\u6216\\u7f16\\u9020" in text or "不准确或编造" in text


# --- the schema ---------------------------------------------------------------------------------


def test_the_schema_documents_the_route_its_refusals_and_the_message_field(api):
    schema = openapi(api)
    operations = schema["paths"][FEEDBACK_PATH]

    assert documented_codes(operations["put"]) == {
        "not_a_reply",
        "reply_not_finished",
        "invalid_reason",
    }
    assert documented_codes(operations["delete"]) == {"not_a_reply", "reply_not_finished"}
    assert "404" in operations["put"]["responses"]
    assert "204" in operations["delete"]["responses"]
    request = schema["components"]["schemas"]["FeedbackInputRequest"]["properties"]
    assert request["comment"]["maxLength"] == 2000
    ratings = schema["components"]["schemas"]["FeedbackInputRatingEnum"]["enum"]
    assert request["rating"]["$ref"].endswith("/FeedbackInputRatingEnum")
    assert ratings == ["up", "down"]
    message = schema["components"]["schemas"]["MessageOutput"]["properties"]
    assert "feedback" in message
    assert "/api/feedback/reasons/" in schema["paths"]


def test_schema_valid_ratings_are_taken_or_refused_with_a_documented_code(api, reply):
    schema = openapi(api)
    documented = documented_codes(schema["paths"][FEEDBACK_PATH]["put"])
    cases = schema_valid_cases(
        schema, FEEDBACK_PATH, "PUT", 40, path_parameters={"message_id": str(reply.pk)}
    )

    statuses = set()
    for case in cases:
        response = api.put(url(reply), case.body, format="json")
        statuses.add(response.status_code)
        if response.status_code == 400:
            assert response.json()["code"] in documented, (case.body, response.json())
        else:
            assert response.status_code == 200, (case.body, response.content)
    assert statuses >= {200, 400}
