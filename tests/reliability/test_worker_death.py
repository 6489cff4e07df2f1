"""A worker killed under a steady stream of new connections: no connection it had not yet
accepted may be lost (gunicorn as shipped: 2 gevent workers, a SO_REUSEPORT socket each).

Each worker listens on its own socket, so a worker that dies takes with it the connections queued
on that socket (handshake done by the kernel, not yet accepted by the worker): Linux resets them
unless net.ipv4.tcp_migrate_req=1 hands them to the surviving workers' sockets, which
gunicorn.conf.py turns on at start when it may.

What a client can tell apart, and what not: a connection the dying worker had accepted but not
answered is reset (request unread) or closed (request read) whatever the sysctl; one only queued
is reset without the sysctl. The client sees the same reset for both, and a running worker accepts
while the kernel queues, so after a plain SIGKILL under load a reset cannot be put down to either.
(Measured all the same, 100 clients on 2 cores: at 1, one reset in 10 kills, and about one answer
cut short per kill; at 0, 0 to 100 resets per kill, 65 on average over 9.)

So the test freezes the worker first, as a worker stuck in C code is frozen until gunicorn's
`timeout` SIGKILLs it: new connections wait a moment, the requests under way end, SIGSTOP, and the
test waits until /proc shows every thread of the worker stopped. From then on it accepts nothing.
The load resumes; the connections the kernel hashes to the frozen worker's socket pile up in its
queue (nearly all 100 clients within half a second); SIGKILL; the load goes on for 1.5 s. Every
connection opened after the freeze is one the worker never accepted: with the sysctl at 1 none may
fail. The control, at 0, sees the queued ones reset: the test sees the loss it guards against.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import PYTHON, ROOT, ChatsiteServer

SYSCTL = Path("/proc/sys/net/ipv4/tcp_migrate_req")
LOCK = Path(tempfile.gettempdir()) / "chatsite-tcp_migrate_req.lock"
CLIENTS = 100  # concurrent clients, each opening a fresh connection for every request
FROZEN = 0.5  # seconds the worker stays stopped: its socket's queue fills with waiting clients
AFTER_KILL = 1.5  # seconds of load after the SIGKILL
IO_TIMEOUT = 10.0  # longer than any wait on the frozen worker

pytestmark = [
    pytest.mark.slow,  # gunicorn processes, a few seconds of load
    pytest.mark.skipif(
        not SYSCTL.exists(), reason="the kernel has no net.ipv4.tcp_migrate_req (Linux < 5.14)"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="setting net.ipv4.tcp_migrate_req needs root"),
]


@pytest.fixture
def migrate_req() -> Iterator[Callable[[int], None]]:
    """Set net.ipv4.tcp_migrate_req (the whole network namespace's); restored after the test.

    The tests that set it run one at a time, across processes too: other test runs in this tree
    would otherwise turn it off under each other, and restore each other's values."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        original = SYSCTL.read_text().strip()
        try:
            yield lambda value: SYSCTL.write_text(str(value))
        finally:
            SYSCTL.write_text(original)


@dataclass
class Attempt:
    started: float  # time.monotonic() before connect()
    ended: float
    outcome: str  # "ok", "reset", "refused", "eof", "truncated", "timeout", "status <code>"...


class Load:
    """CLIENTS threads, each sending GET /healthz on a new connection until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.request = (
            f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._gate = threading.Event()  # cleared: no client opens a new connection
        self._gate.set()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._gate.set()
        for thread in self._threads:
            thread.join(IO_TIMEOUT + 5)

    def pause(self) -> None:
        """No new connection; returns once every request under way has ended."""
        self._gate.clear()
        deadline = time.monotonic() + IO_TIMEOUT
        while self._in_flight and time.monotonic() < deadline:
            time.sleep(0.001)
        assert not self._in_flight, f"{self._in_flight} requests did not end"

    def resume(self) -> None:
        self._gate.set()

    def _client(self) -> None:
        while not self._stop.is_set():
            self._gate.wait()
            with self._lock:
                self._in_flight += 1
            started = time.monotonic()
            outcome = self.get()
            with self._lock:
                self._in_flight -= 1
            self.attempts.append(Attempt(started, time.monotonic(), outcome))  # atomic

    def get(self) -> str:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=IO_TIMEOUT) as conn:
                conn.sendall(self.request.encode())
                response = b""
                while chunk := conn.recv(65536):
                    response += chunk
        except ConnectionResetError:
            return "reset"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return type(exc).__name__
        if not response.startswith(b"HTTP/1.1 "):
            return "eof"
        if not response.startswith(b"HTTP/1.1 200 "):
            return f"status {response[9:12].decode()}"
        return "ok" if response.endswith(b"}") else "truncated"  # the JSON body was cut


def stopped(pid: int) -> bool:
    """Every thread of ``pid`` is stopped (state T): it can accept nothing any more."""
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        states.append(stat.read_text().rpartition(")")[2].split()[0])
    return bool(states) and all(state in "Tt" for state in states)


def dead(pid: int) -> bool:
    """``pid`` has exited (a zombie, or reaped): its descriptors, sockets included, are closed."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] in "ZX"
    except (FileNotFoundError, ProcessLookupError):  # reaped, or being reaped
        return True


def listener(pid: int, port: int) -> int | None:
    """The accept queue's length of ``pid``'s listening socket on ``port``; None: it has none."""
    try:
        inodes = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except (FileNotFoundError, ProcessLookupError):  # it has exited
        return None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, queues, inode = fields[1], fields[3], fields[4], fields[9]
        if state == "0A" and int(local.split(":")[1], 16) == port and f"socket:[{inode}]" in inodes:
            return int(queues.split(":")[1], 16)  # a listener's rx_queue is its accept queue
    return None


@dataclass
class Outcome:
    judged: Counter[str]  # connections opened once the worker could accept nothing more
    waited: Counter[str]  # those of them still waiting when it was killed: queued on its socket
    unjudged: Counter[str]  # opened (and ended) before
    queued_at_kill: int | None  # the kernel's count for the worker's socket
    paused: float  # seconds without new connections while the worker was being stopped
    sysctl: set[str]  # tcp_migrate_req just before the kill and once the worker's sockets closed


def freeze_and_kill_a_worker(server: ChatsiteServer) -> Outcome:
    """Under load: SIGSTOP one worker, let its socket's queue fill, SIGKILL it, keep the load on.

    While the worker is being stopped no new connection starts and the requests under way end
    (a tenth of a second or two), so that every client is free afterwards to open connections
    that the worker can be known not to have accepted."""
    with Load(server.port) as load:
        time.sleep(1.0)  # both workers serving
        # A worker, not the master's other children (manage.py recover_streams after a death).
        victim = next(pid for pid in server.worker_pids() if listener(pid, server.port) is not None)
        paused = time.monotonic()
        load.pause()
        os.kill(victim, signal.SIGSTOP)
        while not stopped(victim):
            assert time.monotonic() < paused + 5, f"worker {victim} did not stop"
            time.sleep(0.001)
        frozen = time.monotonic()
        load.resume()
        time.sleep(FROZEN)
        queued = listener(victim, server.port)
        sysctl = {SYSCTL.read_text().strip()}
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        while not dead(victim):
            assert time.monotonic() < killed + 5, f"worker {victim} did not die"
            time.sleep(0.001)
        sysctl.add(SYSCTL.read_text().strip())
        time.sleep(AFTER_KILL)
    assert victim not in server.worker_pids()
    judged = [a for a in load.attempts if a.started >= frozen]
    return Outcome(
        judged=Counter(a.outcome for a in judged),
        waited=Counter(a.outcome for a in judged if a.started < killed < a.ended),
        unjudged=Counter(a.outcome for a in load.attempts if a.started < frozen),
        queued_at_kill=queued,
        paused=frozen - paused,
        sysctl=sysctl,
    )


# Another gunicorn started meanwhile from this tree (another test run) may turn the sysctl on,
# never off. So these tests check its value, not who wrote it; the log lines are tested in
# tests/test_gunicorn_conf.py and in the last test below.


def test_connections_queued_on_a_killed_worker_move_to_the_other(migrate_req) -> None:
    server = ChatsiteServer(workers=2, migrate=False)  # /healthz needs no table
    migrate_req(0)  # gunicorn.conf.py turns it on
    with server:
        assert SYSCTL.read_text().strip() == "1"
        assert "tcp_migrate_req is 0" not in server.log()
        outcome = freeze_and_kill_a_worker(server)
        # The server goes on: the surviving worker and the master's replacement answer.
        assert Load(server.port).get() == "ok"
    print(outcome)
    assert outcome.sysctl == {"1"}
    assert outcome.waited["ok"] > 0, f"no connection waited on the killed worker: {outcome}"
    assert {kind: n for kind, n in outcome.judged.items() if kind != "ok"} == {}, outcome


def test_without_the_sysctl_they_are_reset(migrate_req) -> None:
    """The control: with tcp_migrate_req=0 when the worker dies, the connections queued on its
    socket are reset. GUNICORN_TCP_MIGRATE_REQ=0: this gunicorn leaves the sysctl alone."""
    server = ChatsiteServer(workers=2, migrate=False, env={"GUNICORN_TCP_MIGRATE_REQ": "0"})
    migrate_req(0)
    with server:
        for _ in range(3):  # again if another gunicorn turned the sysctl on meanwhile
            migrate_req(0)
            outcome = freeze_and_kill_a_worker(server)
            if outcome.sysctl == {"0"}:
                break
        assert "set net.ipv4.tcp_migrate_req" not in server.log()
    print(outcome)
    assert outcome.sysctl == {"0"}, "other gunicorns kept turning net.ipv4.tcp_migrate_req on"
    assert outcome.waited["reset"] > 0, outcome


def test_gunicorn_says_so_when_it_cannot_turn_the_sysctl_on() -> None:
    """gunicorn as shipped, as root, in a network namespace of its own (where the sysctl starts
    at 0) with /proc/sys read-only, as in a container: one warning line, with the command that
    turns the sysctl on, and the server starts all the same. The host's sysctl is not touched."""
    server = ChatsiteServer(workers=1, migrate=False)
    log_path = server.workdir / "gunicorn.log"
    script = (
        "ip link set lo up && mount --bind /proc/sys /proc/sys && "
        "mount -o remount,bind,ro /proc/sys && "
        'exec "$0" -m gunicorn -c gunicorn.conf.py chatsite.wsgi'
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv
            ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script, PYTHON],  # noqa: S607
            cwd=ROOT,
            env=server.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, master and workers
        )
    try:
        deadline = time.monotonic() + 60
        while "Booting worker" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)
    lines = [line for line in log_path.read_text().splitlines() if "tcp_migrate_req" in line]
    assert len(lines) == 1, log_path.read_text()
    assert "[WARNING] net.ipv4.tcp_migrate_req is 0 (cannot set it: Read-only" in lines[0]
    assert lines[0].endswith("run: sysctl -w net.ipv4.tcp_migrate_req=1")
