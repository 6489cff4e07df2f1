"""Bearer-token requests: who is calling comes from the token, without a user query; a deactivated
user is still refused; sending writes nothing but the turn (the rate limit is counted from it).

docs/architecture.md, "Who is calling" and "Limits".
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from conversations.models import Conversation, Message
from tests.factories import ConversationFactory
from tests.support.api import assert_json_error

pytestmark = pytest.mark.django_db

REPLY = "[[reply:alpha beta]]"


@pytest.fixture
def bearer(user) -> APIClient:
    client = APIClient()
    token = RefreshToken.for_user(user).access_token
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, model="lite")


def _user_table_reads(queries) -> list[str]:
    """Queries that load a user row (the turn's statement reads only ``is_active``)."""
    column = (
        f"{connection.ops.quote_name(User._meta.db_table)}.{connection.ops.quote_name('password')}"
    )
    return [q["sql"] for q in queries if column in q["sql"]]


def test_reading_a_conversation_is_one_query_and_reads_no_user_row(bearer, conversation):
    with CaptureQueriesContext(connection) as queries:
        response = bearer.get(f"/api/conversations/{conversation.pk}/")

    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(conversation.pk)
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert _user_table_reads(queries) == []  # the owner's is_active rides along as a join


def test_sending_reads_no_user_row_and_writes_nothing_to_the_cache(bearer, conversation, spark):
    cache_table = settings.CACHES["default"].get("LOCATION", "")
    with CaptureQueriesContext(connection) as queries:
        response = bearer.post(
            f"/api/conversations/{conversation.pk}/messages/",
            {"content": f"hello {REPLY}"},
            format="json",
        )

    assert response.status_code == 201, response.content
    assert response.json()["assistant_message"]["content"] == "alpha beta"
    assert _user_table_reads(queries) == []
    if cache_table:
        assert not [q["sql"] for q in queries if cache_table in q["sql"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/conversations/"),
        ("get", "/api/conversations/{id}/"),
        ("get", "/api/conversations/{id}/messages/"),
        ("post", "/api/conversations/{id}/messages/"),
        ("post", "/api/conversations/{id}/regenerate/"),
        ("patch", "/api/conversations/{id}/"),
        ("delete", "/api/conversations/{id}/"),
        ("post", "/api/conversations/"),
        ("get", "/api/auth/me/"),
    ],
)
def test_a_deactivated_users_valid_token_is_refused(
    bearer, user, conversation, spark, method, path
):
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = getattr(bearer, method)(
        path.format(id=conversation.pk), {"content": "hello", "title": "x"}, format="json"
    )

    assert_json_error(response, 401)
    assert response.json()["code"] == "user_inactive"
    assert response["WWW-Authenticate"].startswith("Bearer")
    conversation.refresh_from_db()  # neither changed nor deleted
    assert conversation.title != "x"
    assert not Message.objects.filter(conversation=conversation).exists()
    assert Conversation.objects.filter(user=user).count() == 1


@pytest.mark.parametrize(
    "path", ["/api/conversations/", "/api/conversations/{id}/", "/api/auth/me/"]
)
def test_a_deleted_users_token_is_refused(bearer, user, conversation, path):
    path = path.format(id=conversation.pk)
    User.objects.filter(pk=user.pk).delete()

    assert_json_error(bearer.get(path), 401, "user_not_found")


def test_the_chat_rate_limit_is_counted_from_the_replies_the_user_started(
    bearer, user, spark, settings
):
    settings.CHAT_RATE_LIMIT = "3/m"
    first, second = ConversationFactory(user=user), ConversationFactory(user=user)
    # Across conversations: the limit is the user's.
    for conversation in (first, second, first):
        response = bearer.post(
            f"/api/conversations/{conversation.pk}/messages/", {"content": REPLY}, format="json"
        )
        assert response.status_code == 201, response.content

    refused = bearer.post(
        f"/api/conversations/{second.pk}/regenerate/", {"stream": False}, format="json"
    )

    body = assert_json_error(refused, 429, "rate_limited")
    assert 1 <= body["retry_after"] <= 61
    assert int(refused["Retry-After"]) == body["retry_after"]
    assert Message.objects.filter(conversation__user=user, role="assistant").count() == 3
