"""Benchmark 9: what the quota hold adds to the send path (docs/governance.md, "Quotas").

In process, against a fresh SQLite file (or ``--database-url``): one API user with 100
conversations and ``--replies`` replies this month (the heavy user whose use every send must
sum), sending into one of them. ``Reply.start`` (the turn's transaction and the history read, all
of the send path before the upstream request) is timed with no limits (the quota is skipped) and
with daily limits (the hold sums today's replies) and with limits in every period (it sums the
month's), in one statement, and writes two more columns of the reply row it inserts anyway. The
user's replies are spread over the month so far. The difference is the hold's cost. Writes
to the database are counted in both: the hold must add no write transaction.

    python -m bench.quota_hold [--quick] [--replies 3000] [--repeat 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from typing import Any

from bench.common import Check, exit_status, pcts, report, save
from bench.long_history import _setup


def _heavy_user(replies: int) -> Any:
    from django.contrib.auth import get_user_model

    from conversations.models import Conversation, Message

    user = get_user_model().objects.create(username=f"heavy-{time.time_ns()}")
    conversations = Conversation.objects.bulk_create(
        [Conversation(user=user, title=f"c{n}", model="lite") for n in range(100)]
    )
    rows = []
    per = max(replies // len(conversations), 1)
    for conversation in conversations:
        for seq in range(1, 2 * per + 1):
            assistant = seq % 2 == 0
            rows.append(
                Message(
                    conversation=conversation,
                    seq=seq,
                    role="assistant" if assistant else "user",
                    status="complete",
                    model="lite",
                    content="some text " * 20,
                    token_estimate=50,
                    prompt_tokens=40 if assistant else None,
                    completion_tokens=60 if assistant else None,
                    total_tokens=100 if assistant else None,
                    charged_tokens=100 if assistant else None,
                )
            )
    Message.objects.bulk_create(rows, batch_size=2000)
    # Spread over the month so far, as a month of use would be: most replies are not today's.
    from django.db.models import F
    from django.utils import timezone

    from governance import periods

    month = next(p for p in periods.current(timezone.now()) if p.name == "month")
    span = max((timezone.now() - month.start).total_seconds() - 3600, 0)
    for index, conversation in enumerate(conversations):
        when = month.start + timedelta(seconds=span * index / len(conversations))
        Message.objects.filter(conversation=conversation).update(created_at=when)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=F("created_at"))
    Conversation.objects.filter(pk=conversations[0].pk).update(updated_at=timezone.now())
    return user, conversations[0]


def _time_starts(
    conversation: Any, repeat: int, modes: dict[str, Any]
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Sends that take turns between ``modes`` (name -> a function that sets the policy up), so
    each mode sees the same conversation and the same month: nothing but the policy differs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from conversations.models import Message
    from conversations.replies import Reply

    times: dict[str, list[float]] = {name: [] for name in modes}
    writes: dict[str, int] = {}
    for n in range(repeat):
        for name, set_up in modes.items():
            set_up()
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                reply = Reply.start(conversation=conversation, content=f"question {n}")
            times[name].append(time.perf_counter() - started)
            # Steady state: the last send's (the first may create the site policy's row).
            writes[name] = sum(
                q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE")) for q in queries
            )
            # As if the reply had finished: the next send is not refused as "in progress".
            Message.objects.filter(pk=reply.message.pk).update(
                status="complete", charged_tokens=100
            )
    return times, writes


def run(
    quick: bool = False, replies: int = 3000, repeat: int = 200, database_url: str | None = None
) -> dict[str, Any]:
    if quick:
        replies, repeat = 500, 30
    url = _setup(database_url)
    from django.conf import settings

    from governance import policy
    from governance.models import SitePolicy

    settings.CHAT_RATE_LIMIT = "1000000/m"
    user, conversation = _heavy_user(replies)
    site = SitePolicy.get()
    # Daily limits only: the hold sums today's replies. A limit in every period, tokens
    # included: it sums the month's (the most it ever reads).
    cases: dict[str, dict[str, int | None]] = {
        "without limits": {},
        "with daily limits": {"day_messages": 10**6, "day_tokens": 10**9},
        "with day, week and month limits": {
            "day_messages": 10**6,
            "week_tokens": 10**9,
            "month_tokens": 10**9,
        },
    }

    def mode(limits: dict[str, int | None]) -> Any:
        def set_up() -> None:
            for field in site.LIMIT_FIELDS:
                setattr(site, field, limits.get(field))
            site.save()
            policy.invalidate()
            assert policy.for_user(user.pk).unlimited == (not limits)

        return set_up

    times, writes = _time_starts(
        conversation, repeat, {name: mode(limits) for name, limits in cases.items()}
    )
    off = pcts(times["without limits"])
    figures: dict[str, Any] = {
        "database": url.split(":", 1)[0],
        "replies this month before the run": replies,
        "repetitions (each mode, taking turns)": repeat,
        "Reply.start without limits ms": off,
    }
    checks = []
    for name in list(cases)[1:]:
        on = pcts(times[name])
        added = round(on["p50"] - off["p50"], 3)
        figures[f"Reply.start {name} ms"] = on
        figures[f"writes per send {name}"] = writes[name]
        checks.append(Check(f"{name}: hold adds at p50 ms", added, "<= 1", added <= 1))
        checks.append(
            Check(
                f"{name}: writes per send",
                writes[name],
                f"= {writes['without limits']} (as without limits)",
                writes[name] == writes["without limits"],
                functional=True,
            )
        )
    label = " [PostgreSQL]" if database_url else ""
    result = report(f"9. quota hold{label}{' (quick)' if quick else ''}", figures, checks)
    save("quota_hold" + label.strip() + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replies", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    sys.exit(exit_status(run(args.quick, args.replies, args.repeat, args.database_url)))


if __name__ == "__main__":
    main()
