"""Prometheus metrics plumbing, correct across gunicorn worker processes, and request counts.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py sets it), every process writes its values
to files there and ``/metrics`` aggregates them; without it, the process's own registry is used.
Apps define the metrics of what they measure next to it (``conversations/metrics.py`` for
replies) on prometheus_client's default registry; this module knows none of them.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

REQUESTS = Counter(
    "chatsite_http_requests_total",
    "HTTP requests by route and status",
    ["route", "method", "status"],
)


def observe_request(route: str, method: str, status: int) -> None:
    REQUESTS.labels(route, method, str(status)).inc()


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
