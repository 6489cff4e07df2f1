"""Create benchmark users and conversations straight in the database; print their tokens as JSON.

Run with the server's environment (DATABASE_URL, JWT_SIGNING_KEY...) so the tokens it mints are
accepted by the server: ``python -m bench.setup_data USERS CONVERSATIONS_PER_USER [MESSAGES]``.
Minting tokens here skips registration, whose per-IP rate limit and password hashing would
dominate setting up thousands of streams.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    from conversations.models import ChatModel, Conversation, Message, Provider

    dialect = os.environ.get("BENCH_PROVIDER_DIALECT")
    if dialect:
        # A provider row, as staff would add one (bench/common.py, BENCH_DIALECT).
        provider, _ = Provider.objects.update_or_create(
            name=f"bench-{dialect}",
            defaults={"dialect": dialect, "base_url": os.environ["BENCH_PROVIDER_URL"]},
        )
        provider.set_api_key(os.environ.get("SPARK_API_PASSWORD") or "bench-key")
        provider.save()
        ChatModel.objects.update_or_create(
            model_id=settings.DEFAULT_MODEL,
            defaults={"provider": provider, "upstream_id": "bench-model", "context_window": 8192},
        )

    users, per_user = int(sys.argv[1]), int(sys.argv[2])
    messages = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    prefix = os.environ.get("BENCH_USER_PREFIX", "bench")
    User = get_user_model()
    created = User.objects.bulk_create(
        [User(username=f"{prefix}{os.getpid()}-{n}", password="!") for n in range(users)]
    )
    created = list(
        User.objects.filter(username__startswith=f"{prefix}{os.getpid()}-").order_by("id")
    )
    out = []
    for user in created:
        conversations = Conversation.objects.bulk_create(
            [
                Conversation(user=user, title=f"bench {n}", model=settings.DEFAULT_MODEL)
                for n in range(per_user)
            ]
        )
        if messages:
            rows = []
            for conversation in conversations:
                for seq in range(1, messages + 1):
                    role = Message.Role.USER if seq % 2 else Message.Role.ASSISTANT
                    rows.append(
                        Message(
                            conversation=conversation,
                            seq=seq,
                            role=role,
                            model=settings.DEFAULT_MODEL,
                            content=f"bench message {seq} " + "lorem ipsum " * 8,
                        )
                    )
            Message.objects.bulk_create(rows, batch_size=2000)
        out.append(
            {
                "user": user.pk,
                "token": str(AccessToken.for_user(user)),
                "conversations": [str(c.pk) for c in conversations],
            }
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
