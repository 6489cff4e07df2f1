"""Registrations racing for an invite's last uses: the conditional UPDATE lets exactly as many
through as the invite has uses left, never more: threads, each with its own connection, on the
test database file; and processes on PostgreSQL (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Invite
from accounts.selectors import signup_settings_get

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)  # the threads must see committed rows
@pytest.mark.parametrize(("uses_left", "racers"), [(1, 6), (3, 10)])
def test_racing_registrations_never_take_more_uses_than_are_left(settings, uses_left, racers):
    settings.REGISTER_RATE_LIMIT = "100000/m"
    row = signup_settings_get()
    row.mode = "invite"
    row.save()
    invite = Invite.objects.create(max_uses=5, uses=5 - uses_left)
    barrier = threading.Barrier(racers)
    statuses: list[tuple[int, str]] = []
    lock = threading.Lock()

    def race(index: int) -> None:
        try:
            client = APIClient()
            barrier.wait()
            response = client.post(
                "/api/auth/register/",
                {
                    "username": f"racer{index}",
                    "password": "a-long-unusual-passphrase-7",
                    "invite": invite.code,
                },
                format="json",
            )
            code = response.json().get("code", "") if response.status_code != 201 else ""
            with lock:
                statuses.append((response.status_code, code))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(statuses) == racers
    assert sorted(statuses).count((201, "")) == uses_left, statuses
    assert sorted(statuses).count((400, "invite_invalid")) == racers - uses_left, statuses
    invite.refresh_from_db()
    assert invite.uses == invite.max_uses
    assert get_user_model().objects.filter(invite=invite).count() == uses_left


RACER = """
import json, sys, time
import django
django.setup()
from django.contrib.auth.hashers import make_password  # noqa: F401 - warm the imports
from accounts.errors import InviteInvalid
from accounts.services import user_register
start_at, index, code = float(sys.argv[1]), sys.argv[2], sys.argv[3]
time.sleep(max(0.0, start_at - time.time()))
try:
    user_register(username="racer" + index, password="a-long-unusual-passphrase-7", invite=code)
    print(json.dumps("created"))
except InviteInvalid as exc:
    print(json.dumps(exc.code))
"""


@pytest.mark.slow
def test_processes_racing_on_postgresql_take_only_the_uses_left(tmp_path):
    """The same race between processes, on PostgreSQL (READ COMMITTED: each UPDATE waits for the
    row lock, then re-checks ``uses < max_uses`` against the committed row)."""
    from tests.support.postgres import PG_BIN, PostgresCluster

    if PG_BIN is None:
        pytest.skip("PostgreSQL is not installed")
    racers, uses_left = 8, 2
    with PostgresCluster() as cluster:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SIGNUP_"))},
            "DATABASE_URL": cluster.create_database("invite_race"),
            "CHATSITE_TESTING": "1",
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        }
        setup = (
            "from accounts.selectors import signup_settings_get as get; from accounts.models "
            "import Invite; row = get(); row.mode = 'invite'; row.save(); "
            f"print(Invite.objects.create(max_uses=5, uses={5 - uses_left}).code)"
        )
        assert run_manage(env, "migrate", "--noinput").returncode == 0
        code = run_manage(env, "shell", "-c", setup).stdout.split()[-1]
        start_at = time.time() + 4.0  # every racer has imported Django by then
        processes = [
            subprocess.Popen(  # noqa: S603 - a fixed argv (python -c), no shell
                [sys.executable, "-c", RACER, str(start_at), str(i), code],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(racers)
        ]
        outcomes = [json.loads(p.communicate(timeout=60)[0].strip() or "null") for p in processes]
        count = "from accounts.models import Invite; print(Invite.objects.get().uses)"
        uses = run_manage(env, "shell", "-c", count).stdout.split()[-1]

    assert outcomes.count("created") == uses_left, outcomes
    assert outcomes.count("invite_invalid") == racers - uses_left, outcomes
    assert uses == "5"


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed argv (python manage.py), no shell
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
