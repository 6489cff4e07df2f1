"""Writing the audit trail: ``record`` is the one way in (docs/review.md, "Audit trail")."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from .models import AuditEntry

SYSTEM = "system"


def _ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # REMOTE_ADDR as the serving layer set it (docs/deploy.md: the proxy's address is trusted).
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    *,
    actor: Any = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: Any = "",
    target_repr: str = "",
    detail: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> AuditEntry:
    """Append one entry. ``actor``: a user, or None for the system (a command, a timer); with a
    ``request`` and no actor, the request's user. ``target``: a model instance, or its type, id
    and name given apart (for something already gone)."""
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        actor = user if user is not None and user.is_authenticated else None
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
        target_repr = target_repr or str(target)
    return AuditEntry.objects.create(
        actor_id="" if actor is None else str(actor.pk),
        actor=SYSTEM if actor is None else actor.get_username(),
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        target_repr=target_repr[:200],
        detail=detail or {},
        ip=_ip(request),
    )
