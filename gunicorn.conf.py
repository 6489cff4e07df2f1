"""gunicorn as shipped: gevent workers, so one worker process holds many open streams.

Every value can be overridden from the environment (names below); see docs/deploy.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two cores: two processes. Each gevent worker holds thousands of mostly idle streams; CPU, not
# connections, is what more processes would buy.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "4000"))
# Under gevent the worker heartbeats independently of requests, so long streams are not killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# Streams are long-lived: the response headers go out at once, the body as frames arrive.
proc_name = "chatsite"
# gunicorn 27's control socket defaults to one path per user, which two instances on one host
# would fight over; chatsite does not use it.
control_socket_disable = True

# prometheus_client's multiprocess mode: every worker writes its metrics to files in this folder
# and /metrics adds them up. It must be empty when the server starts.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"chatsite-metrics-{os.getpid()}")
)
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}"]


def on_starting(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker died (or was killed): drop its live gauges and settle the replies it was streaming."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
    try:
        import socket

        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
        django.setup()
        from django.db import connection

        from conversations.services import messages_recover_stale

        count = messages_recover_stale(worker=f"{socket.gethostname()}:{worker.pid}")
        connection.close()
        if count:
            server.log.warning("worker %s died: %s streaming repl(ies) marked interrupted", worker.pid, count)
    except Exception:  # noqa: BLE001 - the master must survive; the next request recovers them too
        server.log.exception("could not recover the streams of worker %s", worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(_metrics_dir, ignore_errors=True)
