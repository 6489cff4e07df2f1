"""Observability: /metrics (Prometheus, multiprocess under gunicorn, closed to the public) and the
one structured log line per reply (identifiers, outcome and timings; never content, never keys).

Issue 5, "Observability".
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest
import requests
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from conversations.models import Conversation, Message
from tests.conftest import SPARK_KEY
from tests.factories import ConversationFactory
from tests.support.servers import ChatsiteServer, register_and_token

reply_flow = pytest.mark.django_db(transaction=True)

MESSAGES_ROUTE = "api/conversations/<uuid:conversation_id>/messages/"
USER_TEXT = "zebra-crossing secret question"
REPLY = "[[reply:quokka marmot wombat]]"  # three streamed chunks
REPLY_WORDS = ("quokka", "marmot", "wombat")


# --- helpers ------------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, keyed by (name, labels)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Client | None = None, **headers: str) -> dict:
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def send(api, conversation: Conversation, content: str, *, stream: bool) -> bytes:
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, "stream": stream},
        format="json",
    )
    if stream:
        return b"".join(response.streaming_content)
    return response.content


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, model="lite")


# --- /metrics after replies through the real flow -------------------------------------------------


@reply_flow
def test_a_streamed_reply_shows_in_metrics(api, spark, conversation):
    before = scrape()

    body = send(api, conversation, f"{USER_TEXT} {REPLY}", stream=True)

    assert b"event: done" in body
    reply = Message.objects.get(conversation=conversation, role=Message.Role.ASSISTANT)
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chatsite_replies_total", provider="spark", model="lite", status="complete") == 1
    assert delta("chatsite_reply_ttft_seconds_count", model="lite") == 1
    assert delta("chatsite_reply_duration_seconds_count", model="lite") == 1
    assert delta("chatsite_reply_ttft_seconds_sum", model="lite") == pytest.approx(
        reply.ttft_ms / 1000
    )
    assert (
        delta("chatsite_tokens_total", model="lite", kind="completion") == reply.completion_tokens
    )
    assert delta("chatsite_tokens_total", model="lite", kind="prompt") == reply.prompt_tokens
    assert (
        delta("chatsite_http_requests_total", route=MESSAGES_ROUTE, method="POST", status="200")
        == 1
    )
    # The stream has ended: nothing is open any more.
    assert value(after, "chatsite_open_streams") == 0


@reply_flow
@pytest.mark.parametrize(
    ("directive", "stream", "status"),
    [("[[upstream:11200]]", False, 503), ("[[midstream:10014]]", True, 200)],
)
def test_upstream_errors_are_counted_by_spark_code(
    api, spark, conversation, directive, stream, status
):
    code = directive.strip("[]").split(":")[1]
    before = scrape()

    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": f"hello {directive}", "stream": stream},
        format="json",
    )
    if stream:
        b"".join(response.streaming_content)

    assert response.status_code == status
    after = scrape()
    assert (
        value(after, "chatsite_upstream_errors_total", provider="spark", model="lite", code=code)
        - value(before, "chatsite_upstream_errors_total", provider="spark", model="lite", code=code)
        == 1
    )
    assert (
        value(after, "chatsite_replies_total", provider="spark", model="lite", status="error")
        - value(before, "chatsite_replies_total", provider="spark", model="lite", status="error")
        == 1
    )


@reply_flow
def test_requests_are_counted_by_route_pattern_not_by_url(api, spark, user):
    first, second = ConversationFactory.create_batch(2, user=user)
    before = scrape()

    for conversation in (first, second):
        assert api.get(f"/api/conversations/{conversation.pk}/messages/").status_code == 200

    after = scrape()
    assert (
        value(
            after, "chatsite_http_requests_total", route=MESSAGES_ROUTE, method="GET", status="200"
        )
        - value(
            before, "chatsite_http_requests_total", route=MESSAGES_ROUTE, method="GET", status="200"
        )
        == 2
    )
    assert not any(str(first.pk) in dict(labels).get("route", "") for _, labels in after)


# --- who may read /metrics ----------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_answer_loopback_when_no_token_is_set(settings):
    settings.METRICS_TOKEN = ""

    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["203.0.113.7", "10.0.0.5", "192.168.1.20", "not-an-ip"])
def test_metrics_are_hidden_from_other_addresses(settings, address):
    settings.METRICS_TOKEN = ""

    response = Client(REMOTE_ADDR=address).get("/metrics")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert b"chatsite_" not in response.content


@pytest.mark.django_db
def test_metrics_are_hidden_from_a_proxied_request(settings):
    """A proxy on the same host connects from loopback; X-Forwarded-For names the real client."""
    settings.METRICS_TOKEN = ""

    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert response.status_code == 404


@pytest.mark.django_db
def test_metrics_are_hidden_from_a_client_named_by_the_proxy_header(settings):
    settings.METRICS_TOKEN = ""
    settings.CLIENT_IP_HEADER = "HTTP_X_REAL_IP"

    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", HTTP_X_REAL_IP="203.0.113.7")

    assert response.status_code == 404


@pytest.mark.django_db
def test_a_token_is_required_once_set_even_on_loopback(settings):
    settings.METRICS_TOKEN = "m" * 40
    loopback = Client(REMOTE_ADDR="127.0.0.1")

    assert loopback.get("/metrics").status_code == 404
    assert loopback.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 404
    assert loopback.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "m" * 39).status_code == 404
    assert loopback.get("/metrics", HTTP_AUTHORIZATION="Bearer " + "m" * 40).status_code == 200


@pytest.mark.django_db
def test_the_token_opens_metrics_from_any_address(settings):
    settings.METRICS_TOKEN = "m" * 40

    response = Client(REMOTE_ADDR="203.0.113.7").get(
        "/metrics", HTTP_AUTHORIZATION="Bearer " + "m" * 40
    )

    assert response.status_code == 200
    assert b"chatsite_open_streams" in response.content


@pytest.mark.django_db
def test_metrics_are_read_only_and_never_cached():
    client = Client(REMOTE_ADDR="127.0.0.1")

    assert client.post("/metrics").status_code == 405
    assert "no-cache" in client.get("/metrics")["Cache-Control"]


# --- the structured log line ----------------------------------------------------------------------


def reply_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "chatsite.replies" and hasattr(r, "reply")]


@reply_flow
@pytest.mark.parametrize("stream", [True, False])
def test_one_log_line_per_reply_with_ids_timings_and_tokens(
    api, spark, conversation, caplog, stream
):
    caplog.set_level(logging.INFO, logger="chatsite.replies")

    send(api, conversation, f"{USER_TEXT} {REPLY}", stream=stream)

    [record] = reply_records(caplog)
    reply = Message.objects.get(conversation=conversation, role=Message.Role.ASSISTANT)
    fields = json.loads(record.getMessage().split(" ", 1)[1])
    assert fields == record.reply
    assert fields["event"] == "reply"
    assert fields["conversation"] == str(conversation.pk)
    assert fields["message"] == str(reply.pk)
    assert fields["model"] == "lite"
    assert fields["status"] == "complete"
    assert fields["code"] == ""
    assert fields["sid"] == reply.sid
    assert reply.sid
    assert fields["ttft_ms"] == reply.ttft_ms
    assert fields["duration_ms"] == reply.duration_ms
    assert fields["completion_tokens"] == reply.completion_tokens == 3
    assert fields["total_tokens"] == reply.total_tokens
    assert record.levelno == logging.INFO


@reply_flow
def test_the_log_line_of_a_failed_reply_carries_the_spark_code(api, spark, conversation, caplog):
    caplog.set_level(logging.INFO, logger="chatsite.replies")

    send(api, conversation, f"{USER_TEXT} [[upstream:11200]]", stream=False)

    [record] = reply_records(caplog)
    assert record.reply["status"] == "error"
    assert record.reply["code"] == "11200"
    assert record.reply["sid"]  # the sid Spark put inside its error message


@reply_flow
@pytest.mark.parametrize("directive", [REPLY, "[[midstream:10014]]", "[[upstream:10013]]"])
def test_the_log_line_never_holds_content_or_keys(
    api, spark, conversation, caplog, settings, directive
):
    caplog.set_level(logging.DEBUG)
    conversation.system_prompt = "hidden-system-prompt-text"
    conversation.save()

    send(api, conversation, f"{USER_TEXT} {directive}", stream=True)

    [record] = reply_records(caplog)
    assert "content" not in record.reply
    logged = record.getMessage() + json.dumps(record.reply)
    forbidden = [USER_TEXT, "zebra", "hidden-system-prompt", *REPLY_WORDS, SPARK_KEY, "test-secret"]
    forbidden += [settings.SECRET_KEY, settings.JWT_SIGNING_KEY]
    for text in forbidden:
        assert text not in logged, text
    # Nor in anything else chatsite logged about this reply.
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for text in [USER_TEXT, SPARK_KEY, "hidden-system-prompt"]:
        assert text not in everything, text


# --- under gunicorn: several worker processes, one set of figures ---------------------------------


@pytest.fixture
def gunicorn_site(spark_server) -> Iterator[ChatsiteServer]:
    spark_server.reset()
    with ChatsiteServer(
        spark_url=spark_server.url,
        spark_key=SPARK_KEY,
        workers=2,
        env={"CHAT_RATE_LIMIT": "1000/m"},
    ) as server:
        yield server


@pytest.mark.slow
def test_metrics_add_up_across_gunicorn_workers(gunicorn_site, spark_server):
    base = gunicorn_site.url
    token = register_and_token(base, "metrics-user")
    auth = {"Authorization": f"Bearer {token}"}
    conversations = [
        requests.post(f"{base}/api/conversations/", json={}, headers=auth, timeout=10).json()["id"]
        for _ in range(4)
    ]

    def chat(conversation_id: str) -> None:
        with requests.post(
            f"{base}/api/conversations/{conversation_id}/messages/",
            json={"content": f"hi {REPLY}", "stream": True},
            headers=auth,
            stream=True,
            timeout=30,
        ) as response:
            assert b"event: done" in response.content

    # Concurrent streams and many short requests, spread over both workers.
    threads = [threading.Thread(target=chat, args=(c,)) for c in conversations]
    for thread in threads:
        thread.start()
    for _ in range(20):
        requests.get(
            f"{base}/api/conversations/", headers={**auth, "Connection": "close"}, timeout=10
        )
    for thread in threads:
        thread.join()

    response = requests.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    scraped = samples(response.text)
    assert (
        value(scraped, "chatsite_replies_total", provider="spark", model="lite", status="complete")
        == 4
    )
    assert value(scraped, "chatsite_reply_ttft_seconds_count", model="lite") == 4
    assert value(scraped, "chatsite_tokens_total", model="lite", kind="completion") == 12
    assert value(scraped, "chatsite_open_streams") == 0
    assert (
        value(
            scraped,
            "chatsite_http_requests_total",
            route="api/conversations/",
            method="GET",
            status="200",
        )
        == 20
    )
    assert (
        value(
            scraped,
            "chatsite_http_requests_total",
            route=MESSAGES_ROUTE,
            method="POST",
            status="200",
        )
        == 4
    )
    # Every worker that served something wrote its own file; /metrics added them up.
    metric_files = list((gunicorn_site.workdir / "metrics").glob("counter_*.db"))
    assert metric_files
    # The per-reply log lines went to gunicorn's log, without content.
    log = gunicorn_site.log()
    assert log.count('"event":"reply"') == 4
    assert "quokka" not in log
    assert SPARK_KEY not in log
