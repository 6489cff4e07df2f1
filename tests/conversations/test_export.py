"""Export by filter (issue 11): the admin's export of the conversations matching the changelist's
current filters, as JSON, Markdown or CSV, streamed, with an audit entry."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from conversations import exports
from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/conversations/conversation/"
EXPORT = CHANGELIST + "export/"


@pytest.fixture
def staff(client):
    member = UserFactory(is_staff=True, username="reviewer-rita")
    member.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="conversations", codename="view_conversation"
        )
    )
    client.force_login(member)
    return member


def _at(conversation: Conversation, when: datetime) -> None:
    Conversation.objects.filter(pk=conversation.pk).update(created_at=when, updated_at=when)


@pytest.fixture
def data():
    """Three conversations: Hangzhou (lite, 2025, a failed reply, a replaced one, Chinese), Paris
    (max-32k, 2024) and a formula-laden one (lite, 2024) with no messages in error."""
    ann = UserFactory(username="owner-ann")
    bob = UserFactory(username="=bob")
    hangzhou = ConversationFactory(
        user=ann, title="Weekend in Hangzhou", model="lite", system_prompt="Be a guide."
    )
    MessageFactory(conversation=hangzhou, seq=1, content="先去哪里？ zebracrossing")
    MessageFactory(
        conversation=hangzhou,
        seq=2,
        role="assistant",
        content="West Lake",
        replaced=True,
        total_tokens=9,
    )
    MessageFactory(
        conversation=hangzhou,
        seq=3,
        role="assistant",
        content="西湖，清晨。",
        status="error",
        error_code="10014",
        sid="cha000b0002@dxdef",
        total_tokens=8,
        cost_cny="0.000123",
    )
    paris = ConversationFactory(user=ann, title="Paris", model="max-32k")
    MessageFactory(conversation=paris, seq=1, content="Louvre or Orsay?")
    MessageFactory(conversation=paris, seq=2, role="assistant", content="Orsay, on a Thursday.")
    formulas = ConversationFactory(user=bob, title="+cmd|' /C calc'!A0", model="lite")
    MessageFactory(conversation=formulas, seq=1, content='=HYPERLINK("http://evil")')
    MessageFactory(conversation=formulas, seq=2, role="assistant", content="-2+3")
    MessageFactory(conversation=formulas, seq=3, content="@SUM(A1)")
    _at(hangzhou, datetime(2025, 3, 14, 9, 0, tzinfo=UTC))
    _at(paris, datetime(2024, 6, 1, 12, 0, tzinfo=UTC))
    _at(formulas, datetime(2024, 7, 1, 12, 0, tzinfo=UTC))
    return {"hangzhou": hangzhou, "paris": paris, "formulas": formulas}


def _get(client, query: str):
    response = client.get(f"{EXPORT}?{query}")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body.decode("utf-8")


def _json(client, query: str = "") -> list[dict]:
    response, text = _get(client, f"format=json&{query}")
    assert response.status_code == 200, text
    return json.loads(text)


def _titles(client, query: str) -> set[str]:
    return {c["title"] for c in _json(client, query)}


def test_json_holds_every_conversation_with_its_owner_and_messages_in_order(client, staff, data):
    exported = {c["id"]: c for c in _json(client)}
    assert set(exported) == {str(c.pk) for c in data.values()}
    hangzhou = exported[str(data["hangzhou"].pk)]
    assert hangzhou["owner"] == "owner-ann"
    assert hangzhou["model"] == "lite"
    assert hangzhou["system_prompt"] == "Be a guide."
    assert hangzhou["created_at"] == "2025-03-14T09:00:00Z"
    assert hangzhou["deleted_at"] is None
    assert hangzhou["legal_hold"] is False
    messages = hangzhou["messages"]
    assert [m["seq"] for m in messages] == [1, 2, 3]
    assert messages[0]["content"] == "先去哪里？ zebracrossing"
    # Replaced replies stay, marked.
    assert [m["replaced"] for m in messages] == [False, True, False]
    assert messages[2]["status"] == "error"
    assert messages[2]["error_code"] == "10014"
    assert messages[2]["cost_cny"] == "0.000123"
    assert messages[2]["usage"]["total_tokens"] == 8
    # The API's shape of a message, plus "replaced".
    from conversations.shapes import MESSAGE_FIELDS

    assert set(messages[0]) == {*MESSAGE_FIELDS, "replaced"}


def test_json_of_no_match_is_an_empty_array(client, staff, data):
    assert _json(client, "q=nothing-matches-this") == []


@pytest.mark.parametrize(
    ("query", "titles"),
    [
        ("model__exact=max-32k", {"Paris"}),
        ("model__exact=lite", {"Weekend in Hangzhou", "+cmd|' /C calc'!A0"}),
        ("q=zebracrossing", {"Weekend in Hangzhou"}),  # the text of a message
        ("q=owner-ann", {"Weekend in Hangzhou", "Paris"}),  # the owner
        ("created_at__year=2024", {"Paris", "+cmd|' /C calc'!A0"}),
        ("created_at__year=2024&created_at__month=6", {"Paris"}),
        ("created_at__year=2025&created_at__month=3&created_at__day=14", {"Weekend in Hangzhou"}),
        ("message_status=error", {"Weekend in Hangzhou"}),
        ("model__exact=lite&created_at__year=2024", {"+cmd|' /C calc'!A0"}),
        # The changelist's page and sort do not narrow the export.
        ("p=2&o=1", {"Weekend in Hangzhou", "Paris", "+cmd|' /C calc'!A0"}),
    ],
)
def test_export_holds_only_what_the_changelist_filters_match(client, staff, data, query, titles):
    assert _titles(client, query) == titles
    # The same query string on the changelist shows the same conversations.
    listed = client.get(f"{CHANGELIST}?{query.replace('p=2&', '')}")
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == len(titles)


def test_search_matching_several_messages_exports_the_conversation_once(client, staff, data):
    # "o" is in both of Paris's messages: the search's join must not repeat them.
    exported = _json(client, "q=o")
    ids = [c["id"] for c in exported]
    assert len(ids) == len(set(ids))
    paris = next(c for c in exported if c["title"] == "Paris")
    assert len(paris["messages"]) == 2


def test_markdown_has_a_heading_per_conversation_and_message(client, staff, data):
    response, text = _get(client, "format=md&model__exact=lite")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    headings = [line for line in text.splitlines() if line.startswith("# ")]
    assert sorted(headings) == ["# +cmd|' /C calc'!A0", "# Weekend in Hangzhou"]
    assert "- owner: owner-ann" in text
    assert "## system\n\nBe a guide." in text
    assert "## 2. assistant (complete, 9 tokens, replaced)" in text
    assert "## 3. assistant (error, error 10014, sid cha000b0002@dxdef, 8 tokens)" in text
    assert "西湖，清晨。" in text
    assert text.count("\n---\n") == 1
    assert "Paris" not in text


def test_csv_has_the_header_a_row_per_message_and_no_formula(client, staff, data):
    response, text = _get(client, "format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0] == exports.CSV_HEADER
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert len(records) == Message.objects.count() == 8
    by_content = {r["content"]: r for r in records}
    # Chinese text intact.
    assert by_content["西湖，清晨。"]["error_code"] == "10014"
    assert by_content["西湖，清晨。"]["cost_cny"] == "0.000123"
    assert by_content["西湖，清晨。"]["total_tokens"] == "8"
    assert by_content["West Lake"]["replaced"] == "true"
    # Cells that a spreadsheet would run as formulas are quoted with an apostrophe.
    assert '\'=HYPERLINK("http://evil")' in by_content
    assert "'-2+3" in by_content
    assert "'@SUM(A1)" in by_content
    formula_row = by_content["'@SUM(A1)"]
    assert formula_row["title"] == "'+cmd|' /C calc'!A0"
    assert formula_row["owner"] == "'=bob"
    for record in records:
        for cell in record.values():
            assert not cell.startswith(("=", "+", "-", "@")), cell
    # Messages of a conversation in order, each conversation's rows together.
    hangzhou = [r for r in records if r["conversation_id"] == str(data["hangzhou"].pk)]
    assert [r["seq"] for r in hangzhou] == ["1", "2", "3"]
    assert hangzhou[0]["owner"] == "owner-ann"
    assert hangzhou[0]["conversation_model"] == "lite"


def test_csv_honours_the_filter(client, staff, data):
    _, text = _get(client, "format=csv&model__exact=max-32k")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [row[5:8] for row in rows[1:]] == [
        ["1", "user", "complete"],
        ["2", "assistant", "complete"],
    ]
    assert {row[1] for row in rows[1:]} == {"Paris"}


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [
        ("json", "application/json; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("csv", "text/csv; charset=utf-8"),
    ],
)
def test_the_answer_is_a_streamed_attachment(client, staff, data, kind, content_type):
    response = client.get(f"{EXPORT}?format={kind}")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == content_type
    assert response["X-Accel-Buffering"] == "no"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="conversations-')
    assert disposition.endswith(f'.{kind}"')
    b"".join(response.streaming_content)


@pytest.mark.parametrize("query", ["", "format=xml", "format=JSON", "format="])
def test_an_unknown_format_is_a_plain_400(client, staff, data, query):
    response = client.get(f"{EXPORT}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "json, md, csv" in response.content.decode()
    assert not AuditEntry.objects.filter(action="transcript.export").exists()


@pytest.mark.parametrize(
    "query",
    [
        "no_such_field=1",
        "created_at__year=abc",
        "created_at__year=99999999999999999999",
        "created_at__year=2024&created_at__month=13",
        "user__password__startswith=pbkdf2",  # not a filter of the changelist
    ],
)
def test_a_bad_filter_is_a_clean_400_not_a_500(client, staff, data, query):
    response = client.get(f"{EXPORT}?format=json&{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert not AuditEntry.objects.filter(action="transcript.export").exists()


def test_staff_without_the_view_permission_is_refused(client, data):
    member = UserFactory(is_staff=True)
    member.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="conversations", codename="view_message")
    )
    client.force_login(member)
    response = client.get(f"{EXPORT}?format=json")
    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action="transcript.export").exists()


def test_someone_not_staff_is_sent_to_sign_in(client, data):
    client.force_login(UserFactory())
    response = client.get(f"{EXPORT}?format=json")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_each_export_is_audited_with_its_format_filter_and_count(client, staff, data):
    _get(client, "format=csv&model__exact=lite&q=a&p=3")
    entry = AuditEntry.objects.get(action="transcript.export")
    assert entry.actor == "reviewer-rita"
    assert entry.actor_id == str(staff.pk)
    assert entry.target_type == "conversations.conversation"
    assert entry.detail["format"] == "csv"
    # The query string the export used: the filters, without its format or the page.
    assert parse_qs(entry.detail["filter"]) == {"model__exact": ["lite"], "q": ["a"]}
    assert entry.detail["count"] == len(_json(client, "model__exact=lite&q=a"))
    assert entry.detail["count"] == 2


def test_the_changelist_links_to_the_export_with_its_query_string(client, staff, data):
    response = client.get(f"{CHANGELIST}?model__exact=lite&q=zebracrossing")
    html = response.content.decode()
    for kind, label in [("json", "JSON"), ("md", "Markdown"), ("csv", "CSV")]:
        link = f'href="{EXPORT}?model__exact=lite&amp;q=zebracrossing&amp;format={kind}"'
        assert link in html
        assert f"Export matching as {label}" in html
    plain = client.get(CHANGELIST).content.decode()
    assert f'href="{EXPORT}?format=json"' in plain


def test_links_are_hidden_without_the_view_permission(client, data):
    member = UserFactory(is_staff=True)
    member.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="conversations", codename="change_conversation"
        )
    )
    client.force_login(member)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "Export matching as" not in response.content.decode()


def _many(n: int, prefix: str) -> None:
    owner = UserFactory()
    conversations = Conversation.objects.bulk_create(
        [Conversation(user=owner, title=f"{prefix}-{i}", model=prefix) for i in range(n)]
    )
    Message.objects.bulk_create(
        [
            Message(conversation=c, seq=seq, role="user" if seq % 2 else "assistant", content="x")
            for c in conversations
            for seq in (1, 2, 3)
        ]
    )


@pytest.mark.parametrize("kind", ["json", "md", "csv"])
def test_queries_do_not_grow_with_the_conversations(client, staff, kind):
    _many(5, "five")
    _many(50, "fifty")
    counts = {}
    for model, n in [("five", 5), ("fifty", 50)]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{EXPORT}?format={kind}&model__exact={model}")
            body = b"".join(response.streaming_content).decode()
        assert body.count(f"{model}-") == n * (3 if kind == "csv" else 1)
        counts[model] = len(queries)
    assert abs(counts["fifty"] - counts["five"]) <= 2, counts


def test_batches_cover_every_conversation_once_with_its_own_messages(db):
    """Several batches (of 7): keyset pagination loses and repeats nothing, and every message
    lands with its conversation."""
    _many(30, "batchy")
    seen = {}
    for conversation, messages in exports.transcripts(Conversation.objects.all(), batch_size=7):
        assert conversation.pk not in seen
        seen[conversation.pk] = [(m.conversation_id, m.seq) for m in messages]
    assert len(seen) == 30
    for pk, messages in seen.items():
        assert messages == [(pk, 1), (pk, 2), (pk, 3)]


def test_unread_messages_are_skipped_not_given_to_the_next_conversation(db):
    _many(4, "skip")
    read = []
    for index, (conversation, messages) in enumerate(
        exports.transcripts(Conversation.objects.all(), batch_size=3)
    ):
        if index % 2:
            read.append((conversation.pk, [m.conversation_id for m in messages]))
    for pk, owners in read:
        assert owners == [pk, pk, pk]
