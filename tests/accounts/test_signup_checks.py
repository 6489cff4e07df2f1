"""System checks of sign-up: ``check --deploy`` warns when sign-up is open in production
(accounts.W001), also before ``migrate``; a mode that is not one is an error (accounts.E001)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from accounts import checks
from accounts.selectors import signup_settings_get
from tests.support.production import production_env

ROOT = Path(__file__).resolve().parents[2]


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed argv (python manage.py), no shell
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_warns_when_sign_up_is_open_even_before_migrate(tmp_path):
    result = manage(production_env(tmp_path), "check", "--deploy")  # no database file yet
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "accounts.W001" in output
    assert "SIGNUP_MODE=approval" in output


def test_check_deploy_reads_the_mode_staff_set_in_admin(tmp_path):
    env = production_env(tmp_path)
    assert manage(env, "migrate", "--noinput").returncode == 0
    for mode, warned in [("approval", False), ("invite", False), ("closed", False), ("open", True)]:
        script = (
            "from accounts.selectors import signup_settings_get as get; row = get(); "
            f"row.mode = {mode!r}; row.save()"
        )
        assert manage(env, "shell", "-c", script).returncode == 0

        result = manage(env, "check", "--deploy")
        output = result.stdout + result.stderr

        assert "Traceback" not in output
        assert ("accounts.W001" in output) is warned, (mode, output)


@pytest.mark.django_db
def test_the_deploy_check_in_process(settings):
    settings.DEBUG = False
    row = signup_settings_get()
    assert [m.id for m in checks.check_signup_open_in_production()] == ["accounts.W001"]
    row.mode = "approval"
    row.save()
    assert checks.check_signup_open_in_production() == []
    row.mode = "open"
    row.save()
    settings.DEBUG = True  # `make run`'s demo: open, no warning
    assert checks.check_signup_open_in_production() == []


def test_an_unknown_mode_is_an_error(settings):
    settings.SIGNUP_MODE = "public"
    assert [m.id for m in checks.check_signup_mode_setting()] == ["accounts.E001"]
    settings.SIGNUP_MODE = "Invite"
    assert checks.check_signup_mode_setting() == []


def test_a_missing_middleware_is_a_warning(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != checks.MIDDLEWARE_PATH]
    assert [m.id for m in checks.check_pending_middleware()] == ["accounts.W002"]
