"""Feedback in admin (docs/review.md, "Feedback from users"): the reasons users may give, which
staff configure, the ratings users gave (read-only: they are the users' words), and the tokens
the site spent itself (generated titles). Imported by ``conversations/admin.py``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit.admin import AuditedAdmin

from .models import Feedback, FeedbackReason, SystemUsage


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(FeedbackReason)
class FeedbackReasonAdmin(AuditedAdmin):
    list_display = ("code", "label", "label_zh", "rating", "enabled", "order")
    list_editable = ("enabled", "order")
    list_filter = ("rating", "enabled")
    search_fields = ("code", "label", "label_zh")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Ratings keep the code they were given with: disable a reason rather than delete it.
        return False


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ("updated_at", "rating", "reason", "comment_start", "owner", "transcript")
    list_filter = ("rating", "reason", "updated_at")
    search_fields = ("comment", "message__conversation__user__username")
    list_select_related = ("message__conversation__user",)
    date_hierarchy = "updated_at"
    fields = ("message", "rating", "reason", "comment", "created_at", "updated_at")

    @admin.display(description=_("comment"))
    def comment_start(self, obj: Feedback) -> str:
        return obj.comment[:80]

    @admin.display(description=_("owner"))
    def owner(self, obj: Feedback) -> str:
        return obj.message.conversation.user.get_username()

    @admin.display(description=_("transcript"))
    def transcript(self, obj: Feedback) -> str:
        url = reverse("admin:conversations_conversation_change", args=[obj.message.conversation_id])
        return format_html('<a href="{}#message-{}">{}</a>', url, obj.message_id, _("open"))


@admin.register(SystemUsage)
class SystemUsageAdmin(ReadOnlyAdmin):
    list_display = ("at", "purpose", "model", "provider", "total_tokens", "cost_cny")
    list_filter = ("purpose", "model", "at")
    date_hierarchy = "at"
