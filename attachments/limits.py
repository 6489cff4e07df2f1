"""The limits of attachment checking and extraction, one small value passed to the child process.

Pure Python: no Django import, so that ``attachments.extract`` runs as a subprocess without it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

MIB = 2**20


@dataclass(frozen=True)
class Limits:
    # PDF: more pages than this is refused before any page is read (the page count is in the
    # document's page tree).
    max_pages: int = 500
    # Spreadsheets (XLSX, CSV): rows and columns kept per sheet; the rest is a stated cut.
    max_rows: int = 200
    max_cols: int = 30
    # The whole extracted text is cut to this many characters, with a warning.
    max_chars: int = 2_000_000
    # Images: the sanitised copy's long side; larger images are scaled down.
    max_image_side: int = 2048
    # Images: more pixels than this is refused as a decompression bomb (Pillow's own check).
    max_image_pixels: int = 50_000_000
    # OOXML (DOCX, XLSX, PPTX) are ZIP files: their central directory is checked first.
    zip_max_members: int = 2000
    zip_max_total_uncompressed: int = 200 * MIB
    zip_max_ratio: int = 200

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Limits:
        data: dict[str, Any] = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in data.items() if k in names})
