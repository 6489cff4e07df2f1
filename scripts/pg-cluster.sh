#!/bin/sh
# Start a throwaway PostgreSQL cluster on 127.0.0.1 (Debian's postgresql package) and print its
# DATABASE_URL. Usage: scripts/pg-cluster.sh [port] [datadir]   — stop: pg_ctl -D datadir stop
# The launcher is tests/support/postgres.py (stdlib only), the one the tests and benchmarks use.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
exec "$PYTHON" "$ROOT/tests/support/postgres.py" "$@"
