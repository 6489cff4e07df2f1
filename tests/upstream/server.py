"""The loopback stand-in for an LLM provider's chat API, on asyncio.

One event loop (in a background thread when used from tests, or the whole process with the command
line) holds every connection, so thousands of slow streams cost a timer each, not a thread.
``UpstreamServer`` does the HTTP, the timing, the faults and the bookkeeping tests read; its
``Dialect`` (dialects.py) renders what the provider would say. One server speaks one dialect at
its base path, or several, each under a path prefix named after it (``/deepseek/v1``,
``/glm/api/paas/v4``...; ``base_url(name)``). ``SparkServer`` is the one with the Spark dialect
(docs/spark-protocol.md); ``MultiDialectServer`` the one with every dialect.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Self
from urllib.parse import urlsplit

from .dialects import (
    ALL_DIALECTS,
    Dialect,
    OpenAIDialect,
    Rejection,
    SparkDialect,
    Turn,
    make_dialect,
)
from .plan import ERROR_CLASSES, FRAMINGS, Plan, parse_directives, split_tokens
from .wire import BadRequest, ClientGone, Connection, HTTPRequest

__all__ = ["MultiDialectServer", "SparkServer", "UpstreamServer", "main"]

STATS_PATH = "/_stats"  # not part of any provider's API: counters for benchmarks


class UpstreamServer:
    """A stand-in provider: ``url`` is the base (``http://127.0.0.1:PORT/v1``).

    ``dialect=`` one ``Dialect``, served at its own base path; or ``dialects=`` several (names
    or instances, e.g. ``ALL_DIALECTS``), each under ``/<name>``: then ``url`` is the origin
    (``http://127.0.0.1:PORT``) and ``base_url(name)`` the base the product is given for one
    (``.../deepseek/v1``). ``passwords`` is, with one dialect, ``{model or "*": key}``; with
    several, ``{dialect name or "*": {model or "*": key}}`` (a dialect not listed accepts any
    non-empty Bearer key; Ollama and vLLM, no key at all).

    Behaviour attributes (``first_token_delay``, ``token_interval``, ``tokens``, ``reply``,
    ``data_space``, ``framing``, ``passwords``, ``require_alternation``) may be changed at any
    time and apply to the next request; ``reset()`` restores the constructor's values.
    Per request, ``[[directives]]`` in the last user message (plan.py) override them, and
    ``fail_next(**plan_fields)`` arms overrides for the next chat request only.

    What tests read: ``requests`` (every request as received, before any check: method, path,
    headers, json, body, authorization, sid, client, dialect: the name of the dialect that
    answered, None for a path no dialect serves), ``active_streams``, ``closed_early``,
    ``max_active_streams``, ``served``, ``wait_idle()``.

    Extension points: ``dialect`` (another provider's shapes) and ``make_plan()`` (override it to
    decide a request's plan from what was sent).
    """

    def __init__(
        self,
        *,
        dialect: Dialect | None = None,
        dialects: Iterable[str | Dialect] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        passwords: dict[str, Any] | None = None,
        first_token_delay: float = 0.0,
        token_interval: float = 0.0,
        tokens: int | None = None,
        reply: str | None = None,
        data_space: bool = False,
        framing: str = "chunked",
        record: bool = True,
        backlog: int = 8192,
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, not {framing!r}")
        if (dialect is None) == (dialects is None):
            raise ValueError("give either dialect= or dialects=")
        # Prefixed: several dialects on one port, each under /<name>.
        self.prefixed = dialects is not None
        chosen: list[str | Dialect] = [dialect] if dialect is not None else list(dialects or ())
        self.dialects: dict[str, Dialect] = {}
        for item in chosen:
            instance = make_dialect(item) if isinstance(item, str) else item
            self.dialects[instance.name] = instance
        if not self.dialects:
            raise ValueError("no dialect to serve")
        self.dialect = next(iter(self.dialects.values()))  # the one (or the first) dialect
        self._unrouted = OpenAIDialect()  # answers the 404 for a prefix no dialect has
        self._defaults: dict[str, Any] = {
            "passwords": copy.deepcopy(passwords),
            "first_token_delay": first_token_delay,
            "token_interval": token_interval,
            "tokens": tokens,
            "reply": reply,
            "data_space": data_space,
            "framing": framing,
            "require_alternation": False,
        }
        self.passwords: dict[str, Any] | None = None
        self.first_token_delay = 0.0
        self.token_interval = 0.0
        self.tokens: int | None = None
        self.reply: str | None = None
        self.data_space = False
        self.framing = "chunked"
        self.require_alternation = False  # two user (or assistant) turns in a row: invalid data
        self._restore_defaults()
        self.record = record  # keep ``requests`` (the command line does not: nobody reads them)
        self.verbose = False  # one line per request on stderr

        self.requests: list[dict[str, Any]] = []
        self._armed: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._active_streams = 0
        self._closed_early = 0
        self.max_active_streams = 0
        self.served = 0  # chat requests answered (or cut short) with a reply
        self._connections: set[Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

        # Bound and listening at once, so that ``url`` is known before start().
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self._socket.listen(backlog)
        self._backlog = backlog
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        # Compares, does not bind: a wildcard bind is reached through loopback.
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host  # noqa: S104
        self.origin = f"http://{url_host}:{self.port}"
        self.url = self.origin if self.prefixed else self.origin + self.dialect.base_path

    def base_url(self, name: str) -> str:
        """The base URL the product is given for dialect ``name`` (it appends
        ``/chat/completions``)."""
        if name not in self.dialects:
            raise KeyError(f"this server does not speak {name!r}")
        if not self.prefixed:
            return self.url
        return f"{self.origin}/{name}{self.dialects[name].base_path}"

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve from an event loop in a background thread."""
        if self._stopping:
            raise RuntimeError("a stopped server cannot be restarted")
        if self._thread is None:
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name=f"upstream-{self.port}", daemon=True
            )
            self._thread.start()
            ready.wait(10)
        return self

    def _run(self, ready: threading.Event) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            loop.create_server(self._protocol, sock=self._socket, backlog=self._backlog)
        )
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _protocol(self) -> Connection:
        return Connection(self._serve_connection)

    def stop(self) -> None:
        """Stop serving; quick even with streams in progress or stalled (they are cut)."""
        if self._stopping:
            return
        self._stopping = True
        loop = self._loop
        if loop is None or self._thread is None:
            self._socket.close()
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(timeout=5)

    async def _shutdown(self) -> None:
        self._socket.close()
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
            if connection.task is not None:
                connection.task.cancel()
        tasks = [c.task for c in connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- state for tests -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget recorded requests, counters and armed faults; restore constructor behaviour."""
        with self._lock:
            self.requests.clear()
            self._armed.clear()
            self._closed_early = 0
        self._restore_defaults()

    def _restore_defaults(self) -> None:
        for name, value in self._defaults.items():
            setattr(self, name, copy.deepcopy(value))  # passwords may nest a dict per dialect

    def fail_next(self, **plan_fields: Any) -> None:
        """Apply ``plan_fields`` (``Plan`` fields: upstream, inband, midstream, drop, stall,
        tokens, token_interval...) to the next chat request that passes the checks, only.

        For faults that must not show in the conversation's text, unlike a ``[[directive]]``."""
        Plan().override(**plan_fields)  # unknown names fail here, in the test, not later
        if plan_fields.get("error") not in (None, *ERROR_CLASSES):
            raise ValueError(f"error must be one of {ERROR_CLASSES}")
        with self._lock:
            self._armed.append(plan_fields)

    @property
    def active_streams(self) -> int:
        """Streaming responses in progress (including their first-token delay)."""
        return self._active_streams

    @property
    def closed_early(self) -> int:
        """Streams whose client disconnected before the end."""
        return self._closed_early

    def wait_idle(self, timeout: float = 2.0) -> bool:
        """Wait until no stream is in progress; True if that happened in time."""
        deadline = time.monotonic() + timeout
        while self._active_streams:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stats(self) -> dict[str, int]:
        return {
            "open": self._active_streams,
            "max_open": self.max_active_streams,
            "served": self.served,
            "closed_early": self._closed_early,
        }

    def make_plan(self, request: dict[str, Any]) -> Plan:
        """The plan for a chat request that passed the checks, before its directives: the
        attributes, then what ``fail_next()`` armed. ``request`` is as in ``requests``."""
        plan = Plan(
            first_token_delay=float(self.first_token_delay or 0.0),
            token_interval=float(self.token_interval or 0.0),
            tokens=self.tokens,
            reply=self.reply,
            data_space=bool(self.data_space),
            framing=self.framing if self.framing in FRAMINGS else "chunked",
        )
        with self._lock:
            armed = self._armed.pop(0) if self._armed else {}
        return plan.override(**armed)

    def _route(self, path: str) -> tuple[Dialect | None, str]:
        """The dialect that serves ``path`` (None: none) and the path as that dialect sees it."""
        if not self.prefixed:
            return self.dialect, path
        name, _, rest = path.removeprefix("/").partition("/")
        return self.dialects.get(name), "/" + rest

    def _passwords_for(self, name: str) -> dict[str, str] | None:
        if not self.prefixed or self.passwords is None:
            return self.passwords
        return self.passwords.get(name, self.passwords.get("*"))

    # ---- serving ---------------------------------------------------------------------------

    async def _serve_connection(self, connection: Connection) -> None:
        self._connections.add(connection)
        try:
            while not self._stopping:
                try:
                    request = await connection.read_request()
                except BadRequest as exc:
                    body = Dialect.dumps({"error": {"message": str(exc), "code": None}})
                    await connection.send(400, body, "application/json", {"Connection": "close"})
                    return
                if request is None:
                    return
                keep = await self._answer(connection, request)
                if not (keep and request.keep_alive):
                    return
        except ClientGone:
            pass
        except Exception:  # noqa: BLE001 - a bug in the stand-in: say so, drop the connection
            if not self._stopping:
                traceback.print_exc()
        finally:
            self._connections.discard(connection)
            connection.close()

    async def _answer(self, connection: Connection, http: HTTPRequest) -> bool:
        """Answer one request; False when the connection must be closed afterwards."""
        if http.method == "GET" and http.target == STATS_PATH:
            await connection.send(200, Dialect.dumps(self.stats()), "application/json")
            return True
        routed, path = self._route(urlsplit(http.target).path)
        dialect = routed or self._unrouted
        sid = dialect.new_sid()
        try:
            body: Any = json.loads(http.body) if http.body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        request = {
            "method": http.method,
            "path": http.target,
            "headers": http.headers,
            "json": body,
            "authorization": http.headers.get("Authorization"),
            "body": http.body.decode("utf-8", "replace"),
            "sid": sid,
            # The client's (host, port): tells a reused connection from a new one.
            "client": http.client,
            "dialect": routed.name if routed is not None else None,
        }
        if self.record:
            with self._lock:
                self.requests.append(request)
        if self.verbose:
            print(f"{http.method} {http.target} {len(http.body)} bytes", file=sys.stderr)
        try:
            if routed is None or http.method != "POST" or path != dialect.chat_path:
                raise dialect.not_found()
            passwords = self._passwords_for(dialect.name)
            dialect.check_auth(http.headers.get("Authorization"), body, passwords)
            dialect.validate(body, require_alternation=self.require_alternation, sid=sid)
            plan = self.make_plan(request)
            try:
                question = parse_directives(
                    dialect.question(body),
                    plan,
                    inband_default=dialect.inband_default,
                    midstream_default=dialect.midstream_default,
                )
            except ValueError as exc:
                raise dialect.error("invalid", sid, f"bad directive: {exc}") from None
            if plan.error is not None:
                raise dialect.error(plan.error, sid, f"[[error:{plan.error}]]")
            if plan.upstream == "auth":
                raise dialect.auth_rejection("[[upstream:auth]]")
            if plan.upstream == "nonjson":
                raise dialect.nonjson_rejection()
            if plan.upstream is not None:
                code = int(plan.upstream)
                raise dialect.rejection(code, sid, f"[[upstream:{code}]]")
            prompt_tokens = dialect.prompt_tokens(body, sid)
        except Rejection as rejection:
            await self._reject(connection, dialect, rejection)
            return True
        text = plan.reply if plan.reply is not None else f"Echo: {question}"
        chunks = split_tokens(text, plan.tokens)
        # Reasoning only from a dialect whose models reason, and if the request did not say no.
        thinking = plan.reasoning is not None and dialect.thinking(body)
        reasoning = split_tokens(plan.reasoning or "") if thinking else []
        usage = dialect.usage(prompt_tokens, len(chunks) + len(reasoning))
        turn = Turn(sid, int(time.time()), body, usage)
        self.served += 1
        if body.get("stream") is True:
            return await self._stream(connection, dialect, turn, plan, chunks, reasoning)
        return await self._reply(connection, dialect, turn, plan, chunks, reasoning)

    async def _reject(self, connection: Connection, dialect: Dialect, rejection: Rejection) -> None:
        body = rejection.body
        data = body if isinstance(body, bytes) else Dialect.dumps(body)
        headers = {}
        if rejection.reason:
            reason = rejection.reason.encode("ascii", "replace").decode()
            headers[dialect.reason_header] = reason.replace("\r", " ").replace("\n", " ")
        await connection.send(rejection.status, data, rejection.content_type, headers)

    async def _reply(
        self,
        connection: Connection,
        dialect: Dialect,
        turn: Turn,
        plan: Plan,
        chunks: list[str],
        reasoning: list[str],
    ) -> bool:
        await connection.sleep(plan.first_token_delay)
        if plan.drop:
            return False  # hang up without any response
        if plan.stall is not None:
            await connection.sleep(plan.stall)
            return False
        code = plan.inband if plan.inband is not None else plan.midstream
        if code is not None:
            error = dialect.completion_error(turn, code)
            if isinstance(error, Rejection):
                await self._reject(connection, dialect, error)
                return True
            payload = error
        else:
            # [[finish:REASON]]: half the reply, ended with that reason.
            text = "".join(chunks[: len(chunks) // 2] if plan.finish else chunks)
            thought = "".join(reasoning) if reasoning else None
            payload = dialect.completion(turn, text, reasoning=thought, finish=plan.finish)
        data = dialect.completion_prefix(turn) + Dialect.dumps(payload)
        await connection.send(200, data, "application/json")
        return True

    async def _stream(
        self,
        connection: Connection,
        dialect: Dialect,
        turn: Turn,
        plan: Plan,
        chunks: list[str],
        reasoning: list[str],
    ) -> bool:
        """Server-sent events; True when the connection may serve another request."""
        chunked = plan.framing != "close"
        prefix = b"data: " if plan.data_space or dialect.data_space else b"data:"
        sent = 0  # events so far: every one after the first waits token_interval

        async def send(data: bytes, *, end: bool = False) -> None:
            if chunked:
                data = b"%x\r\n%b\r\n" % (len(data), data) if data else b""
                if end:
                    data += b"0\r\n\r\n"
            await connection.write(data)

        def event(payload: dict[str, Any] | str) -> bytes:
            data = payload.encode() if isinstance(payload, str) else dialect.dumps(payload)
            return prefix + data + b"\n\n"

        async def emit(payload: dict[str, Any], *, end: bool = False) -> None:
            nonlocal sent
            if sent:
                await connection.sleep(plan.token_interval)
            await send(event(payload), end=end)
            sent += 1

        head = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        # chunked: keep-alive. close: no length, no chunking; the body ends when we hang up.
        head.update({"Transfer-Encoding": "chunked"} if chunked else {"Connection": "close"})
        self._active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self._active_streams)
        try:
            await connection.send_head(200, head)
            preamble = dialect.stream_preamble(turn)
            if preamble:
                await send(preamble)
            await connection.sleep(plan.first_token_delay)
            if plan.comments:
                await send(b": ping\n\n\n")  # comments and blank lines are to be ignored
            if plan.inband is not None:
                # An in-band refusal as the first chunk; the stream ends without [DONE] (vLLM:
                # with it).
                return await self._stream_error(send, event, dialect, turn, plan.inband)
            search = dialect.search_chunk(turn) if plan.search else None
            if search is not None:
                await emit(search)
            for piece in reasoning:
                await emit(dialect.chunk(turn, reasoning=piece))
            count = len(chunks) // 2 if plan.cut_short else len(chunks)
            usage_sent = False
            for index in range(count):
                usage_sent = (
                    index == len(chunks) - 1
                    and dialect.usage_on_last_content
                    and not plan.usage_separate
                )
                await emit(
                    dialect.chunk(turn, chunks[index], usage=turn.usage if usage_sent else None)
                )
            if plan.midstream is not None:
                # An error in the 200, mid-stream, after some text (Spark: output moderation).
                await connection.sleep(plan.token_interval)
                return await self._stream_error(send, event, dialect, turn, plan.midstream)
            if plan.drop:
                return False  # no [DONE] and, when chunked, no terminating zero chunk
            if plan.stall is not None:
                await connection.sleep(plan.stall)
                return False
            # The finish chunk and usage, wherever the dialect puts them.
            for payload in dialect.closing(turn, plan.finish, usage_sent):
                await emit(payload)
            await send(event(dialect.done), end=True)
            return chunked
        except ClientGone:
            if not self._stopping:
                with self._lock:
                    self._closed_early += 1
            return False
        finally:
            self._active_streams -= 1

    @staticmethod
    async def _stream_error(
        send: Callable[..., Awaitable[None]],
        event: Callable[[dict[str, Any] | str], bytes],
        dialect: Dialect,
        turn: Turn,
        code: int,
    ) -> bool:
        """An error event ends the stream; vLLM follows it with [DONE]."""
        payload = event(dialect.chunk_error(turn, code))
        if dialect.done_after_error:
            payload += event(dialect.done)
        await send(payload, end=True)
        return False


class SparkServer(UpstreamServer):
    """The stand-in for iFlytek Spark's HTTP chat API (docs/spark-protocol.md)."""

    def __init__(self, *, dialect: Dialect | None = None, **kwargs: Any) -> None:
        super().__init__(dialect=dialect or SparkDialect(), **kwargs)


class MultiDialectServer(UpstreamServer):
    """Every dialect (or those named) on one port, each under ``/<name>``: ``base_url(name)``."""

    def __init__(self, *, dialects: Iterable[str | Dialect] = ALL_DIALECTS, **kwargs: Any) -> None:
        super().__init__(dialects=dialects, **kwargs)


# ---- command line ------------------------------------------------------------------------------


def _parse_passwords(values: list[str] | None, models: dict[str, int]) -> dict[str, str] | None:
    """``MODEL=PASSWORD`` or just ``PASSWORD`` (any model, key "*")."""
    if not values:
        return None
    passwords: dict[str, str] = {}
    for value in values:
        model, sep, password = value.partition("=")
        if sep and (model in models or model == "*"):
            passwords[model] = password
        else:
            passwords["*"] = value  # APIPasswords look like "key:secret" and may hold "="
    return passwords


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.spark_server",
        description="Serve a stand-in LLM chat API (iFlytek Spark unless --dialect) on loopback "
        f"until killed. Prints the base URL first; GET {STATS_PATH} answers the stream counters.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--first-token-delay", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--token-interval", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--tokens", type=int, default=None, help="chunks per streamed reply")
    parser.add_argument("--reply", default=None, help="fixed reply text (default: echo)")
    parser.add_argument("--data-space", action="store_true", help='send "data: " with a space')
    parser.add_argument("--framing", choices=FRAMINGS, default="chunked")
    parser.add_argument(
        "--password",
        action="append",
        metavar="[MODEL=]PASSWORD",
        help="expected APIPassword (repeatable); without MODEL= it applies to all",
    )
    parser.add_argument(
        "--dialect",
        action="append",
        choices=[*ALL_DIALECTS, "all"],
        metavar="NAME",
        help="the dialect to speak (default spark); repeated or 'all': several on one port, "
        "each under /NAME, and one 'NAME BASE_URL' line each after the first line",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    names = args.dialect or ["spark"]
    names = list(ALL_DIALECTS) if "all" in names else list(dict.fromkeys(names))

    # Thousands of open streams need as many descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    dialects = [make_dialect(name) for name in names]
    single = len(dialects) == 1
    passwords: dict[str, Any] | None = _parse_passwords(args.password, dialects[0].model_windows)
    if passwords is not None and not single:
        passwords = {"*": passwords}  # with several dialects the same keys apply to each
    server = UpstreamServer(
        dialect=dialects[0] if single else None,
        dialects=None if single else dialects,
        host=args.host,
        port=args.port,
        passwords=passwords,
        first_token_delay=args.first_token_delay,
        token_interval=args.token_interval,
        tokens=args.tokens,
        reply=args.reply,
        data_space=args.data_space,
        framing=args.framing,
        record=False,
    )
    server.verbose = args.verbose
    # SIGTERM (from a benchmark, say) exits through the finally block below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.start()
    print(server.url, flush=True)
    if server.prefixed:
        for name in server.dialects:
            print(name, server.base_url(name), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
