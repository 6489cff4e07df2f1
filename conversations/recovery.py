"""Settling replies left ``streaming`` by a worker that died (docs/architecture.md, "Dead workers").

A streaming reply records the worker writing it as ``host:pid:start`` (the process's start time
from /proc tells a reused pid from the original). A reply is stale when its worker is gone from
this host (exited, a zombie, or its pid reused), when gunicorn reports the worker dead
(``manage.py recover_streams --worker``), or when it is older than ``STALE_STREAM_SECONDS`` (a
worker on another host). The next send to the conversation and gunicorn's ``child_exit`` hook
settle them as ``interrupted`` with ``worker_lost``, keeping the text they had.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .models import Conversation, Message


def process_start(pid: int | str) -> str | None:
    """When process ``pid`` started (clock ticks since boot, Linux), or None if it is not running.

    A zombie (exited, not yet reaped) counts as not running.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name in parentheses may hold spaces: fields count from after it.
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except OSError:
        return ""  # unreadable: cannot tell
    state, start = fields[0], fields[19]
    return None if state in (b"Z", b"X") else start.decode()


_worker_name: tuple[int, str] = (0, "")


def this_worker() -> str:
    """``host:pid:start``: the start time tells a reused pid from the worker that wrote a reply."""
    global _worker_name
    pid = os.getpid()
    if _worker_name[0] != pid:  # first call in this process (or a forked child)
        start = process_start(pid) or ""
        _worker_name = (pid, f"{socket.gethostname()}:{pid}" + (f":{start}" if start else ""))
    return _worker_name[1]


def is_worker(owner: str, worker: str) -> bool:
    """Whether ``owner`` (saved on a reply) is ``worker``: ``host:pid`` or ``host:pid:start``."""
    return owner == worker or owner.startswith(worker + ":")


def worker_is_dead(worker: str) -> bool:
    host, _, rest = worker.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host's worker: only age tells
    if not os.path.isdir("/proc/self"):  # no procfs: fall back on signal 0
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    running_since = process_start(pid)
    if running_since is None:
        return True  # gone, or a zombie
    # Another process with the same pid (reused) is not the worker that wrote the reply.
    return bool(start and running_since and running_since != start)


def messages_recover_stale(
    *, conversation: Conversation | None = None, worker: str | None = None
) -> int:
    """Mark replies left ``streaming`` by a dead worker as ``interrupted``. Returns how many.

    A reply is stale when its worker process is gone (same host), when ``worker`` names it, or when
    it is older than ``STALE_STREAM_SECONDS``.
    """
    streaming = Message.objects.filter(status=Message.Status.STREAMING)
    if conversation is not None:
        streaming = streaming.filter(conversation=conversation)
    cutoff = timezone.now() - timedelta(seconds=settings.STALE_STREAM_SECONDS)
    stale_ids = [
        message_id
        for message_id, owner, created_at in streaming.values_list("id", "worker", "created_at")
        if created_at < cutoff
        or (worker and is_worker(owner, worker))
        or (owner and worker_is_dead(owner))
    ]
    if not stale_ids:
        return 0
    return Message.objects.filter(id__in=stale_ids, status=Message.Status.STREAMING).update(
        status=Message.Status.INTERRUPTED,
        error_code="worker_lost",
        error_detail="The server stopped while this reply was being written.",
        finished_at=timezone.now(),
    )
