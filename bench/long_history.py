"""Benchmark 5: a 10,000-message conversation. The newest page of messages and the history sent to
Spark are built in <= 20 ms p95, with a query count that does not grow with the conversation.

In process, against a fresh SQLite file (or ``--database-url``): ``conversations.selectors``'
``message_list(latest=True)`` and ``message_history_for_model`` with the budget the reply flow
uses for ``lite`` (8K window), timed over R repetitions each; query counts compared between a
100-message and a 10,000-message conversation. Messages alternate user (~130 characters) and
assistant (~900 characters).

    python -m bench.long_history [--quick] [--messages 10000] [--repeat 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from bench.common import Check, exit_status, pcts, report, save

USER_TEXT = (
    "Could you explain how this part works, and what I should watch out for when I change it? " * 1
    + "x" * 40
)
ASSISTANT_TEXT = (
    "Here is how it works. " + "It reads the rows in order and keeps a running total. " * 15
)[:900]


def _setup(database_url: str | None) -> str:
    folder = tempfile.mkdtemp(prefix="chatsite-bench-history-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        CHATSITE_TESTING="0",
        DJANGO_SECRET_KEY="bench-secret-key-" + "b" * 40,
        DATABASE_URL=database_url or f"sqlite:///{folder}/db.sqlite3",
        SPARK_API_PASSWORD="bench:key",
        STATIC_MANIFEST="false",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return os.environ["DATABASE_URL"]


def _conversation(n: int, username: str) -> Any:
    from django.contrib.auth import get_user_model

    from conversations.models import Conversation, Message

    user = get_user_model().objects.create(username=f"{username}-{os.getpid()}-{time.time_ns()}")
    conversation = Conversation.objects.create(user=user, title=f"{n} messages", model="lite")
    rows = [
        Message(
            conversation=conversation,
            seq=seq,
            model="lite",
            role=Message.Role.USER if seq % 2 else Message.Role.ASSISTANT,
            content=f"{seq}: " + (USER_TEXT if seq % 2 else ASSISTANT_TEXT),
            total_tokens=None if seq % 2 else 300,
        )
        for seq in range(1, n + 1)
    ]
    Message.objects.bulk_create(rows, batch_size=1000)
    from django.db import connection

    if connection.vendor == "postgresql":
        # As autovacuum would soon after: planner statistics that know about the new rows.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE conversations_message")
    return conversation


def _measure(conversation: Any, repeat: int) -> dict[str, Any]:
    from django.conf import settings
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    from conversations import catalog, selectors

    info = catalog.current().model("lite")
    budget = info.context_window - min(settings.LLM_REPLY_RESERVE_TOKENS, info.context_window // 4)
    # The reply flow knows the new message's position from its insert and passes it on.
    up_to_seq = conversation.messages.order_by("-seq").values_list("seq", flat=True).first()
    page_times, history_times = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        page, _more = selectors.message_list(conversation=conversation, latest=True, limit=50)
        page_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        history = selectors.message_history_for_model(
            conversation=conversation, budget_tokens=budget, up_to_seq=up_to_seq
        )
        history_times.append(time.perf_counter() - t0)
    reset_queries()
    with CaptureQueriesContext(connection) as page_queries:
        selectors.message_list(conversation=conversation, latest=True, limit=50)
    with CaptureQueriesContext(connection) as history_queries:
        selectors.message_history_for_model(
            conversation=conversation, budget_tokens=budget, up_to_seq=up_to_seq
        )
    return {
        "page_ms": pcts(page_times),
        "history_ms": pcts(history_times),
        "page_queries": len(page_queries),
        "history_queries": len(history_queries),
        "page_size": len(page),
        "history_messages": len(history),
    }


def run(
    quick: bool = False, messages: int = 10_000, repeat: int = 200, database_url: str | None = None
) -> dict[str, Any]:
    if quick:
        messages, repeat = 2_000, 30
    url = _setup(database_url)
    small = _measure(_conversation(100, "short"), repeat)
    large = _measure(_conversation(messages, "long"), repeat)
    figures = {
        "database": url.split(":", 1)[0],
        "messages": messages,
        "repetitions": repeat,
        "100 messages": small,
        f"{messages} messages": large,
    }
    same_queries = (small["page_queries"], small["history_queries"]) == (
        large["page_queries"],
        large["history_queries"],
    )
    checks = [
        Check(
            "newest page p95 ms", large["page_ms"]["p95"], "<= 20", large["page_ms"]["p95"] <= 20
        ),
        Check(
            "history for Spark p95 ms",
            large["history_ms"]["p95"],
            "<= 20",
            large["history_ms"]["p95"] <= 20,
        ),
        Check(
            "query count constant (page, history)",
            f"{large['page_queries']}, {large['history_queries']}",
            "same as at 100 messages",
            same_queries,
            functional=True,
        ),
    ]
    label = " [PostgreSQL]" if database_url else ""
    result = report(f"5. long history{label}{' (quick)' if quick else ''}", figures, checks)
    save("long_history" + label.strip() + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    sys.exit(exit_status(run(args.quick, args.messages, args.repeat, args.database_url)))


if __name__ == "__main__":
    main()
