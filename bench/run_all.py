"""Run every benchmark, each in its own process.

    python -m bench.run_all [--quick] [--only NAME ...]

``--quick`` (``make bench-quick``, run by .ci/run) proves that each benchmark works, in well under a
minute each; it fails only when a benchmark breaks (errors, replies not saved), never on a speed.
Without it, the full benchmarks of docs/benchmarks.md run (about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.common import ROOT, machine, raise_nofile
from tests.support.postgres import PG_BIN

BENCHMARKS = [
    "ttft",
    "capacity",
    "burst",
    "api_throughput",
    "long_history",
    "db_connections",
    "reply_cpu",
    "soak",
    "quota_hold",
    "export",
    "extract",
    "attachment_send",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS)
    args = parser.parse_args()
    raise_nofile()
    print(f"machine: {machine()}", flush=True)
    failed = []
    for name in args.only or BENCHMARKS:
        print(f"\n-- bench.{name}: load average {os.getloadavg()[0]:.2f} at its start", flush=True)
        if name == "db_connections" and PG_BIN is None:
            print(f"\n== {name}: skipped (no PostgreSQL under /usr/lib/postgresql)", flush=True)
            continue
        command = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if args.quick else [])
        started = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        print(f"-- bench.{name}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that did not work: {', '.join(failed)}", flush=True)
        sys.exit(1)
    print("\nall benchmarks ran", flush=True)


if __name__ == "__main__":
    main()
