"""The Spark API key never leaves the request to Spark: not in API responses, error messages, stream
frames, pages, admin, metrics, nor in any log (Django's, captured output, gunicorn's), even when
the upstream reflects the key back in its error bodies."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import ConversationFactory, UserFactory
from tests.reliability.faulty_spark import FaultySpark
from tests.reliability.live import LiveApi
from tests.support.servers import ChatsiteServer

from .conftest import CANARY_KEY

SECRET_PART = CANARY_KEY.split(":", 1)[1]


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert CANARY_KEY not in text
        assert SECRET_PART not in text


class _Reflecting(BaseHTTPRequestHandler):
    """A hostile or broken upstream that puts the Authorization header it got into every error."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization", "")
        mode = body["messages"][-1]["content"].split()[-1]
        if mode == "html":
            self._send(502, f"<html>bad gateway for {auth}</html>", "text/html")
        elif mode == "envelope":
            error = {
                "message": f"AppIdNoAuthError {auth} (sid: cha1)",
                "type": "x",
                "code": "11200",
            }
            self._send(500, json.dumps({"error": error}), "application/json")
        elif mode == "nullcode":
            error = {"message": f"invalid user {auth}", "code": None}
            self._send(401, json.dumps({"error": error}), "application/json")
        elif mode == "inband" and not body.get("stream"):
            self._send(
                200,
                json.dumps({"code": 10013, "message": f"blocked {auth}", "sid": "x"}),
                "application/json",
            )
        else:  # a stream whose second chunk is an in-band failure quoting the key
            frames = [
                {"code": 0, "sid": "cha2", "choices": [{"delta": {"content": "partial "}}]},
                {"code": 10014, "message": f"moderation {auth}", "sid": "cha2", "choices": []},
            ]
            text = "".join(f"data:{json.dumps(f)}\n\n" for f in frames)
            self._send(200, text, "text/event-stream")

    def _send(self, status: int, text: str, content_type: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def reflecting_upstream(settings) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Reflecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.SPARK_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.SPARK_API_PASSWORD = CANARY_KEY
    settings.LLM_READ_TIMEOUT = 2.0
    yield settings.SPARK_BASE_URL
    server.shutdown()
    server.server_close()


def _body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_key_reflected_by_the_upstream_reaches_no_response_or_log(
    reflecting_upstream, caplog, capsys
):
    caplog.set_level(logging.DEBUG)
    user = UserFactory()
    api = APIClient()
    api.force_authenticate(user)
    conversation = ConversationFactory(user=user)
    seen = []
    for mode in ["html", "envelope", "nullcode", "inband", "midstream"]:
        for stream in (False, True):
            response = api.post(
                f"/api/conversations/{conversation.pk}/messages/",
                {"content": f"please {mode}", "stream": stream},
                format="json",
            )
            assert response.status_code in (200, 502, 503), _body(response)
            seen.append(_body(response))
    seen.append(_body(api.get(f"/api/conversations/{conversation.pk}/messages/?limit=200")))
    # Every failure was saved and shown with our own words, not the upstream's.
    messages = json.loads(seen[-1])["results"]
    assert [m["status"] for m in messages if m["role"] == "assistant"] == ["error"] * 10

    staff = UserFactory(is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    for path in [
        "/",
        "/api/models/",
        "/api/schema/",
        f"/admin/conversations/conversation/{conversation.pk}/change/",
        "/admin/conversations/conversation/",
        "/metrics",
        "/healthz",
    ]:
        response = browser.get(path)
        assert response.status_code == 200, path
        seen.append(_body(response))
    captured = capsys.readouterr()
    assert_no_key(*seen, caplog.text, captured.out, captured.err)


@pytest.mark.slow
def test_key_never_appears_in_gunicorn_logs_or_live_responses(
    guarded: ChatsiteServer, canary_spark: FaultySpark
):
    canary_spark.reset()
    seen: list[str] = []
    with LiveApi(guarded.url) as api:
        conversation_id = api.conversation()
        faults = [
            {"upstream": "nonjson"},
            {"upstream": "11200"},
            {"midstream": 10014, "tokens": 6},
            {"drop": True, "tokens": 6},
            {"stall": 30.0, "tokens": 6},
            {"inband": 10013},
        ]
        for fault in faults:
            for stream in (False, True):
                canary_spark.fail_next(**fault)
                response = api.post(
                    f"/api/conversations/{conversation_id}/messages/",
                    {"content": "hello", "stream": stream},
                )
                seen.append(response.text)
        # Spark did get the key, so the canary is live; nothing else may.
        assert all(r["authorization"] == f"Bearer {CANARY_KEY}" for r in canary_spark.requests)
        assert len(canary_spark.requests) == len(faults) * 2
        # Spark refuses our key: the 401 path.
        canary_spark.passwords = {"*": "another-key:entirely"}
        for stream in (False, True):
            seen.append(
                api.post(
                    f"/api/conversations/{conversation_id}/messages/",
                    {"content": "hello", "stream": stream},
                ).text
            )
        canary_spark.reset()
        seen.append(api.get(f"/api/conversations/{conversation_id}/messages/?limit=200").text)
        seen += [api.get(path).text for path in ["/api/models/", "/api/schema/", "/api/auth/me/"]]
        seen += [
            requests.get(guarded.url + path, timeout=10).text for path in ["/metrics", "/healthz"]
        ]
    assert_no_key(*seen, guarded.log(), (guarded.workdir / "access.log").read_text())
