"""Fixtures for attack tests through real HTTP: gunicorn as shipped, with a canary Spark key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.reliability.faulty_spark import FaultySpark
from tests.reliability.live import PASSWORD, live_server
from tests.support.servers import ChatsiteServer

# A key nobody else uses, so that finding it anywhere it should not be is unambiguous.
CANARY_KEY = "canary7f3e1c:Zq8vN3pX7tL2rK5wJ9hB"


@pytest.fixture(scope="session")
def canary_spark() -> Iterator[FaultySpark]:
    with FaultySpark(passwords={"*": CANARY_KEY}) as server:
        yield server


@pytest.fixture(scope="session")
def guarded(canary_spark: FaultySpark) -> Iterator[ChatsiteServer]:
    """gunicorn (2 workers, SQLite, DEBUG off) holding the canary key; logging at DEBUG."""
    server = live_server(
        spark_url=canary_spark.url,
        spark_key=CANARY_KEY,
        workers=2,
        env={"LOG_LEVEL": "DEBUG", "GUNICORN_LOGLEVEL": "debug"},
    )
    with server:
        yield server


def browser_login(
    server: ChatsiteServer, username: str, password: str = PASSWORD
) -> requests.Session:
    """A browser-like session signed in through the sign-in form (CSRF included)."""
    browser = requests.Session()
    browser.get(f"{server.url}/accounts/login/", timeout=10)
    response = browser.post(
        f"{server.url}/accounts/login/",
        timeout=10,
        allow_redirects=False,
        data={
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
            "username": username,
            "password": password,
        },
    )
    assert response.status_code == 302, response.text[:300]
    return browser
