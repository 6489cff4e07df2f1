"""Garbage collection for a gevent worker holding thousands of streams.

Each open stream keeps a few hundred Python objects alive (greenlets, sockets, the request, the
reply's state). Python's full (generation 2) collection scans every tracked object, and while a
worker's heap grows it runs about once a second: measured in the capacity benchmark, 215 pauses
over 5 ms in four minutes, the longest 400–580 ms, each stopping every stream of the worker. They
were the tail of the added time to first token while 5,000 streams arrived.

``configure`` (called by gunicorn.conf.py in each worker) freezes what exists after start-up
(Django, the app: never garbage, now never scanned), turns off automatic full collections, and
runs one every ``interval`` seconds instead, so reference cycles still get freed, at a known
rhythm rather than whenever the heap has grown by a quarter. Generation 0 and 1 collections,
which only look at young objects, run as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

# Generation 2's threshold counts generation 1 collections; this many never happen.
NEVER = 2**30


def configure(interval: float, spawn: Callable[[Callable[[], None]], Any]) -> None:
    """Full collections every ``interval`` seconds (0 keeps Python's defaults)."""
    if interval <= 0:
        return
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, NEVER)
    spawn(lambda: _collect_every(interval))


def _collect_every(interval: float, sleep: Callable[[float], None] | None = None) -> None:
    import time

    pause = sleep or time.sleep  # gevent's, in a worker: the other greenlets run meanwhile
    while True:
        pause(interval)
        gc.collect()
