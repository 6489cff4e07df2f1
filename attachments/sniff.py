"""What an upload is, decided in the web process before anything parses it: cheap and strict.

``clean_name`` refuses file names that could name another path or hide their extension,
``kind_of`` decides the kind from the extension AND the file's first bytes (a type that is not what
its extension says is refused), ``check_zip`` reads only the central directory of a DOCX, XLSX or
PPTX (zip bombs, path tricks, encryption), and ``check_ooxml_xml`` refuses any XML part carrying a
DTD (entity expansion: "billion laughs") before any XML parser sees the file.

Pure Python, no Django import: the extraction child (``attachments.extract``) runs these checks
again before it parses.
"""

from __future__ import annotations

import codecs
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import IO, BinaryIO

from attachments.limits import Limits

MAX_NAME_BYTES = 255
HEAD_BYTES = 4096  # what kind_of needs to see of the file's start


class FileRejected(Exception):
    """An upload refused before or during extraction: ``code`` for programs, ``detail`` for people
    (a clear English sentence), ``status`` the HTTP status to answer with."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status

    def as_dict(self) -> dict[str, object]:
        return {"ok": False, "code": self.code, "detail": self.detail, "status": self.status}


# The kinds (the names the ``attachments`` app stores; Markdown is text).
PDF, DOCX, XLSX, PPTX, CSV, TEXT, CODE, IMAGE = (
    "pdf",
    "docx",
    "xlsx",
    "pptx",
    "csv",
    "text",
    "code",
    "image",
)
OOXML_KINDS = (DOCX, XLSX, PPTX)


@dataclass(frozen=True)
class Kind:
    """What an upload is: ``name`` one of the kinds above, the content type to store and serve it
    with, its extension, and for source code the language of its Markdown fence."""

    name: str
    content_type: str
    extension: str
    language: str = ""

    def __str__(self) -> str:
        return self.name


# Source code: extension -> the language name of a Markdown fence.
CODE_LANGUAGES = {
    "py": "python",
    "js": "javascript",
    "ts": "typescript",
    "java": "java",
    "c": "c",
    "h": "c",
    "cpp": "cpp",
    "go": "go",
    "rs": "rust",
    "rb": "ruby",
    "php": "php",
    "sh": "bash",
    "sql": "sql",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    "toml": "toml",
    "xml": "xml",
    "html": "html",
    "css": "css",
    "kt": "kotlin",
    "swift": "swift",
    "scala": "scala",
    "r": "r",
    "m": "objectivec",
    "cs": "csharp",
    "lua": "lua",
    "pl": "perl",
}

IMAGE_EXTENSIONS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif", "webp": "webp"}

_OOXML = "application/vnd.openxmlformats-officedocument."
# extension -> (kind, content type)
EXTENSIONS: dict[str, tuple[str, str]] = {
    "pdf": (PDF, "application/pdf"),
    "docx": (DOCX, _OOXML + "wordprocessingml.document"),
    "xlsx": (XLSX, _OOXML + "spreadsheetml.sheet"),
    "pptx": (PPTX, _OOXML + "presentationml.presentation"),
    "csv": (CSV, "text/csv"),
    "txt": (TEXT, "text/plain"),
    "md": (TEXT, "text/markdown"),
    "markdown": (TEXT, "text/markdown"),
    **dict.fromkeys(CODE_LANGUAGES, (CODE, "text/plain")),
    **{ext: (IMAGE, f"image/{fmt}") for ext, fmt in IMAGE_EXTENSIONS.items()},
}

# The main part of each OOXML kind: its usual path, and its content type in [Content_Types].xml
# (matched as bytes: no XML parser runs here).
OOXML_MAIN = {
    DOCX: ("word/document.xml", rb"wordprocessingml\.document\.main\+xml"),
    XLSX: ("xl/workbook.xml", rb"spreadsheetml\.sheet\.main\+xml"),
    PPTX: ("ppt/presentation.xml", rb"presentationml\.presentation\.main\+xml"),
}

# Signatures of binary formats: a "text" file starting with one of these is not text.
BINARY_MAGIC = (
    b"%PDF-",
    b"PK\x03\x04",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"\x7fELF",
    b"\x1f\x8b",
    b"BZh",
    b"\xfd7zXZ",
    b"7z\xbc\xaf",
    b"Rar!",
    b"\xd0\xcf\x11\xe0",  # old Office (OLE)
)
TEXT_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)

_CONTROL_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
_BIDI_AND_SEPARATORS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))} | {
    "\u2028",
    "\u2029",
}


def clean_name(name: str) -> str:
    """The file name to keep, NFC-normalised and stripped; FileRejected when it could name another
    path (separators, ``.``/``..``), hide its real extension (control characters, bidi overrides)
    or is empty or too long (255 bytes of UTF-8)."""

    def bad(why: str) -> FileRejected:
        return FileRejected("invalid_file_name", f"The file name is not accepted: {why}.")

    if not isinstance(name, str):
        raise bad("it is not text")
    if "/" in name or "\\" in name:
        raise bad("it contains a path separator (/ or \\)")
    for char in name:
        if char in _BIDI_AND_SEPARATORS or unicodedata.category(char) in _CONTROL_CATEGORIES:
            if char == "\u200d" or char == "\u200c":  # joiners belong in emoji and some scripts
                continue
            raise bad(f"it contains the control character U+{ord(char):04X}")
    cleaned = unicodedata.normalize("NFC", name).strip()
    if cleaned in {"", ".", ".."}:
        raise bad("it is empty" if not cleaned else "it names a folder")
    if len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        raise bad(f"it is longer than {MAX_NAME_BYTES} bytes")
    return cleaned


def extension(name: str) -> str:
    """The lower-case extension without its dot ("" when none)."""
    return os.path.splitext(name)[1].lstrip(".").lower()


def code_language(name: str) -> str:
    return CODE_LANGUAGES.get(extension(name), "")


def image_format(head: bytes) -> str | None:
    """png, jpeg, gif or webp from the signature, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def kind_of(
    name: str,
    head: bytes,
    size: int,
    *,
    file: str | os.PathLike[str] | IO[bytes] | None = None,
    max_bytes: int | None = None,
) -> Kind:
    """The kind of an upload (``Kind.name``: pdf, docx, xlsx, pptx, csv, text, code or image)
    from its extension and its first bytes (``head``: at least the first 4 KB, or the whole file
    when smaller). ``file`` (a path or a seekable binary file), when given, lets an OOXML file's
    central directory be checked for the main part of its extension (``check_container`` does it
    too).

    FileRejected: ``file_too_large`` (413) over ``max_bytes``, ``empty_file``,
    ``unsupported_file_type`` for an extension not accepted, ``file_type_mismatch`` when the
    content is not what the extension says."""
    if max_bytes is not None and size > max_bytes:
        raise FileRejected(
            "file_too_large",
            f"The file is larger than the limit of {max_bytes // 2**20} MB.",
            status=413,
        )
    if size == 0:
        raise FileRejected("empty_file", "The file is empty.")
    ext = extension(name)
    if ext not in EXTENSIONS:
        shown = f".{ext} files are" if ext else "Files without an extension are"
        raise FileRejected(
            "unsupported_file_type",
            f"{shown} not supported. Attach PDF, Word (.docx), Excel (.xlsx), CSV, PowerPoint "
            "(.pptx), text, Markdown, source code or an image (PNG, JPEG, GIF, WebP).",
        )

    def mismatch(what: str) -> FileRejected:
        return FileRejected(
            "file_type_mismatch", f"The file's content is not {what}, as its extension .{ext} says."
        )

    kind, content_type = EXTENSIONS[ext]
    if kind == PDF:
        if b"%PDF-" not in head[:1024]:
            raise mismatch("a PDF document")
    elif kind in OOXML_MAIN:
        if not head.startswith(b"PK\x03\x04"):
            raise mismatch(f"a {ext.upper()} document (a ZIP package)")
        if file is not None:
            _check_ooxml_main(file, kind, mismatch)
    elif kind == IMAGE:
        found = image_format(head)
        if found != IMAGE_EXTENSIONS[ext]:
            raise mismatch(f"a {IMAGE_EXTENSIONS[ext].upper()} image")
    else:  # text of some kind: no binary signature, no NUL byte (unless UTF-16/32 with a BOM)
        binary = head.startswith(BINARY_MAGIC) or image_format(head) or b"\x00" in head
        if binary and not head.startswith(TEXT_BOMS):
            raise mismatch("text")
    return Kind(kind, content_type, ext, CODE_LANGUAGES.get(ext, "") if kind == CODE else "")


# A central directory entry is 46 bytes and its name; OOXML names are short. More directory than
# this per allowed member is refused before zipfile builds an object for every entry.
_DIRECTORY_BYTES_PER_MEMBER = 1024


def _directory_size(file: str | os.PathLike[str] | IO[bytes]) -> tuple[int, int] | None:
    """(entries, bytes) of a ZIP's central directory from its end record (ZIP64 too), or None."""
    try:
        if isinstance(file, str | os.PathLike):
            with open(file, "rb") as f:
                end = zipfile._EndRecData(f)  # type: ignore[attr-defined]
        else:
            end = zipfile._EndRecData(file)  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError, EOFError, zipfile.BadZipFile):
        return None
    if not end:
        return None
    return int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])  # type: ignore[attr-defined]


def _open_zip(
    file: str | os.PathLike[str] | IO[bytes], max_members: int = Limits.zip_max_members
) -> zipfile.ZipFile:
    """The ZIP, its central directory read (refused first when it is too big: ``zip_bomb``)."""
    try:
        directory = _directory_size(file)
        if directory is not None:
            entries, size = directory
            if entries > max_members or size > max_members * _DIRECTORY_BYTES_PER_MEMBER:
                raise FileRejected(
                    "zip_bomb", f"The file is refused: it holds more than {max_members} parts."
                )
        return zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise FileRejected(
            "unreadable_file", "The file is damaged: its ZIP directory cannot be read."
        ) from error
    finally:
        if hasattr(file, "seek"):
            file.seek(0)


def _check_ooxml_main(
    file: str | os.PathLike[str] | IO[bytes], kind: str, mismatch: Callable[[str], FileRejected]
) -> None:
    path, content_type = OOXML_MAIN[kind]
    with _open_zip(file) as archive:
        names = set(archive.namelist())
        if path in names:
            return
        # A main part elsewhere is legal: its content type in [Content_Types].xml says what it is.
        if "[Content_Types].xml" in names:
            info = archive.getinfo("[Content_Types].xml")
            if info.file_size <= 2 * 2**20:
                with archive.open(info) as part:
                    if re.search(content_type, part.read(2 * 2**20)):
                        return
    raise mismatch(f"a {kind.upper()} document")


def check_zip(
    path_or_file: str | os.PathLike[str] | BinaryIO,
    *,
    max_members: int = Limits.zip_max_members,
    max_total_uncompressed: int = Limits.zip_max_total_uncompressed,
    max_ratio: int = Limits.zip_max_ratio,
) -> None:
    """Refuse a zip bomb or a booby-trapped ZIP from its central directory alone (nothing is
    inflated): ``zip_bomb`` for too many members, too much uncompressed data in all, a member
    compressed more than ``max_ratio`` times (members of 1 MB and more: small XML parts compress
    well and harmlessly), members overlapping each other's data (the "overlapping files" bomb);
    ``file_rejected`` for member names with ``..`` or absolute paths, duplicated names, encrypted
    members."""
    bomb = FileRejected(
        "zip_bomb",
        "The file is refused: it unpacks to far more data than its size (a zip bomb?).",
    )
    with _open_zip(path_or_file, max_members) as archive:
        infos = archive.infolist()
        if len(infos) > max_members:
            raise FileRejected(
                "zip_bomb", f"The file is refused: it holds more than {max_members} parts."
            )
        total = 0
        seen: set[str] = set()
        for info in infos:
            name = info.filename
            if info.flag_bits & 0x1:
                raise FileRejected("file_rejected", "The file is encrypted (password-protected).")
            pure = PurePosixPath(name.replace("\\", "/"))
            if (
                name.startswith(("/", "\\"))
                or ".." in pure.parts
                or PureWindowsPath(name).drive
                or "\x00" in name
            ):
                raise FileRejected(
                    "file_rejected", "The file is refused: a part of it names a path outside it."
                )
            if name in seen:
                raise FileRejected("file_rejected", "The file is refused: a part name repeats.")
            seen.add(name)
            total += info.file_size
            if total > max_total_uncompressed:
                raise bomb
            if info.file_size >= 2**20 and info.file_size > max_ratio * max(info.compress_size, 1):
                raise bomb
        # The "overlapping files" bomb: many directory entries pointing at one compressed stream.
        offsets = sorted((i.header_offset, i.compress_size) for i in infos)
        for (start, length), (next_start, _) in zip(offsets, offsets[1:], strict=False):
            if next_start < start + length or next_start == start:
                raise bomb


# A DTD is legal only before the root element; it is looked for in all of a part up to 4 MB, and in
# a larger part until its root element starts (and at least its first 64 KB).
_SCAN_WHOLE = 4 * 2**20
_SCAN_AT_LEAST = 64 * 1024
_DTD = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT_START = re.compile(r"<[A-Za-z_]")


def _decoder_for(first: bytes) -> codecs.IncrementalDecoder:
    if first.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return codecs.getincrementaldecoder("utf-32")(errors="replace")
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return codecs.getincrementaldecoder("utf-16")(errors="replace")
    if first.startswith(b"<\x00"):
        return codecs.getincrementaldecoder("utf-16-le")(errors="replace")
    if first.startswith(b"\x00<"):
        return codecs.getincrementaldecoder("utf-16-be")(errors="replace")
    # UTF-8 and every ASCII-compatible encoding spell "<!DOCTYPE" the same.
    return codecs.getincrementaldecoder("latin-1")(errors="replace")


def _chunks(part: IO[bytes], size: int = 16 * 1024) -> Iterator[bytes]:
    while chunk := part.read(size):
        yield chunk


def check_ooxml_xml(archive: zipfile.ZipFile) -> None:
    """Refuse (``xml_entities``) an OOXML package any part of which declares a DTD or an entity:
    OOXML never has one, and entity expansion ("billion laughs", external entities) is how XML
    attacks its parser. Every part that is XML (it starts with "<", after a BOM and white space: a
    parser refuses anything else) is read, streamed, whatever its name: a part's name does not
    tell whether a parser will be given it. Binary parts (images, printer settings, which may
    embed a plist with a DOCTYPE) are skipped at their first bytes."""
    for info in archive.infolist():
        if info.is_dir():
            continue
        scan_whole = max(_SCAN_AT_LEAST, min(info.file_size, _SCAN_WHOLE))
        with archive.open(info) as part:
            decoder: codecs.IncrementalDecoder | None = None
            carry = ""
            read = 0
            root_seen = False
            for chunk in _chunks(part):
                first = decoder is None
                if decoder is None:
                    decoder = _decoder_for(chunk)
                read += len(chunk)
                text = carry + decoder.decode(chunk)
                if first and not text.lstrip("\ufeff \t\r\n").startswith("<"):
                    break  # not XML (media, printer settings...): no XML parser accepts it
                if _DTD.search(text):
                    raise FileRejected(
                        "xml_entities",
                        "The file is refused: it declares XML entities (a DTD), which Office "
                        "documents never do.",
                    )
                root_seen = root_seen or bool(_ROOT_START.search(text))
                if root_seen and read >= scan_whole:
                    break
                carry = text[-16:]


def check_container(path: str | os.PathLike[str], kind: Kind | str, limits: Limits) -> None:
    """The checks of a stored upload before it is extracted: for DOCX, XLSX and PPTX, the main
    part its extension promises (``file_type_mismatch``), then ``check_zip`` and
    ``check_ooxml_xml``. Other kinds have no container to check (the child's limits cover them)."""
    name = kind if isinstance(kind, str) else kind.name
    if name not in OOXML_KINDS:
        return

    def mismatch(what: str) -> FileRejected:
        return FileRejected("file_type_mismatch", f"The file's content is not {what}.")

    check_zip(
        path,
        max_members=limits.zip_max_members,
        max_total_uncompressed=limits.zip_max_total_uncompressed,
        max_ratio=limits.zip_max_ratio,
    )
    _check_ooxml_main(path, name, mismatch)
    with _open_zip(path) as archive:
        check_ooxml_xml(archive)
