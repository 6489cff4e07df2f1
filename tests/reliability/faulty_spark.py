"""The loopback Spark server with one-shot faults that leave the conversation's text clean.

``[[directive]]``s ride in the user's message, and chatsite merges a failed turn's question into the
next one (Spark wants alternating turns), so a directive would fail the next message too. Here a
test arms a fault for the next request only (``fail_next(upstream="11200")``), then shows that the
conversation's next message gets a normal reply.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.spark_server import SparkServer, _Plan


class FaultySpark(SparkServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pending: list[dict[str, Any]] = []
        self._pending_lock = threading.Lock()

    def fail_next(self, **overrides: Any) -> None:
        """Apply ``overrides`` (fields of the request plan: upstream, inband, midstream, drop,
        stall, tokens, ...) to the next chat request only."""
        with self._pending_lock:
            self._pending.append(overrides)

    def reset(self) -> None:
        with self._pending_lock:
            self._pending.clear()
        super().reset()

    def _plan(self) -> _Plan:
        plan = super()._plan()
        with self._pending_lock:
            overrides = self._pending.pop(0) if self._pending else {}
        for name, value in overrides.items():
            if not hasattr(plan, name):
                raise AttributeError(f"no plan field {name!r}")
            setattr(plan, name, value)
        return plan
