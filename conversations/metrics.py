"""Prometheus metrics, correct across gunicorn worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py sets it), every process writes its values
to files there and ``/metrics`` aggregates them; without it, the process's own registry is used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

if TYPE_CHECKING:
    from .models import Message

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

REQUESTS = Counter(
    "chatsite_http_requests_total",
    "HTTP requests by route and status",
    ["route", "method", "status"],
)
OPEN_STREAMS = Gauge(
    "chatsite_open_streams", "Replies streaming right now", multiprocess_mode="livesum"
)
TTFT = Histogram(
    "chatsite_reply_ttft_seconds",
    "Time to first token by model",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
DURATION = Histogram(
    "chatsite_reply_duration_seconds", "Reply duration by model", ["model"], buckets=LATENCY_BUCKETS
)
REPLIES = Counter(
    "chatsite_replies_total", "Replies by model and final status", ["model", "status"]
)
UPSTREAM_ERRORS = Counter(
    "chatsite_upstream_errors_total", "Upstream failures by model and code", ["model", "code"]
)
TOKENS = Counter("chatsite_tokens_total", "Tokens by model and kind", ["model", "kind"])


def stream_opened() -> None:
    OPEN_STREAMS.inc()


def stream_closed() -> None:
    OPEN_STREAMS.dec()


def observe_reply(message: Message) -> None:
    model = message.model or "unknown"
    REPLIES.labels(model, message.status).inc()
    if message.ttft_ms is not None:
        TTFT.labels(model).observe(message.ttft_ms / 1000)
    if message.duration_ms is not None:
        DURATION.labels(model).observe(message.duration_ms / 1000)
    if message.status == "error" and message.error_code:
        UPSTREAM_ERRORS.labels(model, message.error_code).inc()
    if message.total_tokens is not None:
        TOKENS.labels(model, "prompt").inc(message.prompt_tokens or 0)
        TOKENS.labels(model, "completion").inc(message.completion_tokens or 0)


def observe_request(route: str, method: str, status: int) -> None:
    REQUESTS.labels(route, method, str(status)).inc()


def render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY)
