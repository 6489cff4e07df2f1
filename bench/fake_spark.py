"""A lightweight asyncio Spark stand-in for load: thousands of open streams in one thread.

``tests/spark_server.py`` is the faithful fake used by the tests; it runs a thread per connection
and polls every 0.1 s, which is fine for tests but not for 5,000 streams held for minutes. This one
speaks only the happy path of the streaming and non-streaming replies of spark-protocol.md:
``data:{json}`` frames (no space, as the documents print them), ``role`` on every chunk, ``usage``
on the last content chunk, ``data:[DONE]``; chunked framing with keep-alive.

Timing comes from the command line, or per request from directives in the last user message
(``[[delay:S]]``, ``[[tokens:N]]``, ``[[interval:S]]``), as with the test server.

    python -m bench.fake_spark --port 0 --first-token-delay 0.5 --token-interval 0.05 --tokens 40

prints ``http://127.0.0.1:PORT/v1`` (the base URL) on its first line, then serves until killed.
``GET /stats`` answers ``{"open": n, "max_open": n, "served": n}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import resource
import signal
import sys
import time
from typing import Any

_DIRECTIVE = re.compile(r"\[\[(delay|tokens|interval):([0-9.]+)\]\]")
_ids = itertools.count(1)


class Stats:
    open = 0
    max_open = 0
    served = 0


def _plan(body: dict[str, Any], args: argparse.Namespace) -> tuple[float, int, float]:
    delay, tokens, interval = args.first_token_delay, args.tokens, args.token_interval
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user and isinstance(last_user.get("content"), str):
        for name, value in _DIRECTIVE.findall(last_user["content"]):
            if name == "delay":
                delay = float(value)
            elif name == "tokens":
                tokens = max(1, int(float(value)))
            else:
                interval = float(value)
    return delay, tokens, interval


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def _frame(sid: str, content: str, usage: dict[str, int] | None = None) -> bytes:
    payload: dict[str, Any] = {
        "code": 0,
        "message": "Success",
        "sid": sid,
        "id": sid,
        "created": int(time.time()),
        "choices": [{"delta": {"role": "assistant", "content": content}, "index": 0}],
    }
    if usage is not None:
        payload["usage"] = usage
    return (
        b"data:" + json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


async def _send_json(writer: asyncio.StreamWriter, status: bytes, data: bytes) -> None:
    writer.write(
        b"HTTP/1.1 %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
        % (status, len(data), data)
    )
    await writer.drain()


async def _handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, args: argparse.Namespace
) -> None:
    try:
        while True:
            request = await _read_request(reader)
            if request is None:
                return
            method, path, headers, raw = request
            if method == "GET" and path == "/stats":
                data = json.dumps(
                    {"open": Stats.open, "max_open": Stats.max_open, "served": Stats.served}
                ).encode()
                await _send_json(writer, b"200 OK", data)
                continue
            if method != "POST" or not path.endswith("/chat/completions"):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                continue
            if not headers.get("authorization", "").startswith("Bearer "):
                data = (
                    b'{"error":{"message":"invalid user","type":"api_error",'
                    b'"param":null,"code":null}}'
                )
                await _send_json(writer, b"401 Unauthorized", data)
                continue
            body = json.loads(raw or b"{}")
            delay, tokens, interval = _plan(body, args)
            sid = f"cha000b{next(_ids):08d}@bench"
            usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens}
            Stats.served += 1
            if not body.get("stream"):
                await asyncio.sleep(delay + interval * max(tokens - 1, 0))
                data = json.dumps(
                    {
                        "code": 0,
                        "message": "Success",
                        "sid": sid,
                        "choices": [
                            {
                                "message": {"role": "assistant", "content": "tok " * tokens},
                                "index": 0,
                            }
                        ],
                        "usage": usage,
                    }
                ).encode()
                await _send_json(writer, b"200 OK", data)
                continue
            Stats.open += 1
            Stats.max_open = max(Stats.max_open, Stats.open)
            try:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Cache-Control: no-cache\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                await writer.drain()
                await asyncio.sleep(delay)
                for index in range(tokens):
                    if index:
                        await asyncio.sleep(interval)
                    last = index == tokens - 1
                    writer.write(_chunk(_frame(sid, f"tok{index} ", usage if last else None)))
                    await writer.drain()
                writer.write(_chunk(b"data:[DONE]\n\n") + b"0\r\n\r\n")
                await writer.drain()
            finally:
                Stats.open -= 1
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def _main(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(
        lambda r, w: _handle(r, w, args), "127.0.0.1", args.port, backlog=8192, limit=1 << 20
    )
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-delay", type=float, default=0.5)
    parser.add_argument("--token-interval", type=float, default=0.05)
    parser.add_argument("--tokens", type=int, default=30)
    args = parser.parse_args(argv)
    raise_nofile()
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
