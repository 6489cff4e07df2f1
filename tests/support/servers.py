"""Real servers for tests and benchmarks: chatsite under gunicorn as shipped, on loopback.

``ChatsiteServer`` migrates its own database (a fresh SQLite file unless ``DATABASE_URL`` is given),
starts ``gunicorn -c gunicorn.conf.py`` on a free port and waits for ``/healthz``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s: {last}")


class ChatsiteServer:
    def __init__(
        self,
        *,
        spark_url: str = "",
        spark_key: str = "test-key:test-secret",
        workers: int = 2,
        port: int | None = None,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        migrate: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="chatsite-server-"))
        # Logs and the SQLite file stay readable after stop(), until this process ends.
        atexit.register(shutil.rmtree, self.workdir, ignore_errors=True)
        self.database_url = database_url or f"sqlite:///{self.workdir / 'db.sqlite3'}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "CHATSITE_TESTING": "0",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": "test-secret-key-" + "s" * 40,
            "JWT_SIGNING_KEY": "test-jwt-key-" + "j" * 50,
            "DATABASE_URL": self.database_url,
            "SPARK_BASE_URL": spark_url,
            "SPARK_API_PASSWORD": spark_key,
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
            "STATIC_MANIFEST": "false",
            "WHITENOISE_USE_FINDERS": "true",
            "LLM_READ_TIMEOUT": "30",
            # No generated titles unless a test asks (their upstream call and `title` frame would
            # be in every first reply's counts), and files in the server's own folder.
            "TITLE_MODEL": "",
            "ATTACHMENTS_ROOT": str(self.workdir / "attachments"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.migrate = migrate
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "gunicorn.log"

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> ChatsiteServer:
        if self.migrate:
            self.manage("migrate", "--noinput", "-v0")
            self.manage("createcachetable")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py", "chatsite.wsgi"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(self.url + "/healthz")
        except TimeoutError as exc:
            self.stop()
            raise RuntimeError("gunicorn did not start:\n" + self.log()) from exc
        return self

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> ChatsiteServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def register_and_token(
    base_url: str, username: str, password: str = "correct-horse-battery-9"
) -> str:
    """Register a user over the API and return an access token."""
    requests.post(
        f"{base_url}/api/auth/register/",
        json={"username": username, "password": password},
        timeout=10,
    )
    response = requests.post(
        f"{base_url}/api/auth/token/", json={"username": username, "password": password}, timeout=10
    )
    response.raise_for_status()
    return str(response.json()["access"])
