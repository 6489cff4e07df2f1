"""Benchmark 7: the CPU one reply costs chatsite's workers, and where it goes.

gunicorn as shipped (2 gevent workers, SQLite) against the loopback Spark stand-in answering at
once (no first-token delay, 20 tokens, no interval), so the workers' CPU is chatsite's own: the
request, authentication, the turn's transaction, the history read, the upstream request, the 20
delta frames and the final write. ``--clients`` streams at a time, each continuing its own
conversation of one API user, over new connections. CPU seconds of the worker processes (from
/proc) over the measured replies, divided by their number. ``--profile`` also samples one worker
with py-spy (a dev dependency) and prints the functions with the most samples (self and total).

    python -m bench.reply_cpu [--quick] [--replies 1000] [--clients 10] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.client import stream_post
from bench.common import (
    Check,
    SparkStandIn,
    add_server_arguments,
    chatsite,
    cpu_seconds,
    exit_status,
    experiment_label,
    raise_nofile,
    report,
    save,
    server_env_and_label,
    setup_data,
    slots,
)

SPARK_KEY = "test-key:test-secret"
TARGET_MS = 3.0  # "a few milliseconds" a reply


async def _drive(url: str, conversations: list[tuple[str, str]], replies: int) -> list[str]:
    """``replies`` streamed replies, one client per conversation, each sending in turn."""
    errors: list[str] = []
    remaining = [replies]

    async def client(token: str, conversation: str) -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            result = await stream_post(
                f"{url}/api/conversations/{conversation}/messages/",
                {"content": "hello there, how are you today?", "stream": True},
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            if not result.ok:
                errors.append(result.error or f"HTTP {result.status}")

    await asyncio.gather(*(client(token, conv) for token, conv in conversations))
    return errors


def _py_spy_summary(raw: Path, top: int = 25) -> dict[str, list[tuple[str, float]]]:
    """Functions by share of samples, self and total, from py-spy's collapsed stacks."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        self_counts[frames[-1]] += count
        for frame in set(frames):
            total_counts[frame] += count
    share = 100.0 / max(samples, 1)
    return {
        "self_pct": [(f, round(c * share, 1)) for f, c in self_counts.most_common(top)],
        "total_pct": [(f, round(c * share, 1)) for f, c in total_counts.most_common(top)],
    }


def run(
    quick: bool = False,
    replies: int = 1000,
    clients: int = 10,
    profile: bool = False,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    raise_nofile()
    if quick:
        replies, clients = 100, 5
    spark = SparkStandIn(first_token_delay=0.0, token_interval=0.0, tokens=20)
    server = chatsite(
        spark.url, env={**(env or {}), "SPARK_API_PASSWORD": SPARK_KEY}, database_url=database_url
    )
    profile_figures: dict[str, Any] = {}
    try:
        server.start()
        data = setup_data(server, users=1, per_user=clients)
        conversations = slots(data)
        # Warm-up: connections, caches, the first requests' imports.
        asyncio.run(_drive(server.url, conversations, 10 * clients))
        spy = None
        if profile and shutil.which("py-spy", path=str(Path(sys.executable).parent)):
            raw = Path(os.environ.get("BENCH_PROFILE_OUT") or tempfile.mkdtemp()) / "stacks.txt"
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server.worker_pids()[0]),
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--nonblocking",
                    "--output",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        before = cpu_seconds(server.worker_pids())
        started = time.perf_counter()
        errors = asyncio.run(_drive(server.url, conversations, replies))
        elapsed = time.perf_counter() - started
        used = cpu_seconds(server.worker_pids()) - before
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
            if raw.exists():
                profile_figures = _py_spy_summary(raw)
    finally:
        server.stop()
        spark.stop()
    per_reply_ms = round(used * 1000 / max(replies, 1), 2)
    figures = {
        "replies": replies,
        "clients": clients,
        "errors": len(errors),
        "first_errors": errors[:3],
        "workers_cpu_s": round(used, 2),
        "cpu_ms_per_reply": per_reply_ms,
        "replies_per_s": round(replies / elapsed, 1),
        **({"profile (one worker)": profile_figures} if profile_figures else {}),
    }
    checks = [
        Check("errors", len(errors), "0", not errors, functional=True),
        Check(
            "workers' CPU per reply ms", per_reply_ms, f"<= {TARGET_MS}", per_reply_ms <= TARGET_MS
        ),
    ]
    return report(
        f"{experiment_label()}7. CPU per reply{label}{' (quick)' if quick else ''}", figures, checks
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replies", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="sample one worker with py-spy")
    add_server_arguments(parser)
    args = parser.parse_args()
    env, label = server_env_and_label(args)
    result = run(
        args.quick,
        args.replies,
        args.clients,
        args.profile,
        env=env,
        database_url=args.database_url,
        label=label,
    )
    save("reply_cpu" + ("-quick" if args.quick else ""), result)
    return exit_status(result)


if __name__ == "__main__":
    sys.exit(main())
