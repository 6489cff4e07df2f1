"""Helpers for fault and attack tests that go through real HTTP to gunicorn as shipped.

``LiveApi`` is a small client for one user on a running ``ChatsiteServer``; its ``stream()`` reads
a reply's server-sent events with tests/support/sse.py. Used by tests/reliability, tests/security
and tests/fuzz.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from tests.support.servers import ChatsiteServer
from tests.support.sse import parse_sse

PASSWORD = "correct-horse-battery-9"
_names = itertools.count(1)

# gunicorn's access log with the worker pid first ("<pid>"), to tell which process answered.
ACCESS_LOG_FORMAT = '%(p)s %(s)s "%(r)s"'


def live_server(
    *,
    spark_url: str,
    spark_key: str,
    workers: int = 2,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    migrate: bool = True,
) -> ChatsiteServer:
    """A gunicorn ChatsiteServer whose access log names the worker pid of every request."""
    server = ChatsiteServer(
        spark_url=spark_url,
        spark_key=spark_key,
        workers=workers,
        database_url=database_url,
        migrate=migrate,
        env={
            "LLM_READ_TIMEOUT": "2",
            "LLM_CONNECT_TIMEOUT": "2",
            "CHAT_RATE_LIMIT": "100000/m",
            "LOGIN_RATE_LIMIT": "100000/m",
            "REGISTER_RATE_LIMIT": "100000/m",
            **(env or {}),
        },
    )
    server.env["GUNICORN_ACCESSLOG"] = str(server.workdir / "access.log")
    server.env["GUNICORN_CMD_ARGS"] = f"--access-logformat '{ACCESS_LOG_FORMAT}'"
    return server


def access_log(server: ChatsiteServer) -> list[tuple[int, int, str]]:
    """(worker pid, status, request line) for every request the server has logged."""
    path = server.workdir / "access.log"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r'<?(\d+)>? (\d+) "(.*)"$', line)
        if match:
            rows.append((int(match.group(1)), int(match.group(2)), match.group(3)))
    return rows


def sqlite_path(server: ChatsiteServer) -> Path | None:
    if server.database_url.startswith("sqlite:///"):
        return Path(server.database_url.removeprefix("sqlite:///"))
    return None


def db_rows(
    server: ChatsiteServer, sql: str, params: tuple[Any, ...] = ()
) -> list[tuple[Any, ...]]:
    """Read the server's SQLite database directly (what is really saved, not what the API says)."""
    path = sqlite_path(server)
    assert path is not None, "db_rows needs the server's SQLite database"
    with sqlite3.connect(path, timeout=20) as db:
        return list(db.execute(sql, params))


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that, or the last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value


class LiveApi:
    """One user of a live server, authenticated with a JWT access token."""

    def __init__(
        self, base_url: str, username: str | None = None, *, register: bool = True
    ) -> None:
        self.base_url = base_url
        self.username = username or f"live{next(_names)}x{int(time.time() * 1000) % 10**8}"
        self.session = requests.Session()
        self.refresh = ""
        if register:
            response = self.session.post(
                f"{base_url}/api/auth/register/",
                json={"username": self.username, "password": PASSWORD},
                timeout=30,
            )
            assert response.status_code == 201, response.text
            self.login()

    def login(self) -> None:
        response = self.session.post(
            f"{self.base_url}/api/auth/token/",
            json={"username": self.username, "password": PASSWORD},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        tokens = response.json()
        self.refresh = tokens["refresh"]
        self.session.headers["Authorization"] = f"Bearer {tokens['access']}"

    def __enter__(self) -> LiveApi:
        return self

    def __exit__(self, *exc: object) -> None:
        # Close keep-alive connections, or a stopping gunicorn waits out its keep-alive timeout.
        self.session.close()

    @property
    def access(self) -> str:
        return str(self.session.headers["Authorization"]).removeprefix("Bearer ")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, payload: Any = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, json=payload, **kwargs)

    def conversation(self, **fields: Any) -> str:
        response = self.post("/api/conversations/", fields)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def send(self, conversation_id: str, content: str, **kwargs: Any) -> requests.Response:
        return self.post(
            f"/api/conversations/{conversation_id}/messages/",
            {"content": content, "stream": False},
            **kwargs,
        )

    def stream(
        self, conversation_id: str, content: str
    ) -> tuple[requests.Response, list[tuple[str, dict[str, Any]]]]:
        """Send a message with ``stream: true`` and read the whole stream."""
        response = self.post(
            f"/api/conversations/{conversation_id}/messages/",
            {"content": content, "stream": True},
            headers={"Accept": "text/event-stream"},
        )
        frames = (
            parse_sse(response.text)
            if "event-stream" in response.headers.get("Content-Type", "")
            else []
        )
        return response, frames

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        response = self.get(f"/api/conversations/{conversation_id}/messages/?limit=200")
        assert response.status_code == 200, response.text
        return list(response.json()["results"])
