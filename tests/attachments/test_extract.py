"""The extraction engine (attachments.sniff, .extract, .runner): every fixture is made here, in
tmp_path, by the libraries that write those formats (fpdf2, python-docx, openpyxl, python-pptx,
Pillow, zipfile). No database."""

from __future__ import annotations

import io
import json
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from attachments import extract as extract_module
from attachments import sniff
from attachments.extract import extract
from attachments.limits import Limits
from attachments.runner import run_extraction
from attachments.sniff import FileRejected, check_container, clean_name, kind_of

FONT = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
needs_font = pytest.mark.skipif(
    not os.path.exists(FONT),
    reason=f"no Chinese TrueType font at {FONT} (Debian's fonts-wqy-microhei) for the PDF fixtures",
)

SENTENCE = "本季度销售额增长了百分之二十，华东地区表现最好。"
TABLE = [["地区", "季度", "销售额"], ["华东", "第一季度", "一百万"], ["华北", "第二季度", "八十万"]]


def _kind(path: Path, **kwargs) -> sniff.Kind:
    data = path.read_bytes()
    return kind_of(path.name, data[:4096], len(data), **kwargs)


# -- fixtures ---------------------------------------------------------------------------------


def chinese_pdf(path: Path, pages: int = 1) -> Path:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF()
    pdf.add_font("wqy", fname=FONT)
    pdf.set_font("wqy", size=12)
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 8, "季度销售额报告\n" + SENTENCE)
        with pdf.table(headings_style=FontFace(emphasis="")) as table:
            for cells in TABLE:
                row = table.row()
                for cell in cells:
                    row.cell(cell)
    pdf.output(str(path))
    return path


def image_only_pdf(path: Path, tmp_path: Path) -> Path:
    from fpdf import FPDF
    from PIL import Image, ImageDraw

    picture = tmp_path / "scan.png"
    image = Image.new("RGB", (800, 1000), "white")
    ImageDraw.Draw(image).rectangle((100, 100, 700, 300), fill="black")
    image.save(picture)
    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.image(str(picture), x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def many_pages_pdf(path: Path, count: int) -> Path:
    """A valid PDF of ``count`` empty pages, written by hand with a correct xref table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
        + b"] /Count %d >>" % count,
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * count
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    path.write_bytes(out.getvalue())
    return path


def docx_file(path: Path) -> Path:
    import docx

    document = docx.Document()
    document.add_heading("年度报告", level=1)
    document.add_paragraph("今年的销售额比去年增长了百分之十五。")
    table = document.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("产品", "数量"), ("苹果", "120"), ("香蕉", "80")]):
        table.cell(r, 0).text = a
        table.cell(r, 1).text = b
    document.add_paragraph("表格之后的段落。")
    document.save(str(path))
    return path


def xlsx_file(path: Path, rows: int = 3) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sales = book.active
    sales.title = "销售"
    sales.append(["城市", "金额"])
    sales.append(["上海", 1200])
    sales.append(["北京", 980.5])
    costs = book.create_sheet("Costs")
    costs.append(["item", "amount"])
    for n in range(rows):
        costs.append([f"row {n}", n])
    book.save(str(path))
    return path


def pptx_file(path: Path) -> Path:
    import pptx
    from pptx.util import Inches

    presentation = pptx.Presentation()
    first = presentation.slides.add_slide(presentation.slide_layouts[1])
    first.shapes.title.text = "项目进度"
    first.placeholders[1].text = "第一阶段已经完成"
    first.notes_slide.notes_text_frame.text = "演讲者备注：强调时间表"
    second = presentation.slides.add_slide(presentation.slide_layouts[5])
    second.shapes.title.text = "预算"
    shape = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1))
    for r, (a, b) in enumerate([("部门", "预算"), ("研发", "五十万")]):
        shape.table.cell(r, 0).text = a
        shape.table.cell(r, 1).text = b
    presentation.save(str(path))
    return path


def rewrite_zip(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info.filename, replace.get(info.filename, old.read(info)))
    return target


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol9;</t></si></sst>
"""


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "a\\b.txt",
        "x\x00.pdf",
        "bad\u202e.txt",
        "new\nline.txt",
        "tab\there.txt",
        "c1\x85.txt",
        "iso\u2066late.txt",
        "sep\u2028.txt",
        "",
        "   ",
        ".",
        "..",
        "长" * 86 + ".txt",  # 262 bytes of UTF-8
    ],
)
def test_bad_names_are_refused(name):
    with pytest.raises(FileRejected) as caught:
        clean_name(name)
    assert caught.value.code == "invalid_file_name"
    assert caught.value.status == 400
    assert caught.value.detail.startswith("The file name is not accepted")


def test_good_names_are_kept_nfc_and_stripped():
    assert clean_name("  报告 2024.pdf ") == "报告 2024.pdf"
    assert clean_name("Cafe\u0301.txt") == "Caf\u00e9.txt"
    assert clean_name("👨\u200d👩\u200d👧.png") == "👨\u200d👩\u200d👧.png"
    assert clean_name(".env.txt") == ".env.txt"


# -- kinds ------------------------------------------------------------------------------------


@needs_font
def test_kinds_follow_extension_and_content(tmp_path):
    assert _kind(chinese_pdf(tmp_path / "a.pdf")).name == "pdf"
    docx_kind = _kind(docx_file(tmp_path / "a.docx"), file=tmp_path / "a.docx")
    assert (docx_kind.name, docx_kind.content_type.endswith("wordprocessingml.document")) == (
        "docx",
        True,
    )
    assert _kind(xlsx_file(tmp_path / "a.xlsx"), file=tmp_path / "a.xlsx").name == "xlsx"
    assert _kind(pptx_file(tmp_path / "a.pptx"), file=tmp_path / "a.pptx").name == "pptx"
    (tmp_path / "a.md").write_text("# 标题\n")
    assert _kind(tmp_path / "a.md").name == "text"
    (tmp_path / "main.rs").write_text("fn main() {}\n")
    rust = _kind(tmp_path / "main.rs")
    assert (rust.name, rust.language) == ("code", "rust")


def _png_bytes(size=(10, 10)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, "PNG")
    return buffer.getvalue()


def test_a_png_named_pdf_is_a_type_mismatch():
    data = _png_bytes()
    with pytest.raises(FileRejected) as caught:
        kind_of("report.pdf", data, len(data))
    assert (caught.value.code, caught.value.status) == ("file_type_mismatch", 400)
    assert "PDF" in caught.value.detail


def test_an_image_must_match_its_extension():
    data = _png_bytes()
    assert kind_of("photo.png", data, len(data)).content_type == "image/png"
    with pytest.raises(FileRejected, match="JPEG") as caught:
        kind_of("photo.jpg", data, len(data))
    assert caught.value.code == "file_type_mismatch"


def test_binary_named_txt_is_a_type_mismatch():
    for data in (b"\x7fELF\x02\x01\x01" + b"\x00" * 50, b"abc\x00def", _png_bytes()):
        with pytest.raises(FileRejected) as caught:
            kind_of("notes.txt", data, len(data))
        assert caught.value.code == "file_type_mismatch"
    utf16 = "中文".encode("utf-16")  # NUL bytes, but a BOM says what they are
    assert kind_of("notes.txt", utf16, len(utf16)).name == "text"


def test_an_xlsx_named_docx_is_a_type_mismatch(tmp_path):
    source = xlsx_file(tmp_path / "book.xlsx")
    disguised = tmp_path / "letter.docx"
    disguised.write_bytes(source.read_bytes())
    with pytest.raises(FileRejected) as caught:
        _kind(disguised, file=disguised)
    assert caught.value.code == "file_type_mismatch"
    with pytest.raises(FileRejected) as caught:
        check_container(disguised, "docx", Limits())
    assert caught.value.code == "file_type_mismatch"
    # Not a ZIP at all
    with pytest.raises(FileRejected) as caught:
        kind_of("letter.docx", b"%PDF-1.7 hello", 14)
    assert caught.value.code == "file_type_mismatch"


def test_unknown_extension_and_size_limit():
    with pytest.raises(FileRejected) as caught:
        kind_of("setup.exe", b"MZ\x90\x00", 4)
    assert (caught.value.code, caught.value.status) == ("unsupported_file_type", 400)
    assert ".exe files are not supported" in caught.value.detail
    with pytest.raises(FileRejected) as caught:
        kind_of("Makefile", b"all:\n", 5)
    assert caught.value.code == "unsupported_file_type"
    with pytest.raises(FileRejected) as caught:
        kind_of("big.txt", b"a" * 100, 30 * 2**20, max_bytes=20 * 2**20)
    assert (caught.value.code, caught.value.status) == ("file_too_large", 413)
    with pytest.raises(FileRejected) as caught:
        kind_of("empty.txt", b"", 0)
    assert caught.value.code == "empty_file"


# -- extraction of each kind --------------------------------------------------------------------


@needs_font
def test_chinese_pdf_with_a_table(tmp_path):
    path = chinese_pdf(tmp_path / "report.pdf", pages=2)
    result = extract(str(path), "pdf", Limits())
    assert result["ok"] is True
    assert result["scanned"] is False
    assert len(result["pages"]) == 2
    assert result["pages"][1].startswith("--- Page 2 ---")
    assert SENTENCE in result["text"]
    assert "季度销售额" in result["text"]
    for cell in (c for row in TABLE for c in row):
        assert cell in result["pages"][0]
    assert result["text"] == "\n\n".join(result["pages"])
    assert result["chars"] == len(result["text"])


@needs_font
def test_pdfminer_reads_the_chinese_when_pdfium_is_garbled(tmp_path, monkeypatch):
    # Any text counts as garbled: the pdfminer.six fallback (Adobe's CJK CMaps) takes over.
    monkeypatch.setattr(extract_module, "GARBLED_SHARE", -1.0)
    result = extract(str(chinese_pdf(tmp_path / "report.pdf")), "pdf", Limits())
    assert result["ok"] is True
    assert SENTENCE in result["text"].replace("\n", "")
    assert "华东" in result["text"]


@needs_font
def test_a_pdf_whose_fonts_have_no_unicode_map_goes_to_pdfminer(tmp_path):
    data = chinese_pdf(tmp_path / "a.pdf").read_bytes()
    assert b"/ToUnicode" in data
    path = tmp_path / "no-map.pdf"
    path.write_bytes(data.replace(b"/ToUnicode", b"/ToUnicodX"))  # same length: the xref holds
    result = extract(str(path), "pdf", Limits())
    assert result["ok"] is True
    # PDFium gives glyph indices as control characters; they never reach the text.
    assert "pdfminer.six" in result["warnings"][0]
    assert not re.search(r"[\x00-\x08\x0b-\x1f]", result["text"])
    # pdfminer.six maps glyphs back through the embedded font's own tables: Chinese characters
    # come out (without a Unicode map, not all of them the right ones: the PDF is broken).
    page = result["pages"][0].removeprefix("--- Page 1 ---")
    assert len(set(page) & set(SENTENCE)) >= 10


def test_garbled_share_counts_unmapped_glyphs():
    assert extract_module._garbled_share("正常的中文") == 0.0
    assert extract_module._garbled_share("\ufffd\ufffd\ue001中") == 0.75
    assert extract_module._garbled_share("\x01\x04 (cid:12)(cid:7) 中文") == 4 / 6


def test_scanned_pdf_has_no_text_layer(tmp_path):
    result = extract(str(image_only_pdf(tmp_path / "scan.pdf", tmp_path)), "pdf", Limits())
    assert result["ok"] is True
    assert result["scanned"] is True
    assert "no text layer" in result["detail"]
    assert "OCR is not supported" in result["warnings"][-1]


@needs_font
def test_a_short_pdf_without_pictures_is_not_a_scan(tmp_path):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("wqy", fname=FONT)
    pdf.set_font("wqy", size=12)
    pdf.add_page()
    pdf.cell(text="荣誉证书")
    pdf.output(str(tmp_path / "certificate.pdf"))
    result = extract(str(tmp_path / "certificate.pdf"), "pdf", Limits())
    assert result["scanned"] is False
    assert "荣誉证书" in result["text"]


def test_ten_thousand_pages_are_refused_without_reading_them(tmp_path):
    path = many_pages_pdf(tmp_path / "huge.pdf", 10_000)
    started = time.monotonic()
    result = extract(str(path), "pdf", Limits())
    assert result == {
        "ok": False,
        "code": "too_many_pages",
        "detail": "The PDF has 10,000 pages; at most 500 can be attached.",
    }
    assert time.monotonic() - started < 2.0
    small = extract(str(many_pages_pdf(tmp_path / "small.pdf", 3)), "pdf", Limits())
    assert (small["ok"], small["page_count"], small["scanned"]) == (True, 3, True)


def test_malformed_pdf_is_unreadable(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.7\n" + os.urandom(2000))
    assert kind_of(path.name, path.read_bytes()[:4096], 2009).name == "pdf"
    result = extract(str(path), "pdf", Limits())
    assert result["ok"] is False
    assert result["code"] == "unreadable_file"
    assert "damaged" in result["detail"]


def test_docx_headings_paragraphs_and_tables_in_order(tmp_path):
    result = extract(str(docx_file(tmp_path / "a.docx")), "docx", Limits())
    assert result["ok"] is True
    text = result["text"]
    assert text.startswith("# 年度报告\n\n今年的销售额比去年增长了百分之十五。")
    assert "| 产品 | 数量 |\n| --- | --- |\n| 苹果 | 120 |\n| 香蕉 | 80 |" in text
    assert text.index("| 香蕉 | 80 |") < text.index("表格之后的段落。")


def test_xlsx_sheets_as_markdown_tables(tmp_path):
    result = extract(str(xlsx_file(tmp_path / "a.xlsx")), "xlsx", Limits())
    assert result["ok"] is True
    text = result["text"]
    assert (
        "## Sheet 销售\n\n| 城市 | 金额 |\n| --- | --- |\n| 上海 | 1200 |\n| 北京 | 980.5 |" in text
    )
    assert "## Sheet Costs" in text
    assert result["warnings"] == []


def test_xlsx_rows_and_columns_are_capped_and_said(tmp_path):
    result = extract(str(xlsx_file(tmp_path / "a.xlsx", rows=250)), "xlsx", Limits(max_rows=200))
    assert "| row 198 | 198 |" in result["text"]
    assert "| row 199 | 199 |" not in result["text"]
    assert "(51 more rows omitted)" in result["text"]
    assert result["warnings"] == ["Sheet Costs: (51 more rows omitted)"]
    narrow = extract(str(tmp_path / "a.xlsx"), "xlsx", Limits(max_cols=1))
    assert "| 上海 |" in narrow["text"]
    assert "1200" not in narrow["text"]
    assert "(1 more columns omitted)" in narrow["text"]


def test_xlsx_stops_reading_at_the_cut_and_counts_from_the_dimension(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append([f"c{n}" for n in range(50)])
    for r in range(2, 5001):
        sheet.append([r] * 50)
    book.save(tmp_path / "wide.xlsx")
    started = time.monotonic()
    result = extract(str(tmp_path / "wide.xlsx"), "xlsx", Limits(max_rows=10, max_cols=30))
    assert time.monotonic() - started < 1.5  # 5,000 rows are not all parsed
    assert result["warnings"] == [
        "Sheet Sheet: (4,990 more rows omitted)",
        "Sheet Sheet: (20 more columns omitted)",
    ]
    header = result["text"].split("\n")[2]
    assert header.startswith("| c0 | c1 |")
    assert header.endswith("| c29 |")


def test_pptx_slides_tables_and_notes(tmp_path):
    result = extract(str(pptx_file(tmp_path / "a.pptx")), "pptx", Limits())
    assert result["ok"] is True
    first, second = result["pages"]
    assert first.startswith("## Slide 1\n\n项目进度")
    assert "第一阶段已经完成" in first
    assert "Notes: 演讲者备注：强调时间表" in first
    assert second.startswith("## Slide 2\n\n预算")
    assert "| 部门 | 预算 |\n| --- | --- |\n| 研发 | 五十万 |" in second


def test_gbk_text_decodes(tmp_path):
    text = "北京的天气很好，我们去公园散步吧。这是一个用GBK编码的文本文件。\n第二行：数据分析报告"
    path = tmp_path / "notes.txt"
    path.write_bytes(text.encode("gbk"))
    assert _kind(path).name == "text"
    result = extract(str(path), "text", Limits())
    assert result["ok"] is True
    assert result["text"] == text
    assert result["encoding"] == "gb18030"


def test_gb18030_csv_as_a_table(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_bytes(
        "城市,销售额,备注\r\n上海,1200,增长较快\r\n广州,800,持平\r\n".encode("gb18030")
    )
    result = extract(str(path), "csv", Limits())
    assert result["ok"] is True
    assert result["text"] == (
        "| 城市 | 销售额 | 备注 |\n| --- | --- | --- |\n"
        "| 上海 | 1200 | 增长较快 |\n| 广州 | 800 | 持平 |"
    )


def test_csv_rows_are_capped(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("n;square\n" + "".join(f"{n};{n * n}\n" for n in range(1000)))
    result = extract(str(path), "csv", Limits(max_rows=10))
    assert "| 8 | 64 |" in result["text"]
    assert "| 9 | 81 |" not in result["text"]
    assert result["text"].endswith("(991 more rows omitted)")


def test_source_code_in_a_fence(tmp_path):
    path = tmp_path / "hello.py"
    path.write_text('def greet():\n    return "你好"\n', encoding="utf-8")
    kind = _kind(path)
    result = extract(str(path), "code", Limits(), language=kind.language)
    assert result["text"] == '```python\ndef greet():\n    return "你好"\n```'
    tricky = tmp_path / "README.md.py"
    tricky.write_text("x = '''\n```\n'''\n")
    assert extract(str(tricky), "code", Limits(), language="python")["text"].startswith("````")


def test_text_is_cut_at_max_chars(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("字" * 5000)
    result = extract(str(path), "text", Limits(max_chars=1000))
    assert result["chars"] == len(result["text"]) == 1000
    assert result["warnings"] == ["The text was cut at 1,000 characters."]


def test_image_copy_has_no_exif_and_a_capped_size(tmp_path):
    from PIL import Image

    original = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (31.0, 14.0, 0.0)}  # GPS
    Image.new("RGB", (4000, 1000), "blue").save(original, "JPEG", exif=exif.tobytes())
    assert Image.open(original).getexif()[0x010F] == "SecretCam"
    copy = tmp_path / "copy"
    result = run_extraction(
        str(original), "image", Limits(), timeout_s=20, memory_mb=768, out_path=str(copy)
    )
    assert result["ok"] is True
    assert (result["width"], result["height"]) == (4000, 1000)
    assert (result["out_width"], result["out_height"]) == (2048, 512)
    assert result["text"] == ""
    with Image.open(copy) as sanitised:
        assert sanitised.size == (2048, 512)
        assert sanitised.format == "JPEG"
        assert len(sanitised.getexif()) == 0
        assert "exif" not in sanitised.info
    assert b"SecretCam" not in copy.read_bytes()


def test_png_with_alpha_stays_png(tmp_path):
    from PIL import Image

    original = tmp_path / "logo.png"
    Image.new("RGBA", (300, 200), (255, 0, 0, 128)).save(original)
    result = extract(
        str(original), "image", Limits(max_image_side=100), out_path=str(tmp_path / "o")
    )
    assert (result["out_format"], result["out_width"], result["out_height"]) == ("png", 100, 67)
    assert Image.open(tmp_path / "o").mode == "RGBA"


def test_an_image_bomb_is_refused(tmp_path):
    from PIL import Image

    path = tmp_path / "big.png"
    Image.new("1", (4000, 4000)).save(path)  # a few KB, 16 million pixels
    result = extract(str(path), "image", Limits(max_image_pixels=1_000_000), out_path="/dev/null")
    assert (result["ok"], result["code"]) == (False, "file_rejected")
    assert "1,000,000 pixels" in result["detail"]


def test_truncated_image_is_unreadable(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(_png_bytes((200, 200))[:60])
    result = extract(str(path), "image", Limits(), out_path=str(tmp_path / "o"))
    assert (result["ok"], result["code"]) == (False, "unreadable_file")
    assert not (tmp_path / "o").exists()


# -- hostile OOXML ----------------------------------------------------------------------------


def test_zip_bomb_docx_is_refused_from_the_directory(tmp_path):
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            zeros = b"\0" * 2**20
            for _ in range(128):  # 128 MB of zeros: about 130 KB compressed
                member.write(zeros)
    assert path.stat().st_size < 2**20
    assert _kind(path, file=path).name == "docx"  # it does look like a DOCX
    started = time.monotonic()
    with pytest.raises(FileRejected) as caught:
        check_container(path, "docx", Limits())
    assert caught.value.code == "zip_bomb"
    assert "zip bomb" in caught.value.detail
    assert extract(str(path), "docx", Limits())["code"] == "zip_bomb"
    assert time.monotonic() - started < 1.0  # nothing was inflated


def test_zip_claiming_a_gigabyte_is_refused(tmp_path):
    path = tmp_path / "claims.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        archive.filelist[-1].file_size = 2**30  # the central directory now says 1 GB
    with pytest.raises(FileRejected) as caught:
        sniff.check_zip(path)
    assert caught.value.code == "zip_bomb"


def test_zip_member_limits_and_path_tricks(tmp_path):
    many = tmp_path / "many.xlsx"
    with zipfile.ZipFile(many, "w") as archive:
        for n in range(30):
            archive.writestr(f"xl/part{n}.xml", "<a/>")
    with pytest.raises(FileRejected) as caught:
        sniff.check_zip(many, max_members=20)
    assert caught.value.code == "zip_bomb"
    for name in ("../evil.xml", "/etc/passwd", "C:/x.xml", "word/../../x.xml"):
        tricky = tmp_path / "tricky.docx"
        with zipfile.ZipFile(tricky, "w") as archive:
            archive.writestr(name, "<a/>")
        with pytest.raises(FileRejected) as caught:
            sniff.check_zip(tricky)
        assert caught.value.code == "file_rejected", name


def test_a_huge_directory_is_refused_before_zipfile_reads_it(tmp_path, monkeypatch):
    path = tmp_path / "crowd.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<a/>")
        for n in range(2500):
            archive.writestr(f"word/media/{n}.xml", "")

    def no_zipfile(*args, **kwargs):
        raise AssertionError("zipfile.ZipFile was asked to read the directory")

    monkeypatch.setattr(sniff.zipfile, "ZipFile", no_zipfile)
    for check in (
        lambda: sniff.check_zip(path),
        lambda: _kind(path, file=path),
        lambda: check_container(path, "docx", Limits()),
    ):
        with pytest.raises(FileRejected) as caught:
            check()
        assert caught.value.code == "zip_bomb"
        assert "more than 2000 parts" in caught.value.detail


def test_encrypted_member_is_refused(tmp_path):
    path = tmp_path / "locked.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<a/>")
        archive.filelist[-1].flag_bits |= 0x1
    with pytest.raises(FileRejected) as caught:
        sniff.check_zip(path)
    assert caught.value.code == "file_rejected"
    assert "encrypted" in caught.value.detail


def test_billion_laughs_in_xlsx_is_refused_before_parsing(tmp_path):
    source = xlsx_file(tmp_path / "ok.xlsx")
    hostile = rewrite_zip(
        source, tmp_path / "laughs.xlsx", {"xl/sharedStrings.xml": BILLION_LAUGHS}
    )
    if "xl/sharedStrings.xml" not in zipfile.ZipFile(source).namelist():
        hostile = rewrite_zip(source, tmp_path / "laughs.xlsx", {"xl/workbook.xml": BILLION_LAUGHS})
    with pytest.raises(FileRejected) as caught:
        check_container(hostile, "xlsx", Limits())
    assert (caught.value.code, caught.value.status) == ("xml_entities", 400)
    assert extract(str(hostile), "xlsx", Limits())["code"] == "xml_entities"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-8"])
def test_a_dtd_is_found_in_any_encoding_and_any_part(tmp_path, encoding):
    source = docx_file(tmp_path / "ok.docx")
    xml = (
        '<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n<x>&e;</x>'
    )
    hostile = rewrite_zip(source, tmp_path / "xxe.docx", {"word/styles.xml": xml.encode(encoding)})
    with pytest.raises(FileRejected) as caught:
        check_container(hostile, "docx", Limits())
    assert caught.value.code == "xml_entities"


def test_clean_ooxml_passes_the_container_checks(tmp_path):
    for make, kind in ((docx_file, "docx"), (xlsx_file, "xlsx"), (pptx_file, "pptx")):
        check_container(make(tmp_path / f"a.{kind}"), kind, Limits())


# -- the child process ------------------------------------------------------------------------


@needs_font
def test_runner_extracts_in_a_child_process(tmp_path):
    result = run_extraction(
        str(chinese_pdf(tmp_path / "r.pdf")), "pdf", Limits(), timeout_s=20, memory_mb=768
    )
    assert result["ok"] is True
    assert SENTENCE in result["text"]
    assert result["stats"]["peak_rss_kib"] > 0
    docx = run_extraction(
        str(docx_file(tmp_path / "a.docx")), sniff.Kind("docx", "x", "docx"), timeout_s=20
    )
    assert "# 年度报告" in docx["text"]


def test_runner_passes_the_code_language(tmp_path):
    path = tmp_path / "q.sql"
    path.write_text("SELECT 1;\n")
    result = run_extraction(str(path), _kind(path), timeout_s=20)
    assert result["text"] == "```sql\nSELECT 1;\n```"


def test_runner_refusals_come_back_as_dicts(tmp_path):
    path = many_pages_pdf(tmp_path / "huge.pdf", 10_000)
    result = run_extraction(str(path), "pdf", Limits(), timeout_s=20, memory_mb=768)
    assert (result["ok"], result["code"]) == (False, "too_many_pages")


@pytest.fixture
def hooks(monkeypatch):
    monkeypatch.setenv(extract_module.TEST_HOOKS_ENV, "1")


def test_test_kinds_do_not_exist_without_the_switch(tmp_path, monkeypatch):
    monkeypatch.delenv(extract_module.TEST_HOOKS_ENV, raising=False)
    result = run_extraction(str(tmp_path), "_sleep", timeout_s=5)
    assert (result["ok"], result["code"]) == (False, "unsupported_file_type")


def test_a_hanging_child_is_stopped_at_the_timeout(hooks, tmp_path):
    started = time.monotonic()
    result = run_extraction(str(tmp_path), "_sleep", timeout_s=1.5, memory_mb=256)
    elapsed = time.monotonic() - started
    assert (result["ok"], result["code"]) == (False, "extraction_timeout")
    assert "1.5 seconds" in result["detail"]
    assert elapsed < 2.5


def test_the_child_runs_under_limits_without_django_or_secrets(hooks, tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "do-not-leak")
    result = run_extraction(str(tmp_path), "_limits", timeout_s=7, memory_mb=300)
    assert result["ok"] is True, result
    limits = result["limits"]
    assert limits["RLIMIT_AS"] == [300 * 2**20, 300 * 2**20]
    assert limits["RLIMIT_CPU"][0] == 8
    assert limits["RLIMIT_FSIZE"][0] == 64 * 2**20
    assert limits["RLIMIT_NOFILE"][0] == 64
    assert result["django"] is False
    assert "DJANGO_SECRET_KEY" not in result["env"]


def test_a_child_over_its_memory_limit_fails(hooks, tmp_path):
    result = run_extraction("600", "_alloc", timeout_s=10, memory_mb=256)
    assert (result["ok"], result["code"]) == (False, "extraction_failed")
    assert "memory" in result["detail"]
    fits = run_extraction("50", "_alloc", timeout_s=10, memory_mb=256)
    assert fits == {**fits, "ok": True, "allocated_mb": 50}


def test_a_child_that_dies_is_a_failure_not_an_exception(hooks, tmp_path):
    # A CPU-bound child is stopped too (wall-clock timeout first; RLIMIT_CPU backs it up).
    result = run_extraction(str(tmp_path), "_spin", timeout_s=1, memory_mb=256)
    assert result["code"] == "extraction_timeout"


GEVENT_WORKER = """
from gevent import monkey; monkey.patch_all()
import json, os, time
import gevent
os.environ["ATTACHMENTS_TEST_HOOKS"] = "1"
from attachments.runner import run_extraction
ticks = []
def tick():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.05)
ticker = gevent.spawn(tick)
result = run_extraction("/", "_sleep", timeout_s=1.0, memory_mb=256)
ticker.kill()
print(json.dumps({"code": result["code"], "ticks": len(ticks)}))
"""


def test_a_gevent_worker_keeps_serving_while_a_child_runs():
    import subprocess
    import sys

    out = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", GEVENT_WORKER],
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=30,
    ).stdout
    result = json.loads(out)
    assert result["code"] == "extraction_timeout"
    # Another greenlet ran every 50 ms during the child's second: the wait did not block.
    assert result["ticks"] >= 12


def test_the_child_prints_one_json_line(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "a.txt"
    path.write_text("你好")
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "attachments.extract", "--kind", "text", str(path)],
        capture_output=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.count(b"\n") == 1
    assert json.loads(out)["text"] == "你好"
