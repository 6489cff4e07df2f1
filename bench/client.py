"""A small asyncio HTTP/1.1 client for the load generators (stdlib only, loopback only).

Two uses: a streaming POST whose server-sent events are timed as they arrive (chatsite's
``event: delta`` frames, or Spark's ``data:{json}`` frames when talking to the Spark stand-in
directly; both parsed by tests/support/sse.py), and plain keep-alive requests for throughput.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.support.sse import Event, SSEDecoder

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def split_url(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if host not in LOOPBACK:
        raise ValueError(f"load goes to loopback only, not {host}")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, parts.port or 80, path


class HTTPError(Exception):
    pass


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def _body_pieces(reader: asyncio.StreamReader, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """Yield the body as it arrives, chunked, sized or close-delimited."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    elif "content-length" in headers:
        remaining = int(headers["content-length"])
        while remaining:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise HTTPError("connection closed inside the body")
            remaining -= len(data)
            yield data
    else:
        while data := await reader.read(65536):
            yield data


def _request_bytes(
    method: str, host: str, port: int, path: str, headers: dict[str, str], body: bytes | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class StreamResult:
    status: int = 0
    start: float = 0.0
    first_delta: float | None = None
    end: float | None = None
    deltas: int = 0
    done: bool = False
    error: str = ""
    tail: bytes = field(default=b"", repr=False)  # the last bytes received, for diagnosing errors
    final: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def ttft(self) -> float | None:
        return None if self.first_delta is None else self.first_delta - self.start

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done and not self.error


async def stream_post(
    url: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 600.0,
    on_first_delta: Any = None,
) -> StreamResult:
    """POST ``payload`` as JSON to ``url`` and read the event stream it answers, timing it.

    Time starts before the TCP connect. Understands chatsite's frames (``event: delta`` ...
    ``event: done`` or ``event: error``) and Spark's (``data:{json}`` with content ...
    ``data:[DONE]``).
    """
    host, port, path = split_url(url)
    result = StreamResult(start=time.perf_counter())
    body = json.dumps(payload).encode()
    all_headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream",
        "Connection": "close",
        **(headers or {}),
    }
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
            writer.write(_request_bytes("POST", host, port, path, all_headers, body))
            await writer.drain()
            result.status, response_headers = await _read_head(reader)
            if result.status != 200:
                text = b"".join([piece async for piece in _body_pieces(reader, response_headers)])
                result.error = f"HTTP {result.status}: {text[:300].decode(errors='replace')}"
                return result
            decoder = SSEDecoder()
            async for piece in _body_pieces(reader, response_headers):
                result.tail = (result.tail + piece)[-400:]
                for event in decoder.feed(piece):
                    _event(result, event, on_first_delta)
                if result.done or result.error:
                    break
            if not result.done and not result.error:
                result.error = "stream ended without done"
    except TimeoutError:
        result.error = "timeout"
    except (OSError, asyncio.IncompleteReadError, HTTPError, ValueError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.end = time.perf_counter()
        if writer is not None:
            writer.close()
    return result


def _event(result: StreamResult, event: Event, on_first_delta: Any) -> None:
    if event.event != "message":  # chatsite's frames
        if event.event == "delta":
            _delta(result, on_first_delta)
        elif event.event == "done":
            result.done = True
            result.final = event.json().get("message")
        elif event.event == "error":
            result.error = "error event: " + event.data[:300]
        return
    if event.data.strip() == "[DONE]":  # the provider's own frames
        result.done = True
        return
    payload = event.json()
    if payload.get("code"):
        result.error = f"spark code {payload['code']}"
        return
    if payload["choices"][0]["delta"].get("content"):
        _delta(result, on_first_delta)


def _delta(result: StreamResult, on_first_delta: Any) -> None:
    result.deltas += 1
    if result.first_delta is None:
        result.first_delta = time.perf_counter()
        if on_first_delta is not None:
            on_first_delta(result)


class KeepAliveClient:
    """One keep-alive connection sending requests one after another."""

    def __init__(self, url: str) -> None:
        self.host, self.port, _ = split_url(url)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, limit=1 << 20
            )
        assert self.reader is not None
        self.writer.write(_request_bytes(method, self.host, self.port, path, headers or {}, body))
        await self.writer.drain()
        status, response_headers = await _read_head(self.reader)
        data = b"".join([piece async for piece in _body_pieces(self.reader, response_headers)])
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
