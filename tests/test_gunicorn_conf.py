"""gunicorn.conf.py's start-up check of net.ipv4.tcp_migrate_req, on a stand-in file.

(Through gunicorn and the real sysctl: tests/reliability/test_worker_death.py.)
"""

from __future__ import annotations

import builtins
import importlib.util
import os
from pathlib import Path
from types import ModuleType
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str, *args: object) -> None:
        self.lines.append(("info", message % args))

    def warning(self, message: str, *args: object) -> None:
        self.lines.append(("warning", message % args))


@pytest.fixture(scope="module")
def conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):  # it sets defaults in the environment, for gunicorn
        spec.loader.exec_module(module)
    return module


@pytest.fixture
def sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GUNICORN_TCP_MIGRATE_REQ", raising=False)
    path = tmp_path / "tcp_migrate_req"
    path.write_text("0\n")
    return path


def test_it_turns_the_sysctl_on(conf: ModuleType, sysctl: Path) -> None:
    log = Log()
    conf.migrate_queued_connections(log, str(sysctl))
    assert sysctl.read_text() == "1"
    assert [level for level, _ in log.lines] == ["info"]
    assert "set net.ipv4.tcp_migrate_req=1" in log.lines[0][1]


def test_on_already_it_says_nothing(conf: ModuleType, sysctl: Path) -> None:
    sysctl.write_text("1\n")
    log = Log()
    conf.migrate_queued_connections(log, str(sysctl))
    assert sysctl.read_text() == "1\n"
    assert log.lines == []


def test_a_kernel_without_it_says_nothing(conf: ModuleType, tmp_path: Path) -> None:
    log = Log()
    conf.migrate_queued_connections(log, str(tmp_path / "absent"))
    assert log.lines == []
    assert not (tmp_path / "absent").exists()


def test_opted_out_it_leaves_it_off_and_says_how_to_turn_it_on(
    conf: ModuleType, sysctl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUNICORN_TCP_MIGRATE_REQ", "0")
    log = Log()
    conf.migrate_queued_connections(log, str(sysctl))
    assert sysctl.read_text() == "0\n"
    assert log.lines == [
        (
            "warning",
            "net.ipv4.tcp_migrate_req is 0 (left off by GUNICORN_TCP_MIGRATE_REQ=0): connections "
            "queued on a worker that dies are reset; to hand them to the other workers run: "
            "sysctl -w net.ipv4.tcp_migrate_req=1",
        )
    ]


def test_when_it_may_not_write_it_warns_and_start_up_goes_on(
    conf: ModuleType, sysctl: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not root, as under the systemd unit of docs/deploy.md. (Root may write any file, so the
    refusal is simulated here; test_worker_death.py has a real one, a read-only /proc/sys.)"""

    def open_as_a_user(path: str, mode: str = "r") -> object:
        if "w" in mode:
            raise PermissionError(13, "Permission denied", path)
        return builtins.open(path, mode)

    monkeypatch.setattr(conf, "open", open_as_a_user, raising=False)
    log = Log()
    conf.migrate_queued_connections(log, str(sysctl))
    assert sysctl.read_text() == "0\n"
    assert log.lines == [
        (
            "warning",
            "net.ipv4.tcp_migrate_req is 0 (cannot set it: Permission denied): connections "
            "queued on a worker that dies are reset; to hand them to the other workers run: "
            "sysctl -w net.ipv4.tcp_migrate_req=1",
        )
    ]
