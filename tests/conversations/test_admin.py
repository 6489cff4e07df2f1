"""Transcript review in Django admin: read-only, searchable, exportable (issue 2, admin); read as
a conversation with its feedback and flags, audited when opened, deleted only with a reason and
never under legal hold."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from audit.models import AuditEntry
from conversations.models import Conversation, Feedback, FeedbackReason, Message
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/conversations/conversation/"


def change_url(conversation: Conversation) -> str:
    return f"{CHANGELIST}{conversation.pk}/change/"


@pytest.fixture
def staff(client):
    """A staff member allowed to view conversations and messages, logged in to ``client``."""
    member = UserFactory(is_staff=True)
    member.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="conversations",
            codename__in=["view_conversation", "view_message"],
        )
    )
    client.force_login(member)
    return member


@pytest.fixture
def transcript():
    owner = UserFactory(username="owner-ann")
    conversation = ConversationFactory(
        user=owner, title="Weekend in Hangzhou", model="max-32k", system_prompt="Be a guide."
    )
    MessageFactory(conversation=conversation, seq=1, content="Where should I go first?")
    MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="West Lake, early in the morning.",
        sid="cha000b0001@dxabc",
        prompt_tokens=10,
        completion_tokens=32,
        total_tokens=42,
        ttft_ms=321,
        duration_ms=1234,
    )
    MessageFactory(conversation=conversation, seq=3, content="And then? zebracrossing")
    MessageFactory(
        conversation=conversation,
        seq=4,
        role="assistant",
        content="Lingyin temple",
        status="error",
        error_code="10014",
        error_detail="The reply was stopped by the model's content moderation.",
        sid="cha000b0002@dxdef",
        total_tokens=8,
    )
    return conversation


def _row(html: str, text: str) -> str:
    rows = [row for row in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S) if text in row]
    assert len(rows) == 1, f"{len(rows)} rows contain {text!r}"
    return rows[0]


def _cell(row: str, field: str) -> str:
    match = re.search(rf'class="[^"]*field-{field}[^"]*"[^>]*>(.*?)</t[dh]>', row, re.S)
    assert match, field
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_staff_sees_the_changelist_with_owner_model_counts_and_tokens(client, staff, transcript):
    ConversationFactory(title="Empty one")

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    row = _row(html, "Weekend in Hangzhou")
    assert _cell(row, "user") == "owner-ann"
    assert _cell(row, "model") == "max-32k"
    assert _cell(row, "message_count") == "4"
    assert _cell(row, "tokens_total") == "50"
    assert _cell(_row(html, "Empty one"), "message_count") == "0"
    assert "2 conversations" in html


def test_changelist_filters_by_model_and_message_status(client, staff, transcript):
    ConversationFactory(title="A lite chat", model="lite")

    by_model = client.get(CHANGELIST, {"model": "max-32k"}).content.decode()
    by_status = client.get(CHANGELIST, {"message_status": "error"}).content.decode()

    assert "Weekend in Hangzhou" in by_model
    assert "A lite chat" not in by_model
    assert "Weekend in Hangzhou" in by_status
    assert "A lite chat" not in by_status


@pytest.mark.parametrize("query", ["zebracrossing", "owner-ann", "Hangzhou", "West Lake"])
def test_changelist_search_covers_message_text_owner_and_title(client, staff, transcript, query):
    ConversationFactory(title="Unrelated")

    html = client.get(CHANGELIST, {"q": query}).content.decode()

    assert "Unrelated" not in html
    row = _row(html, "Weekend in Hangzhou")
    # Matching several messages neither repeats the conversation nor inflates its counts.
    assert _cell(row, "message_count") == "4"
    assert _cell(row, "tokens_total") == "50"


def test_change_page_shows_the_transcript_read_only_in_order(client, staff, transcript):
    response = client.get(change_url(transcript))

    assert response.status_code == 200
    html = response.content.decode()
    positions = [
        html.index(text)
        for text in (
            "Where should I go first?",
            "West Lake, early in the morning.",
            "And then? zebracrossing",
            "Lingyin temple",
        )
    ]
    assert positions == sorted(positions)
    for shown in ("cha000b0001@dxabc", "10014", "cha000b0002@dxdef", "1234", "321", "Be a guide."):
        assert shown in html
    # Nothing to edit: no message inputs, no save button.
    editable = r'<(textarea|select|input(?![^>]*type="hidden"))[^>]+name="messages-\d+-'
    assert not re.search(editable, html)
    assert not re.search(r'<textarea[^>]+name="(title|system_prompt)"', html)
    assert 'name="_save"' not in html


def test_export_action_downloads_selected_transcripts_as_json(client, staff, transcript):
    other = ConversationFactory(title="Not selected")

    response = client.post(
        CHANGELIST, {"action": "download_json", "_selected_action": [str(transcript.pk)]}
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert re.match(r'attachment; filename="[^"]+\.json"', response["Content-Disposition"])
    content = b"".join(response.streaming_content)
    data = json.loads(content)
    assert [c["id"] for c in data] == [str(transcript.pk)]
    assert str(other.pk) not in content.decode()
    exported = data[0]
    assert (exported["title"], exported["owner"], exported["model"]) == (
        "Weekend in Hangzhou",
        "owner-ann",
        "max-32k",
    )
    assert [(m["seq"], m["role"], m["status"]) for m in exported["messages"]] == [
        (1, "user", "complete"),
        (2, "assistant", "complete"),
        (3, "user", "complete"),
        (4, "assistant", "error"),
    ]
    assert exported["messages"][1]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 32,
        "total_tokens": 42,
    }
    assert exported["messages"][3]["error_code"] == "10014"


def test_export_action_downloads_transcripts_as_markdown(client, staff, transcript):
    second = ConversationFactory(title="Second chat")
    MessageFactory(conversation=second, seq=1, content="hello second")

    response = client.post(
        CHANGELIST,
        {"action": "download_markdown", "_selected_action": [str(transcript.pk), str(second.pk)]},
    )

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert re.match(r'attachment; filename="[^"]+\.md"', response["Content-Disposition"])
    text = b"".join(response.streaming_content).decode()
    assert "# Weekend in Hangzhou" in text
    assert "# Second chat" in text
    assert text.index("Where should I go first?") < text.index("West Lake") < text.index("Lingyin")
    assert "## 4. assistant (error, error 10014, sid cha000b0002@dxdef" in text
    assert "hello second" in text


@pytest.mark.parametrize("who", ["anonymous", "user", "staff-without-permission"])
def test_admin_is_refused_to_others(client, transcript, who):
    if who == "user":
        client.force_login(UserFactory())
    elif who == "staff-without-permission":
        client.force_login(UserFactory(is_staff=True))

    changelist = client.get(CHANGELIST)
    change = client.get(change_url(transcript))
    export = client.post(
        CHANGELIST, {"action": "download_json", "_selected_action": [str(transcript.pk)]}
    )

    if who == "staff-without-permission":
        assert changelist.status_code == change.status_code == export.status_code == 403
    else:
        for response in (changelist, change, export):
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")
    exported = b"".join(export.streaming_content) if export.streaming else export.content
    assert b"West Lake" not in changelist.content + change.content + exported


def test_posting_to_the_change_page_modifies_nothing(client, staff, transcript):
    message = transcript.messages.get(seq=2)

    response = client.post(
        change_url(transcript),
        {
            "title": "hacked",
            "messages-TOTAL_FORMS": "1",
            "messages-INITIAL_FORMS": "1",
            "messages-0-id": str(message.pk),
            "messages-0-conversation": str(transcript.pk),
            "messages-0-content": "rewritten",
            "_save": "Save",
        },
    )

    assert response.status_code == 403
    transcript.refresh_from_db()
    message.refresh_from_db()
    assert transcript.title == "Weekend in Hangzhou"
    assert message.content == "West Lake, early in the morning."


def test_even_a_superuser_cannot_edit_add_or_delete_messages(client, transcript):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    message = transcript.messages.get(seq=1)

    assert client.post(change_url(transcript), {"title": "changed"}).status_code == 403
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    # Messages have no admin pages of their own.
    assert client.get(f"/admin/conversations/message/{message.pk}/change/").status_code == 404
    html = client.get(change_url(transcript)).content.decode()
    assert not re.search(r'name="messages-\d+-(content|DELETE)"', html)
    assert Message.objects.get(pk=message.pk).content == "Where should I go first?"
    assert transcript.messages.count() == 4


# -- the transcript page (docs/review.md, "The queue") -------------------------------------------


def _blocks(html: str) -> list[str]:
    return re.findall(
        r'<article class="tx-msg tx-msg--(?:user|assistant)[^"]*".*?</article>', html, re.S
    )


def test_the_transcript_is_one_block_per_message_with_a_metadata_line(client, staff, transcript):
    MessageFactory(
        conversation=transcript, seq=5, role="assistant", content="An `old` reply", replaced=True
    )
    Message.objects.filter(conversation=transcript, seq=2).update(
        cost_cny="0.000420", provider="spark", model="max-32k", reasoning="Think **first**."
    )

    html = client.get(change_url(transcript)).content.decode()

    blocks = _blocks(html)
    assert len(blocks) == 5
    assert [re.search(r'class="tx-role">(\w+)<', b).group(1) for b in blocks] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "assistant",
    ]
    # Replies carry their Markdown for the chat page's renderer; user text is shown as typed.
    assert 'tx-md markdown" data-markdown>West Lake, early in the morning.</div>' in blocks[1]
    assert "data-markdown" not in blocks[0]
    assert '<details class="tx-reasoning">' in blocks[1]
    assert "Think **first**." in blocks[1]
    meta = re.search(r'<p class="tx-meta">(.*?)</p>', blocks[1], re.S).group(1)
    parts = re.findall(r">([^<]+)</span>", meta)
    assert parts[:7] == [
        "complete",
        "sid cha000b0001@dxabc",
        "10 / 32 / 42 tokens",
        "ttft 321 ms",
        "1234 ms",
        "0.00042 CNY",
        "max-32k @ spark",
    ]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", parts[7])
    error_meta = re.search(r'<p class="tx-meta">(.*?)</p>', blocks[3], re.S).group(1)
    assert "error 10014" in error_meta
    assert "stopped by the model" in blocks[3]
    # Only the regenerated reply is marked "replaced"; no column of ✖ for the others.
    assert [("replaced" in b) for b in blocks] == [False, False, False, False, True]
    assert "is-replaced" in blocks[4]
    assert "✖" not in html
    assert "icon-no.svg" not in html
    # The chat page's renderer, as a module (CSP: no inline script), and its strings as data.
    assert re.search(r'<script type="module" src="[^"]*js/admin-transcript\.js"', html)
    assert '<script id="i18n-strings" type="application/json">' in html
    assert "<script>" not in html


def test_the_transcript_escapes_what_it_shows(client, staff):
    conversation = ConversationFactory(title="<b>title</b>")
    MessageFactory(conversation=conversation, seq=1, content="<script>alert(1)</script>")
    MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        content="<img src=x onerror=alert(2)>",
        references=[
            {"title": "ok", "url": "https://example.org/a"},
            {"title": "bad", "url": "javascript:alert(3)"},
        ],
    )

    html = client.get(change_url(conversation)).content.decode()

    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert 'href="https://example.org/a"' in html
    assert "javascript:alert(3)" not in html


def test_feedback_and_flags_show_beside_their_message(client, staff, transcript):
    from review.models import ReviewItem, ReviewNote

    reply = transcript.messages.get(seq=2)
    FeedbackReason.objects.create(code="tx-wrong", label="Factually wrong", rating="down")
    Feedback.objects.create(
        message=reply, rating="down", reason="tx-wrong", comment="West Lake is crowded then."
    )
    item = ReviewItem.objects.get(message=reply, source="feedback")
    ReviewNote.objects.create(item=item, author=staff, body="Checked the claim.")
    ReviewItem.objects.create(conversation=transcript, source="sample", detail="daily sample")

    html = client.get(change_url(transcript)).content.decode()

    row = re.search(rf'<div class="tx-row[^"]*" id="message-{reply.pk}">.*?</aside>', html, re.S)
    assert row
    side = row.group(0)
    assert "👎" in side
    assert "Factually wrong" in side
    assert "West Lake is crowded then." in side
    assert "Checked the claim." in side
    assert f"/admin/review/reviewitem/{item.pk}/change/" in side
    # The whole-conversation item is at the top, before the first message.
    transcript_html = html[html.index('<section class="tx"') :]
    assert transcript_html.index("daily sample") < transcript_html.index("Where should I go")
    # Other messages have nothing beside them.
    first = transcript.messages.get(seq=1)
    assert re.search(rf'<div class="tx-row" id="message-{first.pk}">', html)


def test_the_header_shows_deletion_and_legal_hold(client, staff, transcript):
    Conversation.objects.filter(pk=transcript.pk).update(
        deleted_at=timezone.now(),
        deleted_by="owner-ann",
        deletion_reason="no longer needed",
        legal_hold=True,
        legal_hold_reason="case 42",
    )

    html = client.get(change_url(transcript)).content.decode()

    deleted = re.search(r'tx-status__line--deleted">(.*?)</p>', html, re.S).group(1)
    assert "owner-ann" in deleted
    assert "no longer needed" in deleted
    assert "case 42" in re.search(r'tx-status__line--hold">(.*?)</p>', html, re.S).group(1)


def test_opening_a_transcript_is_on_the_audit_trail(client, staff, transcript):
    client.get(change_url(transcript))
    client.get(CHANGELIST)

    (entry,) = AuditEntry.objects.filter(action="transcript.view")
    assert (entry.actor, entry.target_type, entry.target_id) == (
        staff.username,
        "conversations.conversation",
        str(transcript.pk),
    )
    assert entry.ip == "127.0.0.1"


def test_the_list_filters_deleted_and_shows_state(client, staff, transcript):
    gone = ConversationFactory(title="Deleted chat")
    Conversation.objects.filter(pk=gone.pk).update(deleted_at=timezone.now(), legal_hold=True)

    everything = client.get(CHANGELIST).content.decode()
    deleted = client.get(CHANGELIST, {"deleted": "yes"}).content.decode()
    kept = client.get(CHANGELIST, {"deleted": "no"}).content.decode()

    assert "Deleted chat" in everything
    assert "Weekend in Hangzhou" in everything
    assert _cell(_row(everything, "Deleted chat"), "state") == "deleted, on hold"
    assert _cell(_row(everything, "Weekend in Hangzhou"), "state") == "—"
    assert "Deleted chat" in deleted
    assert "Weekend in Hangzhou" not in deleted
    assert "Deleted chat" not in kept
    assert "Weekend in Hangzhou" in kept


# -- deleting and legal hold ---------------------------------------------------------------------


def _grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def delete_url(conversation: Conversation) -> str:
    return f"{CHANGELIST}{conversation.pk}/delete/"


def test_deleting_needs_its_own_permission(client, staff, transcript):
    assert client.get(delete_url(transcript)).status_code == 403
    assert client.post(delete_url(transcript), {"reason": "spam"}).status_code == 403
    assert Conversation.objects.filter(pk=transcript.pk).exists()
    assert 'class="deletelink"' not in client.get(change_url(transcript)).content.decode()


def test_deleting_asks_a_reason_then_records_it_before_the_row_goes(client, staff, transcript):
    _grant(staff, "delete_conversation")
    assert 'class="deletelink"' in client.get(change_url(transcript)).content.decode()

    page = client.get(delete_url(transcript))
    assert page.status_code == 200
    assert '<textarea name="reason"' in page.content.decode()
    empty = client.post(delete_url(transcript), {"reason": "   "})
    assert empty.status_code == 200
    assert "Please give a reason." in empty.content.decode()
    assert Conversation.objects.filter(pk=transcript.pk).exists()

    done = client.post(delete_url(transcript), {"reason": "Requested by the owner in writing."})

    assert done.status_code == 302
    assert done["Location"] == CHANGELIST
    assert not Conversation.objects.filter(pk=transcript.pk).exists()
    assert not Message.objects.filter(conversation_id=transcript.pk).exists()
    (entry,) = AuditEntry.objects.filter(action="conversation.delete")
    assert (entry.actor, entry.target_id, entry.target_repr) == (
        staff.username,
        str(transcript.pk),
        "Weekend in Hangzhou",
    )
    assert entry.detail == {
        "reason": "Requested by the owner in writing.",
        "owner": "owner-ann",
        "messages": 4,
    }


def test_deleting_is_refused_under_legal_hold(client, staff, transcript):
    _grant(staff, "delete_conversation")
    Conversation.objects.filter(pk=transcript.pk).update(
        legal_hold=True, legal_hold_reason="case 42"
    )

    page = client.get(delete_url(transcript)).content.decode()
    response = client.post(delete_url(transcript), {"reason": "cleanup"})

    assert "under legal hold and cannot be deleted" in page
    assert "case 42" in page
    assert '<textarea name="reason"' not in page
    assert response.status_code == 200
    assert "under legal hold and cannot be deleted" in response.content.decode()
    assert Conversation.objects.filter(pk=transcript.pk).exists()
    assert not AuditEntry.objects.filter(action="conversation.delete").exists()


def test_there_is_no_bulk_delete(client, transcript):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    html = client.get(CHANGELIST).content.decode()
    response = client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [str(transcript.pk)]}
    )

    assert "delete_selected" not in html
    assert response.status_code in (200, 302)
    assert Conversation.objects.filter(pk=transcript.pk).exists()


def test_legal_hold_is_placed_and_lifted_with_a_reason_and_audited(client, staff, transcript):
    url = f"{CHANGELIST}{transcript.pk}/legal-hold/"
    assert client.get(url).status_code == 403
    assert "legal-hold/" not in client.get(change_url(transcript)).content.decode()
    _grant(staff, "legal_hold_conversation")
    assert "Place legal hold" in client.get(change_url(transcript)).content.decode()

    assert client.post(url, {"reason": ""}).status_code == 200
    transcript.refresh_from_db()
    assert not transcript.legal_hold
    client.post(url, {"reason": "Litigation hold, case 42"})
    transcript.refresh_from_db()
    assert (transcript.legal_hold, transcript.legal_hold_reason) == (
        True,
        "Litigation hold, case 42",
    )
    assert "Lift legal hold" in client.get(change_url(transcript)).content.decode()
    client.post(url, {"reason": "Case closed"})
    transcript.refresh_from_db()
    assert (transcript.legal_hold, transcript.legal_hold_reason) == (False, "")

    placed = AuditEntry.objects.get(action="conversation.legal_hold")
    lifted = AuditEntry.objects.get(action="conversation.legal_hold_lifted")
    assert placed.detail == {"reason": "Litigation hold, case 42"}
    assert lifted.detail == {"reason": "Case closed", "hold_reason": "Litigation hold, case 42"}
    assert placed.target_id == lifted.target_id == str(transcript.pk)


def test_provider_changes_are_audited(client):
    from conversations.models import Provider

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    provider = Provider.objects.create(
        name="acme", dialect="deepseek", base_url="https://a.example"
    )

    client.post(f"/admin/conversations/provider/{provider.pk}/delete/", {"post": "yes"})

    (entry,) = AuditEntry.objects.filter(action="provider.delete")
    assert entry.target_repr == "acme"
