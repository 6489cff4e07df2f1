"""Print the assistant replies in the server's database by status, as JSON.

Run with the server's environment (DATABASE_URL).
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.db.models import Count

    from conversations.models import Message

    rows = (
        Message.objects.filter(role=Message.Role.ASSISTANT).values("status").annotate(n=Count("id"))
    )
    complete_with_text = (
        Message.objects.filter(
            role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE, total_tokens__isnull=False
        )
        .exclude(content="")
        .count()
    )
    json.dump(
        {
            "by_status": {r["status"]: r["n"] for r in rows},
            "complete_with_text_and_usage": complete_with_text,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
