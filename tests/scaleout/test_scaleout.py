"""Scale-out on loopback: two chatsite instances on PostgreSQL and Redis behind Debian's nginx.

Issue 5, "Scale-out": a user signs in through nginx, chats with streaming (the first token reaches
the client before the last one is produced), the rate limit counts across both instances, and a
conversation started on one instance continues on the other. nginx balances round-robin and says
which instance answered in ``X-Upstream`` (tests/support/services.py).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.conftest import SPARK_KEY
from tests.spark_server import SparkServer
from tests.support.servers import ChatsiteServer
from tests.support.services import Nginx, PostgresCluster, RedisServer, missing_binaries
from tests.support.sse import SSEDecoder

pytestmark = pytest.mark.slow

PASSWORD = "correct-horse-battery-9"
CHAT_RATE = 4  # per minute and user, counted from the shared database by both instances


@dataclass
class Stack:
    nginx: Nginx
    instances: list[ChatsiteServer]
    spark: SparkServer
    redis_url: str

    @property
    def url(self) -> str:
        return self.nginx.url

    @property
    def upstreams(self) -> set[str]:
        return {f"127.0.0.1:{instance.port}" for instance in self.instances}


@pytest.fixture(scope="module")
def stack(spark_server: SparkServer) -> Iterator[Stack]:
    missing = missing_binaries()
    if missing:
        pytest.skip("the scale-out test needs " + ", ".join(missing))
    with contextlib.ExitStack() as services:  # each launcher stops its service on the way out
        postgres = services.enter_context(PostgresCluster())
        redis_server = services.enter_context(RedisServer())
        env = {
            "REDIS_URL": redis_server.url,
            "CHAT_RATE_LIMIT": f"{CHAT_RATE}/m",
            "CLIENT_IP_HEADER": "HTTP_X_REAL_IP",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        instances = [
            services.enter_context(
                ChatsiteServer(
                    spark_url=spark_server.url,
                    spark_key=SPARK_KEY,
                    workers=1,
                    database_url=postgres.url,
                    env=env,
                    migrate=index == 0,
                )
            )
            for index in range(2)
        ]
        nginx = services.enter_context(Nginx([f"127.0.0.1:{i.port}" for i in instances]))
        yield Stack(
            nginx=nginx, instances=instances, spark=spark_server, redis_url=redis_server.url
        )


@pytest.fixture
def spark(stack: Stack) -> Iterator[SparkServer]:
    stack.spark.reset()
    yield stack.spark
    stack.spark.reset()


def register(stack: Stack, username: str) -> None:
    response = requests.post(
        f"{stack.url}/api/auth/register/",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 201, response.text


def sign_in(stack: Stack, username: str) -> requests.Session:
    """Sign in through nginx with the login page, as a browser does (session cookie, CSRF)."""
    register(stack, username)
    session = requests.Session()
    page = session.get(f"{stack.url}/accounts/login/", timeout=10)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{stack.url}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Origin": stack.url, "Referer": f"{stack.url}/accounts/login/"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text[:500]
    assert "sessionid" in session.cookies
    # The API takes the session for unsafe methods only with the CSRF token (as the page's JS).
    session.headers.update({"X-CSRFToken": session.cookies["csrftoken"], "Origin": stack.url})
    assert session.get(f"{stack.url}/api/auth/me/", timeout=10).json()["username"] == username
    return session


def new_conversation(session: requests.Session, stack: Stack) -> str:
    response = session.post(
        f"{stack.url}/api/conversations/", json={"title": "scale-out"}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def chat(
    session: requests.Session, stack: Stack, conversation: str, content: str
) -> requests.Response:
    return session.post(
        f"{stack.url}/api/conversations/{conversation}/messages/",
        json={"content": content, "stream": False},
        timeout=30,
    )


def test_nginx_is_in_front_of_both_instances(stack: Stack):
    seen = {
        requests.get(f"{stack.url}/healthz", timeout=10).headers["X-Upstream"] for _ in range(4)
    }

    assert seen == stack.upstreams
    assert requests.get(f"{stack.url}/metrics", timeout=10).status_code == 404


def test_sign_in_and_stream_through_nginx(stack: Stack, spark: SparkServer):
    session = sign_in(stack, "streamer")
    conversation = new_conversation(session, stack)
    tokens, interval = 8, 0.25

    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    with session.post(
        f"{stack.url}/api/conversations/{conversation}/messages/",
        json={"content": f"hello [[tokens:{tokens}]] [[interval:{interval}]]", "stream": True},
        stream=True,
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["X-Upstream"] in stack.upstreams
        decoder = SSEDecoder()
        for piece in response.iter_content(chunk_size=None):
            for event in decoder.feed(piece):
                arrivals.append((time.monotonic() - started, event.event))
                last = event

    events = [event for _, event in arrivals]
    assert events[0] == "start"
    assert events[-1] == "done"
    assert events.count("delta") == tokens
    first_delta = next(t for t, event in arrivals if event == "delta")
    done = arrivals[-1][0]
    # The last token is produced (tokens - 1) x interval after the first: 1.75 s. Through nginx the
    # first one must have arrived well before, not all at the end in one buffer.
    assert done - first_delta >= (tokens - 1) * interval * 0.6, arrivals
    deltas = [t for t, event in arrivals if event == "delta"]
    assert len({round(t / interval) for t in deltas}) >= tokens // 2, arrivals
    final = last.json()["message"]
    assert final["status"] == "complete"


def test_a_conversation_started_on_one_instance_continues_on_the_other(
    stack: Stack, spark: SparkServer
):
    session = sign_in(stack, "traveller")
    conversation = new_conversation(session, stack)

    first = chat(session, stack, conversation, "first question [[reply:first answer]]")
    assert first.status_code == 201, first.text
    served = [first.headers["X-Upstream"]]
    for attempt in range(CHAT_RATE - 1):
        response = chat(session, stack, conversation, f"question {attempt + 2} [[reply:more]]")
        assert response.status_code == 201, response.text
        served.append(response.headers["X-Upstream"])
        if response.headers["X-Upstream"] != served[0]:
            break

    assert served[-1] != served[0], f"every chat went to {served[0]}"
    # The other instance read the history the first one wrote, and sent it to Spark.
    sent = spark.requests[-1]["json"]["messages"]
    assert sent[0] == {"role": "user", "content": "first question [[reply:first answer]]"}
    assert sent[1] == {"role": "assistant", "content": "first answer"}
    # Each instance, asked directly, shows the whole conversation.
    histories = []
    for instance in stack.instances:
        cookies = {"sessionid": session.cookies["sessionid"]}
        page = requests.get(
            f"{instance.url}/api/conversations/{conversation}/messages/",
            cookies=cookies,
            timeout=10,
        )
        assert page.status_code == 200
        histories.append([(m["role"], m["status"], m["content"]) for m in page.json()["results"]])
    assert histories[0] == histories[1]
    assert len(histories[0]) == 2 * len(served)
    assert all(status == "complete" for _, status, _ in histories[0])


def test_the_rate_limit_counts_across_both_instances(stack: Stack, spark: SparkServer):
    session = sign_in(stack, "chatterbox")
    conversation = new_conversation(session, stack)

    answers = [chat(session, stack, conversation, f"message {n}") for n in range(CHAT_RATE + 1)]

    statuses = [response.status_code for response in answers]
    assert statuses == [201] * CHAT_RATE + [429], statuses
    # Neither instance alone saw more than the limit allows: only a shared count refuses the last.
    served = [response.headers["X-Upstream"] for response in answers[:CHAT_RATE]]
    assert set(served) == stack.upstreams
    assert max(served.count(upstream) for upstream in stack.upstreams) < CHAT_RATE
    refused = answers[-1]
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # The count is the replies the user started, read from the shared database in the turn's
    # transaction: the refused send saved nothing, on either instance.
    cookies = {"sessionid": session.cookies["sessionid"]}
    for instance in stack.instances:
        url = f"{instance.url}/api/conversations/{conversation}/messages/"
        page = requests.get(url, cookies=cookies, timeout=10)
        assert page.json()["count"] == 2 * CHAT_RATE
