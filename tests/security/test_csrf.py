"""CSRF: every state-changing call made with the browser's session cookie needs the CSRF token and
a same-origin Origin; bearer-token calls (never sent by a browser on its own) do not."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from conversations.models import Conversation, Message
from tests.factories import PASSWORD, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

UNSAFE_API_CALLS = [
    ("post", "/api/conversations/", {"title": "new"}),
    ("patch", "/api/conversations/{id}/", {"title": "renamed"}),
    ("delete", "/api/conversations/{id}/", None),
    ("post", "/api/conversations/{id}/messages/", {"content": "hi", "stream": False}),
    ("post", "/api/conversations/{id}/regenerate/", {"stream": False}),
    ("post", "/api/auth/logout/", {"refresh": "x"}),
]


@pytest.fixture
def conversation(user):
    conversation = ConversationFactory(user=user, title="mine")
    MessageFactory(conversation=conversation, seq=1, content="question")
    MessageFactory(conversation=conversation, seq=2, role="assistant", content="answer")
    return conversation


def _state() -> list:
    return [
        list(Conversation.objects.values_list("id", "title").order_by("id")),
        list(Message.objects.values_list("id", "content", "replaced").order_by("id")),
    ]


def _session_client(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # the chat page sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize(("method", "path", "payload"), UNSAFE_API_CALLS)
def test_session_api_write_without_csrf_token_is_403_json_and_changes_nothing(
    user, conversation, spark, method, path, payload
):
    client, _ = _session_client(user)
    before = _state()
    response = getattr(client, method)(
        path.format(id=conversation.pk), payload, content_type="application/json"
    )
    assert response.status_code == 403, response.content
    assert response["Content-Type"] == "application/json"
    assert "CSRF" in response.json()["detail"]
    assert _state() == before
    assert not spark.requests


def test_session_api_write_with_csrf_token_but_a_foreign_origin_is_403(user, conversation):
    client, token = _session_client(user)
    response = client.patch(
        f"/api/conversations/{conversation.pk}/",
        {"title": "renamed"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://evil.example",
    )
    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == "mine"


def test_session_api_write_with_csrf_token_and_same_origin_is_accepted(user, conversation):
    client, token = _session_client(user)
    response = client.patch(
        f"/api/conversations/{conversation.pk}/",
        {"title": "renamed"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="http://testserver",
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert conversation.title == "renamed"


def test_bearer_token_calls_need_no_csrf_token_even_with_a_session_cookie(user, conversation):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    token = client.post(
        "/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    ).json()["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.patch(f"/api/conversations/{conversation.pk}/", {"title": "x"}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/accounts/login/", {"username": "someone", "password": PASSWORD}),
        ("/accounts/signup/", {"username": "newbie", "password1": PASSWORD, "password2": PASSWORD}),
        ("/accounts/logout/", {}),
    ],
    ids=["sign-in", "sign-up", "sign-out"],
)
def test_page_forms_without_csrf_token_are_403(user, path, data):
    client = Client(enforce_csrf_checks=True)
    if path == "/accounts/logout/":
        client.force_login(user)
    response = client.post(path, data)
    assert response.status_code == 403
    if path == "/accounts/logout/":
        assert client.get("/").status_code == 200  # still signed in
    if path == "/accounts/signup/":
        assert not type(user).objects.filter(username="newbie").exists()
