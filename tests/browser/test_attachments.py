"""Attached files in chromium (static/js/attachments.js): a Chinese PDF dropped onto the page and
asked about, a text file through the paperclip (from the keyboard) and one removed with ×, a
hostile file refused on its chip, a file too long for the model with the switch to one that
takes it, and the strings in Chinese."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from attachments.models import Attachment
from conversations.models import Conversation

from .helpers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
SENTENCE = "二〇二六年季度销售额报告"
TABLE = [["季度", "销售额"], ["第一季度", "一百二十万"], ["第二季度", "九十万"]]
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


def chinese_pdf(path: Path) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF()
    pdf.add_font("wqy", fname=FONT)
    pdf.set_font("wqy", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, SENTENCE)
    with pdf.table(headings_style=FontFace(emphasis="")) as table:
        for cells in TABLE:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    pdf.output(str(path))
    return path.read_bytes()


def drop(page, name: str, data: bytes, mime: str, target: str = "#scroller") -> None:
    """Drag a file over the conversation, see the drop highlight, and drop it."""
    transfer = page.evaluate_handle(
        """([name, bytes, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            return transfer;
        }""",
        [name, list(data), mime],
    )
    page.dispatch_event(target, "dragenter", {"dataTransfer": transfer})
    expect(page.locator("main.main")).to_have_class("main is-dropping")
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})
    expect(page.locator("main.main")).to_have_class("main")


def send(page, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")


def chip(page, name: str):
    return page.locator(".att-chip", has_text=name)


def file_block(content: str) -> str:
    start = content.index("<file ")
    return content[start : content.index("</file>", start)]


@pytest.mark.skipif(not os.path.exists(FONT), reason=f"no Chinese font at {FONT} for the PDF")
def test_drop_a_chinese_pdf_and_ask_about_its_table(
    open_page, spark, user, screenshot_dir, tmp_path
):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    expect(page.locator("#model-select")).to_be_enabled()
    drop(page, "销售报告.pdf", chinese_pdf(tmp_path / "report.pdf"), "application/pdf")

    pdf = chip(page, "销售报告.pdf")
    expect(pdf).to_have_attribute("data-state", "ready")
    expect(pdf.locator(".att-chip__status")).to_contain_text("✓ 1 page · about")
    pages = pdf.get_by_label("Pages of 销售报告.pdf to send")
    expect(pages).to_be_visible()
    pages.fill("1")
    expect(pdf.get_by_role("button", name="Remove 销售报告.pdf")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "attachments-chips.png"))

    send(page, "第一季度销售额是多少？ [[reply:一百二十万]]")
    reply = page.locator("li.msg--assistant").last
    expect(reply.locator(".msg__body")).to_have_text("一百二十万")
    mine = page.locator("li.msg--user").last
    expect(mine.get_by_role("list", name="Attached files")).to_have_text("销售报告.pdfpages 1")
    expect(mine.locator(".msg__text")).to_have_text("第一季度销售额是多少？ [[reply:一百二十万]]")
    # Accepted: the chip left the composer.
    expect(page.locator(".att-chip")).to_have_count(0)

    # The model got the PDF's text: the sentence and the table, in the file's block.
    content = spark.requests[-1]["json"]["messages"][-1]["content"]
    block = file_block(content)
    assert 'name="销售报告.pdf"' in block
    assert 'pages="1"' in block
    assert SENTENCE in block
    assert "第一季度" in block
    assert "一百二十万" in block
    assert "第一季度销售额是多少？" in content
    attachment = Attachment.objects.get()
    assert attachment.conversation_id is not None

    # After a reload the message lists its file (message.attachments), with the page range.
    page.reload()
    files = page.locator("li.msg--user").last.get_by_role("list", name="Attached files")
    expect(files).to_have_text("销售报告.pdfpages 1")
    b.watch.assert_clean()


def test_attach_a_text_file_with_the_keyboard_and_remove_another(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    # File choosers are intercepted from the start: turned on by the first listener, the
    # interception could otherwise come after a key press that opens one straight away.
    page.on("filechooser", lambda chooser: None)
    page.goto(b.url("/"))
    expect(page.locator("#model-select")).to_be_enabled()
    attach = page.get_by_role("button", name="Attach files")
    attach.focus()
    expect(attach).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(
        files=[
            {
                "name": "notes.txt",
                "mimeType": "text/plain",
                "buffer": b"The meeting moved to Thursday at ten. Bring the budget sheet.\n",
            },
            {"name": "spare.txt", "mimeType": "text/plain", "buffer": b"Not needed after all.\n"},
        ]
    )
    expect(chip(page, "notes.txt")).to_have_attribute("data-state", "ready")
    expect(chip(page, "spare.txt")).to_have_attribute("data-state", "ready")
    expect(chip(page, "notes.txt")).to_contain_text("B")  # its size
    expect(chip(page, "notes.txt").locator(".att-chip__status")).to_have_text(
        re.compile(r"^✓ about \d+ tokens$")
    )
    # No page range for a text file.
    expect(chip(page, "notes.txt").locator("input")).to_have_count(0)
    assert Attachment.objects.count() == 2

    # × deletes an uploaded file that was not sent.
    chip(page, "spare.txt").get_by_role("button", name="Remove spare.txt").click()
    expect(chip(page, "spare.txt")).to_have_count(0)
    wait_until(lambda: Attachment.objects.count() == 1)

    send(page, "When is the meeting? [[reply:Thursday at ten.]]")
    expect(page.locator("li.msg--assistant").last.locator(".msg__body")).to_have_text(
        "Thursday at ten."
    )
    expect(page.locator("li.msg--user .msg__files")).to_have_text("notes.txt")
    block = file_block(spark.requests[-1]["json"]["messages"][-1]["content"])
    assert "Thursday at ten" in block
    assert "spare" not in block
    b.watch.assert_clean()


def test_a_png_named_pdf_is_refused_on_its_chip(open_page, spark, user):
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the refusal is a 400, by design
    page = b.page
    page.goto(b.url("/"))
    drop(page, "invoice.pdf", PNG, "application/pdf")
    hostile = chip(page, "invoice.pdf")
    expect(hostile).to_have_attribute("data-state", "error")
    expect(hostile.locator(".att-chip__status")).to_contain_text("Not attached:")
    assert Attachment.objects.count() == 0

    # A message still goes out, without the refused file.
    send(page, "Hello [[reply:Hi.]]")
    expect(page.locator("li.msg--assistant").last.locator(".msg__body")).to_have_text("Hi.")
    assert "<file" not in spark.requests[-1]["json"]["messages"][-1]["content"]
    expect(hostile).to_be_visible()
    hostile.get_by_role("button", name="Remove invoice.pdf").click()
    expect(page.locator(".att-chip")).to_have_count(0)
    b.watch.assert_clean()


def test_a_file_too_long_for_the_model_offers_one_that_takes_it(
    open_page, spark, user, screenshot_dir
):
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the too-long refusal is a 400, by design
    page = b.page
    page.goto(b.url("/"))
    expect(page.locator("#model-select")).to_have_value("lite")
    expect(page.locator("#model-select")).to_be_enabled()
    words = " ".join(f"figure{i % 997}" for i in range(20_000))
    text = words + "\n"
    assert 190_000 < len(text.encode()) < 260_000
    drop(page, "ledger.txt", text.encode(), "text/plain")
    expect(chip(page, "ledger.txt")).to_have_attribute("data-state", "ready")

    question = "Sum the figures. [[reply:All summed.]]"
    send(page, question)
    notice = page.locator(".att-notice")
    expect(notice).to_contain_text("The files are about")
    expect(notice).to_contain_text("this model takes")
    expect(notice).to_contain_text("too many")
    expect(notice).to_contain_text("Or attach a shorter file.")
    switch = notice.get_by_role("button", name="Switch to Spark Pro-128K")
    expect(switch).to_be_visible()
    # Nothing lost: the chip and the text are back in the composer, no message was saved.
    expect(chip(page, "ledger.txt")).to_have_attribute("data-state", "ready")
    expect(page.locator("#composer-input")).to_have_value(question)
    expect(page.locator("li.msg--user")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "attachments-too-long.png"))

    with page.expect_response(
        lambda response: (
            response.request.method == "PATCH" and "/api/conversations/" in response.url
        )
    ):
        switch.click()
    expect(page.locator("#model-select")).to_have_value("pro-128k")
    expect(notice).to_be_hidden()
    assert Conversation.objects.get().model == "pro-128k"

    page.locator("#composer-input").press("Enter")
    expect(page.locator("li.msg--assistant").last.locator(".msg__body")).to_have_text("All summed.")
    expect(page.locator("li.msg--user .msg__files")).to_have_text("ledger.txt")
    assert "figure996" in file_block(spark.requests[-1]["json"]["messages"][-1]["content"])
    expect(page.locator(".att-chip")).to_have_count(0)
    b.watch.assert_clean()


def test_attachments_in_chinese(open_page, spark, user, screenshot_dir):
    b = open_page(user=user, locale="zh-CN", color_scheme="dark")
    b.watch.allow_http_errors = True  # the refused file's 400
    page = b.page
    page.goto(b.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("button", name="添加文件")).to_be_visible()
    drop(page, "笔记.txt", "会议改到周四上午十点。".encode(), "text/plain")
    notes = chip(page, "笔记.txt")
    expect(notes).to_have_attribute("data-state", "ready")
    expect(notes.locator(".att-chip__status")).to_contain_text("个词元")
    expect(notes.get_by_role("button", name="移除 笔记.txt")).to_be_visible()
    drop(page, "照片.pdf", PNG, "application/pdf")
    expect(chip(page, "照片.pdf").locator(".att-chip__status")).to_contain_text("未能添加：")
    send(page, "会议在哪天？ [[reply:周四。]]")
    expect(page.locator("li.msg--assistant").last.locator(".msg__body")).to_have_text("周四。")
    sent = page.locator("li.msg--user").get_by_role("list", name="已添加的文件")
    expect(sent).to_have_text("笔记.txt")
    page.screenshot(path=str(screenshot_dir / "attachments-zh-dark.png"))
    # The refused file stays in the composer, to be removed.
    expect(page.locator("#composer").get_by_role("list", name="已添加的文件")).to_have_text(
        re.compile("照片.pdf")
    )
    b.watch.assert_clean()


def paste(page, name: str, data: bytes, mime: str) -> None:
    page.evaluate(
        """([name, bytes, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            const event = new ClipboardEvent("paste", {
                clipboardData: transfer, bubbles: true, cancelable: true,
            });
            document.getElementById("composer-input").dispatchEvent(event);
        }""",
        [name, list(data), mime],
    )


def test_a_pasted_image_to_a_model_without_vision_keeps_the_chip(open_page, spark, user, tmp_path):
    from PIL import Image

    picture = tmp_path / "chart.png"
    Image.new("RGB", (64, 48), "steelblue").save(picture)
    b = open_page(user=user)
    b.watch.allow_http_errors = True  # the refusal is a 400, by design
    page = b.page
    page.goto(b.url("/"))
    expect(page.locator("#model-select")).to_be_enabled()
    paste(page, "chart.png", picture.read_bytes(), "image/png")
    image = chip(page, "chart.png")
    expect(image).to_have_attribute("data-state", "ready")
    expect(image.locator(".att-chip__status")).to_have_text("✓")

    question = "What does the chart show? [[reply:A blue square.]]"
    send(page, question)
    error = page.locator("#composer-error")
    expect(error).to_contain_text("cannot see images (chart.png)")
    expect(image).to_have_attribute("data-state", "ready")
    expect(page.locator("#composer-input")).to_have_value(question)
    expect(page.locator("li.msg--user")).to_have_count(0)
    assert Attachment.objects.get().conversation_id is None

    # Without the image the message goes out.
    image.get_by_role("button", name="Remove chart.png").click()
    wait_until(lambda: not Attachment.objects.exists())
    page.locator("#composer-input").press("Enter")
    expect(page.locator("li.msg--assistant").last.locator(".msg__body")).to_have_text(
        "A blue square."
    )
    b.watch.assert_clean()
