"""Who changed a user's groups: group membership decides what a user may use and spend, so every
change to it is recorded as a ``PolicyChange``, with the staff member whose request made it.

The admin's user form saves memberships through Django's many-to-many machinery, which knows no
request: ``AuditActorMiddleware`` keeps the signed-in user of the current request in a context
variable for the ``m2m_changed`` handler below. A change outside a request (a sign-up by invite,
a management command) is recorded without an actor.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed
from django.http import HttpRequest, HttpResponse

from audit import trail

from .models import PolicyChange

_actor: contextvars.ContextVar[Any] = contextvars.ContextVar("audit_actor", default=None)


class AuditActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Only admin requests change memberships; the others never load their user here.
        user = getattr(request, "user", None) if request.path.startswith("/admin/") else None
        is_staff = bool(user is not None and user.is_authenticated and user.is_staff)
        token = _actor.set(user if is_staff else None)
        try:
            return self.get_response(request)
        finally:
            _actor.reset(token)


def _names(user: Any) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def _membership_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **_: Any
) -> None:
    if action not in ("pre_clear", "post_add", "post_remove", "post_clear"):
        return
    if reverse:  # group.user_set.add(...): record it on each user
        if action == "pre_clear":
            instance._audit_members = list(instance.user_set.all())
            return
        users: list[Any] = (
            getattr(instance, "_audit_members", [])
            if action == "post_clear"
            else list(get_user_model().objects.filter(pk__in=pk_set or ()))
        )
        for user in users:
            after = _names(user)
            before = sorted(
                set(after) | {instance.name}
                if action in ("post_remove", "post_clear")
                else set(after) - {instance.name}
            )
            _record(user, before, after)
        return
    if action == "pre_clear":
        instance._audit_groups = _names(instance)
        return
    after = _names(instance)
    changed = set(Group.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True))
    if action == "post_add":
        before = sorted(set(after) - changed)
    elif action == "post_remove":
        before = sorted(set(after) | changed)
    else:
        before = getattr(instance, "_audit_groups", [])
    _record(instance, before, after)


def _record(user: Any, before: list[str], after: list[str]) -> None:
    if before != after:
        actor = _actor.get()
        PolicyChange.objects.create(
            actor=actor,
            target=f"groups of user {user.get_username()}",
            before={"groups": before},
            after={"groups": after},
        )
        trail.record(
            "user.groups",
            actor=actor,
            target=user,
            detail={"before": before, "after": after},
        )


m2m_changed.connect(
    _membership_changed,
    sender=get_user_model().groups.through,
    dispatch_uid="audit-group-membership",
)
