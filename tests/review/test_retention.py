"""Retention (docs/review.md): a deleted conversation stays for review DELETED_RETENTION_DAYS,
then ``manage.py purge_deleted`` removes it with its messages, feedback and review items, except
under legal hold; the audit trail keeps its entries."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEntry
from conversations.models import Conversation, Feedback, Message
from review.models import ReviewItem, ReviewNote
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def conversation_with_history(user, **fields) -> Conversation:
    conversation = ConversationFactory(user=user, **fields)
    MessageFactory(conversation=conversation, seq=1, role="user", content="question")
    reply = MessageFactory(conversation=conversation, seq=2, role="assistant", content="answer")
    Feedback.objects.create(message=reply, rating="down", comment="wrong")  # flags it too
    ReviewNote.objects.create(item=ReviewItem.objects.get(message=reply), body="looked at it")
    AuditEntry.objects.create(
        action="transcript.view",
        target_type="conversations.conversation",
        target_id=str(conversation.pk),
    )
    return conversation


def delete_via_api(api, conversation: Conversation, *, days_ago: float) -> None:
    assert api.delete(f"/api/conversations/{conversation.pk}/").status_code == 204
    Conversation.objects.filter(pk=conversation.pk).update(
        deleted_at=timezone.now() - timedelta(days=days_ago)
    )


def purge() -> str:
    out = StringIO()
    call_command("purge_deleted", stdout=out)
    return out.getvalue()


def test_a_deleted_conversation_is_kept_until_its_retention_ends(api, user, settings):
    settings.DELETED_RETENTION_DAYS = 30
    conversation = conversation_with_history(user)
    delete_via_api(api, conversation, days_ago=29.9)

    assert purge().startswith("0 conversation(s)")

    assert Message.objects.filter(conversation=conversation).count() == 2
    assert Feedback.objects.filter(message__conversation=conversation).exists()


def test_after_its_retention_it_is_purged_with_everything_but_the_audit_trail(api, user, settings):
    settings.DELETED_RETENTION_DAYS = 30
    conversation = conversation_with_history(user, title="old")
    delete_via_api(api, conversation, days_ago=30.1)
    kept = conversation_with_history(user, title="live")

    output = purge()

    assert output.startswith("1 conversation(s) and 2 message(s) purged")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert not Feedback.objects.filter(message__conversation_id=conversation.pk).exists()
    assert not ReviewItem.objects.filter(conversation_id=conversation.pk).exists()
    assert not ReviewNote.objects.filter(item__conversation_id=conversation.pk).exists()
    # Another conversation is untouched.
    assert Message.objects.filter(conversation=kept).count() == 2
    assert ReviewItem.objects.filter(conversation=kept).count() == 1
    # The trail keeps what happened to it, and says it was purged.
    entries = AuditEntry.objects.filter(target_id=str(conversation.pk))
    assert set(entries.values_list("action", flat=True)) == {
        "transcript.view",
        "conversation.purge",
    }
    purged = entries.get(action="conversation.purge")
    assert purged.actor == "system"
    assert purged.detail["owner"] == user.username
    assert purged.detail["deleted_by"] == user.username
    assert purged.detail["messages"] == 2


def test_a_conversation_under_legal_hold_is_never_purged(api, user, settings):
    settings.DELETED_RETENTION_DAYS = 1
    conversation = conversation_with_history(user)
    Conversation.objects.filter(pk=conversation.pk).update(
        legal_hold=True, legal_hold_reason="case 42"
    )
    delete_via_api(api, conversation, days_ago=400)

    output = purge()

    assert output.startswith("0 conversation(s)")
    assert "1 deleted conversation(s) under legal hold kept" in output
    assert Message.objects.filter(conversation=conversation).count() == 2
    # Still gone for its owner.
    assert api.get(f"/api/conversations/{conversation.pk}/").status_code == 404


def test_a_conversation_nobody_deleted_is_never_purged(user, settings):
    settings.DELETED_RETENTION_DAYS = 0
    conversation = conversation_with_history(user)
    Conversation.objects.filter(pk=conversation.pk).update(
        created_at=timezone.now() - timedelta(days=900)
    )

    assert purge().startswith("0 conversation(s)")
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_purge_works_through_many_batches(api, user, settings):
    settings.DELETED_RETENTION_DAYS = 1
    from conversations.services import purge_deleted

    doomed = [ConversationFactory(user=user) for _ in range(7)]
    for conversation in doomed:
        MessageFactory(conversation=conversation, seq=1)
    Conversation.objects.filter(pk__in=[c.pk for c in doomed]).update(
        deleted_at=timezone.now() - timedelta(days=2)
    )

    assert purge_deleted(batch=3) == (7, 7)
    assert not Conversation.objects.exists()


def test_dry_run_counts_and_removes_nothing(api, user, settings):
    settings.DELETED_RETENTION_DAYS = 30
    conversation = conversation_with_history(user)
    delete_via_api(api, conversation, days_ago=31)
    out = StringIO()

    call_command("purge_deleted", "--dry-run", stdout=out)

    assert out.getvalue().startswith("1 conversation(s) deleted over 30 days ago would be purged")
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_a_reply_still_streaming_when_its_conversation_is_deleted_is_saved(api, spark, user):
    """Deleting hides the conversation; the reply's final write still lands (nothing is lost)."""
    conversation = ConversationFactory(user=user, model="lite")
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "hi [[reply:one two three]]", "stream": True},
        format="json",
    )
    stream = iter(response.streaming_content)
    next(stream)  # the start frame: both messages are saved
    assert api.delete(f"/api/conversations/{conversation.pk}/").status_code == 204

    b"".join(stream)

    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert (reply.status, reply.content) == ("complete", "one two three")
