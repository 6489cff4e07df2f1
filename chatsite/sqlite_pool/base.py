"""Django's SQLite backend for gevent workers: pooled connections, lock waits that yield.

Pooled connections. Every request closes its connection (no stream holds one while it waits on
the model: docs/architecture.md, "The reply flow"), and a new SQLite connection costs about 0.8 ms
of CPU (open, PRAGMAs, Django's SQL functions registered): two per reply, one per API call. Here
``close()`` puts a clean connection back in a small per-process list and the next ``connect()``
takes it. Only a connection outside any transaction, that saw no error, is kept; a forked child
never inherits its parent's.

Lock waits that yield. SQLite's own busy handler waits for another process's write lock by
sleeping in C, where gevent cannot switch to another greenlet: the whole gevent worker, every
stream it holds, stops for up to the busy timeout's growing steps. Here SQLite waits at most
``C_LOCK_WAIT`` itself; after that a statement refused with "database is locked" is retried after
``time.sleep`` (which gevent makes a yield), with growing pauses, until the configured ``timeout``
(20 s). A refused statement did nothing, so retrying it is safe.

Turned on by ``SQLITE_POOL_SIZE`` (gunicorn.conf.py sets it for its workers).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db.backends.sqlite3 import base

T = TypeVar("T")

# How long SQLite's C busy handler may block the whole process before Python takes over.
C_LOCK_WAIT = 0.002


class _Pool:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.idle: dict[str, list[sqlite3.Connection]] = {}

    def _own(self) -> None:
        if self.pid != os.getpid():  # a forked child: these belong to the parent
            self.pid = os.getpid()
            self.idle = {}

    def take(self, key: str) -> sqlite3.Connection | None:
        self._own()
        idle = self.idle.get(key)
        return idle.pop() if idle else None

    def give(self, key: str, connection: sqlite3.Connection, size: int) -> bool:
        self._own()
        idle = self.idle.setdefault(key, [])
        if len(idle) >= size:
            return False
        idle.append(connection)
        return True


_pool = _Pool()


def _patiently(run: Callable[[], T], limit: float) -> T:
    """``run()``, retried while SQLite answers "database is locked", for up to ``limit`` s."""
    deadline: float | None = None
    pause = 0.001
    while True:
        try:
            return run()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            now = time.monotonic()
            if deadline is None:
                deadline = now + limit
            if now >= deadline:
                raise
            time.sleep(min(pause, deadline - now))  # under gevent: other greenlets run
            pause = min(pause * 2, 0.025)


class CooperativeCursor(base.SQLiteCursorWrapper):
    lock_wait = 20.0

    def execute(self, query: str, params: Any = None) -> Any:
        run = base.SQLiteCursorWrapper.execute
        return _patiently(lambda: run(self, query, params), self.lock_wait)

    def executemany(self, query: str, param_list: Any) -> Any:
        params = list(param_list)  # a retry needs them again
        run = base.SQLiteCursorWrapper.executemany
        return _patiently(lambda: run(self, query, params), self.lock_wait)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        self._lock_wait = float(params.get("timeout", 5.0))
        return params

    def create_cursor(self, name: str | None = None) -> Any:
        cursor = self.connection.cursor(factory=CooperativeCursor)
        cursor.lock_wait = getattr(self, "_lock_wait", CooperativeCursor.lock_wait)
        return cursor

    @property
    def _pool_key(self) -> str:
        return str(self.settings_dict["NAME"])

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = _pool.take(self._pool_key)
        if connection is not None:
            return connection
        # Opened (and its PRAGMAs run) with the full busy timeout; from here on SQLite waits
        # only briefly in C and CooperativeCursor does the rest.
        connection = super().get_new_connection(conn_params)
        connection.execute(f"PRAGMA busy_timeout = {int(C_LOCK_WAIT * 1000)}")
        return connection

    def _close(self) -> None:
        connection = self.connection
        size = int(self.settings_dict.get("POOL_SIZE") or 0)
        if (
            connection is not None
            and size > 0
            and not self.errors_occurred
            and not self.in_atomic_block
            and not connection.in_transaction
            and _pool.give(self._pool_key, connection, size)
        ):
            return
        super()._close()  # type: ignore[misc]  # private BaseDatabaseWrapper._close, not in the stubs
