"""gunicorn as shipped: gevent workers, so one worker process holds many open streams.

Every value can be overridden from the environment (names below); see docs/deploy.md.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess  # nosec B404 - runs manage.py recover_streams, a fixed command
import sys
import tempfile
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Two cores: two processes. Each gevent worker holds thousands of mostly idle streams; CPU, not
# connections, is what more processes would buy.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "4000"))
# Each worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections
# over them. On one shared socket every worker wakes for each connection and the first to run
# takes it, which handed one worker two thirds to four fifths of the streams in the capacity
# benchmark and all 32 keep-alive connections of the API benchmark. GUNICORN_REUSE_PORT=0 goes
# back to the shared socket.
reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "1") != "0"
# Under gevent the worker heartbeats independently of requests, so long streams are not killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
proc_name = "chatsite"
# gunicorn 27's control socket defaults to one path per user, which two instances on one host
# would fight over; chatsite does not use it.
control_socket_disable = True

# PostgreSQL: a pool of this many connections per worker (chatsite/settings.py). Two per worker
# keep the server at 2 x workers connections however many streams are open; requests queue for a
# connection instead of forking a new PostgreSQL backend each. Raise it for database-heavy loads.
os.environ.setdefault("DB_POOL_MAX_SIZE", "2")
# SQLite: each worker keeps up to this many idle connections for its next requests instead of
# opening (and closing) one per request (chatsite/sqlite_pool).
os.environ.setdefault("SQLITE_POOL_SIZE", "8")

# prometheus_client's multiprocess mode: every worker writes its metrics to files in this folder
# and /metrics adds them up. It must be empty when the server starts.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"chatsite-metrics-{os.getpid()}")
)
raw_env = [f"PROMETHEUS_MULTIPROC_DIR={_metrics_dir}"]
_root = os.path.dirname(os.path.abspath(__file__))


def on_starting(server):  # type: ignore[no-untyped-def]
    if reuse_port:
        _refuse_a_taken_address(server)
        migrate_queued_connections(server.log)
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def _refuse_a_taken_address(server):  # type: ignore[no-untyped-def]
    """With SO_REUSEPORT a second server (same user) would silently share a port another one
    already listens on, each taking part of the connections. Fail loudly instead, as gunicorn
    does without it: a plain bind fails on a port that anything listens on."""
    for address in server.cfg.address:
        if not isinstance(address, tuple):
            continue  # a unix socket or a file descriptor
        host, port = address[0], address[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind((host, port))
            except OSError as exc:
                server.log.error(
                    "%s:%s is already in use (%s): is chatsite running?", host, port, exc
                )
                sys.exit(1)


# With a socket per worker, a worker that dies (a crash, or the SIGKILL after `timeout`) takes its
# socket with it, and the kernel resets every connection still queued on that socket: accepted by
# the kernel, not yet by the worker. net.ipv4.tcp_migrate_req=1 (Linux 5.14+, one value per network
# namespace, 0 by default) makes the kernel hand them to the other workers' sockets instead; it
# changes nothing else. The master turns it on when it may (as root); GUNICORN_TCP_MIGRATE_REQ=0
# leaves it alone. See docs/deploy.md.
TCP_MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"


def migrate_queued_connections(log, path=TCP_MIGRATE_REQ):  # type: ignore[no-untyped-def]
    """Turn net.ipv4.tcp_migrate_req on, or say in one line why it stays off. Never fails: without
    it only the connections queued on a dying worker are lost, as they were before."""
    try:
        with open(path) as current:
            if current.read().strip() != "0":
                return  # already on
    except OSError:
        return  # a kernel without it (before 5.14), or no /proc: nothing to turn on
    if os.environ.get("GUNICORN_TCP_MIGRATE_REQ", "1") == "0":
        why = "left off by GUNICORN_TCP_MIGRATE_REQ=0"
    else:
        try:
            with open(path, "w") as setting:
                setting.write("1")
        except OSError as exc:  # not root (or a read-only /proc/sys in a container)
            why = f"cannot set it: {exc.strerror or exc}"
        else:
            log.info("set net.ipv4.tcp_migrate_req=1: a dying worker's queued connections live on")
            return
    log.warning(
        "net.ipv4.tcp_migrate_req is 0 (%s): connections queued on a worker that dies are reset; "
        "to hand them to the other workers run: sysctl -w net.ipv4.tcp_migrate_req=1",
        why,
    )


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker died (or was killed): drop its live gauges and settle the replies it was streaming.

    Nothing heavy is imported here: the master forks every later worker, and a master that has
    imported Django, requests or prometheus_client (and with them ``ssl``) hands its replacement
    workers modules that gevent can no longer patch: urllib3 would keep the blocking SSLContext and
    one HTTPS read would stall every stream of the worker. So the gauges are removed by file name
    (what ``prometheus_client.multiprocess.mark_process_dead`` does) and the replies are settled by
    ``manage.py recover_streams`` in a process of its own; gunicorn reaps it like any child.
    """
    for path in glob.glob(os.path.join(_metrics_dir, f"gauge_live*_{worker.pid}.db")):
        try:
            os.remove(path)
        except OSError:
            pass
    try:
        subprocess.Popen(  # noqa: S603  # nosec B603 - fixed argv (manage.py), no shell
            [
                sys.executable,
                os.path.join(_root, "manage.py"),
                "recover_streams",
                "--worker",
                f"{socket.gethostname()}:{worker.pid}",
            ],
            cwd=_root,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings"},
            stdin=subprocess.DEVNULL,
        )
    except OSError:  # the master must survive; the next request to the conversation recovers too
        server.log.exception("could not start stream recovery for worker %s", worker.pid)


# SQLite only: one connection each worker holds for its whole life. Requests open and close their
# own connections (no stream holds one), and when the last connection to a WAL database closes,
# SQLite checkpoints (with fsyncs) and deletes the WAL; that ran on nearly every request and,
# being C code, stalled the whole gevent worker. See docs/benchmarks.md.
_sqlite_keeper = None


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    global _sqlite_keeper
    import sqlite3

    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] in ("django.db.backends.sqlite3", "chatsite.sqlite_pool"):
        _sqlite_keeper = sqlite3.connect(str(database["NAME"]))
        _sqlite_keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()

    # Full garbage collections paced by their own cost instead of whenever the heap grew
    # (chatsite/gc_tuning.py).
    import gevent

    from chatsite import gc_tuning
    from conversations import metrics

    gc_tuning.configure(
        float(os.environ.get("GC_FULL_COLLECT_SECONDS", "300")),
        gevent.spawn,
        time_share=float(os.environ.get("GC_TIME_SHARE", "0.005")),
        live=metrics.open_streams,
    )


def on_exit(server):  # type: ignore[no-untyped-def]
    shutil.rmtree(_metrics_dir, ignore_errors=True)
