"""Benchmark 1: time to first token added by chatsite, under the loads that show it.

The upstream is the Spark stand-in (tests/upstream/, its own process) answering like the
independent measurement's: first token after 0.2 s, then 20 tokens 0.1 s apart (replies of
~2.2 s). Time runs from before the TCP connect to the first ``delta`` frame; "added" at a
percentile = chatsite's percentile minus the same percentile straight to the stand-in, measured by
the same client code in the same run. The load always comes from this process (separate from
gunicorn and from the stand-in). Cases, in the order they run:

(d) cold: gunicorn started without any warm-up, 100 clients (100 users) with staggered starts,
    load from the moment /healthz answers, for the first minute;
(a) one client, one reply after another (direct and chatsite alternate; the 20 tokens 5 ms
    apart so that more replies fit: TTFT does not depend on the reply's tail), on a keep-alive
    (chunked) upstream and on a close-delimited one ((c), ``[[close]]``: the stand-in hangs up
    after every reply, so chatsite opens a new upstream connection each time);
(b) 100 clients, starts staggered over one reply, each sending chat after chat so that ~100
    streams are always in flight: as 100 users (one conversation each), as ONE API user driving
    100 conversations, and (c) as 100 users on the close-delimited upstream;
(b) 100 sends at the same instant (rounds alternating with the same 100 straight to the
    stand-in; ratio of the median round times): 100 users, one user, and (c) close-delimited.

    python -m bench.ttft [--quick] [--clients 100] [--duration 30] [--cold 60] [--sequential 80]
        [--rounds 3]
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
FIRST_TOKEN, INTERVAL, TOKENS = 0.2, 0.1, 20
REPLY_S = FIRST_TOKEN + INTERVAL * TOKENS
# (a): the same first token, a fast tail, so that more replies fit.
FAST_TAIL = "[[interval:0.005]]"
CLOSE = "[[close]]"  # the stand-in answers close-delimited and hangs up after the reply

Request = tuple[str, dict[str, Any], dict[str, str]]


def _direct(spark: SparkStandIn, content: str) -> Request:
    payload = {"model": "lite", "messages": [{"role": "user", "content": content}], "stream": True}
    return spark.chat_url, payload, {"Authorization": f"Bearer {SPARK_KEY}"}


def _site(base: str, token: str, conversation: str, content: str) -> Request:
    return (
        f"{base}/api/conversations/{conversation}/messages/",
        {"content": content, "stream": True},
        {"Authorization": f"Bearer {token}"},
    )


async def _sequential(pairs: list[tuple[Request, Request]]) -> tuple[list, list]:
    direct: list[StreamResult] = []
    site: list[StreamResult] = []
    for d, s in pairs:
        direct.append(await stream_post(d[0], d[1], headers=d[2], timeout=30))
        site.append(await stream_post(s[0], s[1], headers=s[2], timeout=30))
    return direct, site


async def _staggered(
    requests_for: list[Request], duration: float, warmup: float
) -> tuple[list[StreamResult], float]:
    """Each client sends chat after chat until ``duration``, the first sends spread over one
    reply; returns the results started after ``warmup`` and the time the phase started."""
    start = time.perf_counter()
    results: list[StreamResult] = []

    async def client(index: int, url: str, payload: dict[str, Any], headers: dict[str, str]):  # type: ignore[no-untyped-def]
        await asyncio.sleep(index * REPLY_S / len(requests_for))
        while time.perf_counter() - start < duration:
            result = await stream_post(url, payload, headers=headers, timeout=60)
            if result.start - start >= warmup:
                results.append(result)
            if result.error:
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client(i, *r) for i, r in enumerate(requests_for)))
    return results, start


async def _burst(requests_for: list[Request]) -> tuple[float, list[StreamResult]]:
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


def _ttfts(results: list[StreamResult]) -> list[float]:
    return [r.ttft for r in results if r.ok and r.ttft is not None]


def _summary(direct: list[StreamResult], site: list[StreamResult]) -> dict[str, Any]:
    d, s = pcts(_ttfts(direct)), pcts(_ttfts(site))
    added = {k: round(s[k] - d[k], 2) for k in ("p50", "p95", "p99")}
    errors = [r.error or f"HTTP {r.status}" for r in site + direct if not r.ok]
    saved = sum(1 for r in site if r.ok and r.final and r.final.get("status") == "complete")
    return {
        "added_ttft_ms": added,
        "direct_ttft_ms": d,
        "chatsite_ttft_ms": s,
        "replies": len(site),
        "saved_complete": saved,
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def _bursts(direct_req: list[Request], site_req: list[Request], rounds: int) -> dict[str, Any]:
    direct_times, site_times = [], []
    direct_results: list[StreamResult] = []
    site_results: list[StreamResult] = []
    for _ in range(rounds):
        elapsed, results = asyncio.run(_burst(direct_req))
        direct_times.append(elapsed)
        direct_results += results
        time.sleep(0.3)
        elapsed, results = asyncio.run(_burst(site_req))
        site_times.append(elapsed)
        site_results += results
        time.sleep(0.3)
    summary = _summary(direct_results, site_results)
    summary["ratio"] = round(statistics.median(site_times) / statistics.median(direct_times), 3)
    summary["direct_round_s"] = [round(t, 3) for t in direct_times]
    summary["chatsite_round_s"] = [round(t, 3) for t in site_times]
    return summary


def _checks(case: str, s: dict[str, Any], p50: float | None, p99: float | None) -> list[Check]:
    checks = []
    if p50 is not None:
        v = s["added_ttft_ms"]["p50"]
        checks.append(Check(f"{case}: added TTFT p50 ms", v, f"<= {p50:g}", v <= p50))
    if p99 is not None:
        v = s["added_ttft_ms"]["p99"]
        checks.append(Check(f"{case}: added TTFT p99 ms", v, f"<= {p99:g}", v <= p99))
    if "ratio" in s:
        v = s["ratio"]
        checks.append(Check(f"{case}: round time chatsite / direct", v, "<= 1.15", v <= 1.15))
    checks.append(Check(f"{case}: errors", s["errors"], "0", s["errors"] == 0, functional=True))
    checks.append(
        Check(
            f"{case}: replies saved complete",
            s["saved_complete"],
            f"= {s['replies']}",
            s["saved_complete"] == s["replies"],
            functional=True,
        )
    )
    return checks


def run(
    quick: bool = False,
    clients: int = 100,
    duration: float = 30.0,
    cold: float = 60.0,
    sequential: int = 80,
    rounds: int = 3,
    env: dict[str, str] | None = None,
    database_url: str | None = None,
    label: str = "",
) -> dict[str, Any]:
    raise_nofile()
    if quick:
        clients, duration, cold, sequential, rounds = min(clients, 10), 3.0, 3.0, 4, 1
    warmup = REPLY_S + 0.5  # the staggered starts ramp up over one reply
    figures: dict[str, Any] = {
        "upstream": f"first token {FIRST_TOKEN} s, {TOKENS} tokens {INTERVAL} s apart",
        "clients": clients,
    }
    checks: list[Check] = []
    with SparkStandIn(
        first_token_delay=FIRST_TOKEN, token_interval=INTERVAL, tokens=TOKENS
    ) as spark:
        server = chatsite(spark.url, env=env, database_url=database_url)
        # Data first, then gunicorn, so that the cold case starts the moment /healthz answers.
        server.manage("migrate", "--noinput", "-v0")
        server.manage("createcachetable")
        users = slots(setup_data(server, users=clients, per_user=1))
        one_user = slots(setup_data(server, users=1, per_user=clients))
        server.migrate = False

        # Direct baseline of the staggered cases, before gunicorn runs.
        direct_b, _ = asyncio.run(
            _staggered([_direct(spark, "hello") for _ in range(clients)], duration, warmup)
        )
        with server:
            workers = server.worker_pids()
            # (d) cold: no warm-up; results from the first request on.
            site_d, t0 = asyncio.run(
                _staggered([_site(server.url, *p, "hello") for p in users], cold, 0.0)
            )
            d = _summary(direct_b, site_d)
            first10 = [r for r in site_d if r.start - t0 < 10]
            d["added_ttft_ms_first_10_s"] = _summary(direct_b, first10)["added_ttft_ms"]
            figures[f"(d) cold: first {cold:g} s after start, {clients} users staggered"] = d
            checks += _checks(f"(d) cold, {clients} users staggered", d, 10, 25)

            # (a) sequential, one client, keep-alive and close-delimited upstream.
            for name, extra, count in (
                ("(a) sequential, one client, keep-alive upstream", "", sequential),
                ("(a)(c) sequential, one client, close-delimited upstream", CLOSE, sequential // 2),
            ):
                content = f"hello {FAST_TAIL} {extra}".strip()
                pairs = [(_direct(spark, content), _site(server.url, *users[0], content))] * count
                a = _summary(*asyncio.run(_sequential(pairs)))
                figures[name] = a
                checks += _checks(name.split(",")[0] + (" close" if extra else ""), a, 5, 10)

            # (b) staggered: 100 users; one user, 100 conversations; (c) 100 users, close.
            for name, slot_list, extra in (
                (f"(b) staggered, {clients} users, keep-alive upstream", users, ""),
                (f"(b) staggered, ONE user x {clients} conversations, keep-alive", one_user, ""),
                (f"(b)(c) staggered, {clients} users, close-delimited upstream", users, CLOSE),
            ):
                content = f"hello {extra}".strip()
                cpu0, c0 = cpu_seconds(workers), time.perf_counter()
                site_b, _ = asyncio.run(
                    _staggered(
                        [_site(server.url, *p, content) for p in slot_list], duration, warmup
                    )
                )
                b = _summary(direct_b, site_b)
                b["workers_cpu_cores"] = round(
                    (cpu_seconds(workers) - cpu0) / (time.perf_counter() - c0), 2
                )
                figures[name] = b
                checks += _checks(name.split(",")[0] + " " + name.split(",")[1].strip(), b, 10, 25)

            # (b) the same instant: 100 users; one user; (c) 100 users, close-delimited.
            for name, slot_list, extra in (
                (f"(b) same instant, {clients} users, keep-alive upstream", users, ""),
                (f"(b) same instant, ONE user x {clients} conversations, keep-alive", one_user, ""),
                (f"(b)(c) same instant, {clients} users, close-delimited upstream", users, CLOSE),
            ):
                content = f"hello {extra}".strip()
                burst = _bursts(
                    [_direct(spark, content) for _ in slot_list],
                    [_site(server.url, *p, content) for p in slot_list],
                    rounds,
                )
                figures[name] = burst
                checks += _checks(
                    name.split(",")[0] + " " + name.split(",")[1].strip(), burst, None, None
                )

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
    parser.add_argument("--duration", type=float, default=30.0, help="s per staggered phase")
    parser.add_argument("--cold", type=float, default=60.0, help="s of the cold case")
    parser.add_argument("--sequential", type=int, default=80, help="replies in (a)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each same-instant case")
    add_server_arguments(parser)
    args = parser.parse_args()
    env, label = server_env_and_label(args)
    raise SystemExit(
        exit_status(
            run(
                args.quick,
                args.clients,
                args.duration,
                args.cold,
                args.sequential,
                args.rounds,
                env=env,
                database_url=args.database_url,
                label=label,
            )
        )
    )


if __name__ == "__main__":
    main()
