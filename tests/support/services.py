"""Throwaway PostgreSQL, Redis and nginx on loopback, for the scale-out test and the benchmarks.

Each runs on a free port with every file it writes under a temporary folder, and is stopped by
``stop()`` (or used as a context manager). PostgreSQL's launcher is tests/support/postgres.py
(also behind scripts/pg-cluster.sh); gunicorn's is ``ChatsiteServer`` in tests/support/servers.py.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.postgres import PG_BIN, PostgresCluster
from tests.support.servers import free_port

__all__ = ["Nginx", "PostgresCluster", "RedisServer", "missing_binaries"]

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def missing_binaries() -> list[str]:
    """What the scale-out stack needs and this machine lacks."""
    missing = []
    if not Path(NGINX).exists():
        missing.append("nginx (Debian package nginx)")
    if not Path(REDIS_SERVER).exists():
        missing.append("redis-server (Debian package redis-server)")
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        missing.append("PostgreSQL server (Debian package postgresql)")
    return missing


def _wait_port(port: int, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


class RedisServer:
    """redis-server in the foreground, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--maxclients",
                "10000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 10, self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    upstream chatsite {{
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 2m;

        # Prometheus scrapes the instances directly, never through the public proxy.
        location = /metrics {{
            return 404;
        }}

        location / {{
            proxy_pass http://chatsite;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            # Streams: pass every frame on at once, and let a reply run for minutes.
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
            # Which instance answered (for tests; leave it out in production).
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class Nginx:
    """Debian's nginx in the foreground (``daemon off``) with its own prefix, config and temps."""

    def __init__(self, upstreams: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = Path(tempfile.mkdtemp(prefix="chatsite-nginx-"))
        self.prefix.chmod(0o755)  # the worker process may run as another user
        servers = "\n".join(f"        server {upstream};" for upstream in upstreams)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(prefix=self.prefix, port=self.port, servers=servers))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        command = [
            NGINX,
            "-p",
            str(self.prefix),
            "-c",
            str(self.conf),
            "-e",
            str(self.prefix / "error.log"),
            "-g",
            "daemon off;",
        ]
        check = subprocess.run([*command[:-2], "-t"], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_port(self.port, 10, self.process)
        return self

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # TERM: fast shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
