"""Shared links in admin: read-only, with an action that revokes them (docs/export-and-share.md).

Registered when conversations/admin.py imports this module (``from . import admin_share``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import transfer
from .models import Share


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ("conversation", "created_by", "created_at", "public", "revoked_at")
    list_filter = ("public", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("conversation__title", "created_by__username")
    list_select_related = ("conversation", "created_by")
    date_hierarchy = "created_at"
    # The token is a credential: never shown, not even to staff.
    fields = (
        "conversation",
        "created_by",
        "created_at",
        "public",
        "revoked_at",
        "title",
        "snapshot",
    )
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected links"), permissions=["view"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Share]) -> None:
        count = transfer.revoke_shares(queryset.select_related("conversation"), request=request)
        self.message_user(
            request, _("%(count)d links revoked.") % {"count": count}, messages.SUCCESS
        )
