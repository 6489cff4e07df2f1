"""Server-sent events: a reply's frames on the wire (docs/architecture.md, "Streaming").

``event: <type>\\ndata: <compact JSON>\\n\\n`` frames; a ``: keepalive`` comment after
``STREAM_KEEPALIVE_SECONDS`` without a frame, so proxies and clients do not time the stream out
while the model thinks; and, where the server exposes the client's socket (gunicorn), a check
every idle second that the client is still there, so a client that hangs up while the model
thinks is noticed in about a second and its reply saved as ``interrupted``.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse

from ..replies import Reply

KEEPALIVE_FRAME = b": keepalive\n\n"
CONTENT_TYPE = "text/event-stream; charset=utf-8"


def frame(event: str, data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


def response(reply: Reply, environ: dict[str, Any]) -> StreamingHttpResponse:
    """The streamed answer to a send or a regenerate."""
    streamed = StreamingHttpResponse(
        _frames(reply, client_gone=_client_gone_probe(environ)), content_type=CONTENT_TYPE
    )
    streamed["Cache-Control"] = "no-cache"
    streamed["X-Accel-Buffering"] = "no"  # nginx: pass each frame on at once
    return streamed


def _frames(reply: Reply, *, client_gone: Callable[[], bool] | None) -> Iterator[bytes]:
    keepalive = float(settings.STREAM_KEEPALIVE_SECONDS)
    idle = min(1.0, keepalive) if client_gone is not None else keepalive
    yield frame("start", reply.start_data())
    last_sent = time.monotonic()
    # Returning (or the server closing this generator) closes ``events``, which saves the reply.
    for event in reply.events(idle_seconds=idle):
        if event is None:
            if client_gone is not None and client_gone():
                return
            if time.monotonic() - last_sent >= keepalive - 0.01:
                last_sent = time.monotonic()
                yield KEEPALIVE_FRAME
            continue
        last_sent = time.monotonic()
        yield frame(event.kind, event.data)


def _unpatched_poll() -> Callable[[], Any]:
    try:
        from gevent.monkey import get_original

        # A zero-timeout check needs no greenlet switch: the original poll() will do.
        return get_original("select", "poll")
    except ImportError:
        return select.poll


def _client_gone_probe(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """A check that the client closed its connection, where the server exposes the socket.

    gunicorn puts the client socket in the WSGI environ. A closed connection reads as end-of-file;
    pending bytes (a pipelined request) do not count as gone. ``poll()``, not ``select()``:
    a worker holding thousands of streams has descriptors past select's limit of 1024.
    """
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None
    make_poller = _unpatched_poll()

    def gone() -> bool:
        try:
            poller = make_poller()
            poller.register(sock.fileno(), select.POLLIN)
            if not poller.poll(0):
                return False
            return bool(sock.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    return gone
