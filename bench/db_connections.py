"""Benchmark 6: PostgreSQL connections while 1,000 streams are open.

chatsite on a throwaway PostgreSQL cluster (tests/support/postgres.py, port 54339 by default) with a
fresh database; 1,000 streams (first token 0.5 s, then a token every 5 s for about a minute) are
opened at 50 per second. ``pg_stat_activity`` is read every 0.25 s for the benchmark's database
(the sampling connection excluded): the most connections seen while streams arrive and while all
are open. Target: <= 2 x workers, since no stream holds a connection.

    python -m bench.db_connections [--quick] [--streams 1000] [--port 54339] [--redis]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import threading
import time
from typing import Any

import psycopg

from bench.capacity import _ramp
from bench.common import (
    Check,
    SparkStandIn,
    chatsite,
    db_replies,
    exit_status,
    experiment_label,
    pcts,
    raise_nofile,
    report,
    save,
    setup_data,
    slots,
)
from tests.support.postgres import PG_BIN, PostgresCluster
from tests.support.services import RedisServer


class Sampler(threading.Thread):
    def __init__(self, url: str, database: str) -> None:
        super().__init__(daemon=True)
        self.url, self.database = url, database
        self.samples: list[tuple[float, int, dict[str, int]]] = []
        self.stop = threading.Event()
        self.t0 = time.perf_counter()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid() GROUP BY 1",
                    (self.database,),
                ).fetchall()
                states = dict(rows)
                self.samples.append((time.perf_counter() - self.t0, sum(states.values()), states))
                self.stop.wait(0.25)

    def max_between(self, start: float, end: float) -> int:
        return max((n for t, n, _ in self.samples if start <= t <= end), default=0)


def run(
    quick: bool = False,
    streams: int = 1000,
    rate: float = 50.0,
    port: int = 54339,
    use_redis: bool = False,
    workers: int = 2,
) -> dict[str, Any]:
    raise_nofile()
    if quick:
        streams, tokens, interval = 50, 3, 2.0
    else:
        tokens, interval = 12, 5.0
    # The cluster is kept between runs (and left running if it already was); the database is new.
    with PostgresCluster(port, f"/tmp/chatsite-bench-pg-{port}") as cluster:
        database = f"bench_{os.getpid()}"
        database_url = cluster.create_database(database)
        try:
            with (
                RedisServer() if use_redis else contextlib.nullcontext() as redis,
                SparkStandIn(
                    first_token_delay=0.5, token_interval=interval, tokens=tokens
                ) as spark,
                chatsite(
                    spark.url,
                    database_url=database_url,
                    workers=workers,
                    env={"REDIS_URL": redis.url} if redis else {},
                ) as server,
            ):
                data = setup_data(server, users=-(-streams // 100), per_user=100)
                pairs = slots(data)[:streams]
                sampler = Sampler(cluster.url, database)
                sampler.start()
                time.sleep(1.0)
                idle = sampler.max_between(0, 1.0)
                t_start = time.perf_counter() - sampler.t0
                outcome = asyncio.run(
                    _ramp(server.url, spark, pairs, rate, server.worker_pids(), probe_every=10**9)
                )
                sampler.stop.set()
                sampler.join()
                saved = db_replies(server)
        finally:
            cluster.drop_database(database)

    arrival_end = t_start + outcome["arrival_s"]
    # "All open": after the last stream's first token, before the first stream can end.
    plateau = (arrival_end + 1.5, t_start + 0.5 + interval * (tokens - 1))
    max_arriving = sampler.max_between(t_start, arrival_end)
    max_open = sampler.max_between(*plateau) if plateau[1] > plateau[0] else None
    max_overall = max((n for _, n, _ in sampler.samples), default=0)
    errors = [r.error for r in outcome["site"] if not r.ok]
    complete = saved["complete_with_text_and_usage"]
    states: dict[str, int] = {}
    for _, _, s in sampler.samples:
        for key, n in s.items():
            states[key] = max(states.get(key, 0), n)
    figures = {
        "workers": workers,
        "streams": len(outcome["site"]),
        "rate_per_s": rate,
        "rate-limit cache": "Redis" if use_redis else "database cache (PostgreSQL)",
        "peak_open_streams (client)": outcome["peak_open"],
        "connections idle": idle,
        "max connections while streams arrive": max_arriving,
        "max connections while all streams are open": max_open,
        "max connections overall (incl. final writes)": max_overall,
        "max by state": states,
        "samples": len(sampler.samples),
        "chatsite_ttft_ms": pcts([r.ttft for r in outcome["site"] if r.ttft is not None]),
        "errors": len(errors),
        "first_errors": errors[:3],
        "replies in database": saved["by_status"],
    }
    limit = 2 * workers
    checks = [
        Check("errors", len(errors), "0", not errors, functional=True),
        Check(
            "replies saved complete",
            complete,
            f"= {len(outcome['site'])}",
            complete == len(outcome["site"]),
            functional=True,
        ),
        Check(
            "max connections while all streams are open",
            max_open if max_open is not None else "n/a",
            f"<= {limit}",
            max_open is None or max_open <= limit,
        ),
        Check("max connections overall", max_overall, f"<= {limit}", max_overall <= limit),
    ]
    label = " [Redis]" if use_redis else ""
    result = report(
        experiment_label() + f"6. PostgreSQL connections{label}{' (quick)' if quick else ''}",
        figures,
        checks,
    )
    save("db_connections" + label.strip() + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--port", type=int, default=54339)
    parser.add_argument("--redis", action="store_true", help="REDIS_URL set: rate limits in Redis")
    args = parser.parse_args()
    if PG_BIN is None:
        print("6. PostgreSQL connections: skipped, no PostgreSQL under /usr/lib/postgresql")
        return
    raise SystemExit(exit_status(run(args.quick, args.streams, args.rate, args.port, args.redis)))


if __name__ == "__main__":
    main()
