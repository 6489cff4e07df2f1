"""A base URL whose host name does not resolve: a clear 503, the messages saved, nothing hangs.

The lookup is failed inside this process (``socket.getaddrinfo`` raises as a resolver's NXDOMAIN
would) so that no query leaves the machine; everything after it is the real HTTP stack.
"""

from __future__ import annotations

import socket

import pytest

from conversations.models import Message
from tests.factories import ConversationFactory
from tests.support.api import parse_sse

pytestmark = pytest.mark.django_db(transaction=True)

UNRESOLVABLE = "spark.nonexistent.invalid"


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch, settings) -> list[str]:
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(".invalid"):
            looked_up.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings.SPARK_BASE_URL = f"http://{UNRESOLVABLE}/v1"
    settings.SPARK_API_PASSWORD = "test-key:test-secret"
    return looked_up


def test_unresolvable_base_url_answers_503_and_keeps_the_message(api, user, no_dns) -> None:
    conversation = ConversationFactory(user=user)
    response = api.post(
        f"/api/conversations/{conversation.id}/messages/", {"content": "hello?"}, format="json"
    )
    assert response.status_code == 503
    assert response.json()["code"] == "upstream_unreachable"
    assert set(no_dns) == {UNRESOLVABLE}  # looked up (once more by the one connect retry)
    user_message, reply = Message.objects.filter(conversation=conversation).order_by("seq")
    assert user_message.content == "hello?"
    assert (reply.status, reply.error_code) == ("error", "upstream_unreachable")


def test_unresolvable_base_url_ends_the_stream_with_an_error_frame(api, user, no_dns) -> None:
    conversation = ConversationFactory(user=user)
    response = api.post(
        f"/api/conversations/{conversation.id}/messages/",
        {"content": "hello?", "stream": True},
        format="json",
    )
    frames = parse_sse(b"".join(response.streaming_content))
    assert [name for name, _ in frames] == ["start", "error"]
    assert frames[-1][1]["code"] == "upstream_unreachable"
    assert frames[-1][1]["message"]["status"] == "error"
    # The conversation takes the next message (no reply left "streaming").
    again = api.post(
        f"/api/conversations/{conversation.id}/messages/", {"content": "again"}, format="json"
    )
    assert again.status_code == 503
