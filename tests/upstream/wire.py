"""Just enough HTTP/1.1 on asyncio for a stand-in API server: one protocol object per connection.

No thread and no polling per connection: a stream that waits (first-token delay, a stall) is a
timer, and a client that hangs up wakes it at once (``Connection.gone``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ClientGone", "Connection", "HTTPRequest", "Headers"]

MAX_HEAD = 64 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ClientGone(Exception):
    """The client hung up (or the server is stopping) while we were answering."""


class BadRequest(Exception):
    pass


class Headers(dict[str, str]):
    """Request headers as the client spelled them, with case-insensitive lookups:
    ``headers["authorization"]`` and ``headers["Authorization"]`` both work."""

    def _key(self, key: object) -> object:
        if isinstance(key, str) and not dict.__contains__(self, key):
            for existing in self:
                if existing.lower() == key.lower():
                    return existing
        return key

    def __getitem__(self, key: str) -> str:
        return dict.__getitem__(self, self._key(key))  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._key(key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, self._key(key), default)  # type: ignore[call-overload]


@dataclass
class HTTPRequest:
    method: str
    target: str
    version: str
    headers: Headers
    body: bytes = b""
    client: tuple[str, int] = ("", 0)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def keep_alive(self) -> bool:
        connection = (self.headers.get("Connection") or "").lower()
        return self.version == "HTTP/1.1" and "close" not in connection


class Connection(asyncio.Protocol):
    """One client connection; ``handler(connection)`` is a task that reads and answers requests."""

    def __init__(self, handler: Callable[[Connection], Awaitable[None]]) -> None:
        self._handler = handler
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.client: tuple[str, int] = ("", 0)

    # ---- asyncio callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client = (str(peer[0]), int(peer[1]))
        self.task = asyncio.get_running_loop().create_task(self._handler(self))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()

    def eof_received(self) -> bool:
        # A client that half-closes has hung up as far as a stream is concerned.
        self._hang_up()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._hang_up()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._drain = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    def _hang_up(self) -> None:
        self._eof = True
        if not self.gone.done():
            self.gone.set_result(None)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # ---- reading -----------------------------------------------------------------------------

    async def _more(self) -> bool:
        """Wait for more bytes; False at end of input."""
        if self._eof:
            return False
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        return True

    async def read_until(self, separator: bytes, limit: int = MAX_HEAD) -> bytes | None:
        while (end := self._buffer.find(separator)) < 0:
            if len(self._buffer) > limit:
                raise BadRequest("request head too long")
            if not await self._more():
                return None
        end += len(separator)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    async def read_exactly(self, size: int) -> bytes | None:
        while len(self._buffer) < size:
            if not await self._more():
                return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    async def read_request(self) -> HTTPRequest | None:
        """The next request, or None when the client closed the connection between requests."""
        while self._buffer[:2] == b"\r\n":  # stray CRLF between requests
            del self._buffer[:2]
        head = await self.read_until(b"\r\n\r\n")
        if head is None:
            return None
        lines = head.decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise BadRequest(f"bad request line {lines[0]!r}") from None
        headers = Headers()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip()] = value.strip()
        request = HTTPRequest(method, target, version.strip(), headers, client=self.client)
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            request.body = await self._read_chunked()
        else:
            try:
                length = int(headers.get("Content-Length") or 0)
            except ValueError:
                raise BadRequest("bad Content-Length") from None
            if length < 0:
                raise BadRequest("negative Content-Length")
            body = await self.read_exactly(length) if length else b""
            if body is None:
                return None
            request.body = body
        return request

    async def _read_chunked(self) -> bytes:
        parts = []
        while True:
            size_line = await self.read_until(b"\r\n")
            if size_line is None:
                raise BadRequest("body ended early")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while await self.read_until(b"\r\n") not in (b"\r\n", None):
                    pass  # trailers
                return b"".join(parts)
            data = await self.read_exactly(size + 2)
            if data is None:
                raise BadRequest("body ended early")
            parts.append(data[:-2])

    # ---- writing -----------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Send ``data`` now (frames are small and must leave at once); ClientGone if the client
        hung up."""
        if self.gone.done() or self.transport is None or self.transport.is_closing():
            raise ClientGone
        self.transport.write(data)
        if self._drain is not None:
            await self._drain
            if self.gone.done():
                raise ClientGone

    async def sleep(self, seconds: float) -> None:
        """Wait; ClientGone at once if the client hangs up meanwhile."""
        if self.gone.done():
            raise ClientGone
        if seconds > 0:
            await asyncio.wait([self.gone], timeout=seconds)
            if self.gone.done():
                raise ClientGone

    async def send_head(self, status: int, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        await self.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        head = {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}
        await self.send_head(status, head)
        if body:
            await self.write(body)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
