"""Reply metrics: open streams, time to first token, duration, outcomes, upstream errors, tokens.

Registered on prometheus_client's default registry; ``/metrics`` (chatsite/metrics.py) renders
them, across gunicorn workers in multiprocess mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from chatsite.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from .models import Message

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
    "chatsite_replies_total",
    "Replies by provider, model and final status",
    ["provider", "model", "status"],
)
UPSTREAM_ERRORS = Counter(
    "chatsite_upstream_errors_total",
    "Upstream failures by provider, model and code",
    ["provider", "model", "code"],
)
TOKENS = Counter("chatsite_tokens_total", "Tokens by model and kind", ["model", "kind"])


_open = [0]  # this process's open streams, readable without prometheus_client's internals


def open_streams() -> int:
    return _open[0]


def stream_opened() -> None:
    _open[0] += 1
    OPEN_STREAMS.inc()


def stream_closed() -> None:
    _open[0] -= 1
    OPEN_STREAMS.dec()


def observe_reply(message: Message) -> None:
    model = message.model or "unknown"
    provider = message.provider or "unknown"
    REPLIES.labels(provider, model, message.status).inc()
    if message.ttft_ms is not None:
        TTFT.labels(model).observe(message.ttft_ms / 1000)
    if message.duration_ms is not None:
        DURATION.labels(model).observe(message.duration_ms / 1000)
    if message.status == "error" and message.error_code:
        UPSTREAM_ERRORS.labels(provider, model, message.error_code).inc()
    if message.total_tokens is not None:
        TOKENS.labels(model, "prompt").inc(message.prompt_tokens or 0)
        TOKENS.labels(model, "completion").inc(message.completion_tokens or 0)
