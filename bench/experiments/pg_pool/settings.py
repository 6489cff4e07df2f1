"""Experiment, not production settings: chatsite's settings plus psycopg's connection pool.

Selected with ``BENCH_SERVER_SETTINGS=bench.experiments.pg_pool.settings`` (needs the
``psycopg-pool`` package). Each worker process keeps at most ``DB_POOL_MAX_SIZE`` (default 2)
PostgreSQL connections and lends one to a request for as long as Django holds it: requests wait
for a free one instead of opening their own, so no connection (and no PostgreSQL backend process)
is created per request, and the server never sees more than workers x max_size connections.
Django 5.1+ supports this natively (``OPTIONS["pool"]``). See docs/benchmarks.md, benchmark 6.
"""

import os

from chatsite.settings import *  # noqa: F403
from chatsite.settings import DATABASES

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DB_POOL_MAX_SIZE", "2")),
        "timeout": 60,
    }
