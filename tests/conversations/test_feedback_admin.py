"""Feedback in admin: staff configure the reasons (audited), read the ratings, and see the
tokens the site spent on titles; nobody edits a user's rating."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from conversations.models import Feedback, FeedbackReason, SystemUsage
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    person = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(person)
    return person


def test_staff_add_a_reason_which_users_are_then_offered(client, staff, api):
    response = client.post(
        "/admin/conversations/feedbackreason/add/",
        {
            "code": "too_formal",
            "label": "Too formal",
            "label_zh": "太正式",
            "rating": "down",
            "enabled": "on",
            "order": "9",
        },
    )

    assert response.status_code == 302, response.content.decode()[:1000]
    reasons = api.get("/api/feedback/reasons/", HTTP_ACCEPT_LANGUAGE="zh-CN").json()
    assert {"code": "too_formal", "label": "太正式", "rating": "down"} in reasons
    assert AuditEntry.objects.filter(action="feedbackreason.add").exists()
    reason = FeedbackReason.objects.get(code="too_formal")
    assert client.get(f"/admin/conversations/feedbackreason/{reason.pk}/delete/").status_code == 403


def test_ratings_are_listed_with_a_link_to_the_transcript_and_cannot_be_edited(client, staff):
    conversation = ConversationFactory(user=UserFactory(username="rater"))
    reply = MessageFactory(conversation=conversation, seq=2, role="assistant")
    feedback = Feedback.objects.create(message=reply, rating="down", comment="wrong year")

    page = client.get("/admin/conversations/feedback/", {"rating": "down"})

    assert page.status_code == 200
    text = page.content.decode()
    assert "wrong year" in text
    assert "rater" in text
    assert f"/admin/conversations/conversation/{conversation.pk}/change/#message-{reply.pk}" in text
    client.post(
        f"/admin/conversations/feedback/{feedback.pk}/change/", {"rating": "up", "comment": "x"}
    )
    feedback.refresh_from_db()
    assert (feedback.rating, feedback.comment) == ("down", "wrong year")
    assert client.get(f"/admin/conversations/feedback/{feedback.pk}/delete/").status_code == 403


def test_system_usage_is_listed_read_only(client, staff):
    SystemUsage.objects.create(purpose="title", model="lite", total_tokens=42)

    page = client.get("/admin/conversations/systemusage/")

    assert page.status_code == 200
    assert "lite" in page.content.decode()
    assert client.get("/admin/conversations/systemusage/add/").status_code == 403
