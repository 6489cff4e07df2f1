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


def test_full_collections_are_paced_by_what_they_cost_and_what_they_find(monkeypatch):
    pauses = []
    # Each collection: (unreachable objects found, seconds it took).
    results = iter(
        [
            (50_000, 0.001),  # much garbage, cheap: again after MIN_GAP
            (100, 0.001),  # little garbage: twice as late
            (100, 0.001),  # and again
            (50_000, 0.5),  # much garbage but 500 ms: not sooner than 0.5 / 0.5 % = 100 s
            (100, 10.0),  # 10 s: capped at the interval
        ]
    )
    elapsed = [0.0]

    def collect(*args):
        assert args == ()  # a full collection
        found, took = next(results)
        elapsed[0] += took
        return found

    def now() -> float:
        return elapsed[0]

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 6:
            raise StopIteration  # end the endless loop after five collections

    monkeypatch.setattr(gc, "collect", collect)
    with pytest.raises(StopIteration):
        gc_tuning._collect_every(300, sleep, time_share=0.005, clock=now)

    gap = gc_tuning.MIN_GAP
    assert pauses == pytest.approx([gap, gap, 2 * gap, 4 * gap, 100.0, 300])


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


def test_a_due_collection_waits_while_streams_are_arriving(monkeypatch):
    pauses, collections = [], []
    open_streams = iter([0, 500, 1500, 2500, 2500, 2510, 2520])

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(collections) == 2:
            raise StopIteration

    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 50_000)
    with pytest.raises(StopIteration):
        gc_tuning._collect_every(
            300, sleep, time_share=0.005, clock=lambda: 0.0, live=lambda: next(open_streams)
        )

    # 0 -> 500 -> 1500 -> 2500 streams: three looks without a collection; 2500 -> 2500: collect;
    # 2500 -> 2510: settled, collect again.
    assert len(pauses) == 6
    assert collections == [(), ()]


def test_arrivals_never_postpone_a_collection_past_the_interval(monkeypatch):
    collections = []
    streams = (100 * 2**k for k in range(100))  # forever arriving, ever faster
    pauses = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if collections:
            raise StopIteration

    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 50_000)
    with pytest.raises(StopIteration):
        gc_tuning._collect_every(
            300, sleep, time_share=0.005, clock=lambda: 0.0, live=lambda: next(streams)
        )

    assert sum(pauses[:-1]) == 300  # collected once the interval had passed
