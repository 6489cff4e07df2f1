"""Export, import and share a user's conversations (docs/export-and-share.md).

- ``export_markdown``: the active branch, readable; ``export_json``: every message of every
  branch, re-importable (``FORMAT`` / ``VERSION``); ``export_pdf``: the active branch laid out by
  fpdf2 with the font of ``PDF_FONT_PATH`` embedded (subset), Markdown parsed by markdown-it-py.
- ``export_all``: a zip of one JSON export per conversation, written to a temporary file.
- ``import_file``: a JSON export or a zip of them, validated in full before anything is written,
  then created in one transaction (new ids, parents remapped, active flags kept).
- ``share_create`` / ``share_revoke`` / ``share_get``: read-only snapshots at a link.

Every function takes a conversation its owner may see (``selectors.conversation_get``); none
checks ownership again.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import tempfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit import trail
from chatsite.errors import AppError, NotFound
from governance import policy as policies

from . import catalog
from .models import Conversation, Message, Share
from .shapes import conversation_data, timestamp

FORMAT = "chatsite.conversation"
VERSION = 1

# Field sizes an import accepts (the model's own limits, and a generous bound on a reply).
MAX_TITLE = 200
MAX_MODEL = 64
MAX_CONTENT = 1_000_000
MAX_ERROR_CODE = 64

ROLE_NAMES = {"user": "User", "assistant": "Assistant"}

# fontTools logs every table it subsets at INFO: a line per table per PDF.
logging.getLogger("fontTools").setLevel(logging.WARNING)


# -- export -----------------------------------------------------------------------------------


def _messages(conversation: Conversation, *, every_branch: bool) -> list[Message]:
    messages = Message.objects.filter(conversation=conversation).order_by("seq")
    if not every_branch:
        messages = messages.filter(replaced=False)
    return list(messages)


def export_data(conversation: Conversation) -> dict[str, Any]:
    """The JSON export: the conversation's fields and every message of every branch."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": timestamp(timezone.now()),
        # The API's conversation object (shapes.py), so the two never drift apart.
        "conversation": conversation_data(conversation),
        "messages": [
            {
                "id": str(m.id),
                "parent": None if m.parent_id is None else str(m.parent_id),
                "seq": m.seq,
                "role": str(m.role),
                "content": m.content,
                "reasoning": m.reasoning,
                "references": m.references,
                "status": str(m.status),
                "error_code": m.error_code,
                "error_detail": m.error_detail,
                "model": m.model,
                "created_at": timestamp(m.created_at),
                "active": not m.replaced,
            }
            for m in _messages(conversation, every_branch=True)
        ],
    }


def export_json(conversation: Conversation) -> bytes:
    return json.dumps(export_data(conversation), ensure_ascii=False, indent=2).encode()


def _when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M %Z")


def export_markdown(conversation: Conversation) -> str:
    """The active branch as Markdown: a heading per message; reasoning folded as a quote."""
    lines = [f"# {conversation.title or 'Untitled conversation'}", ""]
    lines.append(f"- Model: {conversation.model}")
    lines.append(f"- Created: {_when(conversation.created_at)}")
    lines.append(f"- Updated: {_when(conversation.updated_at)}")
    lines.append(f"- Exported: {_when(timezone.now())}")
    lines.append("")
    if conversation.system_prompt.strip():
        lines += ["## System prompt", ""]
        lines += [_quote(conversation.system_prompt), ""]
    for message in _messages(conversation, every_branch=False):
        role = ROLE_NAMES.get(message.role, message.role)
        lines += [f"## {role} · {_when(message.created_at)}", ""]
        if message.reasoning.strip():
            lines += ["> **Reasoning**", ">", _quote(message.reasoning), ""]
        if message.content:
            lines += [message.content.rstrip(), ""]
        if message.status == Message.Status.ERROR:
            lines += [f"*Error: {message.error_code or 'unknown'}*", ""]
        elif message.status == Message.Status.INTERRUPTED:
            lines += ["*Interrupted: the reply was not complete.*", ""]
    return "\n".join(lines).rstrip() + "\n"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]+')


def filename(conversation: Conversation, extension: str) -> str:
    """A file name from the title, safe on every system (the caller sends it RFC 5987-encoded)."""
    name = _UNSAFE_NAME.sub(" ", conversation.title)
    name = re.sub(r"\s+", " ", name).strip(" .")[:80].strip(" .")
    return f"{name or 'conversation'}.{extension}"


def export_all(user_id: Any) -> IO[bytes]:
    """A zip of one JSON export per conversation of the user (deleted ones left out), written to
    a temporary file, one conversation at a time, and returned rewound: memory stays flat."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the response, which closes it
    conversations = Conversation.objects.filter(user_id=user_id, deleted_at__isnull=True)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for conversation in conversations.order_by("created_at", "id").iterator(chunk_size=200):
            time.sleep(0)  # as in render_pdf: the worker's other connections run meanwhile
            archive.writestr(f"conversation-{conversation.id}.json", export_json(conversation))
    spool.seek(0)
    return spool


# -- PDF ----------------------------------------------------------------------------------------


class PdfUnavailable(AppError):
    status_code = 503
    code = "pdf_unavailable"


def _font_path() -> Path:
    path = Path(settings.PDF_FONT_PATH)
    if not path.is_file():
        raise PdfUnavailable(
            f"PDF export needs a TrueType font covering Chinese at PDF_FONT_PATH ({path}), which "
            "is missing: install Debian's fonts-wqy-microhei or set PDF_FONT_PATH."
        )
    return path


def export_pdf(conversation: Conversation) -> bytes:
    """The active branch as a PDF (docs/export-and-share.md, "PDF")."""
    font = _font_path()
    blocks: list[tuple[str, str, str]] = []
    for message in _messages(conversation, every_branch=False):
        role = ROLE_NAMES.get(message.role, message.role)
        text = message.content
        if message.status == Message.Status.ERROR:
            text = (text + "\n\n" if text else "") + f"*Error: {message.error_code or 'unknown'}*"
        blocks.append((role, _when(message.created_at), text))
    meta = [
        f"Model: {conversation.model}",
        f"Created: {_when(conversation.created_at)}",
        f"Exported: {_when(timezone.now())}",
    ]
    return render_pdf(
        title=conversation.title or "Untitled conversation",
        meta=meta,
        messages=blocks,
        font_path=font,
    )


_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
BODY_SIZE = 10.5
CODE_SIZE = 8.5
LINE = 5.6
CODE_LINE = 4.4
MAX_INDENT = 40.0  # mm, of the 174 mm an A4 line has
MAX_NESTING = 50  # lists and quotes within each other
# Control characters have no glyph: they are left out of a PDF (tabs and newlines are kept).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
HEADING_SIZES = {"h1": 17, "h2": 15, "h3": 13, "h4": 12, "h5": 11, "h6": 11}


def _inline_text(token: Any) -> str:
    """The text of an inline token: marks dropped, code and links kept as their text, line
    breaks kept (the chat page renders a single newline as a break too)."""
    parts: list[str] = []
    for child in token.children or ():
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(f"[{child.content or 'image'}]")
        elif child.type == "link_close":
            continue
    return "".join(parts)


class _Layout:
    """Markdown tokens (markdown-it-py) laid out with fpdf2: headings, paragraphs, lists,
    quotes, code blocks (monospace, wrapped at any character, never cut) and tables (a grid)."""

    def __init__(self, font_path: Path) -> None:
        from fpdf import FPDF

        self.pdf = pdf = FPDF(format="A4")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.set_margins(18, 16, 18)
        collection = font_path.suffix.lower() in (".ttc", ".otc")
        pdf.add_font("body", "", str(font_path))
        try:
            # A collection's second face is its monospace one (WenQuanYi Micro Hei Mono).
            pdf.add_font("mono", "", str(font_path), collection_font_number=1 if collection else 0)
        except Exception:  # noqa: BLE001 - a one-face collection: code in the body font
            pdf.add_font("mono", "", str(font_path))
        pdf.set_font("body", size=BODY_SIZE)
        pdf.add_page()
        self.depth = 0.0

    @property
    def indent(self) -> float:
        # Deeply nested lists and quotes stop moving right: the text keeps most of the page.
        return min(self.depth, MAX_INDENT)

    def write(
        self,
        text: str,
        *,
        size: float = BODY_SIZE,
        height: float = LINE,
        color: tuple[int, int, int] = (20, 20, 20),
        prefix: str = "",
    ) -> None:
        from fpdf.enums import WrapMode, XPos, YPos

        pdf = self.pdf
        pdf.set_font("body", size=size)
        pdf.set_text_color(*color)
        x = pdf.l_margin + self.indent
        width = pdf.epw - self.indent
        if prefix:
            pdf.set_x(x)
            pdf.cell(6, height, prefix)
            x += 6
            width -= 6
        else:
            pdf.set_x(x)
        pdf.multi_cell(
            width,
            height,
            text,
            align="L",
            # Chinese has no spaces to break at; a long URL or word is broken where it must be.
            wrapmode=WrapMode.CHAR if _CJK.search(text) else WrapMode.WORD,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )

    def code(self, text: str) -> None:
        from fpdf.enums import WrapMode, XPos, YPos

        pdf = self.pdf
        pdf.ln(1)
        pdf.set_font("mono", size=CODE_SIZE)
        pdf.set_text_color(30, 30, 30)
        pdf.set_fill_color(243, 244, 246)
        pdf.set_x(pdf.l_margin + self.indent)
        pdf.multi_cell(
            pdf.epw - self.indent,
            CODE_LINE,
            text.rstrip("\n").expandtabs(4) or " ",
            align="L",
            fill=True,
            wrapmode=WrapMode.CHAR,
            padding=2,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.ln(2)

    def table(self, rows: list[list[str]]) -> None:
        from fpdf.enums import WrapMode
        from fpdf.fonts import FontFace

        pdf = self.pdf
        columns = max(len(row) for row in rows)
        pdf.set_font("body", size=BODY_SIZE - 1)
        pdf.set_text_color(20, 20, 20)
        pdf.ln(1)
        with pdf.table(
            width=pdf.epw - self.indent,
            align="RIGHT" if self.indent else "CENTER",
            text_align="LEFT",
            headings_style=FontFace(emphasis="", fill_color=(235, 237, 240)),
            wrapmode=WrapMode.CHAR,
            line_height=LINE - 0.6,
            padding=1.2,
        ) as grid:
            for cells in rows:
                row = grid.row()
                for cell in cells + [""] * (columns - len(cells)):
                    row.cell(cell)
        pdf.ln(2)

    def rule(self) -> None:
        pdf = self.pdf
        pdf.ln(1)
        pdf.set_draw_color(200, 200, 200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
        pdf.ln(2)

    def markdown(self, text: str) -> None:
        from markdown_it import MarkdownIt

        parser = MarkdownIt("commonmark", {"maxNesting": MAX_NESTING})
        tokens = parser.enable(["table", "strikethrough"]).parse(text)
        if any(token.level >= MAX_NESTING - 2 for token in tokens):
            # markdown-it drops what is nested deeper than its limit: show the text as written.
            self.write(text)
            return
        lists: list[list[int]] = []  # per open list: [ordered?, next number]
        quote = 0
        pending_prefix = ""
        index = 0
        while index < len(tokens):
            token = tokens[index]
            kind = token.type
            if kind in ("bullet_list_open", "ordered_list_open"):
                start = int(token.attrs.get("start", 1) or 1) if token.attrs else 1
                lists.append([kind == "ordered_list_open", start])
                self.depth += 6
            elif kind in ("bullet_list_close", "ordered_list_close"):
                lists.pop()
                self.depth -= 6
                if not lists:
                    self.pdf.ln(1.5)
            elif kind == "list_item_open" and lists:
                ordered, number = lists[-1]
                pending_prefix = f"{number}." if ordered else "•"
                lists[-1][1] = number + 1
            elif kind == "blockquote_open":
                quote += 1
                self.depth += 5
            elif kind == "blockquote_close":
                quote -= 1
                self.depth -= 5
            elif kind == "heading_open":
                inline = tokens[index + 1]
                self.pdf.ln(1.5)
                size = HEADING_SIZES.get(token.tag, BODY_SIZE)
                self.write(_inline_text(inline), size=size, height=size * 0.55)
                self.pdf.ln(1)
                index += 2
            elif kind == "inline":
                color = (90, 90, 90) if quote else (20, 20, 20)
                self.write(_inline_text(token), color=color, prefix=pending_prefix)
                pending_prefix = ""
            elif kind == "paragraph_close" and not lists:
                self.pdf.ln(1.5)
            elif kind in ("fence", "code_block"):
                if pending_prefix:
                    self.write("", prefix=pending_prefix)
                    pending_prefix = ""
                self.code(token.content)
            elif kind == "html_block":
                self.write(token.content.rstrip("\n"))
            elif kind == "hr":
                self.rule()
            elif kind == "table_open":
                rows: list[list[str]] = []
                index += 1
                while index < len(tokens) and tokens[index].type != "table_close":
                    if tokens[index].type == "tr_open":
                        rows.append([])
                    elif tokens[index].type == "inline" and rows:
                        rows[-1].append(_inline_text(tokens[index]))
                    index += 1
                if rows:
                    self.table(rows)
            index += 1


def render_pdf(
    *, title: str, meta: list[str], messages: list[tuple[str, str, str]], font_path: Path
) -> bytes:
    """The PDF of a conversation: its title, its facts, then each message under its role."""
    title = _CONTROL.sub("", title)
    messages = [(role, when, _CONTROL.sub("", text)) for role, when, text in messages]
    layout = _Layout(font_path)
    pdf = layout.pdf
    pdf.set_title(title)
    pdf.set_creator("chatsite")
    layout.write(title, size=20, height=10)
    for line in meta:
        layout.write(line, size=9, height=4.8, color=(100, 100, 100))
    layout.rule()
    for role, when, text in messages:
        # A long conversation takes seconds of CPU: under gevent workers (gunicorn.conf.py),
        # sleep(0) lets the worker's other connections run between messages.
        time.sleep(0)
        pdf.ln(2)
        layout.write(f"{role} · {when}", size=12, height=7, color=(55, 65, 140))
        layout.markdown(text)
    return bytes(pdf.output())


# -- import -------------------------------------------------------------------------------------


class InvalidImport(AppError):
    code = "invalid_import"


@dataclass(slots=True)
class _Parsed:
    conversation: dict[str, Any]
    messages: list[dict[str, Any]]


def _fail(where: str, problem: str) -> InvalidImport:
    return InvalidImport(f"{where}: {problem}" if where else problem)


def _string(value: Any, where: str, *, limit: int, blank: bool = True) -> str:
    if not isinstance(value, str):
        raise _fail(where, "must be a string.")
    if "\x00" in value:
        raise _fail(where, "must not hold a NUL character.")
    if len(value) > limit:
        raise _fail(where, f"is longer than {limit} characters.")
    if not blank and not value.strip():
        raise _fail(where, "must not be empty.")
    return value


def _optional(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise _fail(where, "has the wrong type.")
    if not isinstance(value, kind):
        raise _fail(where, "has the wrong type.")
    return value


def _datetime(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, "must be an ISO 8601 date and time.")
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise _fail(where, "must be an ISO 8601 date and time.")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _parse(raw: bytes, where: str) -> _Parsed:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _fail(where, "is not a JSON export (not valid UTF-8 JSON).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _fail(where, f'is not a chatsite export (expected "format": "{FORMAT}").')
    if data.get("version") != VERSION or isinstance(data.get("version"), bool):
        raise _fail(
            where, f"has export version {data.get('version')!r}; this site reads {VERSION}."
        )
    conversation = data.get("conversation")
    messages = data.get("messages")
    if not isinstance(conversation, dict):
        raise _fail(where, "conversation must be an object.")
    if not isinstance(messages, list):
        raise _fail(where, "messages must be a list.")
    if len(messages) > settings.IMPORT_MAX_MESSAGES:
        raise _fail(where, f"holds more than {settings.IMPORT_MAX_MESSAGES} messages.")
    c = conversation
    fields = {
        "title": _string(c.get("title", ""), f"{where} conversation.title", limit=MAX_TITLE),
        "model": _string(c.get("model", ""), f"{where} conversation.model", limit=MAX_MODEL),
        "system_prompt": _string(
            c.get("system_prompt", ""),
            f"{where} conversation.system_prompt",
            limit=settings.MAX_SYSTEM_PROMPT_CHARS,
        ),
        "temperature": _optional(
            c.get("temperature"), (int, float), f"{where} conversation.temperature"
        ),
        "max_tokens": _optional(c.get("max_tokens"), int, f"{where} conversation.max_tokens"),
        "reasoning": _optional(c.get("reasoning"), bool, f"{where} conversation.reasoning"),
        "web_search": _optional(c.get("web_search"), bool, f"{where} conversation.web_search"),
        "pinned": bool(_optional(c.get("pinned"), bool, f"{where} conversation.pinned")),
        "created_at": _datetime(c.get("created_at"), f"{where} conversation.created_at"),
    }
    if fields["max_tokens"] is not None and not 1 <= fields["max_tokens"] <= 2**31 - 1:
        raise _fail(where, "conversation.max_tokens is out of range.")
    if fields["temperature"] is not None and not 0 <= fields["temperature"] <= 100:
        raise _fail(where, "conversation.temperature is out of range.")
    return _Parsed(conversation=fields, messages=_parse_messages(messages, where))


def _parse_messages(items: list[Any], where: str) -> list[dict[str, Any]]:
    parsed: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    seqs: set[int] = set()
    roles = {r.value for r in Message.Role}
    statuses = {s.value for s in Message.Status}
    for index, item in enumerate(items):
        at = f"{where} messages[{index}]"
        if not isinstance(item, dict):
            raise _fail(at, "must be an object.")
        ident = item.get("id")
        if not isinstance(ident, str) or not ident or len(ident) > 64:
            raise _fail(f"{at}.id", "must be a non-empty string.")
        if ident in by_id:
            raise _fail(f"{at}.id", "is repeated.")
        seq = item.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= 2**31 - 1:
            raise _fail(f"{at}.seq", "must be a positive integer.")
        if seq in seqs:
            raise _fail(f"{at}.seq", "is repeated.")
        parent = item.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise _fail(f"{at}.parent", "must be a message id or null.")
        if parent is not None and (parent not in by_id or by_id[parent]["seq"] >= seq):
            raise _fail(f"{at}.parent", "must name an earlier message of the same export.")
        role = item.get("role")
        if role not in roles:
            raise _fail(f"{at}.role", "must be user or assistant.")
        status = item.get("status", Message.Status.COMPLETE.value)
        if status not in statuses:
            raise _fail(f"{at}.status", f"must be one of {', '.join(sorted(statuses))}.")
        active = item.get("active", True)
        if not isinstance(active, bool):
            raise _fail(f"{at}.active", "must be true or false.")
        if active and parent is not None and not by_id[parent]["active"]:
            raise _fail(f"{at}.active", "an active message must follow an active one.")
        references = item.get("references", [])
        if not isinstance(references, list) or len(references) > 100:
            raise _fail(f"{at}.references", "must be a list (at most 100).")
        for reference in references:
            if not isinstance(reference, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and len(v) <= 2000
                for k, v in reference.items()
            ):
                raise _fail(f"{at}.references", "must hold objects of strings.")
        message = {
            "id": ident,
            "parent": parent,
            "seq": seq,
            "role": role,
            "content": _string(item.get("content", ""), f"{at}.content", limit=MAX_CONTENT),
            "reasoning": _string(item.get("reasoning", ""), f"{at}.reasoning", limit=MAX_CONTENT),
            "references": references,
            # A reply still being written when exported cannot go on here: it was interrupted.
            "status": Message.Status.INTERRUPTED.value if status == "streaming" else status,
            "error_code": _string(
                item.get("error_code", ""), f"{at}.error_code", limit=MAX_ERROR_CODE
            ),
            "error_detail": _string(
                item.get("error_detail", ""), f"{at}.error_detail", limit=10_000
            ),
            "model": _string(item.get("model", ""), f"{at}.model", limit=MAX_MODEL),
            "created_at": _datetime(item.get("created_at"), f"{at}.created_at"),
            "active": active,
        }
        by_id[ident] = message
        seqs.add(seq)
        parsed.append(message)
    return parsed


def _unzip(upload: IO[bytes]) -> list[tuple[str, bytes]]:
    """The JSON members of a zip, each read with a bound (a header's sizes can lie)."""
    try:
        archive = zipfile.ZipFile(upload)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _fail("", "The zip file is damaged.") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > settings.IMPORT_MAX_CONVERSATIONS:
            raise _fail("", f"The zip holds more than {settings.IMPORT_MAX_CONVERSATIONS} files.")
        budget = settings.IMPORT_MAX_UNCOMPRESSED_BYTES
        names: set[str] = set()
        files: list[tuple[str, bytes]] = []
        for info in members:
            name = info.filename
            if (
                "/" in name
                or "\\" in name
                or ".." in name
                or name.startswith(".")
                or ":" in name
                or "\x00" in name
                or not name.lower().endswith(".json")
            ):
                raise _fail(repr(name)[:100], "only .json files at the top of the zip are read.")
            if name in names:
                raise _fail(repr(name)[:100], "is in the zip twice.")
            names.add(name)
            if info.flag_bits & 0x1:
                raise _fail(name, "is encrypted.")
            if info.file_size > budget:
                raise _fail(
                    "",
                    f"The zip holds more than {settings.IMPORT_MAX_UNCOMPRESSED_BYTES} "
                    "bytes once uncompressed.",
                )
            try:
                with archive.open(info) as member:
                    data = member.read(budget + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError):
                raise _fail(name, "cannot be read from the zip.") from None
            if len(data) > budget:
                raise _fail(
                    "",
                    f"The zip holds more than {settings.IMPORT_MAX_UNCOMPRESSED_BYTES} "
                    "bytes once uncompressed.",
                )
            budget -= len(data)
            files.append((name, data))
    if not files:
        raise _fail("", "The zip holds no .json export.")
    return files


def read_upload(upload: IO[bytes], *, size: int | None) -> list[_Parsed]:
    """Every export in the upload, validated; raises ``InvalidImport`` on the first problem."""
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if size is not None and size > limit:
        raise _fail("", f"The file is larger than {limit} bytes.")
    head = upload.read(4)
    upload.seek(0)
    if head.startswith(b"PK"):
        files = _unzip(upload)
    else:
        raw = upload.read(limit + 1)
        if len(raw) > limit:
            raise _fail("", f"The file is larger than {limit} bytes.")
        files = [("file", raw)]
    return [_parse(data, name if len(files) > 1 else "") for name, data in files]


def import_file(*, user: Any, upload: IO[bytes], size: int | None = None) -> list[Conversation]:
    """Create the upload's conversations for ``user``, all or none (one transaction)."""
    parsed = read_upload(upload, size=size)
    created: list[Conversation] = []
    with transaction.atomic():
        for item in parsed:
            created.append(_create(user=user, item=item))
    return created


def _model_for(model: str, user_id: Any) -> str:
    """The export's model when this site offers it to the user, else their default one."""
    models = catalog.current()
    policy = policies.for_user(user_id)
    if model in models.models and policy.allows(model):
        return model
    default = models.default_model()
    if policy.allows(default):
        return default
    return next((m for m in models.models if policy.allows(m)), default)


def _fitting(info: Any, name: str, value: Any) -> Any:
    """The parameter when the model can take it; None (its default) otherwise."""
    if value is None:
        return None
    fits = {
        "temperature": lambda: info.temperature_min <= value <= info.temperature_max,
        "max_tokens": lambda: 1 <= value <= info.max_tokens,
        "reasoning": lambda: info.reasoning_switch,
        "web_search": lambda: info.web_search,
    }[name]()
    return value if fits else None


def _create(*, user: Any, item: _Parsed) -> Conversation:
    fields = dict(item.conversation)
    created_at = fields.pop("created_at")
    fields["model"] = _model_for(fields["model"], user.pk)
    info = catalog.current().models.get(fields["model"])
    for name in ("temperature", "max_tokens", "reasoning", "web_search"):
        fields[name] = _fitting(info, name, fields[name]) if info is not None else None
    conversation = Conversation.objects.create(
        user=user,
        title_source=Conversation.TitleSource.USER if fields["title"] else "",
        **fields,
    )
    ids: dict[str, UUID] = {}
    rows = []
    for data in item.messages:
        message = Message(
            conversation=conversation,
            seq=data["seq"],
            role=data["role"],
            content=data["content"],
            reasoning=data["reasoning"],
            references=data["references"],
            status=data["status"],
            error_code=data["error_code"],
            error_detail=data["error_detail"],
            model=data["model"],
            replaced=not data["active"],
        )
        ids[data["id"]] = message.id
        message.parent_id = None if data["parent"] is None else ids[data["parent"]]
        rows.append((message, data["created_at"]))
    Message.objects.bulk_create([m for m, _ in rows], batch_size=500)
    # auto_now_add stamped the rows with now: the times of the export are written back.
    dated = []
    for message, when in rows:
        if when is not None:
            message.created_at = when
            dated.append(message)
    if dated:
        Message.objects.bulk_update(dated, ["created_at"], batch_size=500)
    if created_at is not None:
        Conversation.objects.filter(pk=conversation.pk).update(created_at=created_at)
        conversation.created_at = created_at
    return conversation


# -- share --------------------------------------------------------------------------------------


class PublicLinksDisabled(AppError):
    status_code = 403
    code = "public_links_disabled"
    default_detail = "Public links are not allowed on this site: the link asks for a login."


def snapshot(conversation: Conversation) -> list[dict[str, Any]]:
    """The active branch as a shared page shows it: role, content and time of each message, no
    reasoning, usage or failed reply (a reply with no text is left out)."""
    return [
        {"role": str(m.role), "content": m.content, "created_at": timestamp(m.created_at)}
        for m in _messages(conversation, every_branch=False)
        if m.role == Message.Role.USER or (m.content.strip() and m.status != Message.Status.ERROR)
    ]


def share_create(*, conversation: Conversation, user: Any, public: bool, request: Any) -> Share:
    """A new link to a snapshot; the conversation's previous link stops working."""
    if public and not settings.SHARE_PUBLIC_LINKS:
        raise PublicLinksDisabled()
    with transaction.atomic():
        replaced = _revoke(conversation)
        share = Share.objects.create(
            conversation=conversation,
            token=secrets.token_urlsafe(32),
            created_by=user,
            public=public,
            title=conversation.title,
            snapshot=snapshot(conversation),
        )
        trail.record(
            "conversation.share",
            target=conversation,
            request=request,
            detail={"share": share.pk, "public": public, "replaced": replaced},
        )
    return share


def _revoke(conversation: Conversation) -> list[int]:
    live = list(
        Share.objects.filter(conversation=conversation, revoked_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    if live:
        Share.objects.filter(pk__in=live).update(revoked_at=timezone.now())
    return live


def share_revoke(*, conversation: Conversation, request: Any) -> None:
    """Revoke the conversation's link, if it has one (idempotent)."""
    with transaction.atomic():
        revoked = _revoke(conversation)
        if revoked:
            trail.record(
                "conversation.unshare",
                target=conversation,
                request=request,
                detail={"shares": revoked},
            )


def revoke_shares(shares: Iterable[Share], *, request: Any) -> int:
    """Revoke shares from admin; each revocation on the audit trail."""
    count = 0
    with transaction.atomic():
        for share in shares:
            if share.revoked_at is not None:
                continue
            Share.objects.filter(pk=share.pk).update(revoked_at=timezone.now())
            trail.record(
                "conversation.unshare",
                target=share.conversation,
                request=request,
                detail={"shares": [share.pk], "by": "admin"},
            )
            count += 1
    return count


def share_get(token: str) -> Share:
    """A live share: ``NotFound`` for an unknown or revoked token, or one whose conversation was
    deleted (or whose owner can no longer sign in) — all answered alike."""
    if not token or len(token) > 64:
        raise NotFound("Shared conversation not found.")
    share = (
        Share.objects.filter(
            token=token,
            revoked_at__isnull=True,
            conversation__deleted_at__isnull=True,
            conversation__user__is_active=True,
        )
        .select_related("conversation")
        .first()
    )
    if share is None:
        raise NotFound("Shared conversation not found.")
    return share
