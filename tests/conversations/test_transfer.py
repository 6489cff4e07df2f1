"""Export (Markdown, JSON, PDF, all at once as a zip) and import (docs/export-and-share.md)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from pypdf import PdfReader
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from conversations import branches
from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

CHINESE = "这是一个用来测试导出的中文句子。"
CODE_LINE = 'print("hello from the code block")'
TABLE_CELL = "cell-value-42"
LONG_LINE = "https://example.com/" + "x" * 470 + "THE-END-OF-IT"
LONG_CODE = "values = [" + ", ".join(str(n) for n in range(80)) + "]  # end-of-code"


def export_url(conversation, fmt: str) -> str:
    return f"/api/conversations/{conversation.id}/export/?format={fmt}"


@pytest.fixture
def branched(user):
    """A conversation with two branches: 1 user → 2 reply (replaced) and 3 reply (active), then
    4 user → 5 reply on the active branch."""
    conversation = ConversationFactory(
        user=user, title="测试 Export: one/two", system_prompt="You are terse."
    )
    first = MessageFactory(conversation=conversation, seq=1, role="user", content="Question one")
    MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        parent=first,
        content="Old answer",
        replaced=True,
    )
    answer = MessageFactory(
        conversation=conversation,
        seq=3,
        role="assistant",
        parent=first,
        content="New answer\n\n" + CHINESE,
        reasoning="Thinking hard",
        prompt_tokens=3,
        completion_tokens=4,
        total_tokens=7,
    )
    second = MessageFactory(
        conversation=conversation, seq=4, role="user", parent=answer, content="Question two"
    )
    MessageFactory(
        conversation=conversation,
        seq=5,
        role="assistant",
        parent=second,
        content="",
        status="error",
        error_code="10013",
    )
    return conversation


# -- Markdown and JSON --------------------------------------------------------------------------


def test_markdown_export_has_the_active_branch_with_role_headings(api, branched):
    response = api.get(export_url(branched, "md"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    text = response.content.decode()
    assert text.startswith("# 测试 Export: one/two\n")
    assert "- Model: lite" in text
    assert "## User ·" in text
    assert "## Assistant ·" in text
    assert "Question one" in text
    assert "New answer" in text
    assert CHINESE in text
    assert "Old answer" not in text  # another branch
    assert "> Thinking hard" in text  # reasoning folded as a quote
    assert "*Error: 10013*" in text
    assert text.index("Question one") < text.index("New answer") < text.index("Question two")


def test_content_disposition_names_the_file_after_the_title(api, branched):
    response = api.get(export_url(branched, "md"))
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    # Chinese in RFC 5987 form; the slash of the title is not a path.
    assert "filename*=utf-8''" + quote("测试 Export one two.md") in disposition


def test_ascii_title_gets_a_plain_filename(api, user):
    conversation = ConversationFactory(user=user, title='Plain "title"')
    response = api.get(export_url(conversation, "json"))
    assert response["Content-Disposition"] == 'attachment; filename="Plain title.json"'


def test_json_export_holds_every_branch(api, branched):
    response = api.get(export_url(branched, "json"))
    assert response.status_code == 200
    data = json.loads(response.content)
    assert data["format"] == "chatsite.conversation"
    assert data["version"] == 1
    assert data["conversation"]["title"] == "测试 Export: one/two"
    assert data["conversation"]["system_prompt"] == "You are terse."
    messages = data["messages"]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    assert [m["active"] for m in messages] == [True, False, True, True, True]
    assert messages[1]["parent"] == messages[0]["id"] == messages[2]["parent"]
    assert messages[2]["reasoning"] == "Thinking hard"
    assert messages[4]["status"] == "error"
    assert messages[4]["error_code"] == "10013"
    assert {"id", "parent", "seq", "role", "content", "status", "created_at", "model"} <= set(
        messages[0]
    )
    assert "usage" not in messages[2]
    assert "cost_cny" not in messages[2]


def test_other_format_is_refused(api, branched):
    for query in ("?format=docx", "?format=md&format=pdf", ""):
        response = api.get(f"/api/conversations/{branched.id}/export/{query}")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid"


def test_others_and_deleted_conversations_are_404(api, other_user, branched):
    theirs = ConversationFactory(user=other_user)
    assert api.get(export_url(theirs, "md")).status_code == 404
    assert api.post(f"/api/conversations/{theirs.id}/share/", {}, format="json").status_code == 404
    Conversation.objects.filter(pk=branched.pk).update(deleted_at="2026-01-01T00:00:00Z")
    response = api.get(export_url(branched, "json"))
    assert response.status_code == 404
    assert response.json() == {"detail": "Conversation not found.", "code": "not_found"}


def test_jwt_authenticates_the_export(user, branched):
    client = APIClient()
    assert client.get(export_url(branched, "md")).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    response = client.get(export_url(branched, "md"))
    assert response.status_code == 200
    assert "Question one" in response.content.decode()


# -- PDF ----------------------------------------------------------------------------------------


PDF_MARKDOWN = f"""## 小结

{CHINESE}

```python
def greet():
    {CODE_LINE}
{LONG_CODE}
```

| Name | Value |
| --- | --- |
| 名字 | {TABLE_CELL} |

- first point
- second point

{LONG_LINE}
"""


def pdf_text(content: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return reader, text


@pytest.mark.skipif(
    not Path(django_settings.PDF_FONT_PATH).is_file(),
    reason="no PDF font: scripts/system-deps.sh installs fonts-wqy-microhei",
)
def test_pdf_renders_chinese_code_tables_and_long_lines(api, user):
    conversation = ConversationFactory(user=user, title="PDF 测试")
    MessageFactory(conversation=conversation, seq=1, role="user", content="请总结")
    MessageFactory(conversation=conversation, seq=2, role="assistant", content=PDF_MARKDOWN)
    response = api.get(export_url(conversation, "pdf"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    reader, text = pdf_text(response.content)
    assert "PDF 测试" in text
    assert "请总结" in text
    assert CHINESE in text
    assert CODE_LINE in text
    assert TABLE_CELL in text
    assert "名字" in text
    # The unbroken line is wrapped, not cut: all of it is there, over several lines.
    joined = text.replace("\n", "")
    assert LONG_LINE in joined
    assert LONG_LINE not in text.splitlines()
    assert joined.count("x") >= 470
    # So is a code line longer than the page is wide.
    assert LONG_CODE not in text.splitlines()
    assert "".join(LONG_CODE.split()) in "".join(text.split())  # a break takes its space
    # The fonts are embedded (a subset: the "ABCDEF+" prefix) as TrueType font files.
    fonts = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descendant = font["/DescendantFonts"][0].get_object()
            descriptor = descendant["/FontDescriptor"].get_object()
            fonts[str(font["/BaseFont"])] = "/FontFile2" in descriptor
    assert fonts, "no font in the PDF"
    assert all(fonts.values()), f"fonts not embedded: {fonts}"
    assert all(name.lstrip("/")[6] == "+" for name in fonts), fonts
    assert any("WenQuanYi" in name for name in fonts)


def test_pdf_without_the_font_is_a_clear_503(api, branched, settings, tmp_path):
    settings.PDF_FONT_PATH = str(tmp_path / "missing.ttf")
    response = api.get(export_url(branched, "pdf"))
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "pdf_unavailable"
    assert "PDF_FONT_PATH" in body["detail"]


# -- import -------------------------------------------------------------------------------------


def upload(api, content: bytes, name: str = "export.json"):
    return api.post(
        "/api/conversations/import/",
        {"file": SimpleUploadedFile(name, content)},
        format="multipart",
    )


def tree_of(conversation) -> list[tuple]:
    """What an import must keep: each message's content and place in the tree."""
    messages = list(conversation.messages.order_by("seq"))
    index = {m.id: i for i, m in enumerate(messages)}
    return [
        (
            m.seq,
            m.role,
            m.content,
            m.reasoning,
            m.status,
            m.error_code,
            not m.replaced,
            None if m.parent_id is None else index[m.parent_id],
            m.created_at,
        )
        for m in messages
    ]


def test_import_a_json_export_keeps_branches(api, user, branched):
    exported = api.get(export_url(branched, "json")).content
    response = upload(api, exported)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["imported"] == 1
    (new_id,) = body["conversations"]
    assert new_id != str(branched.id)
    copy = Conversation.objects.get(pk=new_id)
    assert copy.user == user
    assert copy.title == branched.title
    assert copy.system_prompt == branched.system_prompt
    assert copy.model == "lite"
    assert tree_of(copy) == tree_of(branched)
    assert not set(copy.messages.values_list("id", flat=True)) & set(
        branched.messages.values_list("id", flat=True)
    )
    # The branch structure works as one: switching to the old reply works in the copy.
    old = copy.messages.get(seq=2)
    branches.branch_select(conversation=copy, message_id=old.id)
    assert list(copy.messages.filter(replaced=False).values_list("seq", flat=True)) == [1, 2]


def test_import_replaces_a_model_not_offered_with_the_default(api, branched):
    data = json.loads(api.get(export_url(branched, "json")).content)
    data["conversation"]["model"] = "no-such-model"
    response = upload(api, json.dumps(data).encode())
    assert response.status_code == 201
    copy = Conversation.objects.get(pk=response.json()["conversations"][0])
    assert copy.model == "lite"


def test_export_all_then_import_round_trip(api, user, other_user, branched):
    plain = ConversationFactory(user=user, title="Second")
    MessageFactory(conversation=plain, seq=1, role="user", content="Hello 你好")
    deleted = ConversationFactory(user=user, title="Deleted one")
    Conversation.objects.filter(pk=deleted.pk).update(deleted_at="2026-01-01T00:00:00Z")
    ConversationFactory(user=other_user, title="Not mine")

    response = api.get("/api/conversations/export/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "chatsite-conversations.zip" in response["Content-Disposition"]
    archive = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = sorted(zipped.namelist())
        titles = sorted(json.loads(zipped.read(n))["conversation"]["title"] for n in names)
    assert names == sorted(f"conversation-{c.id}.json" for c in (branched, plain))
    assert titles == sorted([branched.title, "Second"])

    # Imported by another account: the same content and branches.
    other = APIClient()
    other.force_authenticate(other_user)
    response = upload(other, archive, "all.zip")
    assert response.status_code == 201, response.content
    assert response.json()["imported"] == 2
    copies = Conversation.objects.filter(pk__in=response.json()["conversations"])
    assert {c.user_id for c in copies} == {other_user.pk}
    by_title = {c.title: c for c in copies}
    assert tree_of(by_title[branched.title]) == tree_of(branched)
    assert tree_of(by_title["Second"]) == tree_of(plain)


def invalid(response, text: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_import"
    assert text in body["detail"], body["detail"]


def export_dict(api, conversation) -> dict:
    return json.loads(api.get(export_url(conversation, "json")).content)


@pytest.mark.parametrize(
    ("change", "text"),
    [
        (lambda d: d.update(format="other"), "not a chatsite export"),
        (lambda d: d.update(version=2), "export version 2"),
        (lambda d: d.update(messages={}), "messages must be a list"),
        (lambda d: d["conversation"].update(title=5), "conversation.title: must be a string"),
        (lambda d: d["conversation"].update(title="t" * 201), "longer than 200"),
        (lambda d: d["messages"][0].update(role="system"), "messages[0].role"),
        (lambda d: d["messages"][0].update(seq="1"), "messages[0].seq"),
        (lambda d: d["messages"][1].update(seq=1), "messages[1].seq: is repeated"),
        (lambda d: d["messages"][1].update(parent="nope"), "messages[1].parent"),
        (lambda d: d["messages"][0].update(status="weird"), "messages[0].status"),
        (lambda d: d["messages"][0].update(content=None), "messages[0].content"),
        (lambda d: d["messages"][0].update(active="yes"), "messages[0].active"),
        (lambda d: d["messages"][0].update(created_at="yesterday"), "created_at"),
    ],
)
def test_import_validates_strictly(api, branched, change, text):
    data = export_dict(api, branched)
    change(data)
    before = Conversation.objects.count(), Message.objects.count()
    invalid(upload(api, json.dumps(data).encode()), text)
    assert (Conversation.objects.count(), Message.objects.count()) == before


def test_import_refuses_what_is_not_json(api):
    invalid(upload(api, b"\xff\xfe not json"), "not a JSON export")
    invalid(upload(api, b"[1, 2]"), "not a chatsite export")
    response = api.post("/api/conversations/import/", {}, format="multipart")
    assert response.status_code == 400


def test_import_limits_size_and_messages(api, branched, settings):
    exported = api.get(export_url(branched, "json")).content
    settings.IMPORT_MAX_UPLOAD_BYTES = len(exported) - 1
    invalid(upload(api, exported), "larger than")
    settings.IMPORT_MAX_UPLOAD_BYTES = 10**7
    settings.IMPORT_MAX_MESSAGES = 4
    invalid(upload(api, exported), "more than 4 messages")


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_bombs_path_tricks_and_too_many_members_are_refused(api, branched, settings):
    good = api.get(export_url(branched, "json")).content
    # A bomb: 50 MB of zeros, a few kilobytes compressed, past the uncompressed limit.
    settings.IMPORT_MAX_UNCOMPRESSED_BYTES = 10 * 1024 * 1024
    bomb = zip_of({"a.json": good, "b.json": b"0" * (50 * 1024 * 1024)})
    assert len(bomb) < 200_000
    invalid(upload(api, bomb, "bomb.zip"), "bytes once uncompressed")
    for name in ("../evil.json", "/etc/passwd.json", "dir/a.json", "..\\x.json", "a.txt"):
        invalid(upload(api, zip_of({name: good}), "tricks.zip"), "only .json files")
    settings.IMPORT_MAX_CONVERSATIONS = 2
    many = zip_of({f"{i}.json": good for i in range(3)})
    invalid(upload(api, many, "many.zip"), "more than 2 files")
    invalid(upload(api, b"PK\x03\x04 broken", "broken.zip"), "damaged")
    assert Conversation.objects.count() == 1


def test_one_bad_member_imports_nothing(api, branched):
    good = api.get(export_url(branched, "json")).content
    bad = json.loads(good)
    bad["messages"][0]["role"] = "robot"
    archive = zip_of({"a.json": good, "b.json": json.dumps(bad).encode()})
    invalid(upload(api, archive, "mixed.zip"), "b.json messages[0].role")
    assert Conversation.objects.count() == 1


def test_import_keeps_parameters_the_model_takes_and_drops_the_others(api, branched):
    data = export_dict(api, branched)
    data["conversation"].update(temperature=0.5, max_tokens=10**9, web_search=True)
    response = upload(api, json.dumps(data).encode())
    assert response.status_code == 201
    copy = Conversation.objects.get(pk=response.json()["conversations"][0])
    assert copy.temperature == 0.5
    assert copy.max_tokens is None  # past the model's output limit: its default
    assert copy.pinned is False


def test_import_keeps_times_and_pinned(api, branched):
    Conversation.objects.filter(pk=branched.pk).update(pinned=True)
    data = export_dict(api, branched)
    data["messages"][0]["created_at"] = "2025-05-01T08:00:00Z"
    data["messages"][4]["status"] = "streaming"  # exported while being written
    response = upload(api, json.dumps(data).encode())
    copy = Conversation.objects.get(pk=response.json()["conversations"][0])
    assert copy.pinned is True
    assert copy.messages.get(seq=1).created_at.isoformat() == "2025-05-01T08:00:00+00:00"
    assert copy.created_at == branched.created_at
    assert copy.messages.get(seq=5).status == "interrupted"


def test_an_empty_file_is_an_invalid_import(api):
    invalid(upload(api, b""), "not a JSON export")


@pytest.mark.skipif(
    not Path(django_settings.PDF_FONT_PATH).is_file(),
    reason="no PDF font: scripts/system-deps.sh installs fonts-wqy-microhei",
)
def test_pdf_keeps_deeply_nested_text_and_leaves_out_control_characters(api, user):
    conversation = ConversationFactory(user=user, title="odd\x07 title")
    MessageFactory(conversation=conversation, seq=1, role="user", content=">" * 120 + " DEEP-TEXT")
    MessageFactory(
        # (No NUL: the API refuses it and PostgreSQL cannot store it.)
        conversation=conversation,
        seq=2,
        role="assistant",
        content="bell\x07-and\x1b-escape",
    )
    response = api.get(export_url(conversation, "pdf"))
    assert response.status_code == 200
    _, text = pdf_text(response.content)
    assert "DEEP-TEXT" in text  # past markdown-it's nesting limit: shown as written
    assert "bell-and-escape" in text
    assert "odd title" in text


def test_a_large_upload_spooled_to_disk_imports_alike(api, branched, settings):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 100  # Django writes the upload to a temporary file
    exported = api.get("/api/conversations/export/")
    archive = b"".join(exported.streaming_content)
    assert len(archive) > 100
    response = upload(api, archive, "all.zip")
    assert response.status_code == 201, response.content
    copy = Conversation.objects.get(pk=response.json()["conversations"][0])
    assert tree_of(copy) == tree_of(branched)
