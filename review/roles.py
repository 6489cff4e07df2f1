"""The "reviewer" role (docs/review.md, "Roles"): a group whose members read transcripts and work
the review queue, and cannot change users, quotas, prices or providers. Kept by ``migrate``:
every run adds the permissions below to the group (it never removes one staff added).
Members also need "staff status" to sign in to admin.
"""

from __future__ import annotations

from typing import Any

REVIEWER_GROUP = "reviewer"

REVIEWER_PERMISSIONS = (
    ("conversations", "view_conversation"),
    ("conversations", "view_message"),
    ("conversations", "view_feedback"),
    ("review", "view_reviewitem"),
    ("review", "change_reviewitem"),
    ("review", "view_reviewnote"),
    ("review", "add_reviewnote"),
    ("review", "view_label"),
    ("review", "add_label"),
    ("review", "view_flagkeyword"),
)


def ensure_reviewer_role(**_: Any) -> None:
    from django.contrib.auth.models import Group, Permission
    from django.db.models import Q

    group = Group.objects.get_or_create(name=REVIEWER_GROUP)[0]
    wanted = Q()
    for app_label, codename in REVIEWER_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    group.permissions.add(*Permission.objects.filter(wanted))
