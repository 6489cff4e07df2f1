"""Fixtures for fault tests: chatsite under gunicorn (as shipped) talking to a loopback Spark."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import SPARK_KEY
from tests.support.servers import ChatsiteServer

from .faulty_spark import FaultySpark
from .live import LiveApi, live_server


@pytest.fixture(scope="session")
def faulty_spark(spark_server: FaultySpark) -> FaultySpark:
    """The session's Spark stand-in; these tests arm faults with its ``fail_next()``."""
    return spark_server


@pytest.fixture(scope="session")
def site(faulty_spark: FaultySpark) -> Iterator[ChatsiteServer]:
    """gunicorn with 2 gevent workers on a fresh SQLite file; upstream read timeout 3 s and
    keep-alive comments every 0.5 s so that the timing faults stay short."""
    server = live_server(
        spark_url=faulty_spark.url,
        spark_key=SPARK_KEY,
        workers=2,
        env={"STREAM_KEEPALIVE_SECONDS": "0.5", "LLM_READ_TIMEOUT": "3"},
    )
    with server:
        yield server


@pytest.fixture
def upstream(faulty_spark: FaultySpark) -> Iterator[FaultySpark]:
    """The Spark server, reset (counters and armed faults included) for this test."""
    faulty_spark.reset()
    yield faulty_spark
    faulty_spark.wait_idle(5.0)
    faulty_spark.reset()


@pytest.fixture(scope="session")
def alice(site: ChatsiteServer) -> Iterator[LiveApi]:
    client = LiveApi(site.url)
    yield client
    client.session.close()
