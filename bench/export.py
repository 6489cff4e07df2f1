"""Benchmark 10: export by filter (issue 11). 10,000 conversations export as JSON, Markdown and
CSV, streamed, in flat memory.

Seeds a throwaway SQLite file under /tmp (or the PostgreSQL database of ``--database-url``, or of
``DATABASE_URL`` when set; its rows are removed afterwards unless ``--keep``) with
``--conversations`` conversations (default 10,000; ``--quick``: 1,000) of 10 messages each, about
300 characters a message, every third one in Chinese, owned by 100 users, on three models. Then
each format is exported twice: through the generator (``conversations.exports``) and through the
admin view (``/admin/conversations/conversation/export/``, Django's test Client, the body read
chunk by chunk). Each measurement runs in a process of its own, so that one's peak memory does not
hide another's: one process for the time, the output size and the RSS (peak ``ru_maxrss`` minus
the resident size just before the export), another under ``tracemalloc`` for the peak of Python
allocations (tracemalloc slows Python down: its time is not the one reported). One filtered
export (one model of three, through the view) checks that a filter narrows the output. For
comparison, the old admin action "Download selected transcripts as JSON" with "select all" (one
query per conversation, everything built in memory), when the admin still has it.

    python -m bench.export [--quick] [--conversations 10000] [--database-url URL] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Check, exit_status, report, save

MESSAGES = 10
USERS = 100
MODELS = ["lite", "generalv3.5", "4.0Ultra"]
PREFIX = "bench-export"
FORMATS = ["json", "md", "csv"]
# Flat memory: the export of 10,000 conversations (about 30 MB of output) must stay within this
# much above what the process held before it.
TARGET_TRACEMALLOC_MIB = 20
TARGET_RSS_MIB = 40
ENGLISH = (
    "The museum opens at nine; arrive early, buy the ticket online, and start with the upper "
    "floor, where the impressionists hang, before the groups come in. Lunch nearby is cheaper "
    "on the side streets. Keep an hour for the garden and the bookshop, and check the hours, "
    "since Thursday evenings it stays open late for the exhibitions."
)[:300]
CHINESE = (
    "西湖在清晨最安静，建议六点前到断桥，沿白堤走到孤山，再去平湖秋月。中午可以在附近的小巷吃"
    "片儿川，价格比景区便宜。下午去灵隐寺，记得带身份证预约。晚上看音乐喷泉，七点和八点各一场。"
) * 3


def _setup(url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        CHATSITE_TESTING="0",
        DJANGO_SECRET_KEY="bench-secret-key-" + "b" * 40,
        DATABASE_URL=url,
        SPARK_API_PASSWORD="bench:key",
        STATIC_MANIFEST="false",
        LOG_LEVEL="WARNING",
        DJANGO_DEBUG="false",
    )
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test Client's host, "testserver", allowed


def _seed(conversations: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from conversations.models import Conversation, Message

    call_command("migrate", verbosity=0)
    if Conversation.objects.exists():
        raise SystemExit("bench.export needs an empty database: it has conversations already")
    started = time.perf_counter()
    user_model = get_user_model()
    with transaction.atomic():
        owners = user_model.objects.bulk_create(
            [user_model(username=f"{PREFIX}-owner-{n:03d}", password="!") for n in range(USERS)]
        )
        staff = user_model.objects.create(username=f"{PREFIX}-staff", password="!", is_staff=True)
        staff.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="conversations", codename="view_conversation"
            )
        )
    now = timezone.now()
    step = 1000
    for start in range(0, conversations, step):
        with transaction.atomic():
            batch = Conversation.objects.bulk_create(
                [
                    Conversation(
                        user=owners[n % USERS],
                        title=f"{PREFIX} {n}" + (" 周末" if n % 3 == 0 else ""),
                        model=MODELS[n % len(MODELS)],
                    )
                    for n in range(start, min(start + step, conversations))
                ]
            )
            Message.objects.bulk_create(
                [
                    Message(
                        conversation=c,
                        seq=seq,
                        role="user" if seq % 2 else "assistant",
                        status="complete",
                        model="" if seq % 2 else c.model,
                        provider="" if seq % 2 else "spark",
                        content=f"{seq}: " + (CHINESE if (index + seq) % 3 == 0 else ENGLISH),
                        prompt_tokens=None if seq % 2 else 200,
                        completion_tokens=None if seq % 2 else 100,
                        total_tokens=None if seq % 2 else 300,
                        cost_cny=None if seq % 2 else "0.000300",
                        ttft_ms=None if seq % 2 else 450,
                        duration_ms=None if seq % 2 else 2100,
                        created_at=now,
                    )
                    for index, c in enumerate(batch)
                    for seq in range(1, MESSAGES + 1)
                ],
                batch_size=2000,
            )
    return {
        "conversations": conversations,
        "messages": conversations * MESSAGES,
        "seed (s)": round(time.perf_counter() - started, 1),
    }


def _clean() -> None:
    from django.contrib.auth import get_user_model

    # Their conversations and messages go with them (on delete cascade); the audit trail is
    # append-only: its entries of the run stay.
    get_user_model().objects.filter(username__startswith=PREFIX).delete()


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# Counted across chunk boundaries: one per message in each format (the seeded texts hold no
# newline, no quote and no "## ").
_MARKERS = {"json": '"conversation": "', "md": "\n## ", "csv": "\n"}


def _chunks(kind: str, via: str, query: str, warm: bool = False) -> Any:
    """The export's chunks; ``warm``: an export that matches nothing, to import and warm up."""
    from django.test import Client

    from conversations import exports
    from conversations.models import Conversation

    if via == "generator":
        generator = exports.FORMATS[kind][0]
        everything = Conversation.objects.all()
        return generator(everything.filter(title="nothing matches") if warm else everything)
    if warm:
        query = "&q=nothing-matches-this"
    if via == "view" or warm:
        client = Client()
        client.force_login(_staff())
        response = client.get(f"/admin/conversations/conversation/export/?format={kind}{query}")
        assert response.status_code == 200, response.status_code
        assert response.streaming
        return response.streaming_content
    # The action: all conversations selected ("select all"), "Download selected as JSON". It
    # built the whole file in memory until 2026-12-02 (the figures' "old action"); it streams
    # through the same export since.
    client = Client()
    client.force_login(_staff())
    first = Conversation.objects.values_list("pk", flat=True).first()
    response = client.post(
        "/admin/conversations/conversation/",
        {"action": "download_json", "select_across": "1", "index": "0", "_selected_action": first},
    )
    assert response.status_code == 200, response.status_code
    return response.streaming_content if response.streaming else [response.content]


def _staff() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=f"{PREFIX}-staff")


def _measure(kind: str, via: str, query: str, trace: bool) -> dict[str, Any]:
    """One export, in this process: time, bytes, messages counted, memory."""
    import tracemalloc

    # Everything imported and warmed up first, on a small export.
    for _ in _chunks(kind, via, query, warm=True):
        pass
    marker = _MARKERS[kind]
    base_rss = _rss_kib()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    size = count = 0
    tail = ""
    for chunk in _chunks(kind, via, query):
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        size += len(chunk) if isinstance(chunk, bytes) else len(chunk.encode())
        window = tail + text
        count += window.count(marker)
        tail = window[-(len(marker) - 1) :] if len(marker) > 1 else ""
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "bytes": size,
        "marks": count,
        "rss base MiB": round(base_rss / 1024, 1),
        "rss delta MiB": round(
            (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024, 1
        ),
    }
    if trace:
        result["tracemalloc peak MiB"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    return result


def _child(args: argparse.Namespace, url: str, kind: str, via: str, query: str, trace: bool) -> Any:
    command = [sys.executable, "-m", "bench.export", "--database-url", url, "--measure", kind]
    command += ["--via", via, "--query", query] + (["--trace"] if trace else [])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _old_action_available() -> bool:
    from django.contrib import admin

    from conversations.models import Conversation

    return "download_json" in (admin.site._registry[Conversation].actions or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1,000 conversations")
    parser.add_argument("--conversations", type=int, default=None)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--keep", action="store_true", help="keep the rows afterwards")
    parser.add_argument("--no-old-action", action="store_true")
    # One measurement in this process (the benchmark's own child processes).
    parser.add_argument("--measure", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--via", default="view", help=argparse.SUPPRESS)
    parser.add_argument("--query", default="", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.measure:
        _setup(args.database_url)
        from django.core.management import call_command

        # Other work in the tree may have added a migration since the seeding.
        call_command("migrate", verbosity=0)
        print(json.dumps(_measure(args.measure, args.via, args.query, args.trace)))
        return 0

    conversations = args.conversations or (1000 if args.quick else 10_000)
    folder = None
    url = args.database_url
    if not url:
        folder = tempfile.mkdtemp(prefix="chatsite-bench-export-", dir="/tmp")
        url = f"sqlite:///{folder}/db.sqlite3"
    database = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    _setup(url)
    try:
        seeded = _seed(conversations)
        print(f"seeded: {seeded}", flush=True)
        figures: dict[str, Any] = {"database": database, "seeding": seeded}
        checks: list[Check] = []
        cases = [(kind, via, "") for kind in FORMATS for via in ("generator", "view")]
        cases.append(("json", "view", "&model__exact=lite"))
        for kind, via, query in cases:
            timed = _child(args, url, kind, via, query, trace=False)
            traced = _child(args, url, kind, via, query, trace=True)
            expected = sum(MESSAGES for n in range(conversations) if not query or n % 3 == 0)
            figure = {
                "seconds": timed["seconds"],
                "conversations/s": round(expected / MESSAGES / timed["seconds"]),
                "messages (rows)/s": round(expected / timed["seconds"]),
                "MB out": round(timed["bytes"] / 1e6, 1),
                "rss delta MiB": timed["rss delta MiB"],
                "rss base MiB": timed["rss base MiB"],
                "tracemalloc peak MiB": traced["tracemalloc peak MiB"],
            }
            name = f"{kind} via the {via}" + (f" ({query.lstrip('&')})" if query else "")
            figures[name] = figure
            print(f"  {name}: {figure}", flush=True)
            marks = timed["marks"] - (1 if kind == "csv" else 0)  # the header's line
            checks.append(
                Check(f"{name}: messages out", marks, f"== {expected}", marks == expected, True)
            )
            if not query and conversations >= 10_000:
                checks.append(
                    Check(
                        f"{name}: tracemalloc peak (MiB)",
                        traced["tracemalloc peak MiB"],
                        f"<= {TARGET_TRACEMALLOC_MIB}",
                        traced["tracemalloc peak MiB"] <= TARGET_TRACEMALLOC_MIB,
                    )
                )
                checks.append(
                    Check(
                        f"{name}: RSS delta (MiB)",
                        timed["rss delta MiB"],
                        f"<= {TARGET_RSS_MIB}",
                        timed["rss delta MiB"] <= TARGET_RSS_MIB,
                    )
                )
        if args.no_old_action or not _old_action_available():
            figures["select-all action (download JSON)"] = "skipped: not in the admin"
        else:
            timed = _child(args, url, "json", "action", "", trace=False)
            traced = _child(args, url, "json", "action", "", trace=True)
            figure = {
                "seconds": timed["seconds"],
                "MB out": round(timed["bytes"] / 1e6, 1),
                "rss delta MiB": timed["rss delta MiB"],
                "tracemalloc peak MiB": traced["tracemalloc peak MiB"],
            }
            figures["select-all action (download JSON)"] = figure
            print(f"  select-all action: {figure}", flush=True)
        result = report(
            f"Export by filter: {conversations:,} conversations x {MESSAGES} messages, {database}",
            figures,
            checks,
        )
        save("export" + ("-postgresql" if database == "PostgreSQL" else ""), result)
        return exit_status(result)
    finally:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        elif not args.keep:
            _clean()


if __name__ == "__main__":
    sys.exit(main())
