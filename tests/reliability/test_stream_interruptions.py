"""Streams cut short on our side: the client goes away, a worker is SIGKILLed, the server dies.

Nothing may stay ``streaming``: the text received so far is kept as ``interrupted``, the upstream
connection is closed, and the conversation accepts its next message.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import SPARK_KEY
from tests.support.servers import ChatsiteServer

from .faulty_spark import FaultySpark
from .live import LiveApi, db_rows, live_server, wait_until

pytestmark = pytest.mark.slow  # gunicorn and Spark processes


class RawStream:
    """A reply stream read from a bare socket, so the test decides exactly when it hangs up."""

    def __init__(self, base_url: str, token: str, conversation_id: str, content: str) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        body = json.dumps({"content": content, "stream": True})
        self.connection.request(
            "POST",
            f"/api/conversations/{conversation_id}/messages/",
            body=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "text/event-stream",
            },
        )
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        self.buffer = b""
        self.frames: list[tuple[str, dict[str, Any]]] = []

    def read_until(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.frames):
            assert time.monotonic() < deadline, self.frames
            data = self.response.read1(65536)
            if not data:
                return
            self.buffer += data
            *blocks, self.buffer = self.buffer.split(b"\n\n")
            for block in blocks:
                lines = block.decode().split("\n")
                event = next((line[7:] for line in lines if line.startswith("event: ")), "")
                data_lines = [line[6:] for line in lines if line.startswith("data: ")]
                if event and data_lines:
                    self.frames.append((event, json.loads("\n".join(data_lines))))

    def deltas(self) -> str:
        return "".join(data["content"] for kind, data in self.frames if kind == "delta")

    def hang_up(self) -> None:
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()


def _deltas_at_least(count: int) -> Any:
    return lambda frames: sum(1 for kind, _ in frames if kind == "delta") >= count


def _reply(api: LiveApi, conversation_id: str) -> dict[str, Any]:
    return api.messages(conversation_id)[-1]


def _reply_settled(api: LiveApi, conversation_id: str) -> Any:
    def check() -> dict[str, Any] | None:
        try:
            reply = _reply(api, conversation_id)
        except requests.ConnectionError:
            # A keep-alive connection (or one still queued) on a worker that was just killed is
            # reset; a client asks again, as this check does on its next round.
            return None
        return reply if reply["status"] != "streaming" else None

    return check


def test_client_disconnect_mid_stream_saves_partial_text_and_closes_upstream(
    upstream: FaultySpark, site: ChatsiteServer, alice: LiveApi
) -> None:
    upstream.fail_next(tokens=400, token_interval=0.05)
    conversation_id = alice.conversation()
    stream = RawStream(site.url, alice.access, conversation_id, "write a long story")
    stream.read_until(_deltas_at_least(3))
    received = stream.deltas()
    hung_up = time.monotonic()
    stream.hang_up()

    reply = wait_until(_reply_settled(alice, conversation_id), timeout=5)
    assert reply, "the reply stayed 'streaming' after the client left"
    assert time.monotonic() - hung_up < 5
    assert reply["status"] == "interrupted"
    assert reply["error_code"] == "client_disconnected"
    # Everything the client saw is kept, and at most the few chunks in flight beyond it.
    assert reply["content"].startswith(received)
    assert len(reply["content"]) < len("Echo: write a long story") * 400
    # The upstream connection was closed, not read to the end.
    assert wait_until(lambda: upstream.closed_early >= 1, timeout=5)
    assert upstream.wait_idle(5)

    response = alice.send(conversation_id, "are you there?")
    assert response.status_code == 201, response.text
    # The interrupted text is part of the history sent with the next question.
    sent = upstream.requests[-1]["json"]["messages"]
    assert any(m["role"] == "assistant" and m["content"] == reply["content"].strip() for m in sent)


def test_client_disconnect_while_model_thinks_is_noticed_within_seconds(
    upstream: FaultySpark, site: ChatsiteServer, alice: LiveApi
) -> None:
    # No text for 20 s and keep-alives at the default 15 s: the server probes gunicorn's client
    # socket every idle second, so the hang-up is noticed long before any write could fail.
    with live_server(
        spark_url=upstream.url,
        spark_key=SPARK_KEY,
        workers=1,
        database_url=site.database_url,
        migrate=False,
        env={"STREAM_KEEPALIVE_SECONDS": "15"},
    ) as server:
        upstream.fail_next(first_token_delay=20)
        with LiveApi(server.url, alice.username, register=False) as api:
            api.login()
            conversation_id = api.conversation()
            stream = RawStream(server.url, api.access, conversation_id, "think hard")
            stream.read_until(lambda frames: bool(frames))  # the "start" frame
            hung_up = time.monotonic()
            stream.hang_up()
            reply = wait_until(_reply_settled(api, conversation_id), timeout=5)
            assert reply
            assert reply["status"] == "interrupted"
            assert reply["content"] == ""
            assert time.monotonic() - hung_up < 5
            assert wait_until(lambda: upstream.closed_early >= 1, timeout=5)


@pytest.fixture
def killable(faulty_spark: FaultySpark, site: ChatsiteServer) -> Iterator[ChatsiteServer]:
    """Its own gunicorn (same database), since its workers get killed."""
    with live_server(
        spark_url=faulty_spark.url,
        spark_key=SPARK_KEY,
        workers=2,
        database_url=site.database_url,
        migrate=False,
    ) as server:
        yield server


def _streaming_worker(server: ChatsiteServer, message_id: str) -> int:
    (worker,) = db_rows(
        server,
        "SELECT worker FROM conversations_message WHERE id = ?",
        (message_id.replace("-", ""),),
    )[0]
    host, pid, *start = worker.split(":")  # host:pid:start-time
    assert host == socket.gethostname(), worker
    assert len(start) == 1, worker
    assert start[0].isdigit(), worker
    return int(pid)


def test_worker_sigkilled_mid_stream_reply_is_marked_interrupted(
    upstream: FaultySpark, killable: ChatsiteServer, alice: LiveApi
) -> None:
    with LiveApi(killable.url, alice.username, register=False) as api:
        api.login()
        upstream.fail_next(tokens=400, token_interval=0.05)
        conversation_id = api.conversation()
        stream = RawStream(killable.url, api.access, conversation_id, "a long story")
        stream.read_until(_deltas_at_least(3))
        message_id = stream.frames[0][1]["assistant_message"]["id"]
        pid = _streaming_worker(killable, message_id)
        assert pid in killable.worker_pids()

        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        api.session.close()  # its keep-alive connection may have been to the killed worker
        # gunicorn's master reaps the worker; its child_exit hook settles the worker's replies.
        reply = wait_until(_reply_settled(api, conversation_id), timeout=10)
        assert reply, "the reply stayed 'streaming' after its worker was killed"
        assert time.monotonic() - killed < 10
        assert reply["status"] == "interrupted"
        assert reply["error_code"] == "worker_lost"
        assert wait_until(lambda: "1 reply(ies) marked interrupted" in killable.log(), timeout=5)
        # The dead process's upstream socket was closed by the kernel.
        assert wait_until(lambda: upstream.closed_early >= 1, timeout=5)
        stream.hang_up()

        # A replacement worker took over and the conversation goes on.
        assert wait_until(
            lambda: len(killable.worker_pids()) == 2 and pid not in killable.worker_pids()
        )
        for _ in range(6):  # over new connections, so both workers answer
            with LiveApi(killable.url, alice.username, register=False) as other:
                other.session.headers["Authorization"] = f"Bearer {api.access}"
                assert other.get("/api/auth/me/").status_code == 200
        response = api.send(conversation_id, "still there?")
        assert response.status_code == 201, response.text
    # The master imported nothing that gevent must patch: the replacement worker is as sound as
    # the first ones (its urllib3 would otherwise keep a blocking SSLContext for HTTPS to Spark).
    assert "MonkeyPatchWarning" not in killable.log()
    time.sleep(1)  # let the replacement finish booting: a worker still booting misses SIGTERM


def test_whole_server_killed_mid_stream_reply_recovered_on_next_request(
    faulty_spark: FaultySpark, upstream: FaultySpark, site: ChatsiteServer, alice: LiveApi
) -> None:
    """A power cut: master and workers SIGKILLed, so no child_exit hook runs. The next server
    settles the dead worker's reply when that conversation is next used."""
    server = live_server(
        spark_url=faulty_spark.url,
        spark_key=SPARK_KEY,
        workers=1,
        database_url=site.database_url,
        migrate=False,
    ).start()
    try:
        with LiveApi(server.url, alice.username, register=False) as api:
            api.login()
            upstream.fail_next(tokens=400, token_interval=0.05)
            conversation_id = api.conversation()
            stream = RawStream(server.url, api.access, conversation_id, "a long story")
            stream.read_until(_deltas_at_least(3))
            workers = server.worker_pids()
            for pid in [*workers, server.process.pid]:  # type: ignore[union-attr]
                os.kill(pid, signal.SIGKILL)
            server.process.wait(10)  # type: ignore[union-attr]
            stream.hang_up()
    finally:
        server.stop()
    # The orphaned worker is reaped by init; until then it is a zombie and its pid still exists
    # (a known limit: recovery takes an existing pid for a live worker; see docs/reliability.md).
    if not wait_until(
        lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), timeout=30
    ):
        pytest.skip("init did not reap the orphaned worker within 30 s")
    # The reply is still "streaming" in the database: nothing got to settle it.
    assert _reply(alice, conversation_id)["status"] == "streaming"

    # On the surviving server, the next message finds the dead worker's reply and settles it
    # instead of refusing with 409 "reply in progress".
    response = alice.send(conversation_id, "hello again")
    assert response.status_code == 201, response.text
    messages = alice.messages(conversation_id)
    assert [m["status"] for m in messages] == ["complete", "interrupted", "complete", "complete"]
    assert messages[1]["error_code"] == "worker_lost"
