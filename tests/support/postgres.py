"""Throwaway PostgreSQL on 127.0.0.1 (Debian's postgresql package): the one launcher of the tests,
the benchmarks and scripts/pg-cluster.sh. Stdlib only, so that it runs before the venv exists.

    python3 tests/support/postgres.py [PORT] [DATADIR]

creates the cluster in DATADIR (default /tmp/chatsite-pg-PORT, port 54329) unless it exists,
starts it unless it runs, makes the role and database ``chatsite`` and prints the DATABASE_URL.
The cluster keeps running (stop: ``pg_ctl -D DATADIR stop``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["PG_BIN", "PostgresCluster"]

_BINS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
PG_BIN: Path | None = _BINS[-1] if _BINS else None
DEFAULT_PORT = 54329


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """A cluster on ``port`` (default: a free one) in ``datadir`` (default: a new temporary
    folder). ``start()`` creates and starts only what is missing; ``stop()`` stops the server only
    if ``start()`` started it, and removes the folder only if ``start()`` created it.

    ``url`` is the ``chatsite`` database; ``create_database(name)`` gives a fresh one."""

    def __init__(self, port: int | None = None, datadir: str | Path | None = None) -> None:
        if PG_BIN is None:
            raise RuntimeError(
                "PostgreSQL not found under /usr/lib/postgresql (package postgresql)"
            )
        self.port = port or _free_port()
        self._temporary = datadir is None
        self.datadir = Path(datadir) if datadir else Path(tempfile.mkdtemp(prefix="chatsite-pg-"))
        self.url = f"postgres://chatsite:chatsite@127.0.0.1:{self.port}/chatsite"
        self.created_here = False
        self.started_here = False
        # initdb and the server refuse to run as root.
        self._runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, as_postgres: bool = False) -> str:
        command = [*(self._runas if as_postgres else []), str(PG_BIN / args[0]), *args[1:]]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
        return result.stdout

    def psql(self, sql: str, database: str = "postgres") -> str:
        url = f"postgres://postgres@127.0.0.1:{self.port}/{database}"
        return self._run("psql", url, "-v", "ON_ERROR_STOP=1", "-tAqc", sql)

    def running(self) -> bool:
        command = [*self._runas, str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "status"]
        return subprocess.run(command, capture_output=True).returncode == 0

    def start(self) -> PostgresCluster:
        if not (self.datadir / "PG_VERSION").exists():
            self.datadir.mkdir(parents=True, exist_ok=True)
            if self._runas:
                shutil.chown(self.datadir, "postgres")
            initdb = ["initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust"]
            self._run(*initdb, "-E", "UTF8", as_postgres=True)
            self.created_here = True
        if not self.running():
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.datadir} "
                "-c max_connections=300 -c fsync=off"
            )
            pg_ctl = ["pg_ctl", "-D", str(self.datadir), "-l", str(self.datadir / "server.log")]
            self._run(*pg_ctl, "-w", "-o", options, "start", as_postgres=True)
            self.started_here = True
        if self.psql("SELECT 1 FROM pg_roles WHERE rolname = 'chatsite'").strip() != "1":
            self.psql("CREATE ROLE chatsite LOGIN SUPERUSER PASSWORD 'chatsite'")
            self.psql("CREATE DATABASE chatsite OWNER chatsite")
        return self

    def create_database(self, name: str) -> str:
        """A new, empty database ``name`` (dropped first if it exists); returns its URL."""
        self.drop_database(name)
        self.psql(f'CREATE DATABASE "{name}" OWNER chatsite')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, name: str) -> None:
        self.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        self.psql(f'DROP DATABASE IF EXISTS "{name}"')

    def stop(self) -> None:
        if self.started_here:
            mode = "immediate" if self.created_here else "fast"  # a throwaway cluster: no need
            command = [*self._runas, str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode]
            subprocess.run([*command, "stop"], capture_output=True)
            self.started_here = False
        if self.created_here and self._temporary:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    port = int(argv[0]) if argv else DEFAULT_PORT
    datadir = argv[1] if len(argv) > 1 else f"/tmp/chatsite-pg-{port}"
    try:
        cluster = PostgresCluster(port, datadir).start()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(cluster.url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
