"""Attachments through the real path (docs/attachments.md): upload over the API (extraction in a
child process), send with a message, and the prompt the loopback upstream receives; hostile
files refused with nothing kept; ownership, limits, vision, page ranges and purging."""

from __future__ import annotations

import io
import shutil
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone

from attachments.models import Attachment
from conversations.models import ChatModel, Conversation, Provider
from tests.factories import ConversationFactory, UserFactory
from tests.support.api import assert_json_error
from tests.upstream import MultiDialectServer

pytestmark = pytest.mark.django_db

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
REPLY = "[[reply:ok]]"


@pytest.fixture(autouse=True)
def storage_root() -> Iterator[Path]:
    """The attachments' storage (a temporary directory under tests: chatsite/settings.py),
    emptied after each test."""
    root = Path(Attachment._meta.get_field("file").storage.location)
    yield root
    if root.exists():
        shutil.rmtree(root)


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def upload(api, name: str, data: bytes, content_type: str = "application/octet-stream"):
    return api.post(
        "/api/files/", {"file": SimpleUploadedFile(name, data, content_type)}, format="multipart"
    )


def raw_upload(api, name: str, data: bytes):
    """A multipart body written by hand: Django's test client would strip a path from the name
    before sending it, and a hostile client does not."""
    boundary = "chatsite-test-boundary"
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return api.generic(
        "POST", "/api/files/", body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def chinese_pdf(pages: int = 1) -> bytes:
    if not FONT.exists():
        pytest.skip("the CJK font (Debian fonts-wqy-microhei) is not installed")
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("wqy", fname=str(FONT))
    pdf.add_font("wqy", style="B", fname=str(FONT))
    pdf.set_font("wqy", size=12)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.multi_cell(0, 8, f"第{number}页：二〇二六年季度销售额报告。")
        with pdf.table() as table:
            for row in (("季度", "销售额", "增长"), ("第一季度", "一百二十万", "百分之五")):
                cells = table.row()
                for cell in row:
                    cells.cell(cell)
    return bytes(pdf.output())


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly review", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Region", "Revenue"
    table.cell(1, 0).text, table.cell(1, 1).text = "North", "1.2M"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx_bytes() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "销售"
    sheet.append(["产品", "数量"])
    sheet.append(["茶叶", 42])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def send(api, conversation: Conversation, content: str, **extra):
    return api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, **extra},
        format="json",
    )


def prompt_of(spark) -> list[dict]:
    return spark.requests[-1]["json"]["messages"]


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, model="lite")


# --- upload ----------------------------------------------------------------------------------


def test_a_docx_upload_answers_201_with_its_extraction(api, storage_root):
    response = upload(api, "review.docx", docx_bytes())

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "review.docx"
    assert body["size"] > 0
    assert body["content_type"].startswith(
        "application/vnd.openxmlformats-officedocument.wordprocessingml"
    )
    assert body["extraction"]["status"] == "done"
    assert body["extraction"]["chars"] > 20
    attachment = Attachment.objects.get(pk=body["id"])
    assert "Revenue grew in every region." in attachment.text
    assert "North" in attachment.text
    assert len(stored_files(storage_root)) == 1
    assert api.get(f"/api/files/{body['id']}/").json()["id"] == body["id"]
    assert [f["id"] for f in api.get("/api/files/").json()["results"]] == [body["id"]]


def test_files_are_their_owners(api, anon):
    body = upload(api, "notes.txt", b"private notes").json()
    stranger = UserFactory()
    other = type(api)()
    other.force_authenticate(stranger)

    assert_json_error(other.get(f"/api/files/{body['id']}/"), 404, "not_found")
    assert_json_error(other.delete(f"/api/files/{body['id']}/"), 404, "not_found")
    assert other.get("/api/files/").json()["results"] == []
    assert anon.get("/api/files/").status_code == 401


def test_an_unsent_file_can_be_deleted_with_its_stored_copy(
    api, storage_root, django_capture_on_commit_callbacks
):
    body = upload(api, "notes.txt", b"some notes").json()

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/files/{body['id']}/").status_code == 204

    assert not Attachment.objects.exists()
    assert stored_files(storage_root) == []


# --- hostile and bad files --------------------------------------------------------------------


def zip_bomb_docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (300 * 2**20))
    return buffer.getvalue()


def billion_laughs_xlsx() -> bytes:
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><workbook>&l9;</workbook>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", bomb)
    return buffer.getvalue()


def many_pages_pdf(pages: int) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=72, height=72)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "status", "code"),
    [
        ("../../etc/passwd.txt", lambda: b"x", 400, "invalid_file_name"),
        ("a\\b.txt", lambda: b"x", 400, "invalid_file_name"),
        ("bad\u202etxt.exe.txt", lambda: b"x", 400, "invalid_file_name"),
        ("line\nbreak.txt", lambda: b"x", 400, "invalid_file_name"),
        ("photo.pdf", png_bytes, 400, "file_type_mismatch"),
        ("report.docx", lambda: b"%PDF-1.7 not a docx", 400, "file_type_mismatch"),
        ("bomb.docx", zip_bomb_docx, 400, "zip_bomb"),
        ("laughs.xlsx", billion_laughs_xlsx, 400, "xml_entities"),
        ("huge.pdf", lambda: many_pages_pdf(10_000), 400, "too_many_pages"),
        ("broken.pdf", lambda: b"%PDF-1.7\n" + b"\x00garbage" * 200, 400, "unreadable_file"),
        ("program.exe", lambda: b"MZ\x90\x00", 400, "unsupported_file_type"),
    ],
    ids=[
        "path-traversal",
        "backslash",
        "bidi-override",
        "control-char",
        "png-as-pdf",
        "pdf-as-docx",
        "zip-bomb",
        "xml-entities",
        "10000-pages",
        "malformed-pdf",
        "executable",
    ],
)
def test_a_hostile_or_bad_file_gets_a_clear_4xx_and_nothing_is_kept(
    api, storage_root, name, make, status, code
):
    response = raw_upload(api, name, make())

    body = assert_json_error(response, status, code)
    assert body["detail"]
    assert not Attachment.objects.exists()
    assert stored_files(storage_root) == []


def test_a_file_over_the_size_limit_is_413(api, settings, storage_root):
    settings.ATTACHMENT_MAX_BYTES = 1000

    assert_json_error(upload(api, "big.txt", b"a" * 1001), 413, "file_too_large")
    assert stored_files(storage_root) == []


def test_a_user_over_their_storage_is_413(api, settings):
    settings.ATTACHMENT_USER_QUOTA_BYTES = 1500
    assert upload(api, "one.txt", b"a" * 1000).status_code == 201

    body = assert_json_error(upload(api, "two.txt", b"b" * 1000), 413, "storage_quota_exceeded")
    assert body["used"] == 1000


def test_a_scanned_pdf_gets_a_clear_message(api):
    assert_json_error(upload(api, "scan.pdf", many_pages_pdf(3)), 400, "no_text_layer")


def test_an_upload_without_a_file_part_is_400(api):
    assert_json_error(api.post("/api/files/", {}, format="multipart"), 400, "no_file")


# --- the prompt --------------------------------------------------------------------------------


def test_the_upstream_gets_a_chinese_pdf_table_in_a_labelled_block(api, spark, conversation):
    file_id = upload(api, "销售.pdf", chinese_pdf()).json()["id"]

    response = send(api, conversation, f"第一季度销售额是多少？ {REPLY}", attachments=[file_id])

    assert response.status_code == 201, response.content
    messages = prompt_of(spark)
    assert messages[0]["role"] == "system"
    assert "<file> blocks" in messages[0]["content"]
    user = messages[-1]["content"]
    assert user.startswith('<file name="销售.pdf" type="pdf">')
    assert "季度销售额报告" in user
    assert "一百二十万" in user
    assert user.endswith(f"第一季度销售额是多少？ {REPLY}")
    # The message the user sees is their own text; the file is listed beside it.
    assert response.json()["user_message"]["content"] == f"第一季度销售额是多少？ {REPLY}"
    attachment = Attachment.objects.get(pk=file_id)
    assert attachment.conversation_id == conversation.pk
    assert_json_error(api.delete(f"/api/files/{file_id}/"), 409, "file_in_use")


def test_a_gbk_text_and_a_spreadsheet_reach_the_upstream_readable(api, spark, conversation):
    text_id = upload(api, "说明.txt", "这是用GBK编码的中文说明。".encode("gbk")).json()["id"]
    sheet_id = upload(api, "库存.xlsx", xlsx_bytes()).json()["id"]

    send(api, conversation, f"summarise {REPLY}", attachments=[text_id, sheet_id])

    user = prompt_of(spark)[-1]["content"]
    assert "这是用GBK编码的中文说明。" in user
    assert "茶叶" in user
    assert "42" in user


def test_earlier_files_stay_in_the_history(api, spark, conversation):
    file_id = upload(api, "facts.txt", b"The launch code word is PELICAN.").json()["id"]
    send(api, conversation, f"remember this {REPLY}", attachments=[file_id])

    send(api, conversation, f"what was the word? {REPLY}")

    messages = prompt_of(spark)
    assert "PELICAN" in messages[1]["content"]
    assert messages[-1]["content"] == f"what was the word? {REPLY}"


def test_files_that_do_not_fit_are_refused_with_by_how_much(api, spark, conversation):
    long_text = ("A sentence that fills the context window of a small model. " * 2500).encode()
    file_id = upload(api, "long.txt", long_text).json()["id"]

    body = assert_json_error(
        send(api, conversation, "summarise", attachments=[file_id]), 400, "attachments_too_long"
    )

    assert body["over_by"] == body["tokens"] - body["limit"] > 0
    assert "pro-128k" in body["models"]
    assert "lite" not in body["models"]
    assert spark.requests == []
    assert not conversation.messages.exists()  # nothing was saved


def test_a_page_range_sends_only_those_pages(api, spark, conversation):
    file_id = upload(api, "report.pdf", chinese_pdf(pages=3)).json()["id"]

    send(api, conversation, f"page two {REPLY}", attachments=[{"id": file_id, "pages": "2"}])

    user = prompt_of(spark)[-1]["content"]
    assert 'pages="2"' in user
    assert "第2页" in user
    assert "第1页" not in user
    assert "第3页" not in user
    assert_json_error(
        send(api, conversation, "x", attachments=[{"id": file_id, "pages": "4-9"}]),
        400,
        "invalid_pages",
    )


def test_another_users_file_is_404_and_a_file_of_another_conversation_400(
    api, spark, user, conversation
):
    stranger = type(api)()
    stranger.force_authenticate(UserFactory())
    theirs = upload(stranger, "theirs.txt", b"secret").json()["id"]
    assert_json_error(send(api, conversation, "hi", attachments=[theirs]), 404, "not_found")

    mine = upload(api, "mine.txt", b"mine").json()["id"]
    send(api, conversation, f"one {REPLY}", attachments=[mine])
    other = ConversationFactory(user=user, model="lite")
    assert_json_error(send(api, other, "two", attachments=[mine]), 400, "attachment_elsewhere")
    # Sent again in its own conversation (an edit, say): fine.
    assert send(api, conversation, f"again {REPLY}", attachments=[mine]).status_code == 201


@pytest.fixture(scope="module")
def upstream() -> Iterator[MultiDialectServer]:
    server = MultiDialectServer().start()
    yield server
    server.stop()


def test_an_image_goes_to_a_vision_model_and_is_refused_by_another(api, user, upstream, spark):
    upstream.reset()
    provider = Provider(name="qwen", dialect="qwen", base_url=upstream.base_url("qwen"))
    provider.set_api_key("sk-qwen")
    provider.save()
    ChatModel.objects.create(
        provider=provider, model_id="qwen-vl", upstream_id="qwen-vl-max", vision=True
    )
    image_id = upload(api, "chart.png", png_bytes()).json()["id"]

    blind = ConversationFactory(user=user, model="lite")
    assert_json_error(
        send(api, blind, "what is this?", attachments=[image_id]), 400, "model_cannot_see_images"
    )
    seeing = ConversationFactory(user=user, model="qwen-vl")
    response = send(api, seeing, f"what is this? {REPLY}", attachments=[image_id])

    assert response.status_code == 201, response.content
    content = upstream.requests[-1]["json"]["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": f"what is this? {REPLY}"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")


# --- retention -----------------------------------------------------------------------------------


def test_purging_a_conversation_purges_its_files(
    api, spark, conversation, settings, storage_root, django_capture_on_commit_callbacks
):
    file_id = upload(api, "notes.txt", b"to be purged").json()["id"]
    send(api, conversation, f"hi {REPLY}", attachments=[file_id])
    assert len(stored_files(storage_root)) == 1
    api.delete(f"/api/conversations/{conversation.pk}/")
    Conversation.objects.filter(pk=conversation.pk).update(
        deleted_at=timezone.now() - timedelta(days=settings.DELETED_RETENTION_DAYS + 1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_deleted", stdout=io.StringIO())

    assert not Attachment.objects.filter(pk=file_id).exists()
    assert stored_files(storage_root) == []


def test_the_admin_transcript_shows_the_files_sent(api, spark, conversation, client):
    file_id = upload(api, "报告.docx", docx_bytes()).json()["id"]
    send(api, conversation, f"read it {REPLY}", attachments=[file_id])
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    page = client.get(f"/admin/conversations/conversation/{conversation.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "报告.docx" in html
    assert "Files sent with this message" in html


def test_message_objects_list_their_files(api, spark, conversation):
    file_id = upload(api, "notes.txt", b"a note").json()["id"]

    sent = send(api, conversation, f"see {REPLY}", attachments=[{"id": file_id}]).json()
    listed = api.get(f"/api/conversations/{conversation.pk}/messages/").json()["results"]

    expected = [{"id": file_id, "name": "notes.txt", "kind": "text", "size": 6, "pages": ""}]
    assert sent["user_message"]["attachments"] == expected
    assert listed[0]["attachments"] == expected
    assert listed[1]["attachments"] == []


def test_a_file_never_sent_is_removed_after_its_days(
    api, settings, storage_root, django_capture_on_commit_callbacks
):
    settings.ATTACHMENT_UNSENT_DAYS = 7
    old = upload(api, "old.txt", b"forgotten").json()["id"]
    fresh = upload(api, "fresh.txt", b"just now").json()["id"]
    Attachment.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(days=8))
    out = io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("purge_deleted", stdout=out)

    assert "1 file(s) never sent in 7 days removed" in out.getvalue()
    assert [str(pk) for pk in Attachment.objects.values_list("pk", flat=True)] == [fresh]
    assert len(stored_files(storage_root)) == 1
