"""Rate limits hold across gunicorn worker processes (the counters live in the shared database
cache), and a forged X-Forwarded-For does not reset them.

Every request here goes over a new connection, so the three workers share the load; the access
log (which names the worker) shows that they did. Hourly limits keep a window edge from resetting
a count in the middle of a test.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

import pytest
import requests
from django.test import Client

from tests.reliability.live import PASSWORD, access_log, live_server
from tests.spark_server import SparkServer
from tests.support.servers import ChatsiteServer

pytestmark = pytest.mark.slow

LOGIN_LIMIT, REGISTER_LIMIT, CHAT_LIMIT = 5, 3, 4

MAKE_USERS = f"""
import json
from accounts.models import User
from rest_framework_simplejwt.tokens import RefreshToken
tokens = {{}}
for name in ("rl_alice", "rl_bob"):
    user = User.objects.create_user(name, password={PASSWORD!r})
    tokens[name] = str(RefreshToken.for_user(user).access_token)
print(json.dumps(tokens))
"""


@pytest.fixture(scope="module")
def limited(spark_server: SparkServer) -> Iterator[tuple[ChatsiteServer, dict[str, str]]]:
    server = live_server(
        spark_url=spark_server.url,
        spark_key="test-key:test-secret",
        workers=3,
        env={
            "LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT}/h",
            "REGISTER_RATE_LIMIT": f"{REGISTER_LIMIT}/h",
            "CHAT_RATE_LIMIT": f"{CHAT_LIMIT}/h",
        },
    )
    with server:
        # Users and tokens made behind the API's back, so they use none of the limits under test.
        tokens = json.loads(server.manage("shell", "-c", MAKE_USERS).strip().splitlines()[-1])
        yield server, tokens


def _forged() -> dict[str, str]:
    address = ".".join(str(random.randint(1, 254)) for _ in range(4))  # noqa: S311 - a made-up client address, not a secret
    return {"X-Forwarded-For": address, "X-Real-IP": address, "Connection": "close"}


def _post(
    server: ChatsiteServer, path: str, payload: dict, headers: dict | None = None
) -> requests.Response:
    # A fresh connection each time (no session): the workers take turns accepting them.
    return requests.post(
        server.url + path,
        json=payload,
        headers={"Connection": "close", **(headers or {})},
        timeout=30,
    )


def _assert_429(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    assert body["retry_after"] == retry_after


def _workers_for(server: ChatsiteServer, path: str) -> set[int]:
    return {pid for pid, _, line in access_log(server) if f" {path} " in line}


def _refused_by_several_workers(
    server: ChatsiteServer, path: str, send_refused: Callable[[], requests.Response]
) -> None:
    """More over-the-limit requests until two workers have answered ``path``; all are refused.

    Which worker accepts a connection is the kernel's choice, and a handful of requests can all
    land on one: keep going (each one must still be refused) until the spread is shown.
    """
    for _ in range(60):
        if len(_workers_for(server, path)) >= 2:
            return
        _assert_429(send_refused())
    assert len(_workers_for(server, path)) >= 2, "60 connections all went to one worker"


def test_login_is_limited_per_ip_across_workers_and_forged_headers(limited):
    server, _ = limited
    wrong = {"username": "rl_alice", "password": "wrong-password"}
    for _ in range(LOGIN_LIMIT):
        assert _post(server, "/api/auth/token/", wrong).status_code == 401
    _assert_429(_post(server, "/api/auth/token/", wrong))
    # Neither a forged client address nor the right password gets past it.
    for _ in range(3):
        _assert_429(_post(server, "/api/auth/token/", wrong, _forged()))
    _assert_429(
        _post(server, "/api/auth/token/", {"username": "rl_alice", "password": PASSWORD}, _forged())
    )
    _refused_by_several_workers(
        server, "/api/auth/token/", lambda: _post(server, "/api/auth/token/", wrong, _forged())
    )

    # The sign-in page counts against the same limit and answers an HTML 429.
    with requests.Session() as browser:
        browser.get(f"{server.url}/accounts/login/", timeout=10)
        response = browser.post(
            f"{server.url}/accounts/login/",
            timeout=10,
            headers=_forged(),
            data={
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "username": "rl_alice",
                "password": PASSWORD,
            },
        )
    assert response.status_code == 429
    assert response.headers["Content-Type"].startswith("text/html")
    assert int(response.headers["Retry-After"]) >= 1


def test_registration_is_limited_per_ip_across_workers_and_forged_headers(limited):
    server, _ = limited
    for i in range(REGISTER_LIMIT):
        response = _post(
            server, "/api/auth/register/", {"username": f"rl_new{i}", "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
    for i in range(3):
        _assert_429(
            _post(
                server,
                "/api/auth/register/",
                {"username": f"rl_more{i}", "password": PASSWORD},
                _forged(),
            )
        )
    _refused_by_several_workers(
        server,
        "/api/auth/register/",
        lambda: _post(
            server, "/api/auth/register/", {"username": "rl_more", "password": PASSWORD}, _forged()
        ),
    )
    refused = server.manage(
        "shell",
        "-c",
        "from accounts.models import User;"
        " print(User.objects.filter(username__startswith='rl_more').count())",
    )
    assert refused.strip().splitlines()[-1] == "0"


def test_sending_is_limited_per_user_across_workers(limited):
    server, tokens = limited

    def send(user: str, conversation_id: str, headers: dict | None = None) -> requests.Response:
        return _post(
            server,
            f"/api/conversations/{conversation_id}/messages/",
            {"content": "hello", "stream": False},
            {"Authorization": f"Bearer {tokens[user]}", **(headers or {})},
        )

    def conversation(user: str) -> str:
        response = _post(
            server, "/api/conversations/", {}, {"Authorization": f"Bearer {tokens[user]}"}
        )
        assert response.status_code == 201
        return str(response.json()["id"])

    alice_chat = conversation("rl_alice")
    for _ in range(CHAT_LIMIT):
        assert send("rl_alice", alice_chat).status_code == 201
    _assert_429(send("rl_alice", alice_chat))
    _assert_429(send("rl_alice", conversation("rl_alice"), _forged()))  # any conversation, any "IP"
    # The limit is the user's own: another user on the same address is not affected.
    assert send("rl_bob", conversation("rl_bob")).status_code == 201
    _refused_by_several_workers(
        server,
        f"/api/conversations/{alice_chat}/messages/",
        lambda: send("rl_alice", alice_chat, _forged()),
    )


@pytest.mark.django_db
def test_a_trusted_proxy_header_names_the_client_and_x_forwarded_for_is_still_ignored(settings):
    """Behind a proxy (CLIENT_IP_HEADER), clients are told apart by the proxy's header only."""
    settings.CLIENT_IP_HEADER = "HTTP_X_REAL_IP"
    settings.LOGIN_RATE_LIMIT = "2/h"
    client = Client()

    def login(real_ip: str, forwarded: str = "") -> int:
        return client.post(
            "/api/auth/token/",
            {"username": "nobody", "password": "x"},
            content_type="application/json",
            HTTP_X_REAL_IP=real_ip,
            HTTP_X_FORWARDED_FOR=forwarded,
        ).status_code

    assert [login("10.0.0.1"), login("10.0.0.1", "1.2.3.4")] == [401, 401]
    assert login("10.0.0.1", "5.6.7.8") == 429
    assert login("10.0.0.2") == 401  # another client behind the proxy
