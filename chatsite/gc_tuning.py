"""Garbage collection for a gevent worker holding thousands of streams.

Each open stream keeps a few hundred Python objects alive (greenlets, sockets, the request, the
reply's state). Python's full (generation 2) collection scans every tracked object, and while a
worker's heap grows it runs about once a second: measured in the capacity benchmark, 215 pauses
over 5 ms in four minutes, the longest 400–580 ms, each stopping every stream of the worker. They
were the tail of the added time to first token while 5,000 streams arrived.

``configure`` (called by gunicorn.conf.py in each worker) freezes what exists after start-up
(Django, the app: never garbage, now never scanned), turns off automatic full collections, and
runs them from a greenlet instead, as often as their own cost allows: the next one comes
``last duration / time_share`` seconds after the last (``GC_TIME_SHARE``, 0.5 % of the time by
default), never sooner than ``MIN_GAP`` and never later than ``interval``
(``GC_FULL_COLLECT_SECONDS``). Each request leaves some reference cycles (DRF's view and request
point at each other; a streamed reply lives long enough to reach the oldest generation), so a
busy worker's garbage grows with its traffic; measured with a fixed five-minute timer, ~75 MB a
minute under 50 replies a second. A worker with a hundred streams collects in milliseconds, so
it now collects every few seconds; one with 5,000 streams (a 0.5 s pause) about every
100 seconds. Generation 0 and 1 collections, which only look at young objects, run as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

# Generation 2's threshold counts generation 1 collections; this many never happen.
NEVER = 2**30


def configure(
    interval: float, spawn: Callable[[Callable[[], None]], Any], time_share: float = 0.005
) -> None:
    """Full collections at least every ``interval`` seconds, more often when they are cheap
    (0 keeps Python's defaults)."""
    if interval <= 0:
        return
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, NEVER)
    spawn(lambda: _collect_every(interval, time_share=time_share))


MIN_GAP = 5.0  # seconds: a tiny heap gains nothing from collecting more often


def _collect_every(
    interval: float,
    sleep: Callable[[float], None] | None = None,
    time_share: float = 0.005,
    clock: Callable[[], float] | None = None,
) -> None:
    import time

    pause = sleep or time.sleep  # gevent's, in a worker: the other greenlets run meanwhile
    now = clock or time.perf_counter
    if time_share <= 0:  # pacing off: a plain timer
        while True:
            pause(interval)
            gc.collect()
    gap = min(MIN_GAP, interval)
    while True:
        pause(gap)
        started = now()
        gc.collect()
        took = now() - started
        gap = min(interval, max(MIN_GAP, took / time_share))
