"""A rough token count, the same everywhere: trimming history, quotas' estimates, attachments."""

from __future__ import annotations

import re

# One token per this many non-CJK characters at most (docs/spark-protocol.md).
CHARS_PER_TOKEN_MAX = 4

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_WORD = re.compile(f"[^\\s{_CJK}]+")


def estimate_tokens(text: str) -> int:
    """A rough token count: docs/spark-protocol.md's 1 token ≈ 1.5 Chinese characters ≈ 0.8 words.

    Errs high so that trimmed history stays under the window: a CJK character is 1/1.5 token, and
    other text the larger of 1.25 tokens a word and a token every CHARS_PER_TOKEN_MAX characters.
    """
    cjk = len(_CJK_CHAR.findall(text))
    other_chars = len(text) - cjk
    words = len(_WORD.findall(text))
    return int(cjk / 1.5 + max(other_chars / CHARS_PER_TOKEN_MAX, words / 0.8)) + 1
