"""Benchmark 8: soak. 100 clients, each continuing its own conversation, for six minutes.

gunicorn as shipped (2 gevent workers, SQLite) against the Spark stand-in (its own process):
first token after 0.2 s, then 20 tokens 0.09 s apart, so that each client sends about one
message every 2 s and the 100 of them about 50 a second. The clients are 100 API users, one
conversation each (the way the independent soak ran). Every message is ~250 characters and the
stand-in echoes it, so that after ~180 turns a conversation is far beyond the 8K window of model
``lite`` and chatsite trims the history it sends (the stand-in rejects a prompt over the window).
Two clients send straight to the stand-in all along: the direct TTFT of each minute, subtracted
from chatsite's of the same minute. The load comes from this process.

Reported: added TTFT p50/p99 in the first minute (short conversations) and in the last minute
(long ones), their ratio (target <= 2), errors, replies lost (sent vs saved complete in the
database), turns reached, and the workers' RSS every 15 s: idle (after 10 warm-up replies,
before the load), peak and end. Target: peak <= 2 x (idle + open streams x the per-stream share
measured by bench.capacity, test-artifacts/bench/capacity.json; 128 KB, its target, when absent).

    python -m bench.soak [--quick] [--minutes 6] [--clients 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from typing import Any

from bench.client import StreamResult, stream_post
from bench.common import (
    ROOT,
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
FIRST_TOKEN, INTERVAL, TOKENS = 0.2, 0.09, 20
FILLER = (
    "Please keep this in mind for the rest of our conversation: the quick brown fox jumps over "
    "the lazy dog while the five boxing wizards jump quickly, and pack my box with five dozen "
    "liquor jugs. "
)


def _per_stream_kb() -> tuple[float, str]:
    path = ROOT / "test-artifacts" / "bench" / "capacity.json"
    try:
        kb = float(json.loads(path.read_text())["figures"]["KB_per_open_stream"])
        return kb, f"bench.capacity ({path.relative_to(ROOT)})"
    except (OSError, KeyError, ValueError):
        return 128.0, "the capacity target (no capacity.json)"


async def _soak(
    base: str,
    spark: SparkStandIn,
    pairs: list[tuple[str, str]],
    seconds: float,
    workers: list[int],
    sample_every: float,
) -> dict[str, Any]:
    site: list[StreamResult] = []
    direct: list[StreamResult] = []
    turns = [0] * len(pairs)
    state = {"open": 0}
    samples: list[tuple[float, float, int]] = []
    start = time.perf_counter()
    done = asyncio.Event()

    async def client(index: int, token: str, conversation: str) -> None:
        await asyncio.sleep(index * 2.0 / len(pairs))  # starts spread over one reply
        while time.perf_counter() - start < seconds:
            state["open"] += 1
            try:
                result = await stream_post(
                    f"{base}/api/conversations/{conversation}/messages/",
                    {"content": f"turn {turns[index] + 1}. {FILLER}", "stream": True},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=120,
                )
            finally:
                state["open"] -= 1
            site.append(result)
            if result.ok:
                turns[index] += 1
            else:
                await asyncio.sleep(0.5)

    async def prober() -> None:
        payload = {
            "model": "lite",
            "stream": True,
            "messages": [{"role": "user", "content": f"probe. {FILLER}"}],
        }
        while time.perf_counter() - start < seconds:
            direct.append(
                await stream_post(
                    spark.chat_url,
                    payload,
                    headers={"Authorization": f"Bearer {SPARK_KEY}"},
                    timeout=60,
                )
            )

    async def sampler() -> None:
        while not done.is_set():
            rss = await asyncio.to_thread(rss_kib, workers)
            samples.append(
                (round(time.perf_counter() - start, 1), round(rss / 1024, 1), state["open"])
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), sample_every)

    sampler_task = asyncio.create_task(sampler())
    cpu0 = cpu_seconds(workers)
    await asyncio.gather(*(client(i, *p) for i, p in enumerate(pairs)), prober(), prober())
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds(workers) - cpu0
    done.set()
    await sampler_task
    return {
        "site": site,
        "direct": direct,
        "turns": turns,
        "samples": samples,
        "start": start,
        "elapsed": elapsed,
        "cpu_cores": cpu / elapsed,
    }


def _window(results: list[StreamResult], start: float, lo: float, hi: float) -> list[float]:
    return [r.ttft for r in results if r.ok and r.ttft is not None and lo <= r.start - start < hi]


def run(
    quick: bool = False,
    minutes: float = 6.0,
    clients: int = 100,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    raise_nofile()
    sample_every = 15.0
    if quick:
        minutes, clients, sample_every = 0.35, min(clients, 20), 5.0
    seconds = minutes * 60
    window = min(60.0, seconds / 3)  # the first and the last minute (thirds in --quick)
    kb_share, kb_basis = _per_stream_kb()
    with (
        SparkStandIn(
            first_token_delay=FIRST_TOKEN, token_interval=INTERVAL, tokens=TOKENS
        ) as spark,
        chatsite(spark.url, env=env, database_url=database_url) as server,
    ):
        pairs = slots(setup_data(server, users=clients, per_user=1))
        extra = slots(setup_data(server, users=1, per_user=1))[0]
        workers = server.worker_pids()
        # Warm-up on a conversation of its own: imports, connections. Then idle memory.
        for _ in range(10):
            asyncio.run(
                stream_post(
                    f"{server.url}/api/conversations/{extra[1]}/messages/",
                    {"content": "warm [[delay:0]] [[interval:0]]", "stream": True},
                    headers={"Authorization": f"Bearer {extra[0]}"},
                    timeout=30,
                )
            )
        time.sleep(2)
        idle_mib = round(rss_kib(workers) / 1024, 1)
        out = asyncio.run(_soak(server.url, spark, pairs, seconds, workers, sample_every))
        time.sleep(1)
        end_mib = round(rss_kib(workers) / 1024, 1)
        saved = db_replies(server)

    site, direct, start = out["site"], out["direct"], out["start"]
    last_lo = seconds - window

    def added(lo: float, hi: float) -> dict[str, Any]:
        d = pcts(_window(direct, start, lo, hi))
        s = pcts(_window(site, start, lo, hi))
        return {
            "added_p50_ms": round(s["p50"] - d["p50"], 1),
            "added_p99_ms": round(s["p99"] - d["p99"], 1),
            "chatsite_ttft_ms": s,
            "direct_ttft_ms": d,
        }

    first, last = added(0, window), added(last_lo, seconds + 1)
    ratio_p50 = round(last["added_p50_ms"] / max(first["added_p50_ms"], 1.0), 2)
    ratio_p99 = round(last["added_p99_ms"] / max(first["added_p99_ms"], 1.0), 2)
    errors = [r.error or f"HTTP {r.status}" for r in site + direct if not r.ok]
    sent = len(site) + 10
    complete = int(saved["complete_with_text_and_usage"])
    peak_mib = max([s[1] for s in out["samples"]] + [end_mib])
    peak_open = max([s[2] for s in out["samples"]] + [0])
    rss_budget = round(2 * (idle_mib + clients * kb_share / 1024), 1)
    turns = sorted(out["turns"])
    figures = {
        "clients": f"{clients} API users, one conversation each",
        "upstream": f"first token {FIRST_TOKEN} s, {TOKENS} tokens {INTERVAL} s apart",
        "seconds": round(out["elapsed"], 1),
        "replies_per_s": round(len(site) / out["elapsed"], 1),
        "turns per conversation (min, median, max)": [turns[0], turns[len(turns) // 2], turns[-1]],
        f"first {window:g} s": first,
        f"last {window:g} s": last,
        "ratio last / first, added p50": ratio_p50,
        "ratio last / first, added p99": ratio_p99,
        "errors": len(errors),
        "first_errors": errors[:3],
        "sent (incl. 10 warm-up)": sent,
        "saved complete with usage": complete,
        "replies lost": sent - complete,
        "db by status": saved["by_status"],
        "workers_cpu_cores": round(out["cpu_cores"], 2),
        "workers_rss_MiB idle / peak / end": [idle_mib, peak_mib, end_mib],
        "open streams at most (sampled)": peak_open,
        "per-stream share KB (basis)": f"{kb_share} ({kb_basis})",
        "RSS budget MiB = 2 x (idle + clients x share)": rss_budget,
        "rss every sample (s, MiB, open)": out["samples"],
    }
    checks = [
        Check("errors", len(errors), "0", not errors, functional=True),
        Check("replies lost", sent - complete, "0", sent == complete, functional=True),
        Check("added TTFT p50, last / first window", ratio_p50, "<= 2", ratio_p50 <= 2),
        Check("added TTFT p99, last / first window", ratio_p99, "<= 2", ratio_p99 <= 2),
        Check("workers' RSS peak MiB", peak_mib, f"<= {rss_budget}", peak_mib <= rss_budget),
    ]
    result = report(
        experiment_label() + f"8. soak{label}{' (quick)' if quick else ''}", figures, checks
    )
    save("soak" + label.strip().replace(" ", "_") + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--clients", type=int, default=100)
    add_server_arguments(parser)
    args = parser.parse_args()
    env, label = server_env_and_label(args)
    raise SystemExit(
        exit_status(run(args.quick, args.minutes, args.clients, env, args.database_url, label))
    )


if __name__ == "__main__":
    main()
