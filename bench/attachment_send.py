"""Benchmark 12: what attachments add to the send path (docs/attachments.md).

In process, against a fresh SQLite file (or ``--database-url``). ``Reply.start`` (the turn's
transaction, the files' checks and the history read: all of the send path before the upstream
request) is timed, taking turns, for:

- a message without files, in a conversation that never had any (the common case: the history
  query asks one EXISTS of the few rows it keeps and nothing more);
- a message sent with one file of ``--pages`` pages of Chinese text (owner, context-window and
  page checks, the link rows, the file block built into the history);
- a message without files in a conversation whose earlier message had that file (the history
  reads the file's text again: one more query).

Extraction itself is measured by ``bench/extract.py`` (it runs once, at upload).

    python -m bench.attachment_send [--quick] [--repeat 200] [--pages 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.common import Check, exit_status, pcts, report, save
from bench.long_history import _setup

PAGE = "第{n}页：本季度各地区销售额均有增长，其中华东地区增长最快。" * 12


def _file(user: Any, pages: int) -> Any:
    from attachments.models import Attachment
    from chatsite.tokens import estimate_tokens

    texts = [f"--- Page {n} ---\n" + PAGE.format(n=n) for n in range(1, pages + 1)]
    text = "\n\n".join(texts)
    starts, offset = [], 0
    for page in texts:
        starts.append(offset)
        offset += len(page) + 2
    attachment = Attachment(
        owner=user,
        name="report.pdf",
        kind="pdf",
        content_type="application/pdf",
        size=len(text.encode()),
        sha256="0" * 64,
        text=text,
        page_starts=starts,
        chars=len(text),
        token_estimate=estimate_tokens(text),
    )
    attachment.file.name = f"{user.pk}/{attachment.pk}/original"
    attachment.save(force_insert=True)
    return attachment


def run(
    quick: bool = False, repeat: int = 200, pages: int = 20, database_url: str | None = None
) -> dict[str, Any]:
    if quick:
        repeat = 30
    url = _setup(database_url)
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from conversations.models import Conversation, Message
    from conversations.replies import Reply

    settings.CHAT_RATE_LIMIT = "1000000/m"
    user = get_user_model().objects.create(username=f"files-{time.time_ns()}")
    plain = Conversation.objects.create(user=user, title="plain", model="pro-128k")
    with_file = Conversation.objects.create(user=user, title="with a file", model="pro-128k")
    after_file = Conversation.objects.create(user=user, title="after a file", model="pro-128k")
    attachment = _file(user, pages)
    Reply.start(conversation=after_file, content="read this", files=[{"id": attachment.pk}])
    Message.objects.filter(conversation=after_file, status="streaming").update(status="complete")
    # The file belongs to after_file now: the with-file case sends a copy of it of its own.
    copy = _file(user, pages)

    cases = {
        "no files": (plain, None),
        f"one {pages}-page file": (with_file, [{"id": copy.pk}]),
        "no files, a file earlier in the history": (after_file, None),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for n in range(repeat):
        for name, (conversation, files) in cases.items():
            started = time.perf_counter()
            reply = Reply.start(conversation=conversation, content=f"question {n}", files=files)
            times[name].append(time.perf_counter() - started)
            Message.objects.filter(pk=reply.message.pk).update(status="complete")
    base = pcts(times["no files"])
    figures: dict[str, Any] = {
        "database": url.split(":", 1)[0],
        "repetitions (each case, taking turns)": repeat,
        "file": (
            f"{pages} pages, {attachment.chars} characters, ~{attachment.token_estimate} tokens"
        ),
        "Reply.start no files ms": base,
    }
    checks = []
    for name in list(cases)[1:]:
        figures[f"Reply.start {name} ms"] = pcts(times[name])
    added = round(pcts(times["no files, a file earlier in the history"])["p50"] - base["p50"], 3)
    checks.append(Check("a file earlier in the history adds at p50 ms", added, "<= 2", added <= 2))
    label = " [PostgreSQL]" if database_url else ""
    result = report(
        f"12. attachments on the send path{label}{' (quick)' if quick else ''}", figures, checks
    )
    save("attachment_send" + label.strip() + ("-quick" if quick else ""), result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    sys.exit(exit_status(run(args.quick, args.repeat, args.pages, args.database_url)))


if __name__ == "__main__":
    main()
