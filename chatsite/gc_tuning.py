"""Garbage collection for a gevent worker holding thousands of streams.

Each open stream keeps a few hundred Python objects alive (greenlets, sockets, the request, the
reply's state). Python's full (generation 2) collection scans every tracked object, and while a
worker's heap grows it runs about once a second: measured in the capacity benchmark, 215 pauses
over 5 ms in four minutes, the longest 400–580 ms, each stopping every stream of the worker. They
were the tail of the added time to first token while 5,000 streams arrived.

``configure`` (called by gunicorn.conf.py in each worker) freezes what exists after start-up
(Django, the app: never garbage, now never scanned), turns off automatic full collections, and
runs them from a greenlet instead, paced by what they cost and what they find. Each request
leaves some reference cycles (DRF's view and request point at each other; a streamed reply lives
long enough to reach the oldest generation), so a busy worker's garbage grows with its traffic:
with a fixed five-minute timer, ~75 MB a minute under 50 replies a second. But a heap that grows
because thousands of streams are arriving holds little garbage, and collecting it often only
stops every stream (benchmark 2: a p99 of 1.4 s while 5,000 streams arrived, with collections
paced by cost alone). So after a collection that found at least ``PRODUCTIVE`` unreachable
objects the next comes twice as soon, after one that found fewer twice as late; never sooner
than ``last duration / time_share`` (``GC_TIME_SHARE``, 0.5 % of the time) or ``MIN_GAP``, never
later than ``interval`` (``GC_FULL_COLLECT_SECONDS``). And while the worker's open streams are
growing fast, a due collection waits for them to settle (up to ``interval``). Generation 0 and 1
collections, which only look at young objects, run as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

# Generation 2's threshold counts generation 1 collections; this many never happen.
NEVER = 2**30


def configure(
    interval: float,
    spawn: Callable[[Callable[[], None]], Any],
    time_share: float = 0.005,
    live: Callable[[], int] | None = None,
) -> None:
    """Full collections at least every ``interval`` seconds, more often when they pay
    (0 keeps Python's defaults). ``live()``, when given, counts the worker's open streams."""
    if interval <= 0:
        return
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, NEVER)
    spawn(lambda: _collect_every(interval, time_share=time_share, live=live))


MIN_GAP = 30.0  # seconds: at most two full collections a minute, however cheap
# Unreachable objects that make a collection worth repeating soon: a streamed reply leaves about
# a hundred, so this is a couple of hundred replies' garbage.
PRODUCTIVE = 20_000
# Open streams gained since the last look (beyond a quarter more) that mean streams are arriving.
ARRIVING = 50


def _collect_every(
    interval: float,
    sleep: Callable[[float], None] | None = None,
    time_share: float = 0.005,
    clock: Callable[[], float] | None = None,
    live: Callable[[], int] | None = None,
) -> None:
    import time

    pause = sleep or time.sleep  # gevent's, in a worker: the other greenlets run meanwhile
    now = clock or time.perf_counter
    if time_share <= 0:  # pacing off: a plain timer
        while True:
            pause(interval)
            gc.collect()
    gap = min(MIN_GAP, interval)
    streams = live() if live else 0
    waited = 0.0
    while True:
        pause(gap)
        waited += gap
        if live is not None and waited < interval:
            # Streams arriving: the heap grows with live objects, not garbage, and a pause now
            # stops every stream being opened. Look again once the arrivals have settled.
            now_open = live()
            arriving = now_open > streams * 1.25 + ARRIVING
            streams = now_open
            if arriving:
                continue
        waited = 0.0
        started = now()
        found = gc.collect()
        took = now() - started
        wanted = gap / 2 if found >= PRODUCTIVE else gap * 2
        gap = min(interval, max(MIN_GAP, took / time_share, wanted))
