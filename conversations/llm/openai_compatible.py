"""A client for chat-completion APIs shaped like OpenAI's ``/chat/completions``.

Spark's HTTP API is one of these with quirks of its own (``spark.py`` subclasses this). Another
OpenAI-compatible service is one more subclass, or this class as it is. The protocol as this
client reads it, and where each quirk is handled: docs/spark-protocol.md.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from . import dialects
from .base import (
    ChatMessage,
    ChatOptions,
    ChatProvider,
    ChatStream,
    Completion,
    Reference,
    StreamChunk,
    Usage,
)
from .dialects import Dialect
from .exceptions import (
    LLMBadResponse,
    LLMError,
    LLMIncompleteStream,
    LLMNotConfigured,
    LLMTimeout,
    LLMUnavailable,
)

logger = logging.getLogger(__name__)

# Errors a socket read can raise once the response has started: the connection dropped, a chunk
# was cut short, or the read timeout passed.
_READ_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_MAX_ERROR_BODY = 64 * 1024
_SID_IN_MESSAGE = re.compile(r"\(sid:\s*([^)\s]+)\)")


def _usage_from(payload: Mapping[str, Any]) -> Usage | None:
    """Usage from wherever the chunk carries it: the top level, or ``choices[0]`` (Kimi)."""
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        choice = _first_choice(payload)
        usage = choice.get("usage") if choice is not None else None
    if not isinstance(usage, Mapping):
        return None
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or (prompt + completion))
    except (TypeError, ValueError):
        return None
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    if cached is None:
        cached = usage.get("prompt_cache_hit_tokens")  # DeepSeek
    try:
        cached_tokens = int(cached or 0)
    except (TypeError, ValueError):
        cached_tokens = 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached_tokens,
    )


def _first_choice(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return None


def _text(part: Mapping[str, Any], *names: str) -> str:
    """The first of ``names`` that holds a string (``reasoning_content``, else ``reasoning``)."""
    for name in names:
        value = part.get(name)
        if isinstance(value, str):
            return value
    return ""


def _references(value: Any) -> tuple[Reference, ...]:
    return tuple(Reference(title, url) for title, url in dialects.references_from(value))


class OpenAICompatibleProvider(ChatProvider):
    """Talks to ``POST {base_url}/chat/completions`` with a bearer key per model, in a dialect."""

    name = "openai-compatible"

    def __init__(
        self,
        *,
        base_url: str,
        api_keys: Mapping[str, str],
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        pool_size: int = 1000,
        dialect: Dialect | None = None,
        name: str = "",
    ) -> None:
        self.dialect = dialect or dialects.DIALECTS["openai"]
        if name:
            self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_keys = dict(api_keys)
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        # Retry only a connection that could not be established (nothing was sent yet); never a
        # request that reached the server, and never once a byte of the reply has streamed.
        retry = Retry(
            total=1, connect=1, read=0, status=0, other=0, redirect=0, raise_on_status=False
        )
        # One open stream holds one pooled connection, and a gevent worker holds many streams.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # requests reads the environment (proxy variables, CA bundle, ~/.netrc) on every request;
        # a provider lives as long as its configuration, so the proxy and CA settings that apply
        # to its base URL are read once here. A ~/.netrc entry can no longer replace the Bearer
        # header either.
        self.session.proxies = requests.utils.get_environ_proxies(self.base_url)
        self.session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self.session.trust_env = False

    def close(self) -> None:
        self.session.close()

    # -- configuration ---------------------------------------------------------------------------

    def api_key(self, model: str) -> str:
        key = self._api_keys.get(model) or self._api_keys.get("*", "")
        if not key and self.dialect.needs_key:
            raise LLMNotConfigured()
        return key

    # -- requests --------------------------------------------------------------------------------

    def _body(
        self,
        model: str,
        messages: Sequence[ChatMessage],
        *,
        stream: bool,
        user: str,
        options: ChatOptions | None = None,
    ) -> dict[str, Any]:
        keep_reasoning = self.dialect.history_reasoning
        wire_messages: list[dict[str, Any]] = []
        for m in messages:
            item: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.images:  # a vision model: text and images as content parts
                item["content"] = [
                    {"type": "text", "text": m.content},
                    *({"type": "image_url", "image_url": {"url": url}} for url in m.images),
                ]
            if keep_reasoning and m.reasoning and m.role == "assistant":
                item["reasoning_content"] = m.reasoning
            wire_messages.append(item)
        body: dict[str, Any] = {"model": model, "messages": wire_messages, "stream": stream}
        if stream and self.dialect.include_usage:
            body["stream_options"] = {"include_usage": True}
        if user:
            body["user"] = user
        self.dialect.apply_options(body, options, stream=stream)
        return body

    def _post(self, model: str, body: dict[str, Any], *, stream: bool) -> requests.Response:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        key = self.api_key(model)
        if key:  # Ollama and vLLM without --api-key need none
            headers["Authorization"] = f"Bearer {key}"
        try:
            return self.session.post(
                f"{self.base_url}/chat/completions",
                data=json.dumps(body, ensure_ascii=False).encode(),
                headers=headers,
                stream=stream,
                timeout=self.timeout,
            )
        except requests.exceptions.ConnectTimeout as exc:
            raise LLMTimeout("Could not connect to the model service in time.") from exc
        except requests.exceptions.ReadTimeout as exc:
            raise LLMTimeout() from exc
        except requests.exceptions.ConnectionError as exc:
            if exc.args and isinstance(exc.args[0], urllib3.exceptions.ProtocolError):
                # The request reached the provider, which hung up without an answer.
                raise LLMIncompleteStream() from exc
            raise LLMUnavailable(code="upstream_unreachable") from exc
        except requests.exceptions.RequestException as exc:
            # Connection refused, DNS failure, TLS failure: nothing reached the provider.
            raise LLMUnavailable(code="upstream_unreachable") from exc

    def complete(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        user: str = "",
        options: ChatOptions | None = None,
    ) -> Completion:
        body = self._body(model, messages, stream=False, user=user, options=options)
        response = self._post(model, body, stream=False)
        try:
            if not response.ok:
                raise self._error_from_response(response)
            payload = self._json_or_raise(response.content)
        finally:
            response.close()
        self._raise_for_payload(payload)
        sid = self._sid_of(payload)
        choice = _first_choice(payload)
        message = choice.get("message") if choice is not None else None
        if not isinstance(message, Mapping) or not isinstance(message.get("content"), str):
            raise LLMBadResponse(sid=sid)
        self._raise_for_finish(choice, sid=sid)
        return Completion(
            content=message["content"],
            usage=_usage_from(payload),
            sid=sid,
            reasoning=_text(message, "reasoning_content", "reasoning"),
            references=_references(message.get("tool_calls")) if self.dialect.web_search else (),
        )

    def stream(
        self,
        *,
        model: str,
        messages: Sequence[ChatMessage],
        user: str = "",
        options: ChatOptions | None = None,
    ) -> ChatStream:
        body = self._body(model, messages, stream=True, user=user, options=options)
        response = self._post(model, body, stream=True)
        try:
            if not response.ok:
                raise self._error_from_response(response)
            content_type = response.headers.get("Content-Type", "")
            if "json" in content_type and "event-stream" not in content_type:
                # Some failures come back as one JSON body even though a stream was asked for.
                payload = self._json_or_raise(response.content)
                self._raise_for_payload(payload)
                raise LLMBadResponse(sid=self._sid_of(payload))
        except BaseException:
            response.close()
            raise
        guard = _StreamConnection(response)
        return ChatStream(self._events_then_close(response, guard), abort=guard.abort)

    def _events_then_close(
        self, response: requests.Response, guard: _StreamConnection
    ) -> Iterator[StreamChunk]:
        ended = False
        try:
            yield from self._read_events(response)
            ended = True
        finally:
            # After [DONE] the connection goes back to the session's pool for the next reply
            # (over HTTPS a new one costs a TLS handshake); after anything else it is closed.
            if not (ended and guard.release()):
                response.close()

    def _read_events(self, response: requests.Response) -> Iterator[StreamChunk]:
        sid = ""
        buffer = b""
        raw = response.raw
        while True:
            try:
                # read1() returns whatever has arrived (chunked or close-delimited alike);
                # iter_lines() would wait for 512 bytes on a close-delimited body.
                data = raw.read1(65536)
            except urllib3.exceptions.ReadTimeoutError as exc:
                raise LLMTimeout(sid=sid) from exc
            except _READ_ERRORS as exc:
                if _is_timeout(exc):
                    raise LLMTimeout(sid=sid) from exc
                raise LLMIncompleteStream(sid=sid) from exc
            if not data:
                raise LLMIncompleteStream(sid=sid)
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for raw_line in lines:
                line = raw_line.rstrip(b"\r")
                if not line or line.startswith(b":"):
                    continue  # blank separators and SSE comments (keep-alives)
                if not line.startswith(b"data:"):
                    if line.startswith(b"{"):
                        # A bare JSON body (an error) where a stream was asked for.
                        self._raise_for_bare_json(line, sid=sid)
                    continue  # other SSE fields (event:, id:, retry:) carry nothing we use
                # The documents print "data:" with no space; real traffic has "data: ".
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                if value.strip() == b"[DONE]":
                    return
                payload = self._json_or_raise(value, sid=sid)
                sid = self._sid_of(payload) or sid
                self._raise_for_payload(payload, sid=sid)
                chunk = self._chunk_from(payload, sid)
                yield chunk
                # After the chunk: a failing finish chunk may carry the last text or the usage.
                self._raise_for_finish(_first_choice(payload), sid=sid)

    def _raise_for_bare_json(self, line: bytes, *, sid: str) -> None:
        try:
            payload = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(payload, dict):
            self._raise_for_payload(payload, sid=self._sid_of(payload) or sid)

    def _chunk_from(self, payload: Mapping[str, Any], sid: str) -> StreamChunk:
        choice = _first_choice(payload)
        delta = choice.get("delta") if choice is not None else None
        if not isinstance(delta, Mapping):
            return StreamChunk(usage=_usage_from(payload), sid=sid)
        references: tuple[Reference, ...] = ()
        if self.dialect.web_search and (delta.get("role") == "tool" or delta.get("tool_calls")):
            # Spark's web search results (docs/providers.md, "Spark web search"); not answer text.
            references = _references(delta.get("tool_calls"))
            return StreamChunk(usage=_usage_from(payload), sid=sid, references=references)
        return StreamChunk(
            content=_text(delta, "content"),
            reasoning=_text(delta, "reasoning_content", "reasoning"),
            usage=_usage_from(payload),
            sid=sid,
        )

    def _raise_for_finish(self, choice: Mapping[str, Any] | None, *, sid: str) -> None:
        """A finish reason that means moderation or an upstream failure, after partial text."""
        reason = choice.get("finish_reason") if choice is not None else None
        if isinstance(reason, str) and reason in dialects.FAILED_FINISH_REASONS:
            error_class, detail = dialects.FAILED_FINISH_REASONS[reason]
            raise error_class(detail, sid=sid, upstream_code=reason)

    # -- errors ----------------------------------------------------------------------------------

    @staticmethod
    def _sid_of(payload: Mapping[str, Any]) -> str:
        sid = payload.get("sid") or payload.get("id") or ""
        return sid if isinstance(sid, str) else ""

    @staticmethod
    def _json_or_raise(data: bytes, *, sid: str = "") -> Any:
        try:
            payload = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise LLMBadResponse(sid=sid) from exc
        if not isinstance(payload, dict):
            raise LLMBadResponse(sid=sid)
        return payload

    def _raise_for_payload(self, payload: Mapping[str, Any], *, sid: str = "") -> None:
        """Raise for an error carried inside a 2xx body or stream event: OpenAI's ``error``
        object (vLLM sends one after the 200), or older vLLM's flat ``"object": "error"``."""
        error = payload.get("error")
        if isinstance(error, Mapping):
            raise self._error_from_envelope(error, http_status=200)
        if isinstance(error, str) and error:  # Ollama's native {"error": "..."}
            raise self._error_from_envelope({"message": error}, http_status=200)
        if payload.get("object") == "error":
            raise self._error_from_envelope(payload, http_status=200)

    def _error_from_response(self, response: requests.Response) -> LLMError:
        body = b""
        for piece in response.iter_content(8192):
            body += piece
            if len(body) >= _MAX_ERROR_BODY:
                break
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            payload = None
        if isinstance(payload, dict):
            error = payload.get("error")
            if isinstance(error, Mapping):
                return self._error_from_envelope(error, http_status=response.status_code)
            envelope = {"message": error} if isinstance(error, str) else payload
            if isinstance(error, str) or payload.get("object") == "error":
                return self._error_from_envelope(envelope, http_status=response.status_code)
            try:
                self._raise_for_payload(payload)
            except LLMError as exc:
                return exc
        return self._error_from_status(response.status_code)

    def _error_from_envelope(self, error: Mapping[str, Any], *, http_status: int) -> LLMError:
        message = str(error.get("message") or "")
        match = _SID_IN_MESSAGE.search(message)
        sid = match.group(1) if match else ""
        code = error.get("code")
        code_text = str(code).strip() if code is not None else ""
        error_type = error.get("type")
        return self._classified(
            status=http_status,
            code=code_text,
            error_type=error_type if isinstance(error_type, str) else "",
            message=message,
            sid=sid,
        )

    def _classified(
        self, *, status: int, code: str, error_type: str, message: str, sid: str
    ) -> LLMError:
        """The provider's error as ours, by its body code (docs/providers.md, "Errors")."""
        error_class, detail = dialects.classify(
            status=status, code=code, error_type=error_type, message=message
        )
        return error_class(
            detail, sid=sid, upstream_message=message, upstream_code=code or error_type
        )

    def _error_from_status(self, status: int) -> LLMError:
        """A failure status whose body is no error envelope (a gateway's HTML page, say)."""
        if status in dialects.ERROR_STATUSES or status >= 500:
            return self._classified(status=status, code="", error_type="", message="", sid="")
        return LLMBadResponse()


class _StreamConnection:
    """A stream's upstream connection: closed by ``abort()`` or handed back by ``release()``.

    The two can race (the client leaves as the model finishes): once released, the connection
    may already serve another reply, so a later abort must not touch it, and an aborted one is
    never released.
    """

    # The rest of the body after [DONE] (a chunked stream's last chunk) arrives with it; a
    # server that sends more, or nothing, within this long gets its connection closed.
    DRAIN_SECONDS = 0.25
    DRAIN_MAX_BYTES = 65536

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self._lock = threading.Lock()
        self._aborted = False
        self._released = False

    def abort(self) -> None:
        with self._lock:
            if self._released:
                return
            self._aborted = True
        _abort(self._response)

    def release(self) -> bool:
        """Read the end of the body and return the connection to the pool; False if it cannot."""
        raw = self._response.raw
        connection = getattr(raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is None or self._aborted:
            return False
        try:
            sock.settimeout(self.DRAIN_SECONDS)  # urllib3 sets its own again on the next request
            left = self.DRAIN_MAX_BYTES
            while left > 0:
                data = raw.read1(left)
                if not data:
                    break
                left -= len(data)
            else:
                return False  # more than a body's end: not a connection to reuse
        except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException):
            return False
        with self._lock:
            if self._aborted or not raw.isclosed():
                return False
            self._released = True
        raw.release_conn()
        return True


def _abort(response: requests.Response) -> None:
    """Close the upstream connection, from any thread, interrupting a blocked read."""
    try:
        # urllib3 2.3+: shutdown() wakes a read blocked in another thread, which then sees the end
        # of the stream and closes the response itself; close() from here could race that read.
        response.raw.shutdown()
    except (ValueError, RuntimeError, OSError):
        response.close()  # not connected any more: nothing is reading


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (TimeoutError, urllib3.exceptions.ReadTimeoutError)):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
