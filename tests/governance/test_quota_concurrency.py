"""Twenty simultaneous sends by one user at the edge of the limit, across two gunicorn workers, on
SQLite and PostgreSQL: the holds are taken inside the turn's transaction, which serialises one
user's sends, so no more replies start than the limit allows (docs/governance.md, "Quotas")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.live import LiveApi
from tests.spark_server import SparkServer
from tests.support.servers import ChatsiteServer
from tests.support.services import PostgresCluster, missing_binaries

pytestmark = pytest.mark.slow

SENDS = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    if "postgresql" in " ".join(missing_binaries()):
        pytest.skip("PostgreSQL is not installed")
    with PostgresCluster() as cluster:
        yield cluster.url


def _burst(site: ChatsiteServer) -> tuple[LiveApi, list[int], list[str]]:
    user = LiveApi(site.url)
    conversations = [user.conversation() for _ in range(SENDS)]
    barrier = threading.Barrier(SENDS)

    def send(conversation_id: str) -> int:
        with LiveApi(site.url, user.username, register=False) as client:
            client.session.headers["Authorization"] = f"Bearer {user.access}"
            barrier.wait(timeout=30)
            # Each reply streams for about a second: every send arrives while the others hold.
            return client.send(
                conversation_id, "a question [[tokens:10]] [[interval:0.1]]"
            ).status_code

    with ThreadPoolExecutor(max_workers=SENDS) as pool:
        statuses = list(pool.map(send, conversations))
    return user, statuses, conversations


@pytest.mark.parametrize(("limit", "value"), [("QUOTA_DAILY_MESSAGES", 5)])
def test_twenty_simultaneous_sends_never_pass_the_message_limit(
    spark_server: SparkServer, database_url: str | None, limit: str, value: int
) -> None:
    spark_server.reset()
    env = {limit: str(value), "CHAT_RATE_LIMIT": "1000/m"}
    with ChatsiteServer(
        spark_url=spark_server.url, workers=2, database_url=database_url, env=env
    ) as site:
        user, statuses, _ = _burst(site)
        usage = user.get("/api/usage/").json()
    assert statuses.count(201) == value, statuses
    assert statuses.count(429) == SENDS - value, statuses
    assert usage["day"]["used"]["messages"] == value
    user.session.close()


def test_twenty_simultaneous_sends_overspend_tokens_by_at_most_one_estimate(
    spark_server: SparkServer, database_url: str | None
) -> None:
    spark_server.reset()
    limit = 6000  # Spark Lite holds up to 4096 tokens a reply: one full hold, then a lowered one
    env = {"QUOTA_DAILY_TOKENS": str(limit), "CHAT_RATE_LIMIT": "1000/m"}
    with ChatsiteServer(
        spark_url=spark_server.url, workers=2, database_url=database_url, env=env
    ) as site:
        user, statuses, conversations = _burst(site)
        usage = user.get("/api/usage/").json()
        replies = [
            m
            for conversation_id in conversations
            for m in user.messages(conversation_id)
            if m["role"] == "assistant"
        ]
    accepted = statuses.count(201)
    assert 1 <= accepted < SENDS, statuses
    assert set(statuses) <= {201, 429}, statuses
    charged = usage["day"]["used"]["tokens"]
    biggest = max(m["usage"]["total_tokens"] for m in replies if m["usage"])
    assert charged <= limit + biggest
    user.session.close()
