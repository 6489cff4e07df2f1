"""Transcript review in Django admin: read-only, searchable, exportable (issue 2, admin)."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission

from conversations.models import Conversation, Message
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
    data = json.loads(response.content)
    assert [c["id"] for c in data] == [str(transcript.pk)]
    assert str(other.pk) not in response.content.decode()
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
    text = response.content.decode()
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
    assert b"West Lake" not in changelist.content + change.content + export.content


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
