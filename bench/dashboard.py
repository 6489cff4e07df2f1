"""Benchmark: the staff's usage dashboard answers within a second on 1,000 users and a million
replies, on PostgreSQL.

Seeds a database of its own (``chatsite_bench_dashboard``, dropped and made again) on the local
cluster (tests/support/postgres.py, port 54329 unless ``--database-url``): 1,000 users in 10 groups
(a tenth in none, a fifth in two), 20 conversations each, and ``--replies`` assistant replies
(default 1,000,000), each after its user message, spread over the last 90 days, on five models,
2 % failed and 1 % interrupted. Rows are made by ``INSERT ... SELECT FROM generate_series`` in the
database, not by the ORM; then ``VACUUM ANALYZE``, as autovacuum would.

Then it times ``conversations.dashboard.usage_dashboard`` (all the page's queries) for the default
range (the last 30 days), the whole 90 days, and one group, one user and one model over 30 days
(on PostgreSQL the page is one statement, ``dashboard.one_pass_sql``), first without the
index of migration 0006 and then with it, and the separate queries SQLite runs, for reference:
"cold" is the first call on a new connection (a new backend, nothing prepared; the cluster's
shared buffers and the OS page cache are not emptied, since the cluster is shared); "warm" is the
median and worst of ``--repeat`` calls. It also times the CSV export of the 30 days and writes the
statement's ``EXPLAIN (ANALYZE, BUFFERS)`` for each case to
test-artifacts/bench/dashboard-plans.txt.

    python -m bench.dashboard [--replies 1000000] [--repeat 5] [--database-url URL] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

from bench.common import ROOT, Check, exit_status, report, save

DATABASE = "chatsite_bench_dashboard"
USERS = 1000
GROUPS = 10
CONVERSATIONS_PER_USER = 20
DAYS = 90
MODELS = ["lite", "generalv3.5", "4.0Ultra", "deepseek-chat", "qwen-plus"]
TARGET_SECONDS = 1.0


def _database(args: argparse.Namespace) -> str:
    if args.database_url:
        return str(args.database_url)
    sys.path.insert(0, str(ROOT))
    from tests.support.postgres import PostgresCluster

    cluster = PostgresCluster(port=54329, datadir="/tmp/chatsite-pg-54329")
    cluster.start()
    return cluster.create_database(DATABASE)


def _setup(url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings",
        CHATSITE_TESTING="0",
        DJANGO_SECRET_KEY="bench-secret-key-" + "b" * 40,
        DATABASE_URL=url,
        STATIC_MANIFEST="false",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _seed(replies: int) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    timings: dict[str, float] = {}
    started = time.perf_counter()
    user_model = get_user_model()
    with transaction.atomic():
        # 1,000 users in one batch through the ORM, so that the accounts' own columns get their
        # defaults; everything else in SQL.
        user_model._default_manager.bulk_create(
            [user_model(username=f"user{n:04d}", password="!") for n in range(USERS)],
            batch_size=USERS,
        )
        Group.objects.bulk_create([Group(name=f"group{n:02d}") for n in range(GROUPS)])
    user_table = user_model._meta.db_table
    groups_table = user_model.groups.through._meta.db_table
    with connection.cursor() as cursor:
        # Users: a tenth in no group, a fifth also in a second group.
        cursor.execute(
            f"""
            INSERT INTO {groups_table} (user_id, group_id)
            SELECT u.id, g.id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                                    FROM {user_table}) u
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM auth_group) g
              ON g.k = u.n % {GROUPS}
            WHERE (u.n / 10) % 10 <> 0
            UNION ALL
            SELECT u.id, g.id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                                    FROM {user_table}) u
            JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM auth_group) g
              ON g.k = (u.n + 3) % {GROUPS}
            WHERE u.n % 5 = 1
            """
        )
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE bench_conv AS
            SELECT gen_random_uuid() AS id, u.id AS user_id,
                   row_number() OVER () - 1 AS k
            FROM {user_table} u, generate_series(1, {CONVERSATIONS_PER_USER})
            """
        )
        cursor.execute(
            """
            INSERT INTO conversations_conversation
              (id, title, model, system_prompt, created_at, updated_at, user_id)
            SELECT id, 'bench', 'lite', '', now() - interval '90 days', now(), user_id
            FROM bench_conv
            """
        )
        cursor.execute("CREATE INDEX ON bench_conv (k)")
        timings["users, groups, conversations (s)"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        conversations = USERS * CONVERSATIONS_PER_USER
        models = "ARRAY[" + ",".join(f"'{m}'" for m in MODELS) + "]"
        # Reply i: conversation i % conversations, its turn i / conversations; user message seq
        # 2t + 1, reply 2t + 2, a second apart. Statuses by i % 100: 0-1 failed, 2 interrupted.
        cursor.execute(
            f"""
            INSERT INTO conversations_message
              (id, conversation_id, seq, role, content, reasoning, "references", status, model,
               provider, error_code, error_detail, sid, replaced, worker, created_at,
               prompt_tokens, completion_tokens, total_tokens, charged_tokens, cost_cny)
            SELECT gen_random_uuid(), c.id, 2 * (s.i / {conversations}) + r.seq,
                   CASE WHEN r.seq = 1 THEN 'user' ELSE 'assistant' END,
                   '', '', '[]'::jsonb,
                   CASE WHEN r.seq = 1 THEN 'complete'
                        WHEN s.i % 100 < 2 THEN 'error'
                        WHEN s.i % 100 = 2 THEN 'interrupted' ELSE 'complete' END,
                   ({models})[1 + (s.i * 7 + c.user_id) % {len(MODELS)}], 'bench',
                   CASE WHEN r.seq = 1 THEN ''
                        WHEN s.i % 100 = 0 THEN 'upstream_timeout'
                        WHEN s.i % 100 = 1 THEN 'upstream_error'
                        WHEN s.i % 100 = 2 THEN 'client_disconnected' ELSE '' END,
                   '', '', false, '',
                   now() - make_interval(secs => ({DAYS} * 86400.0) * s.i / {replies})
                         + make_interval(secs => r.seq),
                   CASE WHEN r.seq = 2 THEN 200 + s.i % 800 END,
                   CASE WHEN r.seq = 2 THEN 50 + s.i % 400 END,
                   CASE WHEN r.seq = 2 THEN 250 + s.i % 800 + s.i % 400 END,
                   CASE WHEN r.seq = 2 AND s.i % 100 >= 2 THEN 250 + s.i % 800 + s.i % 400
                        WHEN r.seq = 2 THEN 0 END,
                   CASE WHEN r.seq = 2 AND s.i % 100 >= 2
                        THEN round((250 + s.i % 800 + s.i % 400) * 0.000004, 6)
                        WHEN r.seq = 2 THEN 0 END
            FROM generate_series(0, {replies - 1}) AS s(i)
            JOIN bench_conv c ON c.k = s.i % {conversations}
            CROSS JOIN (VALUES (1), (2)) AS r(seq)
            """
        )
        timings["messages (s)"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    connection.close()
    from django.db import connection as fresh

    fresh.ensure_connection()
    previous = fresh.connection.autocommit
    fresh.connection.autocommit = True
    with fresh.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    fresh.connection.autocommit = previous
    timings["vacuum analyze (s)"] = round(time.perf_counter() - started, 2)
    return timings


def _cases() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from conversations import dashboard

    end = dashboard.today()
    month = {"start": (end - timedelta(days=29)).isoformat(), "end": end.isoformat()}
    group = Group.objects.order_by("name").values_list("pk", flat=True).first()
    user = get_user_model()._default_manager.order_by("pk").values_list("pk", flat=True)[5]
    return {
        "30 days": month,
        "90 days": {"start": (end - timedelta(days=DAYS)).isoformat(), "end": end.isoformat()},
        "30 days, one group": {**month, "group": str(group)},
        "30 days, one user": {**month, "user": str(user)},
        "30 days, one model": {**month, "model": "deepseek-chat"},
    }


def _time(params: dict[str, str], repeat: int) -> dict[str, Any]:
    from django.db import connection

    from conversations import dashboard

    filters, _ = dashboard.filters_from(params)
    connection.close()  # cold: a new backend
    started = time.perf_counter()
    data = dashboard.usage_dashboard(filters)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(repeat):
        started = time.perf_counter()
        dashboard.usage_dashboard(filters)
        warm.append(time.perf_counter() - started)
    return {
        "replies": data["totals"]["messages"],
        "cold ms": round(cold * 1000),
        "warm median ms": round(statistics.median(warm) * 1000),
        "warm max ms": round(max(warm) * 1000),
    }


def _parts(params: dict[str, str]) -> dict[str, int]:
    """The page's figures by separate queries, as on SQLite, each alone (warm, best of three),
    in milliseconds."""
    from conversations import dashboard

    filters, _ = dashboard.filters_from(params)
    parts = {}
    for name, function in [
        ("totals", dashboard.totals),
        ("by_day", dashboard.by_day),
        ("by_model", dashboard.by_model),
        ("by_group", dashboard.by_group),
        ("top_users", dashboard.top_users),
        ("errors_by_code", dashboard.errors_by_code),
    ]:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            function(filters)  # type: ignore[operator]
            best = min(best, time.perf_counter() - started)
        parts[name] = round(best * 1000)
    parts["sum"] = sum(parts.values())
    return parts


def _csv(params: dict[str, str]) -> dict[str, Any]:
    from conversations import dashboard

    filters, _ = dashboard.filters_from(params)
    started = time.perf_counter()
    rows = sum(1 for _ in dashboard.csv_rows(filters))
    return {"rows": rows, "ms": round((time.perf_counter() - started) * 1000)}


def _plans(cases: dict[str, dict[str, str]]) -> str:
    from django.db import connection

    from conversations import dashboard

    out = []
    for name, params in cases.items():
        filters, _ = dashboard.filters_from(params)
        sql, sql_params = dashboard.one_pass_sql(filters)
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", sql_params)
            out.append(f"== {name}\n" + "\n".join(row[0] for row in cursor.fetchall()))
    return "\n\n".join(out)


def _index(present: bool) -> None:
    """Drop or make again the dashboard's index (migration 0006), to measure what it gives."""
    import importlib

    from django.db import connection

    migration = importlib.import_module("conversations.migrations.0006_dashboard_indexes")
    connection.close()
    with connection.schema_editor(atomic=False) as editor:
        (migration.create if present else migration.drop)(None, editor)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE conversations_message")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--replies", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)

    url = _database(args)
    _setup(url)
    seeded = _seed(args.replies)
    print(f"seeded: {seeded}", flush=True)
    cases = _cases()
    _index(present=False)
    without = {
        "30 days": _time(cases["30 days"], args.repeat),
        "30 days, separate queries (the SQLite path)": _parts(cases["30 days"]),
    }
    print(f"  without the index: {without}", flush=True)
    _index(present=True)
    results = {name: _time(params, args.repeat) for name, params in cases.items()}
    for name, figures in results.items():
        print(f"  {name}: {figures}", flush=True)
    parts = _parts(cases["30 days"])
    export = _csv(cases["30 days"])
    plans = _plans(cases)
    folder = ROOT / "test-artifacts" / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dashboard-plans.txt").write_text(plans)

    checks = [
        Check(
            name=f"{name}: warm max (ms)",
            value=figures["warm max ms"],
            target=f"<= {TARGET_SECONDS * 1000:.0f}",
            ok=figures["warm max ms"] <= TARGET_SECONDS * 1000,
        )
        for name, figures in results.items()
    ] + [
        Check(
            name=f"{name}: cold (ms)",
            value=figures["cold ms"],
            target=f"<= {TARGET_SECONDS * 1000:.0f}",
            ok=figures["cold ms"] <= TARGET_SECONDS * 1000,
        )
        for name, figures in results.items()
    ]
    result = report(
        f"Usage dashboard: {USERS} users, {args.replies:,} replies over {DAYS} days",
        {
            "seeding": seeded,
            **{f"dashboard, {name}": figures for name, figures in results.items()},
            "separate queries (the SQLite path), 30 days, warm ms": parts,
            "without the index (migration 0006)": without,
            "CSV export, 30 days": export,
            "plans": str(folder / "dashboard-plans.txt"),
        },
        checks,
    )
    save("dashboard", result)
    if not args.keep and not args.database_url:
        from django.db import connection

        connection.close()
        from tests.support.postgres import PostgresCluster

        PostgresCluster(port=54329, datadir="/tmp/chatsite-pg-54329").drop_database(DATABASE)
    return exit_status(result)


if __name__ == "__main__":
    sys.exit(main())
