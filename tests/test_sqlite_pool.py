"""chatsite.sqlite_pool: a worker's SQLite connections are reused, never shared or leaked."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from django.db import DatabaseError, OperationalError, connections

from chatsite.sqlite_pool import base as pool_base


@pytest.fixture
def make_wrapper(tmp_path: Path, monkeypatch, django_db_blocker):
    monkeypatch.setattr(pool_base, "_pool", pool_base._Pool())  # a pool of this test's own
    # A SQLite database of the test's own, whatever database the suite runs on.
    settings_dict = connections.configure_settings(
        {
            "default": {},  # configure_settings insists on one
            "pool-test": {
                "ENGINE": "chatsite.sqlite_pool",
                "NAME": str(tmp_path / "pool.sqlite3"),
                "POOL_SIZE": 2,
                "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            },
        }
    )["pool-test"]
    made = []

    def make(alias: str = "pool-test") -> pool_base.DatabaseWrapper:
        wrapper = pool_base.DatabaseWrapper(dict(settings_dict), alias=alias)
        made.append(wrapper)
        return wrapper

    with django_db_blocker.unblock():  # a database of the test's own, not the test database
        yield make
    for wrapper in made:
        wrapper.close()
    for idle in pool_base._pool.idle.values():
        for raw in idle:
            raw.close()


def test_a_closed_connection_is_reused_by_the_next_request(make_wrapper):
    db = make_wrapper()
    db.ensure_connection()
    first = db.connection
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x INTEGER)")
    db.close()
    assert db.connection is None

    db.ensure_connection()
    assert db.connection is first
    with db.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM t")
        assert cursor.fetchone() == (0,)
    # Django's own setup still holds on the reused connection: autocommit, foreign keys.
    assert db.get_autocommit()
    with db.cursor() as cursor:
        cursor.execute("PRAGMA foreign_keys")
        assert cursor.fetchone() == (1,)


def test_two_open_connections_are_never_the_same(make_wrapper):
    one, two = make_wrapper("a"), make_wrapper("b")
    one.ensure_connection()
    one.close()  # one idle connection in the pool
    one.ensure_connection()
    two.ensure_connection()  # the pool is empty again: a new connection
    assert one.connection is not two.connection


def test_the_pool_holds_at_most_its_size(make_wrapper):
    wrappers = [make_wrapper(str(i)) for i in range(3)]
    raws = []
    for wrapper in wrappers:
        wrapper.ensure_connection()
        raws.append(wrapper.connection)
    for wrapper in wrappers:
        wrapper.close()
    idle = pool_base._pool.idle[wrappers[0].settings_dict["NAME"]]
    assert len(idle) == 2
    with pytest.raises(Exception, match="closed"):
        raws[2].execute("SELECT 1")  # the third was really closed


def test_a_connection_inside_a_transaction_or_after_an_error_is_closed_not_kept(make_wrapper):
    db = make_wrapper()
    db.ensure_connection()
    raw = db.connection
    db.set_autocommit(False)
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x INTEGER)")
        cursor.execute("INSERT INTO t VALUES (1)")
    assert raw.in_transaction
    db.close()
    assert not pool_base._pool.idle.get(db.settings_dict["NAME"])

    db.ensure_connection()
    with pytest.raises(DatabaseError), db.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    db.close()
    assert not pool_base._pool.idle.get(db.settings_dict["NAME"])


def test_a_forked_child_does_not_use_its_parents_connections(make_wrapper, monkeypatch):
    db = make_wrapper()
    db.ensure_connection()
    parent = db.connection
    db.close()
    monkeypatch.setattr(os, "getpid", lambda: pool_base._pool.pid + 1)  # as if in a child

    db.ensure_connection()
    assert db.connection is not parent


def test_a_locked_database_is_waited_for_in_python_sleeps_not_inside_sqlite(
    make_wrapper, monkeypatch
):
    # SQLite's own busy handler sleeps in C, stopping every greenlet of a gevent worker; the
    # backend lets SQLite wait only C_LOCK_WAIT and then sleeps with time.sleep (a gevent yield).
    db = make_wrapper()
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(db.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    pauses: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if sum(pauses) > 0.2:
            holder.execute("COMMIT")  # the other writer finishes
        real_sleep(seconds)

    monkeypatch.setattr(pool_base.time, "sleep", sleep)
    with db.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone() == (int(pool_base.C_LOCK_WAIT * 1000),)
        started = time.monotonic()
        cursor.execute("INSERT INTO t VALUES (1)")
    assert time.monotonic() - started >= 0.2
    # Many short yields, not one long block.
    assert len(pauses) > 5
    assert max(pauses) <= 0.025
    with db.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM t")
        assert cursor.fetchone() == (1,)
    holder.close()


def test_a_lock_held_past_the_timeout_still_fails_with_database_is_locked(make_wrapper):
    db = make_wrapper()
    db.settings_dict["OPTIONS"] = {**db.settings_dict["OPTIONS"], "timeout": 0.1}
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(db.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError, match="locked"), db.cursor() as cursor:
            cursor.execute("INSERT INTO t VALUES (1)")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
