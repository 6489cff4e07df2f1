"""Staff edit the site default, group and user policies and the prices here; every change is
recorded twice: as a ``PolicyChange`` (who, when, the whole row before and after) and on the
site's audit trail (``audit``, docs/review.md); nobody can edit or delete either record."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.forms.models import model_to_dict
from django.http import HttpRequest

from audit.admin import AuditedAdmin as TrailAdmin

from .models import GroupPolicy, ModelPrice, PolicyChange, SitePolicy, UserPolicy


def _snapshot(obj: Model | None) -> dict[str, Any] | None:
    if obj is None or obj.pk is None:
        return None
    data = model_to_dict(obj)
    # Decimals and datetimes as text (a price's effective_from made adding a price a 500).
    return {k: str(v) if isinstance(v, Decimal | datetime) else v for k, v in data.items()}


class AuditedAdmin(TrailAdmin):
    """Records each save and delete as a ``PolicyChange``, and on the audit trail."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = _snapshot(type(obj).objects.filter(pk=obj.pk).first()) if change else None
        super().save_model(request, obj, form, change)
        PolicyChange.objects.create(
            actor=request.user,  # type: ignore[misc]  # admin views need a signed-in user
            target=f"{obj._meta.verbose_name}: {obj}",
            before=before,
            after=_snapshot(obj),
        )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        before = _snapshot(obj)
        target = f"{obj._meta.verbose_name}: {obj}"
        super().delete_model(request, obj)
        PolicyChange.objects.create(
            actor=request.user,  # type: ignore[misc]  # admin views need a signed-in user
            target=target,
            before=before,
            after=None,
        )


LIMITS: tuple[tuple[str | None, Any], ...] = (
    ("Per day", {"fields": ("day_messages", "day_tokens", "day_cost_cny")}),
    ("Per week", {"fields": ("week_messages", "week_tokens", "week_cost_cny")}),
    ("Per month", {"fields": ("month_messages", "month_tokens", "month_cost_cny")}),
)


@admin.register(SitePolicy)
class SitePolicyAdmin(AuditedAdmin):
    fieldsets = LIMITS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SitePolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GroupPolicy)
class GroupPolicyAdmin(AuditedAdmin):
    list_display = ("group", "allowed_models", "day_messages", "day_tokens", "month_cost_cny")
    fieldsets = (
        (None, {"fields": ("group", "allowed_models")}),
        *LIMITS,
    )


@admin.register(UserPolicy)
class UserPolicyAdmin(AuditedAdmin):
    list_display = ("user", "allowed_models", "day_messages", "day_tokens", "month_cost_cny")
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)
    fieldsets = (
        (None, {"fields": ("user", "allowed_models")}),
        *LIMITS,
    )


@admin.register(ModelPrice)
class ModelPriceAdmin(AuditedAdmin):
    list_display = (
        "model_id",
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "effective_from",
    )
    list_filter = ("model_id",)
    search_fields = ("model_id",)


@admin.register(PolicyChange)
class PolicyChangeAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "target")
    list_filter = ("actor",)
    search_fields = ("target",)
    readonly_fields = ("at", "actor", "target", "before", "after")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
