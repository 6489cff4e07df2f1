"""50 replies streaming at once over two gunicorn worker processes on one SQLite file.

SQLite's DEFERRED transactions gave "database is locked" 500s under 20
concurrent streams; IMMEDIATE transactions, WAL and a busy timeout must give none.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.servers import ChatsiteServer

from .faulty_spark import FaultySpark
from .live import LiveApi, access_log, db_rows

STREAMS = 50
USERS = 5

pytestmark = pytest.mark.slow  # gunicorn and Spark processes


def test_50_concurrent_streams_over_two_workers_on_sqlite(
    upstream: FaultySpark, site: ChatsiteServer
) -> None:
    assert len(site.worker_pids()) >= 2
    users = [LiveApi(site.url) for _ in range(USERS)]
    upstream.tokens = 20
    upstream.token_interval = 0.05  # each reply streams for about a second
    # Which worker accepts each connection is the kernel's (and gevent's) choice: a burst can
    # land on one worker. Every round must pass; rounds repeat until two workers took streams.
    stream_workers: set[int] = set()
    for _ in range(3):
        stream_workers |= _round(upstream, site, users)
        if len(stream_workers) >= 2:
            break
    assert len(stream_workers) >= 2, "all streams of three rounds landed on one worker process"
    for user in users:
        user.session.close()


def _round(upstream: FaultySpark, site: ChatsiteServer, users: list[LiveApi]) -> set[int]:
    jobs = [
        (users[i % USERS], users[i % USERS].conversation(), f"question number {i} of the load")
        for i in range(STREAMS)
    ]
    log_before = len(site.log())
    access_before = len(access_log(site))

    barrier = threading.Barrier(STREAMS)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, upstream.active_streams)
            time.sleep(0.01)

    def run(job: tuple[LiveApi, str, str]) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        user, conversation_id, question = job
        # One connection per stream, as separate browsers would open.
        with LiveApi(site.url, user.username, register=False) as client:
            client.session.headers["Authorization"] = f"Bearer {user.access}"
            barrier.wait(timeout=30)
            response, frames = client.stream(conversation_id, question)
            return response.status_code, frames

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=STREAMS) as pool:
        results = list(pool.map(run, jobs))
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()

    for (_, _conversation_id, question), (status, frames) in zip(jobs, results, strict=True):
        assert status == 200
        assert [kind for kind, _ in frames][-1] == "done", frames[-1:]
        message = frames[-1][1]["message"]
        assert message["status"] == "complete"
        assert message["content"] == f"Echo: {question}"
        assert (
            "".join(data["content"] for kind, data in frames if kind == "delta")
            == message["content"]
        )
    # They really ran at the same time (about a second each, not fifty seconds in a row).
    assert peak >= STREAMS // 2, peak
    assert elapsed < 20, elapsed

    # Every message is saved: 50 questions and 50 complete replies, nothing left streaming.
    conversation_ids = tuple(conversation_id.replace("-", "") for _, conversation_id, _ in jobs)
    marks = ",".join("?" * len(conversation_ids))
    rows = db_rows(
        site,
        "SELECT role, status, COUNT(*) FROM conversations_message"  # noqa: S608 - only "?" marks are formatted in; the ids are parameters
        f" WHERE conversation_id IN ({marks})"
        " GROUP BY role, status ORDER BY role",
        conversation_ids,
    )
    assert rows == [("assistant", "complete", STREAMS), ("user", "complete", STREAMS)]

    log = site.log()[log_before:]
    assert "database is locked" not in log
    assert "Traceback" not in log
    requests_logged = access_log(site)[access_before:]
    assert not [row for row in requests_logged if row[1] >= 500]
    stream_workers = {pid for pid, _, line in requests_logged if "/messages/" in line}
    print(
        f"peak {peak} concurrent upstream streams, {elapsed:.1f} s, per worker:",
        {
            p: sum(1 for w, _, line in requests_logged if w == p and "/messages/" in line)
            for p in stream_workers
        },
    )
    return stream_workers
