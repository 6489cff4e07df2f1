"""Nobody reaches a conversation that is not theirs, through real HTTP (gunicorn as shipped).

The matrix: every route taking a conversation id (found by walking the URLconf, so a new route
cannot be forgotten), called by another signed-in user, answers exactly like an unknown id (404)
and changes nothing, and never reaches Spark; anonymous calls answer 401 (API) or go to sign-in
(pages, admin); the admin is staff-only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.urls import URLResolver, get_resolver

from tests.reliability.faulty_spark import FaultySpark
from tests.reliability.live import PASSWORD, LiveApi, db_rows
from tests.support.servers import ChatsiteServer

from .conftest import browser_login

SECRET_WORD = "zebra-quartz-7731"

API_CALLS = [
    ("GET", "api/conversations/<uuid:conversation_id>/", None),
    ("PATCH", "api/conversations/<uuid:conversation_id>/", {"title": "taken over"}),
    ("PATCH", "api/conversations/<uuid:conversation_id>/", {"system_prompt": "obey me"}),
    ("DELETE", "api/conversations/<uuid:conversation_id>/", None),
    ("GET", "api/conversations/<uuid:conversation_id>/messages/", None),
    (
        "POST",
        "api/conversations/<uuid:conversation_id>/messages/",
        {"content": "hi", "stream": False},
    ),
    (
        "POST",
        "api/conversations/<uuid:conversation_id>/messages/",
        {"content": "hi", "stream": True},
    ),
    ("POST", "api/conversations/<uuid:conversation_id>/regenerate/", {"stream": False}),
    ("POST", "api/conversations/<uuid:conversation_id>/regenerate/", {"stream": True}),
    ("PUT", "api/conversations/<uuid:conversation_id>/branch/", {"message": str(uuid.UUID(int=1))}),
    ("GET", "api/conversations/<uuid:conversation_id>/export/", None),
    ("POST", "api/conversations/<uuid:conversation_id>/share/", {}),
    ("DELETE", "api/conversations/<uuid:conversation_id>/share/", None),
]
# Routes taking the id of one of the owner's messages or files: another user gets exactly what an
# unknown id gets.
OTHER_ID_CALLS = [
    ("PUT", "api/messages/<uuid:message_id>/feedback/", {"rating": "down"}),
    ("DELETE", "api/messages/<uuid:message_id>/feedback/", None),
    ("POST", "api/messages/<uuid:message_id>/stop/", {"shown": 0}),
    ("GET", "api/files/<uuid:file_id>/", None),
    ("DELETE", "api/files/<uuid:file_id>/", None),
]
# A shared conversation's page is named by a secret token, not an id: tests/conversations/
# test_share.py checks that an unknown or revoked token is the same 404.
TOKEN_ROUTES = {"s/<str:token>/"}
PAGE_CALLS = [("GET", "c/<uuid:conversation_id>/", None)]
ADMIN_CALLS = [
    ("GET", "admin/conversations/conversation/{id}/change/"),
    ("GET", "admin/conversations/conversation/{id}/history/"),
    ("GET", "admin/conversations/conversation/{id}/delete/"),
    ("GET", "admin/conversations/conversation/"),
    ("GET", f"admin/conversations/conversation/?q={SECRET_WORD}"),
    ("POST", "admin/conversations/conversation/"),  # the transcript export action
    ("GET", "admin/"),
]

pytestmark = pytest.mark.slow


def _url(server: ChatsiteServer, route: str, conversation_id: object) -> str:
    return f"{server.url}/" + route.replace("<uuid:conversation_id>", str(conversation_id)).replace(
        "{id}", str(conversation_id)
    )


def _ids(calls: list) -> list[str]:
    return [f"{c[0]} {c[1]}" + (f" {c[2]}" if len(c) > 2 and c[2] else "") for c in calls]


def _routes(patterns: list, prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


@pytest.mark.django_db
def test_the_matrix_covers_every_route_that_takes_an_id():
    with_ids = {
        route
        for route in _routes(get_resolver().url_patterns)
        if "<" in route and not route.startswith("admin/")
    }
    assert with_ids == {route for _, route, _ in API_CALLS + PAGE_CALLS + OTHER_ID_CALLS} | (
        TOKEN_ROUTES
    )


@pytest.fixture(scope="module")
def owner(guarded: ChatsiteServer) -> Iterator[tuple[LiveApi, str]]:
    alice = LiveApi(guarded.url)
    conversation_id = alice.conversation(title=f"alice's {SECRET_WORD}", system_prompt="be kind")
    assert alice.send(conversation_id, f"my secret is {SECRET_WORD}").status_code == 201
    yield alice, conversation_id
    alice.session.close()


@pytest.fixture(scope="module")
def intruder(guarded: ChatsiteServer) -> Iterator[LiveApi]:
    bob = LiveApi(guarded.url)
    yield bob
    bob.session.close()


def _snapshot(server: ChatsiteServer, owner: tuple[LiveApi, str]) -> Any:
    alice, conversation_id = owner
    compact = conversation_id.replace("-", "")
    return (
        alice.get(f"/api/conversations/{conversation_id}/").json(),
        alice.messages(conversation_id),
        db_rows(
            server,
            "SELECT title, system_prompt FROM conversations_conversation WHERE id = ?",
            (compact,),
        ),
        db_rows(
            server,
            "SELECT id, seq, content, status, replaced FROM conversations_message"
            " WHERE conversation_id = ? ORDER BY seq",
            (compact,),
        ),
    )


@pytest.mark.parametrize(("method", "route", "payload"), API_CALLS, ids=_ids(API_CALLS))
def test_another_users_conversation_answers_404_and_nothing_changes(
    guarded, canary_spark: FaultySpark, owner, intruder: LiveApi, method, route, payload
):
    _, conversation_id = owner
    before = _snapshot(guarded, owner)
    canary_spark.reset()

    foreign = intruder.session.request(
        method, _url(guarded, route, conversation_id), json=payload, timeout=30
    )
    unknown = intruder.session.request(
        method, _url(guarded, route, uuid.uuid4()), json=payload, timeout=30
    )

    assert foreign.status_code == 404, foreign.text
    assert foreign.headers["Content-Type"] == "application/json"
    assert (
        foreign.json()
        == unknown.json()
        == {"detail": "Conversation not found.", "code": "not_found"}
    )
    assert SECRET_WORD not in foreign.text
    assert _snapshot(guarded, owner) == before
    assert not canary_spark.requests  # nothing was sent to the model


def test_another_users_conversation_page_is_404(guarded, owner, intruder):
    _, conversation_id = owner
    with browser_login(guarded, intruder.username) as browser:
        foreign = browser.get(_url(guarded, PAGE_CALLS[0][1], conversation_id), timeout=10)
        unknown = browser.get(_url(guarded, PAGE_CALLS[0][1], uuid.uuid4()), timeout=10)
        own = browser.get(f"{guarded.url}/", timeout=10)
    assert foreign.status_code == unknown.status_code == 404
    assert SECRET_WORD not in foreign.text
    assert own.status_code == 200


def test_search_never_finds_another_users_conversations(owner, intruder):
    alice, _ = owner
    assert alice.get(f"/api/conversations/?search={SECRET_WORD}").json()["count"] == 1
    found = intruder.get(f"/api/conversations/?search={SECRET_WORD}").json()
    assert found["count"] == 0
    assert found["results"] == []
    assert intruder.get("/api/conversations/").json()["count"] == 0


@pytest.fixture(scope="module")
def owners_ids(owner: tuple[LiveApi, str]) -> dict[str, str]:
    """The id of one of the owner's replies and of one of their files."""
    alice, conversation_id = owner
    reply = [m for m in alice.messages(conversation_id) if m["role"] == "assistant"][0]
    upload = alice.session.post(
        f"{alice.base_url}/api/files/",
        files={"file": ("notes.txt", f"the secret is {SECRET_WORD}".encode(), "text/plain")},
        timeout=60,
    )
    assert upload.status_code == 201, upload.text
    return {"message_id": reply["id"], "file_id": upload.json()["id"]}


@pytest.mark.parametrize(("method", "route", "payload"), OTHER_ID_CALLS, ids=_ids(OTHER_ID_CALLS))
def test_another_users_message_or_file_answers_404_and_nothing_changes(
    guarded, owner, owners_ids, intruder: LiveApi, method, route, payload
):
    before = _snapshot(guarded, owner)
    name = "message_id" if "message_id" in route else "file_id"
    path = route.replace(f"<uuid:{name}>", owners_ids[name])
    unknown_path = route.replace(f"<uuid:{name}>", str(uuid.uuid4()))

    foreign = intruder.session.request(method, f"{guarded.url}/{path}", json=payload, timeout=30)
    unknown = intruder.session.request(
        method, f"{guarded.url}/{unknown_path}", json=payload, timeout=30
    )

    assert foreign.status_code == unknown.status_code == 404, foreign.text
    assert foreign.json() == unknown.json()
    assert foreign.json()["code"] == "not_found"
    assert SECRET_WORD not in foreign.text
    assert _snapshot(guarded, owner) == before
    owner_api, _ = owner
    assert owner_api.get(f"/api/files/{owners_ids['file_id']}/").status_code == 200


@pytest.mark.parametrize(("method", "route", "payload"), API_CALLS, ids=_ids(API_CALLS))
def test_anonymous_api_calls_answer_401_json(guarded, owner, method, route, payload):
    _, conversation_id = owner
    before = _snapshot(guarded, owner)
    response = requests.request(
        method, _url(guarded, route, conversation_id), json=payload, timeout=30
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _snapshot(guarded, owner) == before


def test_anonymous_page_redirects_to_sign_in(guarded, owner):
    _, conversation_id = owner
    path = f"/c/{conversation_id}/"
    response = requests.get(guarded.url + path, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize(("method", "route"), ADMIN_CALLS, ids=_ids(ADMIN_CALLS))
@pytest.mark.parametrize("who", ["anonymous", "signed-in user"])
def test_admin_is_closed_to_everyone_but_staff(guarded, owner, intruder, method, route, who):
    _, conversation_id = owner
    browser = (
        browser_login(guarded, intruder.username) if who == "signed-in user" else requests.Session()
    )
    with browser:
        data = None
        if method == "POST":
            browser.get(f"{guarded.url}/accounts/login/", timeout=10)
            data = {
                "csrfmiddlewaretoken": browser.cookies.get("csrftoken", ""),
                "action": "download_json",
                "_selected_action": conversation_id,
            }
        response = browser.request(
            method,
            _url(guarded, route, conversation_id),
            data=data,
            allow_redirects=False,
            timeout=10,
        )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login/")
    assert SECRET_WORD not in response.text


def test_staff_can_review_the_transcript(guarded, owner):
    _, conversation_id = owner
    guarded.manage(
        "shell",
        "-c",
        (
            "from accounts.models import User; "
            f"User.objects.create_user('reviewer', password={PASSWORD!r},"
            " is_staff=True, is_superuser=True)"
        ),
    )
    with requests.Session() as browser:
        browser.get(f"{guarded.url}/admin/login/", timeout=10)
        response = browser.post(
            f"{guarded.url}/admin/login/",
            allow_redirects=False,
            timeout=10,
            data={
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "username": "reviewer",
                "password": PASSWORD,
                "next": "/admin/",
            },
        )
        assert response.status_code == 302
        page = browser.get(_url(guarded, ADMIN_CALLS[0][1], conversation_id), timeout=10)
    assert page.status_code == 200
    assert SECRET_WORD in page.text
