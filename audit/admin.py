"""The audit trail in admin: read by staff, changed by nobody; and ``AuditedAdmin``, the base of
every admin whose changes must be on the trail (users, policies, prices, providers, review).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from . import trail
from .models import AuditEntry

# Form fields whose values never reach the trail (the fact that they changed does).
SECRET_FIELDS = frozenset({"api_key", "clear_api_key", "password", "password1", "password2"})


def _plain(value: Any) -> Any:
    """A form value as JSON can hold it: model instances and sets by name."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, QuerySet | list | tuple | set | frozenset):
        return sorted(str(v) for v in value)
    return str(value)


class AuditedAdmin(admin.ModelAdmin):
    """Records every add, change and delete made through this admin, with the fields' values
    before and after (secrets by name only)."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        values: dict[str, Any] = {}
        for name in form.changed_data:
            if name in SECRET_FIELDS:
                values[name] = "(changed)"
            else:
                values[name] = [
                    _plain(form.initial.get(name)) if change else None,
                    _plain(form.cleaned_data.get(name)),
                ]
        request._audit_values = values  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def _audit(self, request: HttpRequest, obj: Model, verb: str, message: Any) -> None:
        if isinstance(message, str) and message.startswith("["):
            with contextlib.suppress(ValueError):
                message = json.loads(message)
        trail.record(
            f"{obj._meta.model_name}.{verb}",
            target=obj,
            detail={"changes": message, "values": getattr(request, "_audit_values", {})},
            request=request,
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_addition(request, obj, message)
        self._audit(request, obj, "add", message)
        return entry

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entry = super().log_change(request, obj, message)
        self._audit(request, obj, "change", message)
        return entry

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            self._audit(request, obj, "delete", "")
        return entries


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "action", "target_type", "target_repr", "target_id", "ip")
    list_filter = ("action", "target_type", "at")
    search_fields = ("actor", "action", "target_id", "target_repr")
    date_hierarchy = "at"
    readonly_fields = (
        "at",
        "actor",
        "actor_id",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "detail_json",
        "ip",
    )
    fields = readonly_fields
    actions = None

    @admin.display(description="detail")
    def detail_json(self, obj: AuditEntry) -> str:
        return json.dumps(obj.detail, ensure_ascii=False, indent=2, sort_keys=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
