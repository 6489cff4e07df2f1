"""The loopback stand-in for the LLM providers chatsite talks to, shared by tests/ and bench/.

- ``SparkServer`` (server.py): iFlytek Spark's HTTP chat API (docs/spark-protocol.md) on asyncio;
  ``UpstreamServer`` is the same with any ``Dialect`` (dialects.py).
- ``Plan`` and the ``[[directive]]`` language (plan.py): how one request is answered.
- ``python -m tests.spark_server --port 0 ...``: the same server in its own process (benchmarks).
"""

from .dialects import Dialect, Rejection, SparkDialect
from .plan import FRAMINGS, Plan, estimate_tokens, parse_directives, split_tokens
from .server import SparkServer, UpstreamServer, main

MODEL_WINDOWS = SparkDialect.model_windows

__all__ = [
    "FRAMINGS",
    "MODEL_WINDOWS",
    "Dialect",
    "Plan",
    "Rejection",
    "SparkDialect",
    "SparkServer",
    "UpstreamServer",
    "estimate_tokens",
    "main",
    "parse_directives",
    "split_tokens",
]
