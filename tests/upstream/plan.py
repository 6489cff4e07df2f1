"""How one request is answered: the ``Plan`` (timing, text, faults) and the ``[[directives]]``.

Provider-neutral: a dialect (dialects.py) turns the plan into its own chunks and errors, as
providers-protocol.md (the page the product's client follows too) describes them. The directives
are listed in ``parse_directives``.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, fields

__all__ = [
    "DEFAULT_REASONING",
    "ERROR_CLASSES",
    "FRAMINGS",
    "Plan",
    "estimate_tokens",
    "parse_directives",
    "split_tokens",
]

FRAMINGS = ("chunked", "close")
# The classes of up-front refusal every dialect renders its own way (providers-protocol.md §3).
ERROR_CLASSES = ("auth", "balance", "rate_limit", "moderation", "context", "unavailable")
DEFAULT_REASONING = "The user wants a short answer. I will think it over briefly, then reply."

# CJK ideographs, kana, hangul, CJK punctuation and full-width forms: one streamed chunk per
# character and about 1.5 characters per token (docs/spark-protocol.md, "Models and context
# windows").
_CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_CJK_RE = re.compile(f"[{_CJK}]")
# A CJK character, or a word, each with the whitespace after it; a leading run of whitespace
# stands alone only at the very start of the text.
_TOKEN_RE = re.compile(f"[{_CJK}]\\s*|[^\\s{_CJK}]+\\s*|\\s+")


def estimate_tokens(text: str) -> int:
    """Rough token count: a CJK character is 1/1.5 token, anything else 1/4 token.

    Deliberately on the low side, so that the stand-in answers "too long" only when a prompt
    clearly is.
    """
    cjk = len(_CJK_RE.findall(text))
    return math.ceil(cjk / 1.5 + (len(text) - cjk) / 4)


def split_tokens(text: str, count: int | None = None) -> list[str]:
    """Split reply text into streamed chunks.

    Without ``count``: one chunk per word (with the whitespace after it) and one per CJK
    character. With ``count``: exactly ``count`` roughly equal pieces; text shorter than
    ``count`` characters is first padded by repeating its words so that no piece is empty.
    """
    if count is None:
        return _TOKEN_RE.findall(text)
    if count <= 0:
        return []
    padded = text
    for word in itertools.cycle(text.split() or ["token"]):
        if len(padded) >= count:
            break
        padded = f"{padded} {word}" if padded else word
    size = len(padded)
    return [padded[i * size // count : (i + 1) * size // count] for i in range(count)]


@dataclass
class Plan:
    """How the stand-in answers one request: the server's attributes, then ``fail_next()``
    overrides, then the directives in the last user message."""

    first_token_delay: float = 0.0
    token_interval: float = 0.0
    tokens: int | None = None  # None: one chunk per word / CJK character
    reply: str | None = None  # None: echo the question as "Echo: <question>"
    data_space: bool = False  # "data: " instead of "data:"
    framing: str = "chunked"  # "chunked" (keep-alive) or "close" (body ends when we hang up)
    comments: bool = False  # an SSE comment and blank lines before the first chunk
    usage_separate: bool = False  # usage on an extra empty chunk, not on the last content chunk
    upstream: str | None = None  # refuse up front: a provider error code, "auth" or "nonjson"
    inband: int | None = None  # HTTP 200 whose first (only) chunk carries this error code
    midstream: int | None = None  # half the reply, then a chunk with this error code
    drop: bool = False  # half the reply, then hang up without [DONE]
    stall: float | None = None  # half the reply, then silence for this long, then hang up
    reasoning: str | None = None  # streamed before the answer, if the dialect and request allow
    error: str | None = None  # refuse up front with this ERROR_CLASSES class, in the dialect's way
    finish: str | None = None  # half the reply, then a chunk with this finish_reason, then [DONE]
    search: bool = False  # Spark web search results before the answer (if the request enables it)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def override(self, **values: object) -> Plan:
        unknown = set(values) - self.field_names()
        if unknown:
            raise AttributeError(f"no plan field {', '.join(sorted(unknown))}")
        for name, value in values.items():
            setattr(self, name, value)
        return self

    @property
    def cut_short(self) -> bool:
        return (
            self.midstream is not None
            or self.drop
            or self.stall is not None
            or self.finish is not None
        )


_DIRECTIVE_NAMES = [
    "reply",
    "delay",
    "interval",
    "tokens",
    "space",
    "close",
    "chunked",
    "comments",
    "usage",
    "upstream",
    "inband",
    "midstream",
    "drop",
    "stall",
    "reasoning",
    "error",
    "stream_error",
    "finish",
    "search",
]
# [[name]] or [[name:VALUE]]; VALUE may hold anything but "]]" (HTML, newlines...).
_DIRECTIVE_RE = re.compile(r"\[\[(" + "|".join(_DIRECTIVE_NAMES) + r")(?::(.*?))?\]\]", re.DOTALL)


def _number(name: str, value: str | None) -> float:
    try:
        result = float(value or "")
    except ValueError:
        raise ValueError(f"[[{name}:{value}]] needs a number") from None
    if result < 0 or math.isnan(result):
        raise ValueError(f"[[{name}:{value}]] must be >= 0")
    return result


def _code(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        result = int(value)
    except ValueError:
        raise ValueError(f"[[{name}:{value}]] needs an integer code") from None
    if result == 0:
        raise ValueError(f"[[{name}:0]]: an error code is non-zero")
    return result


def _flag(name: str, value: str | None) -> bool:
    if value is not None:
        raise ValueError(f"[[{name}]] takes no value")
    return True


def parse_directives(
    content: str, plan: Plan, *, inband_default: int = 10013, midstream_default: int = 10014
) -> str:
    """Apply the ``[[...]]`` directives in ``content`` to ``plan``; return the text without them.

    ``[[reply:TEXT]]`` ``[[delay:S]]`` ``[[interval:S]]`` ``[[tokens:N]]`` ``[[space]]``
    ``[[close]]`` ``[[chunked]]`` ``[[comments]]`` ``[[usage:separate|last]]`` (Spark v1)
    ``[[upstream:CODE|auth|nonjson]]`` ``[[inband[:CODE]]]`` ``[[midstream[:CODE]]]``
    ``[[drop]]`` ``[[stall[:S]]]`` (default 30 s). The default codes are the dialect's (Spark:
    10013 input moderation, 10014 output moderation; the other dialects: 500, and CODE in
    ``[[upstream:CODE]]`` is the HTTP status).

    Every dialect: ``[[reasoning[:TEXT]]]`` (reasoning before the answer, default
    ``DEFAULT_REASONING``, unless the request switched it off), ``[[error:CLASS]]`` (CLASS in
    ``ERROR_CLASSES``: refused up front with that dialect's status and body),
    ``[[stream_error]]`` (``[[midstream]]`` with the dialect's default: half the reply, then an
    error inside the 200 stream), ``[[finish:REASON]]`` (half the reply, then a chunk with that
    ``finish_reason``, then [DONE]). Spark and Spark X only: ``[[search]]`` (a streamed chunk of
    web search results before the answer, if the request's ``tools`` enable ``web_search``).
    Spark v1 models do not reason: ``[[reasoning]]`` changes nothing there.

    Raises ValueError for a malformed directive, so that a typo in a test fails loudly instead
    of being echoed.
    """
    for match in _DIRECTIVE_RE.finditer(content):
        name, value = match.group(1), match.group(2)
        if name == "reply":
            plan.reply = value or ""
        elif name == "delay":
            plan.first_token_delay = _number(name, value)
        elif name == "interval":
            plan.token_interval = _number(name, value)
        elif name == "tokens":
            if value is None or not value.strip().isdigit():
                raise ValueError(f"[[tokens:{value}]] needs a non-negative integer")
            plan.tokens = int(value)
        elif name == "space":
            plan.data_space = _flag(name, value)
        elif name in ("close", "chunked"):
            _flag(name, value)
            plan.framing = name
        elif name == "comments":
            plan.comments = _flag(name, value)
        elif name == "usage":
            if value not in ("separate", "last"):
                raise ValueError(f"[[usage:{value}]]: expected 'separate' or 'last'")
            plan.usage_separate = value == "separate"
        elif name == "upstream":
            if value is None or not (value in ("auth", "nonjson") or value.strip().isdigit()):
                raise ValueError(f"[[upstream:{value}]]: expected auth, nonjson or a numeric code")
            plan.upstream = value.strip()
        elif name == "inband":
            plan.inband = _code(name, value, inband_default)
        elif name == "midstream":
            plan.midstream = _code(name, value, midstream_default)
        elif name == "drop":
            plan.drop = _flag(name, value)
        elif name == "stall":
            plan.stall = 30.0 if value is None else _number(name, value)
        elif name == "reasoning":
            plan.reasoning = value or DEFAULT_REASONING
        elif name == "error":
            if value not in ERROR_CLASSES:
                raise ValueError(f"[[error:{value}]]: expected one of {', '.join(ERROR_CLASSES)}")
            plan.error = value
        elif name == "stream_error":
            _flag(name, value)
            plan.midstream = midstream_default
        elif name == "finish":
            if value is None or not re.fullmatch(r"\w+", value):
                raise ValueError(f"[[finish:{value}]] needs a finish_reason such as sensitive")
            plan.finish = value
        elif name == "search":
            plan.search = _flag(name, value)
    return _DIRECTIVE_RE.sub("", content).strip()
