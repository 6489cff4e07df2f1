"""A user's effective policy: which models they may use and their limits (docs/governance.md).

Resolution, limit by limit: the user's own override when it sets one; else the most generous of
their groups' policies (no limit wins); else, for a user in no group with a policy, the site
default. Models: the override's list if it has one, else the union of the groups' lists (a group
with an empty list allows every model), else every model.

Read on every send, so kept in memory per user: a change in admin reaches this process at once
(signals) and the other workers within ``POLICY_REFRESH_SECONDS`` (1 s), when their one small
query per interval sees the tables changed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import connection
from django.db.models.signals import m2m_changed, post_delete, post_save

from .models import GroupPolicy, Limits, SitePolicy, UserPolicy

Limit = int | Decimal | None


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    limits: dict[str, Limit]  # "day_messages", ..., "month_cost_cny"; None: no limit
    allowed_models: frozenset[str] | None  # None: every model

    @property
    def unlimited(self) -> bool:
        return all(value is None for value in self.limits.values())

    def limited_kinds(self, period: str) -> set[str]:
        """What is limited in ``period`` ("day", "week", "month"): some of "messages", "tokens",
        "cost_cny"; empty when nothing is."""
        prefix = period + "_"
        return {
            name.removeprefix(prefix)
            for name, value in self.limits.items()
            if name.startswith(prefix) and value is not None
        }

    def limits_size(self) -> bool:
        """Whether tokens or cost are limited (the hold then needs the prompt's size)."""
        return any(
            value is not None
            for name, value in self.limits.items()
            if not name.endswith("_messages")
        )

    def allows(self, model_id: str) -> bool:
        return self.allowed_models is None or model_id in self.allowed_models


def _most_generous(values: list[Limit]) -> Limit:
    if not values or any(value is None for value in values):
        return None
    return max(values)  # type: ignore[type-var]


def resolve(user_id: Any) -> EffectivePolicy:
    """Read from the database (three small queries)."""
    override = UserPolicy.objects.filter(user_id=user_id).first()
    groups = list(GroupPolicy.objects.filter(group__user=user_id))
    base: dict[str, Limit]
    if groups:
        base = {
            name: _most_generous([getattr(g, name) for g in groups]) for name in Limits.LIMIT_FIELDS
        }
    else:
        base = SitePolicy.get().limits()
    limits = dict(base)
    if override is not None:
        for name in Limits.LIMIT_FIELDS:
            value = getattr(override, name)
            if value is not None:
                limits[name] = value
    allowed: frozenset[str] | None = None
    if override is not None and override.allowed_models:
        allowed = frozenset(override.allowed_models)
    elif groups and all(g.allowed_models for g in groups):
        allowed = frozenset(m for g in groups for m in g.allowed_models)
    return EffectivePolicy(limits=limits, allowed_models=allowed)


_lock = threading.Lock()
_state: dict[str, Any] = {"version": None, "checked": 0.0}
_cache: dict[Any, EffectivePolicy] = {}
_MAX_USERS = 50_000


def _version() -> tuple[object, ...]:
    """The policy tables' and the group memberships' row counts and last changes, one query.

    A membership has no change time; a new one has a higher id, and a removed one lowers the
    count, so moving a user between groups shows too.
    """
    quote = connection.ops.quote_name
    memberships = quote(get_user_model().groups.through._meta.db_table)
    parts = [f"(SELECT COUNT(*) FROM {memberships}), (SELECT MAX(id) FROM {memberships})"]  # noqa: S608  # nosec B608 - quoted table names only
    for model in (SitePolicy, GroupPolicy, UserPolicy):
        table = quote(model._meta.db_table)
        parts.append(f"(SELECT COUNT(*) FROM {table}), (SELECT MAX(updated_at) FROM {table})")  # noqa: S608  # nosec B608 - quoted table names only
    sql = "SELECT " + ", ".join(parts)  # nosec B608 - quoted table names only, no values
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone() or ())


def for_user(user_id: Any) -> EffectivePolicy:
    """The user's policy, from memory while the policy tables are unchanged (checked at most
    every ``POLICY_REFRESH_SECONDS``)."""
    now = time.monotonic()
    if now - _state["checked"] >= settings.POLICY_REFRESH_SECONDS:
        version = _version()
        with _lock:
            if version != _state["version"]:
                _cache.clear()
                _state["version"] = version
            _state["checked"] = now
    policy = _cache.get(user_id)
    if policy is None:
        policy = resolve(user_id)
        with _lock:
            if len(_cache) >= _MAX_USERS:
                _cache.clear()
            _cache[user_id] = policy
    return policy


def invalidate(**_: Any) -> None:
    with _lock:
        _cache.clear()
        _state["checked"] = 0.0


setting_changed.connect(invalidate, dispatch_uid="policy-settings")
for _model in (GroupPolicy, UserPolicy, SitePolicy):
    post_save.connect(invalidate, sender=_model, dispatch_uid=f"policy-save-{_model.__name__}")
    post_delete.connect(invalidate, sender=_model, dispatch_uid=f"policy-del-{_model.__name__}")
m2m_changed.connect(
    invalidate, sender=get_user_model().groups.through, dispatch_uid="policy-user-groups"
)
