"""Benchmark 1: time to first token added by chatsite.

Time from sending the request to the first ``delta`` frame through chatsite, against the same
measured straight to the Spark stand-in in the same run.
(a) one client sending chat after chat (direct and chatsite alternate);
(b) steady state: N clients each sending chat after chat so that N streams are always in flight,
    replies of about 2 s (first token 0.5 s, 30 tokens 50 ms apart); a direct phase, then a
    chatsite phase, each of the same length.
Added TTFT at a percentile = chatsite's percentile minus direct's.

    python -m bench.ttft [--quick] [--clients 100] [--duration 60] [--sequential 200]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.client import StreamResult, stream_post
from bench.common import (
    Check,
    SparkStandIn,
    add_server_arguments,
    chatsite,
    cpu_seconds,
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
# (a): short replies, so that hundreds fit in a minute; TTFT does not depend on reply length.
SHORT = "[[delay:0.05]] [[tokens:5]] [[interval:0.01]]"


def _direct(spark: SparkStandIn, content: str) -> tuple[str, dict[str, Any], dict[str, str]]:
    payload = {"model": "lite", "messages": [{"role": "user", "content": content}], "stream": True}
    return spark.chat_url, payload, {"Authorization": f"Bearer {SPARK_KEY}"}


def _site(
    base: str, token: str, conversation: str, content: str
) -> tuple[str, dict[str, Any], dict[str, str]]:
    return (
        f"{base}/api/conversations/{conversation}/messages/",
        {"content": content, "stream": True},
        {"Authorization": f"Bearer {token}"},
    )


async def _sequential(
    spark: SparkStandIn, base: str, slot: tuple[str, str], count: int
) -> tuple[list[StreamResult], list[StreamResult]]:
    direct, site = [], []
    for _ in range(count):
        url, payload, headers = _direct(spark, f"hello {SHORT}")
        direct.append(await stream_post(url, payload, headers=headers, timeout=30))
        url, payload, headers = _site(base, *slot, f"hello {SHORT}")
        site.append(await stream_post(url, payload, headers=headers, timeout=30))
    return direct, site


async def _steady(
    requests_for: list[tuple[str, dict[str, Any], dict[str, str]]], duration: float, warmup: float
) -> list[StreamResult]:
    """Each client sends chat after chat until ``duration``; results started after ``warmup``."""
    start = time.perf_counter()
    results: list[StreamResult] = []

    async def client(
        index: int, url: str, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        # Spread the first sends over one reply so that the phases of the clients differ.
        await asyncio.sleep(index * 2.0 / len(requests_for))
        while time.perf_counter() - start < duration:
            result = await stream_post(url, payload, headers=headers, timeout=60)
            if result.start - start >= warmup:
                results.append(result)
            if result.error:
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client(i, *r) for i, r in enumerate(requests_for)))
    return results


def _summary(direct: list[StreamResult], site: list[StreamResult]) -> dict[str, Any]:
    d = pcts([r.ttft for r in direct if r.ok and r.ttft is not None])
    s = pcts([r.ttft for r in site if r.ok and r.ttft is not None])
    added = {k: round(s[k] - d[k], 2) for k in ("p50", "p95", "p99")}
    errors = [r.error for r in site + direct if not r.ok]
    saved = sum(1 for r in site if r.ok and r.final and r.final.get("status") == "complete")
    return {
        "direct_ttft_ms": d,
        "chatsite_ttft_ms": s,
        "added_ttft_ms": added,
        "replies": len(site),
        "saved_complete": saved,
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def run(
    quick: bool = False,
    clients: int = 100,
    duration: float = 60.0,
    sequential: int = 200,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    raise_nofile()
    if quick:
        clients, duration, sequential = min(clients, 10), 6.0, 10
    with (
        SparkStandIn(first_token_delay=0.5, token_interval=0.05, tokens=30) as spark,
        chatsite(spark.url, env=env, database_url=database_url) as server,
    ):
        data = setup_data(server, users=max(1, clients // 10), per_user=10)
        pairs = slots(data)
        # Warm up both workers (imports, connection pools) before anything is timed.
        asyncio.run(_sequential(spark, server.url, pairs[0], 3))
        asyncio.run(
            _steady([_site(server.url, *p, f"warm {SHORT}") for p in pairs[:clients]], 3, 10)
        )

        direct_a, site_a = asyncio.run(_sequential(spark, server.url, pairs[0], sequential))
        warmup = min(5.0, duration / 4)
        direct_b = asyncio.run(
            _steady([_direct(spark, "hello") for _ in range(clients)], duration, warmup)
        )
        workers = server.worker_pids()
        cpu0, t0 = cpu_seconds(workers), time.perf_counter()
        site_b = asyncio.run(
            _steady([_site(server.url, *p, "hello") for p in pairs[:clients]], duration, warmup)
        )
        cpu_share = (cpu_seconds(workers) - cpu0) / (time.perf_counter() - t0)

    a = _summary(direct_a, site_a)
    b = _summary(direct_b, site_b)
    b["chatsite_workers_cpu_cores"] = round(cpu_share, 2)
    b["reply_ms_p50"] = pcts([r.end - r.start for r in site_b if r.ok and r.end])["p50"]
    figures = {"(a) sequential, one client": a, f"(b) steady state, {clients} clients": b}
    checks = [
        Check(
            "(a) added TTFT p50 ms",
            a["added_ttft_ms"]["p50"],
            "<= 5",
            a["added_ttft_ms"]["p50"] <= 5,
        ),
        Check("(a) errors", a["errors"], "0", a["errors"] == 0, functional=True),
        Check(
            "(b) added TTFT p50 ms",
            b["added_ttft_ms"]["p50"],
            "<= 10",
            b["added_ttft_ms"]["p50"] <= 10,
        ),
        Check(
            "(b) added TTFT p99 ms",
            b["added_ttft_ms"]["p99"],
            "<= 25",
            b["added_ttft_ms"]["p99"] <= 25,
        ),
        Check("(b) errors", b["errors"], "0", b["errors"] == 0, functional=True),
        Check(
            "(b) every reply saved complete",
            b["saved_complete"],
            f"= {b['replies']}",
            b["saved_complete"] == b["replies"],
            functional=True,
        ),
    ]
    result = report(
        experiment_label() + f"1. added time to first token{label}{' (quick)' if quick else ''}",
        figures,
        checks,
    )
    save(
        "ttft" + label.strip().replace(" ", "_").replace(",", "") + ("-quick" if quick else ""),
        result,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--sequential", type=int, default=200)
    add_server_arguments(parser)
    args = parser.parse_args()
    env, label = server_env_and_label(args)
    raise SystemExit(
        exit_status(
            run(
                args.quick,
                args.clients,
                args.duration,
                args.sequential,
                env=env,
                database_url=args.database_url,
                label=label,
            )
        )
    )


if __name__ == "__main__":
    main()
