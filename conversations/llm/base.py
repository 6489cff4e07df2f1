"""The interface every model provider implements.

Providers know nothing of Django models, DRF or users' requests: they take plain messages and give
back text, usage and the upstream request id.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str
    # An earlier reply's reasoning: sent back only to the dialects that require it.
    reasoning: str = ""
    # Images the user attached, as data: URLs, for models with vision (OpenAI's content parts).
    images: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """A conversation's parameters; ``None`` leaves the model's own default."""

    temperature: float | None = None
    max_tokens: int | None = None
    reasoning: bool | None = None
    web_search: bool | None = None


@dataclass(frozen=True, slots=True)
class Reference:
    """A web page a reply's web search cited."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the provider served from its cache (cheaper)


@dataclass(frozen=True, slots=True)
class Completion:
    content: str
    usage: Usage | None = None
    sid: str = ""
    reasoning: str = ""
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """One piece of a streamed reply: answer text, reasoning text, and usage, sid or web
    references when the provider sends them."""

    content: str = ""
    usage: Usage | None = None
    sid: str = ""
    reasoning: str = ""
    references: tuple[Reference, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model on offer: what the API lists and what the reply engine needs to call it."""

    id: str  # the id conversations and the API use
    label: str
    provider: str  # the provider's name
    context_window: int
    max_tokens: int  # the output limit
    upstream_id: str = ""  # the id sent to the provider; "" = ``id``
    provider_label: str = ""
    dialect: str = "spark"
    reasoning: bool = False
    reasoning_switch: bool = False
    web_search: bool = False
    vision: bool = False
    temperature_min: float = 0.0
    temperature_max: float = 2.0
    temperature_default: float | None = None
    default: bool = False
    order: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def wire_id(self) -> str:
        return self.upstream_id or self.id


class ChatStream:
    """An iterator of ``StreamChunk``s whose ``close()`` may be called from another thread.

    ``close()`` interrupts a read blocked on the network, so a consumer that goes away ends the
    upstream request at once instead of at the next token or the read timeout.
    """

    def __init__(self, chunks: Iterator[StreamChunk], abort: Callable[[], None]) -> None:
        self._chunks = chunks
        self._abort = abort

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._abort()


class ChatProvider(abc.ABC):
    """A model provider: one instance per provider, holding one HTTP session."""

    name: str

    @abc.abstractmethod
    def complete(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        user: str = "",
        options: ChatOptions | None = None,
    ) -> Completion:
        """Ask for a whole reply. Raises an ``LLMError`` subclass on any failure."""

    @abc.abstractmethod
    def stream(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        user: str = "",
        options: ChatOptions | None = None,
    ) -> ChatStream:
        """Open a stream: the reply as it arrives. ``close()`` ends the upstream request.

        A failure the provider answers instead of a stream (an error status, a JSON error body)
        raises here; one inside the stream, from its first chunk on, while iterating. Both are
        ``LLMError`` subclasses, including a stream that ends early.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most providers have nothing to close
        """Release pooled connections."""
