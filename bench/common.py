"""What the benchmarks share: the servers they start, test data, percentiles, memory, printing."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.servers import ROOT, ChatsiteServer
from tests.upstream.server import STATS_PATH

PYTHON = sys.executable

# Rate limiting stays on (its counters are part of every send) but far above the load.
# BENCH_DIALECT=deepseek (any dialect of tests/upstream/): the stand-in speaks that provider's
# dialect and the server chats with it through a provider row, as staff would add one in admin
# (bench/setup_data.py creates it), instead of the SPARK_* settings.
DIALECT = os.environ.get("BENCH_DIALECT", "")

BENCH_ENV = {
    "CHAT_RATE_LIMIT": "1000000/m",
    "GUNICORN_LOGLEVEL": os.environ.get("BENCH_GUNICORN_LOGLEVEL", "warning"),
    "LOG_LEVEL": "WARNING",
}


def raise_nofile() -> tuple[int, int]:
    """Lift this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem} MiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, "
        f"nofile {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}"
    )


class SparkStandIn:
    """The Spark stand-in of the tests (tests/upstream/, ``python -m tests.spark_server``) in its
    own process, so that it does not share a GIL with the load generator. ``stats()`` reads its
    stream counters (open, max_open, served, closed_early)."""

    def __init__(self, *, first_token_delay: float, token_interval: float, tokens: int) -> None:
        command = [PYTHON, "-m", "tests.spark_server", "--port", "0"]
        command += ["--first-token-delay", str(first_token_delay)]
        command += ["--token-interval", str(token_interval), "--tokens", str(tokens)]
        if DIALECT:
            command += ["--dialect", DIALECT]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.stop()
            raise RuntimeError("python -m tests.spark_server did not start")
        self.chat_url = self.url + "/chat/completions"
        self.stats_url = self.url.rsplit("/v1", 1)[0] + STATS_PATH

    def stats(self) -> dict[str, int]:
        return requests.get(self.stats_url, timeout=5).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SparkStandIn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def chatsite(
    spark_url: str, *, workers: int = 2, env: dict[str, str] | None = None, **kwargs: Any
) -> ChatsiteServer:
    extra = {}
    if os.environ.get("BENCH_SERVER_PYTHONPATH"):
        # An experiment (a folder with a sitecustomize.py) loaded into the server's processes.
        extra["PYTHONPATH"] = str((ROOT / os.environ["BENCH_SERVER_PYTHONPATH"]).resolve())
    if os.environ.get("BENCH_SERVER_SETTINGS"):
        # Experimental settings (a settings module) for the server's processes.
        extra["DJANGO_SETTINGS_MODULE"] = os.environ["BENCH_SERVER_SETTINGS"]
    if DIALECT:
        extra["BENCH_PROVIDER_DIALECT"] = DIALECT
        extra["BENCH_PROVIDER_URL"] = spark_url
        extra["DEFAULT_MODEL"] = f"bench-{DIALECT}"
    return ChatsiteServer(
        spark_url=spark_url, workers=workers, env={**BENCH_ENV, **extra, **(env or {})}, **kwargs
    )


def setup_data(
    server: ChatsiteServer, users: int, per_user: int, messages: int = 0
) -> list[dict[str, Any]]:
    """Users and conversations created in the server's database; returns tokens and ids."""
    result = subprocess.run(
        [PYTHON, "-m", "bench.setup_data", str(users), str(per_user), str(messages)],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError("bench.setup_data failed:\n" + result.stderr[-3000:])
    return json.loads(result.stdout)


def slots(data: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(token, conversation id) pairs, one per conversation."""
    return [(user["token"], conv) for user in data for conv in user["conversations"]]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def pcts(values: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (``values`` in seconds)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * scale, 2),
        "p95": round(percentile(values, 95) * scale, 2),
        "p99": round(percentile(values, 99) * scale, 2),
        "max": round(max(values) * scale, 2) if values else float("nan"),
    }


def rss_kib(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pids: Iterable[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except OSError:
            pass
    return total


@dataclass
class Check:
    name: str
    value: float
    target: str
    ok: bool
    # A functional check (errors, replies saved) fails a --quick run; a speed check never does.
    functional: bool = False

    def line(self) -> str:
        return (
            f"  {'PASS' if self.ok else 'MISS'}  {self.name} = {self.value} (target {self.target})"
        )


def experiment_label() -> str:
    """Marks the figures of a run made with an experiment loaded into the server."""
    names = _experiments()
    return f"[experiment {'+'.join(names)}] " if names else ""


def _experiments() -> list[str]:
    names = []
    if os.environ.get("BENCH_SERVER_PYTHONPATH"):
        names.append(Path(os.environ["BENCH_SERVER_PYTHONPATH"]).name)
    if os.environ.get("BENCH_SERVER_SETTINGS"):
        names.append(os.environ["BENCH_SERVER_SETTINGS"].split(".")[-2])
    return names


def report(title: str, figures: dict[str, Any], checks: list[Check]) -> dict[str, Any]:
    # Other work on the machine skews every figure: say how busy it was.
    figures = {
        **figures,
        "load average (1, 5, 15 min) at the end": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"\n== {title}", flush=True)
    for key, value in figures.items():
        print(f"  {key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    for check in checks:
        print(check.line())
    print(flush=True)
    return {"title": title, "figures": figures, "checks": [c.__dict__ for c in checks]}


def exit_status(result: dict[str, Any]) -> int:
    """Non-zero when a functional check failed: the benchmark does not work."""
    return 1 if any(c["functional"] and not c["ok"] for c in result["checks"]) else 0


def save(name: str, result: dict[str, Any]) -> None:
    """Keep the figures of a run under test-artifacts/bench/ (CI lists that folder)."""
    folder = ROOT / "test-artifacts" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    result = {**result, "machine": machine(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    if _experiments():
        name += "-experiment-" + "+".join(_experiments())
    (folder / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))


def have(binary: str) -> bool:
    return shutil.which(binary) is not None or Path(binary).exists()


def db_replies(server: ChatsiteServer) -> dict[str, Any]:
    """Assistant replies saved in the server's database, by status."""
    result = subprocess.run(
        [PYTHON, "-m", "bench.db_check"], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError("bench.db_check failed:\n" + result.stderr[-3000:])
    return json.loads(result.stdout)


def add_server_arguments(parser: Any) -> None:
    """The options every server benchmark takes: which database, and Redis for the rate limits."""
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--redis-url", default="", help="REDIS_URL for the server (rate-limit cache)"
    )


def server_env_and_label(args: Any) -> tuple[dict[str, str] | None, str]:
    env = {"REDIS_URL": args.redis_url} if args.redis_url else None
    label = (" [PostgreSQL]" if args.database_url else "") + (" [Redis]" if args.redis_url else "")
    label += f" [dialect {DIALECT}]" if DIALECT else ""
    return env, label
