"""The usage dashboard's index (conversations/dashboard.py, bench/dashboard.py).

The dashboard sums the replies of a date range by day, model, owner and error code. Without an
index PostgreSQL reads the whole message table (user messages included) for each page: 5 s for
the last 30 days of a million replies. A partial index of the replies by ``created_at`` that also
carries every column the dashboard reads lets it answer from the index alone (an index-only
scan), within a second.

Written as SQL rather than a ``Meta.indexes`` entry: ``INCLUDE`` is PostgreSQL's, and on a large
table the index is built ``CONCURRENTLY`` so that sends are not blocked while it builds (hence a
non-atomic migration). SQLite gets the same partial index without the carried columns.
"""

from django.db import migrations

NAME = "msg_reply_usage"
CARRIED = (
    "conversation_id, model, status, error_code, prompt_tokens, completion_tokens, "
    "charged_tokens, cost_cny"
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON conversations_message "
            f"(created_at) INCLUDE ({CARRIED}) WHERE role = 'assistant'"
        )
    else:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {NAME} ON conversations_message (created_at) "
            "WHERE role = 'assistant'"
        )


def drop(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {NAME}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversations", "0005_quota_and_cost"),
    ]

    operations = [migrations.RunPython(create, drop, elidable=False)]
