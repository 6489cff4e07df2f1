"""Benchmark 2: capacity. Long streams opened at a steady rate until thousands are open together.

Streams of about 2 minutes (first token after 0.5 s, then a token every 5 s, 24 tokens) are
opened at 50 per second until 5,000 are open at once. Every 10th opening also sends a one-token
stream straight to the Spark stand-in: the direct time to first token under the same load, which
is subtracted from chatsite's. Reported: errors, replies saved (read back from the database),
added TTFT while streams arrive, RSS of all gunicorn workers idle and at peak, KB per open stream.

    python -m bench.capacity [--quick] [--streams 5000] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import time
from typing import Any

import requests

from bench.client import StreamResult, stream_post
from bench.common import (
    Check,
    SparkStandIn,
    add_server_arguments,
    chatsite,
    cpu_seconds,
    db_replies,
    exit_status,
    experiment_label,
    pcts,
    raise_nofile,
    report,
    rss_kib,
    save,
    server_env_and_label,
    setup_data,
    slots,
)

SPARK_KEY = "test-key:test-secret"


def _fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _open_streams_metric(url: str) -> float | None:
    try:
        text = requests.get(url + "/metrics", timeout=10).text
    except requests.RequestException:
        return None
    match = re.search(r"^chatsite_open_streams (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


async def _ramp(
    base: str,
    spark: SparkStandIn,
    pairs: list[tuple[str, str]],
    rate: float,
    workers: list[int],
    probe_every: int,
) -> dict[str, Any]:
    site: list[StreamResult] = []
    probes: list[StreamResult] = []
    state = {"open": 0, "peak_open": 0, "peak_rss": 0, "rss_at_peak_open": 0}
    samples: list[tuple[float, int, int, list[int]]] = []
    done = asyncio.Event()

    async def stream(token: str, conversation: str) -> None:
        state["open"] += 1
        state["peak_open"] = max(state["peak_open"], state["open"])
        try:
            site.append(
                await stream_post(
                    f"{base}/api/conversations/{conversation}/messages/",
                    {"content": "hello", "stream": True},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=400,
                )
            )
        finally:
            state["open"] -= 1

    async def probe() -> None:
        payload = {
            "model": "lite",
            "stream": True,
            "messages": [{"role": "user", "content": "probe [[tokens:1]]"}],
        }
        probes.append(
            await stream_post(
                spark.chat_url,
                payload,
                headers={"Authorization": f"Bearer {SPARK_KEY}"},
                timeout=60,
            )
        )

    async def sampler() -> None:
        t0 = time.perf_counter()
        while not done.is_set():
            rss = await asyncio.to_thread(rss_kib, workers)
            fds = [_fd_count(pid) for pid in workers]
            samples.append((round(time.perf_counter() - t0, 1), rss, state["open"], fds))
            state["peak_rss"] = max(state["peak_rss"], rss)
            if state["open"] >= state["peak_open"]:
                state["rss_at_peak_open"] = max(state["rss_at_peak_open"], rss)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 2.0)

    sampler_task = asyncio.create_task(sampler())
    tasks = []
    start = time.perf_counter()
    cpu0 = cpu_seconds(workers)
    for index, (token, conversation) in enumerate(pairs):
        delay = start + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(stream(token, conversation)))
        if index % probe_every == 0:
            tasks.append(asyncio.create_task(probe()))
    arrival_s = time.perf_counter() - start
    cpu_arrival = (cpu_seconds(workers) - cpu0) / arrival_s
    # The last streams are open: wait for their first tokens, then read the server's own gauge.
    await asyncio.sleep(2.0)
    open_metric = await asyncio.to_thread(_open_streams_metric, base)
    open_at_metric = state["open"]
    await asyncio.gather(*tasks)
    done.set()
    await sampler_task
    return {
        "site": site,
        "probes": probes,
        "arrival_s": arrival_s,
        "cpu_arrival": cpu_arrival,
        "open_metric": open_metric,
        "open_at_metric": open_at_metric,
        "samples": samples,
        "total_s": time.perf_counter() - start,
        **state,
    }


def run(
    quick: bool = False,
    streams: int = 5000,
    rate: float = 50.0,
    workers_n: int = 2,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    tokens: int = 24,
    interval: float = 5.0,
) -> dict[str, Any]:
    nofile = raise_nofile()
    if quick:
        streams, tokens, interval = 100, 3, 2.0
    with (
        SparkStandIn(first_token_delay=0.5, token_interval=interval, tokens=tokens) as spark,
        chatsite(spark.url, workers=workers_n, env=env, database_url=database_url) as server,
    ):
        per_user = 100
        data = setup_data(server, users=-(-streams // per_user), per_user=per_user)
        pairs = slots(data)[:streams]
        workers = server.worker_pids()
        # Warm up every worker (imports, pools) with short streams before measuring idle memory.
        warm = [
            stream_post(
                f"{server.url}/api/conversations/{c}/messages/",
                {"content": "warm [[delay:0.05]] [[tokens:2]] [[interval:0.01]]", "stream": True},
                headers={"Authorization": f"Bearer {t}"},
            )
            for t, c in slots(data)[:40]
        ]
        asyncio.run(_gather(warm))
        time.sleep(1.0)
        idle_rss = rss_kib(workers)
        master_rss = rss_kib([server.process.pid])  # type: ignore[union-attr]
        outcome = asyncio.run(_ramp(server.url, spark, pairs, rate, workers, probe_every=10))
        after_rss = rss_kib(workers)
        spark_max_open = spark.stats()["max_open"]
        saved = db_replies(server)
        server_log = server.log()
        pool_warnings = server_log.count("Connection pool is full")
        log_problems = [
            line[:300]
            for line in server_log.splitlines()
            if any(word in line for word in ("ERROR", "WARNING", "Traceback", "Error"))
        ]

    site, probes = outcome["site"], outcome["probes"]
    errors = [r.error for r in site + probes if not r.ok]
    d = pcts([r.ttft for r in probes if r.ok and r.ttft is not None])
    s = pcts([r.ttft for r in site if r.ok and r.ttft is not None])
    added = {k: round(s[k] - d[k], 2) for k in ("p50", "p95", "p99")}
    peak_open = outcome["peak_open"]
    per_stream_kb = round((outcome["peak_rss"] - idle_rss) / max(peak_open, 1), 1)
    complete = saved["complete_with_text_and_usage"]
    expected = len(site) + len(warm)
    figures = {
        "streams": len(site),
        "rate_per_s": rate,
        "tokens_per_stream": tokens,
        "token_interval_s": interval,
        "arrival_s": round(outcome["arrival_s"], 1),
        "total_s": round(outcome["total_s"], 1),
        "peak_open_streams (client)": peak_open,
        "open_streams gauge (/metrics) vs client": [
            outcome["open_metric"],
            outcome["open_at_metric"],
        ],
        "spark stand-in max open": spark_max_open,
        "errors": len(errors),
        "first_errors": errors[:3],
        "replies in database": saved["by_status"],
        "complete with text and usage": complete,
        "direct_ttft_ms (probes)": d,
        "chatsite_ttft_ms": s,
        "added_ttft_ms": added,
        "workers_rss_idle_MiB": round(idle_rss / 1024, 1),
        "workers_rss_peak_MiB": round(outcome["peak_rss"] / 1024, 1),
        "workers_rss_after_MiB": round(after_rss / 1024, 1),
        "master_rss_MiB": round(master_rss / 1024, 1),
        "KB_per_open_stream": per_stream_kb,
        "workers_cpu_cores_while_arriving": round(outcome["cpu_arrival"], 2),
        "urllib3 'pool is full' warnings": pool_warnings,
        "nofile": nofile[0],
        "server log problems": {"lines": len(log_problems), "first": log_problems[:5]},
        "samples (s, workers' RSS KiB, open, fds per worker)": outcome["samples"][
            :: max(1, len(outcome["samples"]) // 20)
        ],
    }
    checks = [
        Check("errors", len(errors), "0", not errors, functional=True),
        Check(
            "replies saved complete",
            complete,
            f"= {expected}",
            complete == expected,
            functional=True,
        ),
        Check(
            "peak open streams",
            peak_open,
            f">= {streams}" if not quick else "info",
            quick or peak_open >= streams,
        ),
        Check("added TTFT p99 while arriving (ms)", added["p99"], "<= 100", added["p99"] <= 100),
        Check("KB per open stream", per_stream_kb, "<= 128", per_stream_kb <= 128),
    ]
    result = report(
        experiment_label() + f"2. capacity{' (quick)' if quick else ''}", figures, checks
    )
    save("capacity" + ("-quick" if quick else ""), result)
    return result


async def _gather(coros: list[Any]) -> list[Any]:
    return await asyncio.gather(*coros)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between tokens")
    parser.add_argument("--log-level", default="WARNING")
    add_server_arguments(parser)
    args = parser.parse_args()
    redis_env, _label = server_env_and_label(args)
    env = {"LOG_LEVEL": args.log_level, **(redis_env or {})}
    raise SystemExit(
        exit_status(
            run(
                args.quick,
                args.streams,
                args.rate,
                args.workers,
                env,
                args.database_url,
                args.tokens,
                args.interval,
            )
        )
    )


if __name__ == "__main__":
    main()
