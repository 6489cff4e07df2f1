"""Fuzz the API from its own OpenAPI schema, as a signed-in user, against gunicorn as shipped.

    .venv/bin/python -m tests.fuzz.run_schemathesis [--max-examples N] [--seed S]

Starts the loopback Spark server and chatsite under gunicorn (2 workers, a fresh SQLite file),
registers a user, and runs schemathesis over every operation in /api/schema/ in every phase
(examples, coverage, fuzzing, stateful) with every check (`--checks all`, including hooks.py's
`documented_refusal`; see schemathesis.toml): no 5xx, responses that match the schema (statuses,
content types, headers, bodies, stream events), schema-invalid input refused, schema-valid input
accepted (or refused only with a code the operation documents), authentication and deleted
resources honoured. Then the server's log must hold no traceback. Exits non-zero on any failure;
prints how many cases ran.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.reliability.faulty_spark import FaultySpark
from tests.reliability.live import LiveApi, access_log, live_server

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY = "fuzz-key:fuzz-secret"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-examples", type=int, default=int(os.environ.get("FUZZ_MAX_EXAMPLES", 100))
    )
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", 20261126)))
    parser.add_argument("--report-dir", default=str(ROOT / "test-artifacts" / "fuzz"))
    args = parser.parse_args(argv)

    with (
        FaultySpark(passwords={"*": KEY}) as spark,
        live_server(spark_url=spark.url, spark_key=KEY, workers=2) as server,
        LiveApi(server.url) as user,
    ):
        conversation_id = user.conversation(title="fuzzing")
        assert user.send(conversation_id, "hello").status_code == 201
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "--no-color",
            "run",
            f"{server.url}/api/schema/",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {user.access}",
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--report",
            "junit",
            "--report-dir",
            args.report_dir,
        ]
        print(f"schemathesis: --max-examples {args.max_examples} --seed {args.seed}", flush=True)
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks"}
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800
        )
        print(result.stdout[-20000:])
        if result.stderr.strip():
            print(result.stderr[-5000:], file=sys.stderr)
        log = server.log()
        server_errors = [row for row in access_log(server) if row[1] >= 500]

    cases = int(m.group(1)) if (m := re.search(r"(\d+) generated", result.stdout)) else 0
    failed = int(m.group(1)) if (m := re.search(r"(\d+) unique failures?", result.stdout)) else 0
    problems = []
    if result.returncode != 0:
        problems.append(f"schemathesis exited {result.returncode}")
    if "Traceback" in log or "Internal Server Error" in log:
        problems.append("the server logged a traceback:\n" + log[-5000:])
    if server_errors:
        problems.append(f"{len(server_errors)} responses were 5xx: {server_errors[:10]}")
    for problem in problems:
        print("FUZZ FAILED: " + problem, file=sys.stderr)
    if problems and not failed:
        failed = 1
    print(f"fuzz: {cases - failed} passed, {failed} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
