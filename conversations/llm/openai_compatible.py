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

from .base import ChatMessage, ChatProvider, ChatStream, Completion, StreamChunk, Usage
from .exceptions import (
    LLMBadResponse,
    LLMBusy,
    LLMConfigurationError,
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
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return None
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        total = int(usage.get("total_tokens") or (prompt + completion))
    except (TypeError, ValueError):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


class OpenAICompatibleProvider(ChatProvider):
    """Talks to ``POST {base_url}/chat/completions`` with a bearer key per model."""

    name = "openai-compatible"

    def __init__(
        self,
        *,
        base_url: str,
        api_keys: Mapping[str, str],
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        pool_size: int = 1000,
    ) -> None:
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

    # -- configuration ---------------------------------------------------------------------------

    def api_key(self, model: str) -> str:
        key = self._api_keys.get(model) or self._api_keys.get("*", "")
        if not key:
            raise LLMNotConfigured()
        return key

    # -- requests --------------------------------------------------------------------------------

    def _body(
        self, model: str, messages: Sequence[ChatMessage], *, stream: bool, user: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": stream,
        }
        if user:
            body["user"] = user
        return body

    def _post(self, model: str, body: dict[str, Any], *, stream: bool) -> requests.Response:
        headers = {
            "Authorization": f"Bearer {self.api_key(model)}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
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
        self, *, model: str, messages: Sequence[ChatMessage], user: str = ""
    ) -> Completion:
        response = self._post(
            model, self._body(model, messages, stream=False, user=user), stream=False
        )
        try:
            if not response.ok:
                raise self._error_from_response(response)
            payload = self._json_or_raise(response.content)
        finally:
            response.close()
        self._raise_for_payload(payload)
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMBadResponse(sid=self._sid_of(payload)) from exc
        if not isinstance(content, str):
            raise LLMBadResponse(sid=self._sid_of(payload))
        return Completion(content=content, usage=_usage_from(payload), sid=self._sid_of(payload))

    def stream(self, *, model: str, messages: Sequence[ChatMessage], user: str = "") -> ChatStream:
        response = self._post(
            model, self._body(model, messages, stream=True, user=user), stream=True
        )
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
                yield self._chunk_from(payload, sid)

    def _raise_for_bare_json(self, line: bytes, *, sid: str) -> None:
        try:
            payload = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return
        if isinstance(payload, dict):
            self._raise_for_payload(payload, sid=self._sid_of(payload) or sid)

    def _chunk_from(self, payload: Mapping[str, Any], sid: str) -> StreamChunk:
        text = ""
        choices = payload.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            delta = choices[0].get("delta") or {}
            if isinstance(delta, Mapping) and isinstance(delta.get("content"), str):
                text = delta["content"]
        return StreamChunk(content=text, usage=_usage_from(payload), sid=sid)

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
        """Raise for an error carried inside a 2xx body (OpenAI's ``error`` object)."""
        error = payload.get("error")
        if isinstance(error, Mapping):
            raise self._error_from_envelope(error, http_status=200)

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
        if isinstance(payload, dict) and isinstance(payload.get("error"), Mapping):
            return self._error_from_envelope(payload["error"], http_status=response.status_code)
        if isinstance(payload, dict):
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
        if code is not None and str(code).strip():
            return self._error_for_code(str(code).strip(), sid=sid, upstream_message=message)
        return self._error_from_status(http_status, sid=sid, upstream_message=message)

    def _error_for_code(self, code: str, *, sid: str, upstream_message: str) -> LLMError:
        return LLMError(code=code, sid=sid, upstream_message=upstream_message)

    @staticmethod
    def _error_from_status(status: int, *, sid: str = "", upstream_message: str = "") -> LLMError:
        if status in (401, 403):
            return LLMConfigurationError(
                "The model service refused the API key.",
                code="upstream_auth",
                sid=sid,
                upstream_message=upstream_message,
            )
        if status == 429:
            return LLMBusy(code="upstream_busy", sid=sid, upstream_message=upstream_message)
        if status in (502, 503, 504) or status >= 500:
            return LLMUnavailable(
                code="upstream_unavailable", sid=sid, upstream_message=upstream_message
            )
        return LLMBadResponse(sid=sid, upstream_message=upstream_message)


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
