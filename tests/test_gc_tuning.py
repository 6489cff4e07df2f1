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


def test_full_collections_come_as_often_as_their_cost_allows(monkeypatch):
    pauses, collections = [], []
    # The clock before and after each collection: 1 ms, 200 ms, 10 s, 1 ms.
    elapsed = iter([0.0, 0.001, 10.0, 10.2, 20.0, 30.0, 40.0, 40.001])

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 5:
            raise StopIteration  # end the endless loop after four collections

    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    with pytest.raises(StopIteration):
        gc_tuning._collect_every(300, sleep, time_share=0.005, clock=lambda: next(elapsed))

    # A 1 ms collection: the next after MIN_GAP; 200 ms at 0.5 %: 40 s later; 10 s: capped at
    # the interval; cheap again: back to MIN_GAP.
    assert pauses == [gc_tuning.MIN_GAP, gc_tuning.MIN_GAP, pytest.approx(40.0), 300, 5.0]
    assert collections == [(), (), (), ()]  # full collections (no generation given)


def test_a_zero_time_share_is_a_plain_timer(monkeypatch):
    pauses, collections = [], []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise StopIteration

    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    with pytest.raises(StopIteration):
        gc_tuning._collect_every(300, sleep, time_share=0)

    assert pauses == [300, 300, 300]
    assert collections == [(), ()]
