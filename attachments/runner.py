"""Run ``attachments.extract`` in a child process with a time and a memory limit.

A hostile file (a PDF whose parsing never ends, a spreadsheet that inflates to gigabytes) then
costs one short-lived process, never a gunicorn gevent worker: the worker waits on the child's
pipe cooperatively (gevent patches ``subprocess``), the child is killed at ``timeout_s`` of wall
time, and the kernel stops it at ``memory_mb`` of address space (RLIMIT_AS) and ``timeout_s + 1``
CPU seconds (RLIMIT_CPU); it may write at most a few MB to files (RLIMIT_FSIZE: the image copy)
and open few files (RLIMIT_NOFILE).

The child sets those limits on itself, first thing in its ``main``, before it imports a parser or
opens the file: the same guarantee as ``preexec_fn``, without running Python between fork and exec
(``preexec_fn`` "is not safe in the presence of threads", and a gevent worker has the resolver's
thread pool). It gets an empty environment but for the locale, no inherited file descriptors
(``close_fds``), no stdin, and never imports Django (``attachments`` imports none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from attachments.extract import TEST_HOOKS_ENV
from attachments.limits import Limits
from attachments.sniff import Kind

ROOT = Path(__file__).resolve().parent.parent  # the folder that holds the attachments package
MAX_OUTPUT_FILE_MB = 64  # RLIMIT_FSIZE: the sanitised image copy is far smaller
MAX_OPEN_FILES = 64  # RLIMIT_NOFILE: the file, the output, Python's own and the libraries'


def _failed(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "code": code, "detail": detail, **extra}


def command(
    path: str,
    kind: str,
    limits: Limits,
    *,
    timeout_s: float,
    memory_mb: int,
    out_path: str | None = None,
    language: str = "",
) -> list[str]:
    """The child's command line (``-E``: no PYTHON* variable is read; ``-s``: no user site)."""
    argv = [
        sys.executable,
        "-E",
        "-s",
        "-m",
        "attachments.extract",
        "--kind",
        kind,
        "--limits",
        limits.to_json(),
        "--memory-mb",
        str(memory_mb),
        "--cpu-seconds",
        str(int(timeout_s) + 1),
        "--fsize-mb",
        str(MAX_OUTPUT_FILE_MB),
        "--nofile",
        str(MAX_OPEN_FILES),
    ]
    if out_path:
        argv += ["--out", out_path]
    if language:
        argv += ["--language", language]
    return [*argv, "--", path]


def child_env() -> dict[str, str]:
    """Nothing of the web process's environment (its secrets) but the locale; the test hooks'
    switch is passed on only when the tests set it."""
    env = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    if os.environ.get(TEST_HOOKS_ENV) == "1":
        env[TEST_HOOKS_ENV] = "1"
    return env


def run_extraction(
    path: str,
    kind: str | Kind,
    limits: Limits | None = None,
    *,
    timeout_s: float = 30.0,
    memory_mb: int = 768,
    out_path: str | None = None,
    language: str = "",
) -> dict[str, Any]:
    """``attachments.extract.extract`` of the file in a child process; the child's dict, or
    ``{"ok": False, "code": "extraction_timeout" | "extraction_failed", "detail"}`` when it ran
    out of time, was killed (memory, CPU) or printed no answer. Never raises."""
    if isinstance(kind, Kind):
        language = language or kind.language
        kind = kind.name
    limits = limits or Limits()
    argv = command(
        os.fspath(path),
        kind,
        limits,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        out_path=out_path,
        language=language,
    )
    try:
        done = subprocess.run(  # noqa: S603 - a fixed command line, no shell, the path after --
            argv,
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            close_fds=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _failed(
            "extraction_timeout",
            f"Reading the file took longer than {timeout_s:g} seconds; it was stopped.",
        )
    except OSError as error:
        return _failed("extraction_failed", f"The file reader could not start ({error}).")
    stderr = done.stderr[-2000:].decode("utf-8", errors="replace")
    if done.returncode != 0:
        return _failed(
            "extraction_failed",
            "The file could not be read within the limits of memory and time.",
            returncode=done.returncode,
            stderr=stderr,
        )
    try:
        result = json.loads(done.stdout)
    except ValueError:
        return _failed("extraction_failed", "The file reader gave no answer.", stderr=stderr)
    if not isinstance(result, dict) or "ok" not in result:
        return _failed("extraction_failed", "The file reader gave no answer.", stderr=stderr)
    return result
