"""Benchmark 3: burst. N chats sent at the same instant, through chatsite and straight to Spark.

Each round opens N streams at once (one conversation each) and times until the last one ends;
the same N streams are then sent straight to the Spark stand-in. Replies take about 1.2 s
upstream (first token 0.3 s, 10 tokens 0.1 s apart). Rounds alternate; the ratio is the median
of chatsite's round times over the median of direct's. Target: <= 1.15.

    python -m bench.burst [--quick] [--clients 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from bench.client import StreamResult, stream_post
from bench.common import (
    Check,
    SparkStandIn,
    add_server_arguments,
    chatsite,
    exit_status,
    experiment_label,
    pcts,
    raise_nofile,
    report,
    save,
    server_env_and_label,
    setup_data,
    slots,
)

SPARK_KEY = "test-key:test-secret"


async def _burst(
    requests_for: list[tuple[str, dict[str, Any], dict[str, str]]],
) -> tuple[float, list[StreamResult]]:
    barrier = asyncio.Event()

    async def one(url: str, payload: dict[str, Any], headers: dict[str, str]) -> StreamResult:
        await barrier.wait()
        return await stream_post(url, payload, headers=headers, timeout=120)

    tasks = [asyncio.create_task(one(*r)) for r in requests_for]
    await asyncio.sleep(0.05)  # every task is waiting on the barrier
    start = time.perf_counter()
    barrier.set()
    results = await asyncio.gather(*tasks)
    return max(r.end or start for r in results) - start, results


def run(
    quick: bool = False,
    clients: int = 100,
    rounds: int = 5,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    raise_nofile()
    if quick:
        clients, rounds = 20, 2
    with (
        SparkStandIn(first_token_delay=0.3, token_interval=0.1, tokens=10) as spark,
        chatsite(spark.url, env=env, database_url=database_url) as server,
    ):
        data = setup_data(server, users=max(1, clients // 10), per_user=10)
        pairs = slots(data)[:clients]
        site_req = [
            (
                f"{server.url}/api/conversations/{c}/messages/",
                {"content": "hello", "stream": True},
                {"Authorization": f"Bearer {t}"},
            )
            for t, c in pairs
        ]
        direct_req = [
            (
                spark.chat_url,
                {
                    "model": "lite",
                    "stream": True,
                    "messages": [{"role": "user", "content": "hello"}],
                },
                {"Authorization": f"Bearer {SPARK_KEY}"},
            )
            for _ in pairs
        ]
        warm = [
            (u, {**p, "content": "warm [[delay:0.01]] [[tokens:1]]"}, h) for u, p, h in site_req
        ]
        asyncio.run(_burst(warm))
        direct_times, site_times, site_results, direct_results = [], [], [], []
        for _ in range(rounds):
            elapsed, results = asyncio.run(_burst(direct_req))
            direct_times.append(elapsed)
            direct_results += results
            time.sleep(0.5)
            elapsed, results = asyncio.run(_burst(site_req))
            site_times.append(elapsed)
            site_results += results
            time.sleep(0.5)

    errors = [r.error for r in site_results + direct_results if not r.ok]
    ratio = round(statistics.median(site_times) / statistics.median(direct_times), 3)
    figures = {
        "clients": clients,
        "rounds": rounds,
        "direct_round_s": [round(t, 3) for t in direct_times],
        "chatsite_round_s": [round(t, 3) for t in site_times],
        "direct_ttft_ms": pcts([r.ttft for r in direct_results if r.ttft is not None]),
        "chatsite_ttft_ms": pcts([r.ttft for r in site_results if r.ttft is not None]),
        "errors": len(errors),
        "first_errors": errors[:3],
        "ratio (median chatsite / median direct)": ratio,
    }
    checks = [
        Check("errors", len(errors), "0", not errors, functional=True),
        Check("burst ratio", ratio, "<= 1.15", ratio <= 1.15),
    ]
    result = report(
        experiment_label() + f"3. burst{label}{' (quick)' if quick else ''}", figures, checks
    )
    save("burst" + label.strip().replace(" ", "_") + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    add_server_arguments(parser)
    args = parser.parse_args()
    env, label = server_env_and_label(args)
    raise SystemExit(
        exit_status(run(args.quick, args.clients, args.rounds, env, args.database_url, label))
    )


if __name__ == "__main__":
    main()
