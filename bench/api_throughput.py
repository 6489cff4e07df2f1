"""Benchmark 4: cheap API throughput. ``GET /api/conversations/`` with a JWT, against a
constant-JSON
Django view served by the same gunicorn configuration in the same run.

The server runs with ``DJANGO_ROOT_URLCONF=bench.urls`` (chatsite's URLs plus ``/bench/baseline/``,
``bench/baseline_view.py``). C keep-alive connections send requests back to back for D seconds;
baseline and list phases alternate (two of each). Ratio = list req/s / baseline req/s;
target >= 0.5.

    python -m bench.api_throughput [--quick] [--connections 32] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from typing import Any

from bench.client import KeepAliveClient
from bench.common import (
    Check,
    SparkStandIn,
    chatsite,
    cpu_seconds,
    exit_status,
    experiment_label,
    pcts,
    raise_nofile,
    report,
    save,
    setup_data,
)


async def _phase(
    url: str, path: str, headers: dict[str, str], connections: int, duration: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        client = KeepAliveClient(url)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    status, _ = await client.request("GET", path, headers=headers)
                except (OSError, asyncio.IncompleteReadError):
                    client.close()
                    errors += 1
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1
        finally:
            client.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {
        "rps": round(len(latencies) / elapsed, 1),
        "latency_ms": pcts(latencies),
        "errors": errors,
    }


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(
    quick: bool = False,
    connections: int = 32,
    duration: float = 10.0,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    raise_nofile()
    if quick:
        connections, duration = 8, 2.0
    with (
        SparkStandIn(first_token_delay=0.01, token_interval=0.01, tokens=2) as spark,
        chatsite(
            spark.url,
            env={"DJANGO_ROOT_URLCONF": "bench.urls", **(env or {})},
            database_url=database_url,
        ) as server,
    ):
        user = setup_data(server, users=1, per_user=30)[0]
        auth = {"Authorization": f"Bearer {user['token']}"}
        workers = server.worker_pids()
        phases: dict[str, list[dict[str, Any]]] = {"baseline": [], "list": []}
        asyncio.run(_phase(server.url, "/bench/baseline/", {}, connections, 1.0))  # warm up
        asyncio.run(_phase(server.url, "/api/conversations/", auth, connections, 1.0))
        for _ in range(2):
            for name, path, headers in (
                ("baseline", "/bench/baseline/", {}),
                ("list", "/api/conversations/", auth),
            ):
                cpu0, client0, t0 = cpu_seconds(workers), _client_cpu(), time.perf_counter()
                outcome = asyncio.run(_phase(server.url, path, headers, connections, duration))
                wall = time.perf_counter() - t0
                outcome["workers_cpu_cores"] = round((cpu_seconds(workers) - cpu0) / wall, 2)
                outcome["client_cpu_cores"] = round((_client_cpu() - client0) / wall, 2)
                phases[name].append(outcome)

    base = sum(p["rps"] for p in phases["baseline"]) / len(phases["baseline"])
    lst = sum(p["rps"] for p in phases["list"]) / len(phases["list"])
    errors = sum(p["errors"] for ps in phases.values() for p in ps)
    ratio = round(lst / base, 3) if base else float("nan")
    figures = {
        "connections": connections,
        "seconds_per_phase": duration,
        "baseline (constant JSON view)": phases["baseline"],
        "GET /api/conversations/ (JWT, page of 20)": phases["list"],
        "baseline_rps": round(base, 1),
        "list_rps": round(lst, 1),
        "errors": errors,
        "ratio list/baseline": ratio,
    }
    checks = [
        Check("errors", errors, "0", errors == 0, functional=True),
        Check("throughput ratio", ratio, ">= 0.5", ratio >= 0.5),
    ]
    result = report(
        experiment_label() + f"4. cheap API throughput{label}{' (quick)' if quick else ''}",
        figures,
        checks,
    )
    save("api_throughput" + label.strip().replace(" ", "_") + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    label = " [PostgreSQL]" if args.database_url else ""
    raise SystemExit(
        exit_status(
            run(
                args.quick,
                args.connections,
                args.duration,
                database_url=args.database_url,
                label=label,
            )
        )
    )


if __name__ == "__main__":
    main()
