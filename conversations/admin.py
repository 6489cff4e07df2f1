"""Transcript review for staff: conversations with their messages, read-only, exportable."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ERROR_FLAG
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import selectors
from .models import Conversation, Message
from .shapes import conversation_data, message_data


class MessageStatusFilter(admin.SimpleListFilter):
    title = _("message status")
    parameter_name = "message_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(Message.Status.choices)

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> QuerySet[Conversation]:
        if self.value():
            return queryset.filter(
                pk__in=Message.objects.filter(status=self.value()).values("conversation_id")
            )
        return queryset


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ("seq",)
    fields = readonly_fields = (
        "seq",
        "role",
        "status",
        "content",
        "model",
        "error_code",
        "error_detail",
        "sid",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "ttft_ms",
        "duration_ms",
        "replaced",
        "created_at",
    )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Seeing a conversation means seeing its transcript: no separate message permission.
        return request.user.has_perm("conversations.view_conversation") or request.user.has_perm(
            "conversations.change_conversation"
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _transcript(conversation: Conversation) -> dict[str, Any]:
    return {
        **conversation_data(conversation),
        "owner": conversation.user.get_username(),
        "messages": [
            {**message_data(m), "replaced": m.replaced}
            for m in conversation.messages.order_by("seq")
        ],
    }


def _markdown(transcript: dict[str, Any]) -> str:
    lines = [
        f"# {transcript['title'] or transcript['id']}",
        "",
        f"- id: {transcript['id']}",
        f"- owner: {transcript['owner']}",
        f"- model: {transcript['model']}",
        f"- created: {transcript['created_at']}",
        "",
    ]
    if transcript["system_prompt"]:
        lines += ["## system", "", transcript["system_prompt"], ""]
    for m in transcript["messages"]:
        meta = [m["status"]]
        if m["error_code"]:
            meta.append(f"error {m['error_code']}")
        if m["sid"]:
            meta.append(f"sid {m['sid']}")
        if m["usage"]:
            meta.append(f"{m['usage']['total_tokens']} tokens")
        if m["replaced"]:
            meta.append("replaced")
        lines += [f"## {m['seq']}. {m['role']} ({', '.join(meta)})", "", m["content"], ""]
    return "\n".join(lines)


def _download(payload: str, *, extension: str, content_type: str) -> HttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = HttpResponse(payload, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="transcripts-{stamp}.{extension}"'
    return response


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = (
        "title_or_id",
        "user",
        "model",
        "message_count",
        "tokens_total",
        "last_activity",
        "created_at",
    )
    list_filter = ("model", MessageStatusFilter, "created_at", "updated_at")
    search_fields = ("user__username", "user__email", "title", "messages__content")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    ordering = ("-updated_at",)
    readonly_fields = ("id", "user", "title", "model", "system_prompt", "created_at", "updated_at")
    fields = readonly_fields
    inlines = [MessageInline]
    actions = ["download_json", "download_markdown"]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        try:
            return super().changelist_view(request, extra_context)
        except OverflowError:
            # Django answers a bad date-hierarchy value (?created_at__year=0) with "?e=1", but a
            # year past C's integer range raises OverflowError: a 500. Answer it the same way.
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return selectors.conversation_stats().select_related("user")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Staff read transcripts; nobody edits them (view permission still shows the page).
        return False

    @admin.display(description=_("title"), ordering="title")
    def title_or_id(self, obj: Conversation) -> str:
        return obj.title or str(obj.pk)

    @admin.display(description=_("messages"), ordering="message_count")
    def message_count(self, obj: Any) -> int:
        return obj.message_count

    @admin.display(description=_("tokens"), ordering="tokens_total")
    def tokens_total(self, obj: Any) -> int:
        return obj.tokens_total or 0

    @admin.display(description=_("last activity"), ordering="last_activity")
    def last_activity(self, obj: Any) -> Any:
        return obj.last_activity or obj.updated_at

    @admin.action(description=_("Download selected transcripts as JSON"))
    def download_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> HttpResponse:
        data = [_transcript(c) for c in queryset.select_related("user")]
        return _download(
            json.dumps(data, ensure_ascii=False, indent=2),
            extension="json",
            content_type="application/json; charset=utf-8",
        )

    @admin.action(description=_("Download selected transcripts as Markdown"))
    def download_markdown(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> HttpResponse:
        text = "\n\n---\n\n".join(
            _markdown(_transcript(c)) for c in queryset.select_related("user")
        )
        return _download(text, extension="md", content_type="text/markdown; charset=utf-8")
