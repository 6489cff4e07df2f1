"""Hostile bodies and fields on every JSON endpoint: each answers a clear 4xx with a JSON error and
saves nothing; none is a 500. Runs on SQLite and on PostgreSQL (which refuses NUL in text).

Body attacks: oversize (> DATA_UPLOAD_MAX_MEMORY_SIZE), invalid JSON, not an object, 100,000 nested
arrays or objects, invalid UTF-8, NaN, a 5,000-digit number. Field attacks on every string field:
wrong types, NUL, a lone surrogate (the raw ``"\\ud800"`` escape), 200 kB values.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from conversations.models import Conversation, Message
from tests.factories import PASSWORD, ConversationFactory, MessageFactory
from tests.reliability.live import LiveApi
from tests.support.servers import ChatsiteServer

pytestmark = pytest.mark.django_db

BIG = "x" * 200_000

# (name, method, path, a valid body, its string fields, its boolean fields)
ENDPOINTS: list[tuple[str, str, str, dict[str, Any], list[str], list[str]]] = [
    (
        "register",
        "post",
        "/api/auth/register/",
        {"username": "newcomer", "password": PASSWORD},
        ["username", "password", "email"],
        [],
    ),
    (
        "token",
        "post",
        "/api/auth/token/",
        {"username": "{username}", "password": PASSWORD},
        ["username", "password"],
        [],
    ),
    ("refresh", "post", "/api/auth/token/refresh/", {"refresh": "{refresh}"}, ["refresh"], []),
    ("logout", "post", "/api/auth/logout/", {"refresh": "{refresh}"}, ["refresh"], []),
    (
        "create-conversation",
        "post",
        "/api/conversations/",
        {"title": "t"},
        ["title", "model", "system_prompt"],
        [],
    ),
    (
        "update-conversation",
        "patch",
        "/api/conversations/{id}/",
        {"title": "t"},
        ["title", "model", "system_prompt"],
        [],
    ),
    (
        "send-message",
        "post",
        "/api/conversations/{id}/messages/",
        {"content": "hi", "stream": False},
        ["content"],
        ["stream"],
    ),
    (
        "regenerate",
        "post",
        "/api/conversations/{id}/regenerate/",
        {"stream": False},
        [],
        ["stream"],
    ),
]
ENDPOINT_IDS = [e[0] for e in ENDPOINTS]

BODIES: list[tuple[str, Callable[[], bytes]]] = [
    (
        "oversize",
        lambda: json.dumps({"content": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}).encode(),
    ),
    ("truncated-json", lambda: b'{"content": "hi'),
    ("not-json", lambda: b"content=hi"),
    ("array", lambda: b"[1, 2, 3]"),
    ("string", lambda: b'"hello"'),
    ("null", lambda: b"null"),
    ("deep-arrays", lambda: b"[" * 100_000 + b"]" * 100_000),
    ("deep-objects", lambda: b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("invalid-utf8", lambda: b'{"content": "\xff\xfe\xfa"}'),
    ("nan", lambda: b'{"content": NaN}'),
    ("huge-number", lambda: b'{"content": ' + b"9" * 5000 + b"}"),
]

WRONG_VALUES: list[tuple[str, Any]] = [
    ("int", 123),
    ("float", 1.5),
    ("bool", True),
    ("null", None),
    ("list", ["a"]),
    ("object", {"a": "b"}),
    ("nul", "a\x00b"),
    ("lone-surrogate", "a\ud800b"),
    ("surrogate-pair-halves", "\udfff\ud800"),
    ("200kB", BIG),
]


@pytest.fixture
def ctx(user, spark):
    conversation = ConversationFactory(user=user)
    MessageFactory(conversation=conversation, seq=1, content="q")
    MessageFactory(conversation=conversation, seq=2, role="assistant", content="a")
    client = APIClient()
    client.force_authenticate(user)
    return {
        "user": user,
        "conversation": conversation,
        "client": client,
        "refresh": str(RefreshToken.for_user(user)),
    }


def _fill(ctx: dict, template: Any) -> Any:
    if isinstance(template, str):
        return (
            template.replace("{username}", ctx["user"].username)
            .replace("{refresh}", ctx["refresh"])
            .replace("{id}", str(ctx["conversation"].pk))
        )
    if isinstance(template, dict):
        return {k: _fill(ctx, v) for k, v in template.items()}
    return template


def _state() -> tuple:
    return (
        get_user_model().objects.count(),
        list(Conversation.objects.values_list("id", "title", "model", "system_prompt")),
        list(Message.objects.values_list("id", "content", "status", "replaced")),
        OutstandingToken.objects.count(),
    )


def _send(ctx: dict, method: str, path: str, body: bytes, content_type: str = "application/json"):
    return getattr(ctx["client"], method)(_fill(ctx, path), body, content_type=content_type)


def _assert_clear_4xx(response, *allowed: int) -> dict:
    assert response.status_code in (allowed or (400,)), (
        response.status_code,
        response.content[:300],
    )
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["code"], str)
    assert body["code"]
    return body


@pytest.mark.parametrize(("kind", "make_body"), BODIES, ids=[b[0] for b in BODIES])
@pytest.mark.parametrize(
    ("name", "method", "path", "valid", "strings", "bools"), ENDPOINTS, ids=ENDPOINT_IDS
)
def test_hostile_body_is_a_clear_4xx_and_saves_nothing(
    ctx, name, method, path, valid, strings, bools, kind, make_body
):
    before = _state()
    response = _send(ctx, method, path, make_body())
    if kind == "oversize":
        assert _assert_clear_4xx(response, 413)["code"] == "request_too_large"
    else:
        _assert_clear_4xx(response, 400, 401)
    assert _state() == before


FIELD_CASES = [
    pytest.param(endpoint, label, value, id=f"{endpoint[0]}-{label}")
    for endpoint in ENDPOINTS
    for label, value in WRONG_VALUES
    if endpoint[4] or label != "bool"
]


@pytest.mark.parametrize(("endpoint", "label", "value"), FIELD_CASES)
def test_hostile_field_values_are_a_clear_4xx_and_save_nothing(ctx, endpoint, label, value):
    name, method, path, valid, strings, bools = endpoint
    # A boolean is a wrong value only for a string field.
    fields = strings + (bools if label != "bool" else [])
    for field in fields:
        if name == "register" and field == "password" and label == "200kB":
            continue  # a 200 kB password is a valid password (hashing pre-hashes long keys)
        before = _state()
        payload = {**_fill(ctx, valid), field: value}
        # ensure_ascii: a lone surrogate goes out as the raw JSON escape "\ud800".
        response = _send(ctx, method, path, json.dumps(payload, ensure_ascii=True).encode())
        # The token endpoints answer a wrong credential with 401; all else is a 400.
        _assert_clear_4xx(response, 400, 401)
        assert _state() == before, field


def test_duplicate_keys_are_judged_by_the_last_value(ctx):
    before = _state()
    body = b'{"content": "fine", "content": 1, "stream": false, "stream": "x"}'
    _assert_clear_4xx(_send(ctx, "post", "/api/conversations/{id}/messages/", body))
    assert _state() == before


def test_a_200kb_password_registers_without_harm(anon):
    response = anon.post(
        "/api/auth/register/", {"username": "longpass", "password": BIG}, format="json"
    )
    assert response.status_code in (201, 400)


@pytest.mark.parametrize(
    "query",
    [
        "search=%00",
        "search=" + "%ED%A0%80",
        "search=" + "y" * 4000,
        "search=%25%5F%5C" * 1000,
        "page=%00",
        "page=-1",
        "page=99999999999999999999",
        "page_size=99999999999999999999",
    ],
    ids=[
        "nul",
        "invalid-utf8",
        "4kB",
        "like-wildcards",
        "nul-page",
        "negative-page",
        "huge-page",
        "huge-page-size",
    ],
)
def test_hostile_query_strings_are_not_a_500(ctx, query):
    """gunicorn refuses request lines over 4094 bytes (see the live test below), so 4 kB is the
    longest search that reaches Django; SQLite's LIKE gives up only past 50,000 characters."""
    response = ctx["client"].get(f"/api/conversations/?{query}")
    assert response.status_code in (200, 400, 404)
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("after=%00", 400),
        ("after=99999999999999999999", 200),  # past the last message: an empty page
        ("before=-5", 400),
        ("limit=1e9", 400),
        ("latest=%ff%fe", 400),
    ],
)
def test_hostile_message_paging_is_not_a_500(ctx, query, status):
    response = ctx["client"].get(f"/api/conversations/{ctx['conversation'].pk}/messages/?{query}")
    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] in ("invalid", "nul_character")


def test_admin_filters_with_nul_or_huge_dates_are_not_a_500(client):
    staff = get_user_model().objects.create_user(
        "boss", password=PASSWORD, is_staff=True, is_superuser=True
    )
    client.force_login(staff)
    for query in [
        "model=%00",
        "q=%00",
        "created_at__year=99999999999",
        "created_at__year=0",
        "user__id__exact=abc",
        "q=" + "z" * 4000,
    ]:
        response = client.get(f"/admin/conversations/conversation/?{query}")
        assert response.status_code in (200, 302, 400), query


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"hello"),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("application/x-www-form-urlencoded", b"content=hi"),
    ],
)
def test_other_content_types_are_refused_with_json(ctx, content_type, body):
    response = _send(ctx, "post", "/api/conversations/", body, content_type)
    assert response.status_code in (400, 415)
    assert response["Content-Type"] == "application/json"


def test_forged_host_header_is_400_json(ctx):
    response = ctx["client"].get("/api/conversations/", HTTP_HOST="evil.example")
    _assert_clear_4xx(response, 400)


# --- the same through gunicorn (real sockets, real Content-Length) ------------------------------


@pytest.mark.slow
def test_hostile_requests_through_gunicorn(guarded: ChatsiteServer):
    with LiveApi(guarded.url) as api:
        conversation_id = api.conversation()
        url = f"/api/conversations/{conversation_id}/messages/"
        cases = {
            "oversize": (json.dumps({"content": "x" * (2 * 1024 * 1024)}).encode(), 413),
            "deep": (b"[" * 100_000 + b"]" * 100_000, 400),
            "surrogate": (b'{"content": "\\ud800"}', 400),
            "nul": (b'{"content": "a\\u0000"}', 400),
        }
        for name, (body, status) in cases.items():
            response = api.request(
                "POST", url, data=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == status, (name, response.text[:200])
            assert response.json()["code"]
        # A body that claims more than the limit is refused before it is read.
        with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
            sock.sendall(
                f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api.access}\r\n"
                "Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{}".encode()
            )
            assert sock.recv(100).startswith(b"HTTP/1.1 413")
        # Headers and a URL over gunicorn's limits.
        long_url = api.request("GET", "/api/conversations/?search=" + "q" * 20_000)
        assert long_url.status_code == 414
        huge_header = api.request("GET", "/api/auth/me/", headers={"X-Junk": "j" * 20_000})
        assert huge_header.status_code == 431
        assert api.messages(conversation_id) == []
    log = guarded.log()
    assert "Traceback" not in log
    assert "Internal Server Error" not in log
