"""chatsite.gc_tuning: full collections on a timer in gunicorn workers."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from chatsite import gc_tuning


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)
    gc.unfreeze()


def test_configure_freezes_start_up_and_schedules_full_collections(restore_gc):
    spawned = []
    gen0, gen1, _ = gc.get_threshold()

    gc_tuning.configure(300, spawned.append)

    assert gc.get_threshold() == (gen0, gen1, gc_tuning.NEVER)  # no automatic full collection
    assert gc.get_freeze_count() > 0
    assert len(spawned) == 1
    assert callable(spawned[0])


def test_zero_keeps_pythons_defaults(restore_gc):
    before = gc.get_threshold()
    spawned = []

    gc_tuning.configure(0, spawned.append)

    assert gc.get_threshold() == before
    assert not spawned


def test_the_timer_runs_a_full_collection_after_each_interval(monkeypatch):
    pauses, collections = [], []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise StopIteration  # end the endless loop after two rounds

    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    with pytest.raises(StopIteration):
        gc_tuning._collect_every(300, sleep)

    assert pauses == [300, 300, 300]
    assert collections == [(), ()]  # a full collection (no generation given) after each pause
