"""Staff's admin: transcripts (read-only, exportable), and the providers and models on offer.

A provider's or model's API key is write-only here: the form takes a new one, or keeps the
stored one when left empty; no page ever shows it (docs/providers.md, "Adding a provider").
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ERROR_FLAG
from django.db.models import DecimalField, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.admin import UserAdmin as AccountsUserAdmin
from accounts.models import User
from governance import periods as calendar
from governance import pricing

from . import admin_dashboard, admin_export, catalog, selectors
from .models import ChatModel, Conversation, Message, Provider
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
        "reasoning",
        "model",
        "provider",
        "error_code",
        "error_detail",
        "sid",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_cny",
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

    def get_urls(self) -> list[Any]:
        # The usage dashboard (conversations/admin_dashboard.py) lives under this admin's URLs.
        return admin_dashboard.urls(self.admin_site) + admin_export.urls(self) + super().get_urls()

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


# -- providers and models ----------------------------------------------------------------------


class _WriteOnlyKeyForm(forms.ModelForm):
    """A form with a write-only ``api_key``: empty keeps the stored key, ``clear_api_key``
    removes it. The stored key is never rendered, not even masked."""

    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Write-only: leave empty to keep the stored key. Stored encrypted."),
    )
    clear_api_key = forms.BooleanField(label=_("Remove the stored key"), required=False)

    def save(self, commit: bool = True) -> Any:
        instance = super().save(commit=False)
        key = self.cleaned_data.get("api_key") or ""
        if key:
            instance.set_api_key(key)
        elif self.cleaned_data.get("clear_api_key"):
            instance.set_api_key("")
        if commit:
            instance.save()
            self.save_m2m()
        return instance


class ProviderForm(_WriteOnlyKeyForm):
    class Meta:
        model = Provider
        fields = (
            "name",
            "label",
            "dialect",
            "base_url",
            "api_key",
            "clear_api_key",
            "connect_timeout",
            "read_timeout",
            "enabled",
        )


# A model's fields in the provider's inline; its own form adds the temperatures and the key.
_MODEL_FIELDS = (
    "model_id",
    "upstream_id",
    "label",
    "context_window",
    "max_output",
    "reasoning",
    "reasoning_switch",
    "web_search",
    "vision",
    "enabled",
    "order",
    "is_default",
)


class ChatModelForm(_WriteOnlyKeyForm):
    class Meta:
        model = ChatModel
        fields = (
            "provider",
            *_MODEL_FIELDS[:-3],
            "temperature_min",
            "temperature_max",
            "temperature_default",
            *_MODEL_FIELDS[-3:],
            "api_key",
            "clear_api_key",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        low, high = data.get("temperature_min"), data.get("temperature_max")
        default = data.get("temperature_default")
        if low is not None and high is not None:
            if low > high:
                self.add_error("temperature_max", _("Must not be below the minimum."))
            elif default is not None and not low <= default <= high:
                self.add_error("temperature_default", _("Must lie within the range."))
        return data


class ChatModelInline(admin.TabularInline):
    model = ChatModel
    extra = 0
    fields = _MODEL_FIELDS
    show_change_link = True


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ("name", "label", "dialect", "base_url", "key_set", "enabled", "updated_at")
    list_filter = ("dialect", "enabled")
    search_fields = ("name", "label", "base_url")
    inlines = [ChatModelInline]
    actions = ["test_connection"]

    @admin.display(boolean=True, description=_("key set"))
    def key_set(self, obj: Provider) -> bool:
        return obj.has_key

    @admin.action(description=_("Test connection (one short request)"))
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            result = catalog.test_connection(provider)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{provider.name}: {result.summary}", level)


@admin.register(ChatModel)
class ChatModelAdmin(admin.ModelAdmin):
    form = ChatModelForm
    list_display = (
        "model_id",
        "label",
        "provider",
        "context_window",
        "max_output",
        "reasoning",
        "web_search",
        "enabled",
        "is_default",
        "order",
    )
    list_filter = ("provider", "enabled", "reasoning")
    search_fields = ("model_id", "label", "upstream_id")
    list_select_related = ("provider",)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        unpriced = unpriced_models()
        if unpriced:
            self.message_user(
                request,
                _("No price for: %(models)s. Their tokens count; their cost shows as unknown.")
                % {"models": ", ".join(unpriced)},
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)


def unpriced_models() -> list[str]:
    """Models on offer without a price in force (governance's ModelPrice)."""
    now = timezone.now()
    return [
        model_id
        for model_id in catalog.current().models
        if pricing.cached_price_in_force(model_id, now) is None
    ]


# -- the user list, with each user's groups and this month's use --------------------------------


class UserWithUsageAdmin(AccountsUserAdmin):
    """accounts' user admin, plus the groups and this month's use (docs/governance.md): added
    here because accounts knows nothing of conversations."""

    list_display = (  # type: ignore[assignment]  # the base's is a fixed-length tuple
        *AccountsUserAdmin.list_display,
        "group_names",
        "month_tokens",
        "month_cost",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        month = next(p for p in calendar.current(timezone.now()) if p.name == "month")
        replies = Message.objects.filter(
            conversation__user=OuterRef("pk"),
            role=Message.Role.ASSISTANT,
            created_at__gte=month.start,
        ).exclude(status=Message.Status.ERROR)
        totals = replies.order_by().values("conversation__user")
        return (
            super()
            .get_queryset(request)
            .prefetch_related("groups")
            .annotate(
                month_tokens_used=Subquery(
                    totals.annotate(n=Sum("charged_tokens")).values("n"),
                    output_field=IntegerField(),
                ),
                month_cost_used=Subquery(
                    totals.annotate(n=Sum("cost_cny")).values("n"),
                    output_field=DecimalField(max_digits=14, decimal_places=6),
                ),
            )
        )

    @admin.display(description=_("groups"))
    def group_names(self, user: Any) -> str:
        return ", ".join(sorted(group.name for group in user.groups.all())) or "—"

    @admin.display(description=_("tokens this month"), ordering="month_tokens_used")
    def month_tokens(self, user: Any) -> int:
        return user.month_tokens_used or 0

    @admin.display(description=_("cost this month (CNY)"), ordering="month_cost_used")
    def month_cost(self, user: Any) -> str:
        return f"{user.month_cost_used:.2f}" if user.month_cost_used is not None else "—"


admin.site.unregister(User)
admin.site.register(User, UserWithUsageAdmin)
