"""Django's SQLite backend, keeping closed connections for the next request of the process.

Every request closes its connection (no stream holds one, ARCHITECTURE.md §3), and a new SQLite
connection costs about 0.8 ms of CPU (open, PRAGMAs, Django's SQL functions registered): two per
reply, one per API call. Here ``close()`` puts a clean connection back in a small per-process list
and the next ``connect()`` takes it. Only a connection outside any transaction, that saw no
error, is kept; a forked child never inherits its parent's. Turned on by ``SQLITE_POOL_SIZE``
(gunicorn.conf.py sets it for its workers).
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from django.db.backends.sqlite3 import base


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


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def _pool_key(self) -> str:
        return str(self.settings_dict["NAME"])

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = _pool.take(self._pool_key)
        if connection is not None:
            return connection
        return super().get_new_connection(conn_params)

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
        super()._close()
