"""Text out of an attachment, in a child process (``attachments.runner``), never in a web worker.

``extract(path, kind, limits)`` returns a JSON-able dict and never raises:

    {"ok": True, "kind", "pages": [str, ...], "text": str, "chars": int, "warnings": [str],
     "scanned": bool}                       (images add "width", "height" and the copy's size)
    {"ok": False, "code": str, "detail": str}

``pages`` holds one entry per PDF page or PPTX slide (one entry for the other kinds), each with
its label ("--- Page 3 ---", "## Slide 2"); ``text`` is the pages joined by one blank line.

Libraries, chosen for correct Chinese and for tables (and for their licences: no AGPL):
PDF pypdfium2 (PDFium; Apache-2.0/BSD), pdfminer.six (MIT, ships Adobe's CJK CMaps) when PDFium's
text comes out garbled; DOCX python-docx; XLSX openpyxl (read-only); PPTX python-pptx; text and
CSV charset-normalizer (GBK/GB18030, Big5, UTF-16...); images Pillow.

    python -m attachments.extract --kind pdf [--limits JSON] [--out PATH] [--language L]
        [--memory-mb N] [--cpu-seconds N] [--fsize-mb N] PATH

prints the dict as one line of JSON. The limits of the process are set first thing, before any
parser is imported. No Django import here, ever.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import resource
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from attachments import sniff
from attachments.limits import Limits

SCANNED_DETAIL = "This PDF has no text layer (a scan?); OCR is not supported."
# Under this many characters a page on average, a PDF is taken for a scan.
SCANNED_CHARS_PER_PAGE = 20
# PDFium's text is "garbled" when more than this share of its characters are unmapped glyphs
# (U+FFFD, private use, stray control characters): pdfminer.six then has a go.
GARBLED_SHARE = 0.2
TEST_HOOKS_ENV = "ATTACHMENTS_TEST_HOOKS"


class Refused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _result(
    kind: str, pages: list[str], warnings_: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "ok": True,
        "kind": kind,
        "pages": pages,
        "text": "\n\n".join(pages),
        "chars": sum(len(p) for p in pages) + 2 * max(len(pages) - 1, 0),
        "warnings": warnings_ or [],
        "scanned": False,
        **extra,
    }


def _cap_chars(result: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """Cut the text to ``limits.max_chars`` (the pages that fit, then part of one), saying so."""
    if result.get("chars", 0) <= limits.max_chars:
        return result
    kept: list[str] = []
    used = 0
    for page in result["pages"]:
        room = limits.max_chars - used - (2 if kept else 0)
        if room <= 0:
            break
        kept.append(page[:room])
        used += len(kept[-1]) + (2 if len(kept) > 1 else 0)
    omitted = len(result["pages"]) - len(kept)
    note = f"The text was cut at {limits.max_chars:,} characters"
    if omitted:
        note += f"; {omitted} page(s) omitted"
    capped = _result(result["kind"], kept, [*result["warnings"], note + "."])
    return {**result, **{k: capped[k] for k in ("pages", "text", "chars", "warnings")}}


# -- Markdown tables -------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif hasattr(value, "isoformat"):
        value = value.isoformat()
    text = re.sub(r"[\r\n]+", " ", str(value)).replace("|", "\\|")
    return text.strip()


def markdown_table(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as a Markdown table, the first row as its header; short rows padded."""
    cells = [[_cell(v) for v in row] for row in rows]
    width = max((len(r) for r in cells), default=0)
    if not width:
        return ""
    cells = [r + [""] * (width - len(r)) for r in cells]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines)


def _table_block(
    rows: Iterable[Sequence[Any]],
    limits: Limits,
    *,
    total_rows: int | None = None,
    total_cols: int | None = None,
) -> tuple[str, list[str]]:
    """The first ``max_rows`` non-empty rows (``max_cols`` columns) as a Markdown table, and
    lines saying how many more rows and columns were left out. When the source knows its size
    (``total_rows``: a worksheet's dimension), reading stops at the cut instead of counting on."""
    kept: list[list[Any]] = []
    more_rows = 0
    widest = 0
    for position, row in enumerate(rows, 1):
        values = list(row)
        while values and (values[-1] is None or values[-1] == ""):
            values.pop()
        if not values:
            continue
        if len(kept) >= limits.max_rows:
            if total_rows is not None and total_rows >= position:
                more_rows = total_rows - position + 1
                break
            more_rows += 1
            continue
        widest = max(widest, len(values))
        kept.append(values[: limits.max_cols])
    notes = []
    if more_rows:
        notes.append(f"({more_rows:,} more rows omitted)")
    if total_cols is not None and total_cols > limits.max_cols and widest > limits.max_cols:
        notes.append(f"({total_cols - limits.max_cols:,} more columns omitted)")
    elif widest > limits.max_cols:
        notes.append(f"({widest - limits.max_cols:,} more columns omitted)")
    return markdown_table(kept), notes


# -- PDF -------------------------------------------------------------------------------------


_CID = re.compile(r"\(cid:\d+\)")  # pdfminer.six's mark for a glyph it cannot map
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _garbled_share(text: str) -> float:
    """The share of unmapped glyphs in a PDF's raw text: U+FFFD, private-use characters, control
    characters (PDFium gives a glyph's index as one when a font has no Unicode map) and
    pdfminer.six's "(cid:N)"."""
    text = _CID.sub("\ufffd", text)
    meaningful = [c for c in text if not c.isspace()]
    if not meaningful:
        return 0.0
    bad = sum(
        1
        for c in meaningful
        if c in "\ufffd\ufffe" or "\ue000" <= c <= "\uf8ff" or ord(c) < 32 or c == "\x7f"
    )
    return bad / len(meaningful)


def _clean_pdf_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # PDFium marks a hyphen that ends a line with U+0002 (U+FFFE in some versions).
    text = text.replace("\x02", "-").replace("\ufffe", "-")
    text = _CID.sub("\ufffd", text)
    return _CONTROLS.sub("", text).strip()


def _pdfminer_pages(path: str, count: int) -> list[str]:
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTTextContainer

    pages = []
    for layout in extract_pages(path, laparams=LAParams(), maxpages=count):
        parts = [el.get_text() for el in layout if isinstance(el, LTTextContainer)]
        pages.append("".join(parts))
    return pages


def _image_pages(path: str, count: int) -> int:
    """How many pages hold an image (page objects only, forms included)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    pdf = pdfium.PdfDocument(path)
    try:
        found = 0
        for index in range(count):
            page = pdf[index]
            if any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])):
                found += 1
            page.close()
        return found
    finally:
        pdf.close()


def _pdf(path: str, limits: Limits) -> dict[str, Any]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        if "password" in str(error).lower():
            raise Refused(
                "file_rejected", "The PDF is password-protected: remove the password and attach it."
            ) from error
        raise Refused("unreadable_file", "The PDF is damaged and cannot be read.") from error
    try:
        count = len(pdf)
        if count > limits.max_pages:
            raise Refused(
                "too_many_pages",
                f"The PDF has {count:,} pages; at most {limits.max_pages:,} can be attached.",
            )
        if count == 0:
            raise Refused("unreadable_file", "The PDF has no pages.")
        raw = []
        for index in range(count):
            page = pdf[index]
            textpage = page.get_textpage()
            raw.append(textpage.get_text_range())
            textpage.close()
            page.close()
    finally:
        pdf.close()
    warnings_: list[str] = []
    garbled = _garbled_share("".join(raw))
    if garbled > GARBLED_SHARE:
        try:
            mined = _pdfminer_pages(path, count)
        except Exception:  # noqa: BLE001 - PDFium's text stays, with the warning below
            mined = []
        mined_garbled = _garbled_share("".join(mined)) if mined else 1.0
        if mined_garbled < garbled:
            raw, garbled = mined + [""] * (count - len(mined)), mined_garbled
            warnings_.append("The text was read with pdfminer.six: PDFium's came out garbled.")
    if garbled > GARBLED_SHARE:
        warnings_.append(
            "Much of this PDF's text could not be decoded (its fonts have no Unicode map); "
            "what was read may be garbled."
        )
    raw = [_clean_pdf_text(text) for text in raw]
    pages = [f"--- Page {n} ---\n{text}".rstrip() for n, text in enumerate(raw, 1)]
    chars = sum(len(re.sub(r"\s", "", t)) for t in raw)
    result = _result(sniff.PDF, pages, warnings_, page_count=count, garbled=garbled > GARBLED_SHARE)
    # Little text is a scan when there is none at all, or when the pages are pictures: a short
    # letter or a one-line certificate is not.
    if chars < SCANNED_CHARS_PER_PAGE * count and (
        chars == 0 or _image_pages(path, count) * 2 >= count
    ):
        result["scanned"] = True
        result["detail"] = SCANNED_DETAIL
        result["warnings"].append(SCANNED_DETAIL)
    return result


# -- DOCX ------------------------------------------------------------------------------------


def _docx(path: str, limits: Limits) -> dict[str, Any]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(path)
    blocks: list[str] = []
    warnings_: list[str] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            level = 0
            if style == "Title":
                level = 1
            elif match := re.fullmatch(r"Heading (\d)", style):
                level = min(int(match.group(1)), 6)
            blocks.append(f"{'#' * level} {text}" if level else text)
        elif isinstance(item, Table):
            rows = []
            for row in item.rows:
                cells, previous = [], None
                for cell in row.cells:
                    # A merged cell is returned once per grid column it spans: keep it once.
                    if previous is not None and cell._tc is previous:
                        continue
                    previous = cell._tc
                    cells.append(cell.text)
                rows.append(cells)
            table, notes = _table_block(rows, limits)
            if table:
                blocks.append(table)
            warnings_ += [f"A table was cut: {n}" for n in notes]
            blocks += notes
    return _result(sniff.DOCX, ["\n\n".join(blocks)], warnings_)


# -- XLSX and CSV ----------------------------------------------------------------------------


def _xlsx(path: str, limits: Limits) -> dict[str, Any]:
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    sections: list[str] = []
    warnings_: list[str] = []
    try:
        for sheet in book.worksheets:
            title = f"## Sheet {sheet.title}"
            if getattr(sheet, "sheet_state", "visible") != "visible":
                title += " (hidden)"
            # One column past the cut, to know whether there are more; the sheet's dimension (when
            # it has one) says how many.
            rows = sheet.iter_rows(values_only=True, max_col=limits.max_cols + 1)
            max_row, max_col = getattr(sheet, "max_row", None), getattr(sheet, "max_column", None)
            table, notes = _table_block(
                rows,
                limits,
                total_rows=max_row if isinstance(max_row, int) else None,
                total_cols=max_col if isinstance(max_col, int) else None,
            )
            body = "\n\n".join(x for x in (table or "(empty)", *notes) if x)
            sections.append(f"{title}\n\n{body}")
            warnings_ += [f"Sheet {sheet.title}: {n}" for n in notes]
    finally:
        book.close()
    return _result(sniff.XLSX, ["\n\n".join(sections)], warnings_)


def decode_text(data: bytes) -> tuple[str, str]:
    """The text and its encoding: UTF-8 (with or without BOM) when it decodes, else what
    charset-normalizer finds (GBK/GB18030, Big5, Shift-JIS, UTF-16...)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise Refused("unreadable_file", "The file is not text in any known encoding.")
    encoding = best.encoding
    if encoding in {"gb2312", "gbk"}:  # GB18030 is their superset: decodes what they miss
        encoding = "gb18030"
    return data.decode(encoding, errors="replace"), encoding


def _csv(path: str, limits: Limits) -> dict[str, Any]:
    with open(path, "rb") as f:
        text, encoding = decode_text(f.read())
    sample = text[: 64 * 1024]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    table, notes = _table_block(reader, limits)
    body = "\n\n".join(x for x in (table or "(empty)", *notes) if x)
    return _result(sniff.CSV, [body], list(notes), encoding=encoding)


# -- PPTX ------------------------------------------------------------------------------------


def _pptx_shapes(shapes: Iterable[Any], limits: Limits, out: list[str]) -> None:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            _pptx_shapes(shape.shapes, limits, out)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            table, notes = _table_block(rows, limits)
            out += [x for x in (table, *notes) if x]
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            text = shape.text_frame.text.strip()
            if text:
                out.append(text)


def _pptx(path: str, limits: Limits) -> dict[str, Any]:
    import pptx

    presentation = pptx.Presentation(path)
    count = len(presentation.slides)
    if count > limits.max_pages:
        raise Refused(
            "too_many_pages",
            f"The presentation has {count:,} slides; at most {limits.max_pages:,} can be attached.",
        )
    pages = []
    for number, slide in enumerate(presentation.slides, 1):
        parts = [f"## Slide {number}"]
        _pptx_shapes(slide.shapes, limits, parts)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                parts.append(f"Notes: {notes}")
        pages.append("\n\n".join(parts))
    return _result(sniff.PPTX, pages)


# -- Text and source code --------------------------------------------------------------------


def _text(path: str, kind: str, language: str) -> dict[str, Any]:
    with open(path, "rb") as f:
        text, encoding = decode_text(f.read())
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if kind == sniff.CODE:
        longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
        fence = "`" * (longest + 1)
        text = f"{fence}{language}\n{text.rstrip()}\n{fence}"
    return _result(kind, [text], encoding=encoding)


# -- Images ----------------------------------------------------------------------------------


def _image(path: str, limits: Limits, out_path: str | None) -> dict[str, Any]:
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = limits.max_image_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as probe:
                probe.verify()
            opened = Image.open(path)
            opened.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise Refused(
                "file_rejected",
                f"The image has more than {limits.max_image_pixels:,} pixels.",
            ) from error
    image: Image.Image = opened
    width, height = image.size
    result = _result(sniff.IMAGE, [""], width=width, height=height, format=opened.format)
    result["pages"] = []
    if out_path:
        frames = getattr(image, "n_frames", 1)
        image.seek(0)  # an animation: its first frame
        image = ImageOps.exif_transpose(image)  # turned as the camera meant, before EXIF goes
        alpha = image.mode in {"RGBA", "LA", "PA"} or (
            image.mode == "P" and "transparency" in image.info
        )
        image = image.convert("RGBA" if alpha else "RGB")
        image.thumbnail((limits.max_image_side, limits.max_image_side), Image.Resampling.LANCZOS)
        image.info = {}  # no EXIF, XMP, ICC profile, comments or text chunks are copied
        out_format = "PNG" if alpha or result["format"] in {"PNG", "GIF"} else "JPEG"
        options: dict[str, Any] = {"optimize": True}
        if out_format == "JPEG":
            options.update(quality=85)
        image.save(out_path, format=out_format, **options)
        result.update(
            out_width=image.width,
            out_height=image.height,
            out_format=out_format.lower(),
            content_type=f"image/{out_format.lower()}",
        )
        if frames > 1:
            result["warnings"].append("Only the first frame of the animation is kept.")
        if (image.width, image.height) != (width, height):
            result["warnings"].append(
                f"The image was scaled down to {image.width}×{image.height} for the model."
            )
    return result


# -- The entry point -------------------------------------------------------------------------


def _test_hook(kind: str, path: str) -> dict[str, Any]:
    """Kinds that exist only when ATTACHMENTS_TEST_HOOKS=1: a child that hangs, one that
    allocates, one that reports its limits."""
    if kind == "_sleep":
        time.sleep(3600)
    if kind == "_spin":
        while True:
            pass
    if kind == "_alloc":
        block = bytearray(int(path) * 2**20)  # MemoryError past RLIMIT_AS
        return {"ok": True, "allocated_mb": len(block) // 2**20}
    if kind == "_limits":
        return {
            "ok": True,
            "limits": {
                name: resource.getrlimit(getattr(resource, name))
                for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_NOFILE")
            },
            "django": any(m == "django" or m.startswith("django.") for m in sys.modules),
            "env": sorted(os.environ),
        }
    raise Refused("unsupported_file_type", f"Unknown kind {kind!r}.")


def extract(
    path: str,
    kind: str,
    limits: Limits | None = None,
    *,
    out_path: str | None = None,
    language: str = "",
) -> dict[str, Any]:
    """The text of the file at ``path`` of ``kind`` (a ``sniff`` kind name); never raises."""
    limits = limits or Limits()
    try:
        if kind in sniff.OOXML_KINDS:
            sniff.check_container(path, kind, limits)  # again: the web process is not trusted
        if kind == sniff.PDF:
            result = _pdf(path, limits)
        elif kind == sniff.DOCX:
            result = _docx(path, limits)
        elif kind == sniff.XLSX:
            result = _xlsx(path, limits)
        elif kind == sniff.PPTX:
            result = _pptx(path, limits)
        elif kind == sniff.CSV:
            result = _csv(path, limits)
        elif kind in {sniff.TEXT, sniff.CODE}:
            result = _text(path, kind, language)
        elif kind == sniff.IMAGE:
            result = _image(path, limits, out_path)
        elif kind.startswith("_") and os.environ.get(TEST_HOOKS_ENV) == "1":
            return _test_hook(kind, path)
        else:
            raise Refused("unsupported_file_type", f"Files of kind {kind!r} are not supported.")
        return _cap_chars(result, limits)
    except sniff.FileRejected as error:
        return {"ok": False, "code": error.code, "detail": error.detail}
    except Refused as error:
        return {"ok": False, "code": error.code, "detail": error.detail}
    except MemoryError:
        return {
            "ok": False,
            "code": "extraction_failed",
            "detail": "The file needs more memory to read than is allowed.",
        }
    except RecursionError:
        return {"ok": False, "code": "unreadable_file", "detail": "The file is nested too deeply."}
    except Exception as error:  # noqa: BLE001 - every failure of a parser is an unreadable file
        return {
            "ok": False,
            "code": "unreadable_file",
            "detail": f"The file could not be read as {kind.upper()} ({type(error).__name__}).",
        }


def _limit_self(memory_mb: int, cpu_seconds: int, fsize_mb: int, nofile: int) -> None:
    """The child's own limits, set before any parser is imported or the file is opened."""
    if memory_mb:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    if cpu_seconds:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    if fsize_mb:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_mb * 2**20, fsize_mb * 2**20))
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def peak_rss_kib() -> int:
    """This process's peak resident size since its exec (VmHWM). ``ru_maxrss`` would not do: Linux
    carries the parent's high-water mark over fork and exec, so a child of a big web worker would
    report the worker's size."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attachments.extract")
    parser.add_argument("path")
    parser.add_argument("--kind", required=True)
    parser.add_argument("--limits", default="{}", help="Limits as JSON")
    parser.add_argument("--out", default=None, help="images: where to write the sanitised copy")
    parser.add_argument("--language", default="", help="source code: the fence's language")
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--cpu-seconds", type=int, default=0)
    parser.add_argument("--fsize-mb", type=int, default=0)
    parser.add_argument("--nofile", type=int, default=0)
    args = parser.parse_args(argv)
    _limit_self(args.memory_mb, args.cpu_seconds, args.fsize_mb, args.nofile)
    started = time.perf_counter()
    result = extract(
        args.path,
        args.kind,
        Limits.from_json(args.limits),
        out_path=args.out,
        language=args.language,
    )
    result["stats"] = {
        "seconds": round(time.perf_counter() - started, 4),
        "peak_rss_kib": peak_rss_kib(),
    }
    out = sys.stdout.buffer
    out.write(json.dumps(result, ensure_ascii=False).encode("utf-8", errors="replace"))
    out.write(b"\n")
    with contextlib.suppress(BrokenPipeError):
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
