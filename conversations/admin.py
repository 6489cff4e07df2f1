"""Staff's admin: transcripts (read-only, exportable, deletable with a reason, held for legal
reasons), and the providers and models on offer; every change is on the audit trail.

A provider's or model's API key is write-only here: the form takes a new one, or keeps the
stored one when left empty; no page ever shows it (docs/providers.md, "Adding a provider").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import DecimalField, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.admin import UserAdmin as AccountsUserAdmin
from accounts.models import User
from attachments.models import AttachmentUse
from audit import trail
from audit.admin import AuditedAdmin
from chatsite.errors import AppError
from governance import periods as calendar
from governance import pricing

from . import admin_dashboard, admin_export, admin_feedback, admin_share, catalog, selectors  # noqa: F401
from .models import ChatModel, Conversation, Feedback, FeedbackReason, Message, Provider
from .services import conversation_purge


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


# -- the transcript: each message a block, with what others say about it beside it -------------


@dataclass(frozen=True)
class Annotation:
    """Something said about a conversation or one of its messages, shown beside it in the
    transcript (a review item, a reviewer's note). Other apps add them through
    ``transcript_annotations``: conversations knows nothing of review."""

    kind: str  # a CSS modifier: "flag", "note", ...
    title: str  # a short heading: "keyword · high · new"
    text: str = ""  # plain text, shown as typed
    meta: str = ""  # who and when
    url: str = ""  # where to act on it
    message_id: Any = None  # None: about the whole conversation
    key: str = ""  # a stable name ("reviewitem:12"), so a page can highlight one


# Functions of a conversation returning its annotations; review/admin.py appends its own.
transcript_annotations: list[Callable[[Conversation], Iterable[Annotation]]] = []

# The strings static/js/render.js asks for (through static/js/i18n.js), as on the chat page.
_RENDER_STRINGS = {
    "copy": _("Copy"),
    "copied": _("Copied"),
    "copy_code": _("Copy code"),
    "code": _("code"),
    "image": _("Image"),
}


def _stamp(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _cost(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return f"{text} CNY"


def _metadata(message: Message) -> list[dict[str, Any]]:
    """The message's metadata as the parts of one compact line, each with a tooltip."""
    parts = [{"text": message.get_status_display(), "title": _("status")}]
    if message.error_code:
        parts.append({"text": f"error {message.error_code}", "title": _("error code")})
    if message.sid:
        parts.append({"text": f"sid {message.sid}", "title": _("provider's request id")})
    if message.total_tokens is not None:
        parts.append(
            {
                "text": (
                    f"{message.prompt_tokens or 0} / {message.completion_tokens or 0} / "
                    f"{message.total_tokens} tokens"
                ),
                "title": _("tokens: prompt / completion / total"),
            }
        )
    if message.ttft_ms is not None:
        parts.append({"text": f"ttft {message.ttft_ms} ms", "title": _("time to first token")})
    if message.duration_ms is not None:
        parts.append({"text": f"{message.duration_ms} ms", "title": _("duration")})
    if message.cost_cny is not None:
        parts.append({"text": _cost(message.cost_cny), "title": _("cost")})
    if message.role == Message.Role.ASSISTANT and (message.model or message.provider):
        where = message.model or "?"
        if message.provider:
            where = f"{where} @ {message.provider}"
        parts.append({"text": where, "title": _("model @ provider")})
    parts.append({"text": _stamp(message.created_at), "title": _("created")})
    return parts


def _feedback(message: Message, reasons: dict[str, str]) -> dict[str, str] | None:
    try:
        feedback = message.feedback
    except Feedback.DoesNotExist:
        return None
    return {
        "rating": feedback.rating,
        "symbol": feedback.get_rating_display(),
        "reason": reasons.get(feedback.reason, feedback.reason),
        "comment": feedback.comment,
        "at": _stamp(feedback.updated_at),
    }


def _references(message: Message) -> list[dict[str, str]]:
    """The web pages a reply cited, web addresses only (a link is never javascript:)."""
    found = []
    for ref in message.references or []:
        url = str(ref.get("url", "")) if isinstance(ref, dict) else ""
        if url.lower().startswith(("http://", "https://")):
            found.append({"url": url, "title": str(ref.get("title") or "")})
    return found


def transcript_context(
    conversation: Conversation, *, highlight_message: Any = None, highlight_key: str = ""
) -> dict[str, Any]:
    """What templates/admin/includes/transcript.html shows: the messages in order, each with its
    metadata, feedback and annotations; the annotations about the whole conversation apart."""
    messages = list(conversation.messages.order_by("seq").select_related("feedback"))
    reasons = dict(FeedbackReason.objects.values_list("code", "label"))
    ids = {m.pk for m in messages}
    by_message: dict[Any, list[Annotation]] = {pk: [] for pk in ids}
    whole: list[Annotation] = []
    for annotate in transcript_annotations:
        for annotation in annotate(conversation):
            if annotation.message_id in ids:
                by_message[annotation.message_id].append(annotation)
            else:
                whole.append(annotation)
    highlight = str(highlight_message) if highlight_message else ""
    # The files each message was sent with (docs/attachments.md): one query.
    files: dict[Any, list[dict[str, Any]]] = {}
    for use in AttachmentUse.objects.filter(message_id__in=ids).select_related("attachment"):
        files.setdefault(use.message_id, []).append(
            {
                "name": use.attachment.name,
                "kind": use.attachment.get_kind_display(),
                "size": use.attachment.size,
                "pages": use.pages,
                "tokens": use.token_estimate,
            }
        )
    return {
        "conversation": conversation,
        "annotations": whole,
        "highlight_key": highlight_key,
        "strings": {key: str(value) for key, value in _RENDER_STRINGS.items()},
        "entries": [
            {
                "message": m,
                "meta": _metadata(m),
                "feedback": _feedback(m, reasons),
                "annotations": by_message[m.pk],
                "references": _references(m),
                "files": files.get(m.pk, []),
                "highlight": str(m.pk) == highlight,
            }
            for m in messages
        ],
    }


class DeletedFilter(admin.SimpleListFilter):
    """Deleted by their owner (kept for review until purged) or not; all by default."""

    title = _("deleted")
    parameter_name = "deleted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> QuerySet[Conversation]:
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        return queryset


class DeleteConversationForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        strip=True,
        max_length=2000,
        help_text=_("Required: kept on the audit trail."),
    )


class LegalHoldForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        strip=True,
        max_length=2000,
    )


@admin.register(Conversation)
class ConversationAdmin(AuditedAdmin):
    list_display = (
        "title_or_id",
        "user",
        "model",
        "message_count",
        "tokens_total",
        "last_activity",
        "state",
        "created_at",
    )
    list_filter = ("model", MessageStatusFilter, DeletedFilter, "legal_hold", "created_at")
    search_fields = ("user__username", "user__email", "title", "messages__content")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    ordering = ("-updated_at",)
    readonly_fields = ("id", "user", "title", "model", "created_at", "updated_at")
    fields = readonly_fields
    actions: Any = ["download_json", "download_markdown"]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        try:
            return super().changelist_view(request, extra_context)
        except OverflowError:
            # Django answers a bad date-hierarchy value (?created_at__year=0) with "?e=1", but a
            # year past C's integer range raises OverflowError: a 500. Answer it the same way.
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

    def get_urls(self) -> list[Any]:
        # The usage dashboard (conversations/admin_dashboard.py) lives under this admin's URLs.
        own = [
            path(
                "<path:object_id>/legal-hold/",
                self.admin_site.admin_view(self.legal_hold_view),
                name="conversations_conversation_legal_hold",
            )
        ]
        return (
            admin_dashboard.urls(self.admin_site)
            + admin_export.urls(self)
            + own
            + super().get_urls()
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return selectors.conversation_stats().select_related("user")

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        # Deleting asks for a reason, one conversation at a time (delete_view).
        actions.pop("delete_selected", None)
        # Actions other apps add (review's "Flag for review") name the permissions they need.
        for name, entry in list(actions.items()):
            needed = getattr(entry[0], "required_perms", ()) if entry else ()
            if needed and not request.user.has_perms(needed):
                del actions[name]
        return actions

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Staff read transcripts; nobody edits them (view permission still shows the page).
        return False

    def has_legal_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("conversations.legal_hold_conversation")

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

    @admin.display(description=_("state"))
    def state(self, obj: Conversation) -> str:
        parts = []
        if obj.deleted_at:
            parts.append(str(_("deleted")))
        if obj.legal_hold:
            parts.append(str(_("on hold")))
        return ", ".join(parts) or "—"

    # -- the transcript page

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None:
            context["transcript"] = transcript_context(obj)
            context["can_legal_hold"] = self.has_legal_hold_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            conversation = getattr(response, "context_data", {}).get("original")
            if conversation is not None:
                trail.record("transcript.view", target=conversation, request=request)
        return response

    # -- deleting: its own permission, a reason, the audit trail

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None:
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        if not self.has_delete_permission(request, conversation):
            raise PermissionDenied
        form = DeleteConversationForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                with transaction.atomic():
                    locked = (
                        Conversation.objects.select_for_update()
                        .select_related("user")
                        .get(pk=conversation.pk)
                    )
                    if locked.legal_hold:
                        raise AppError("legal hold", code="legal_hold")
                    trail.record(
                        "conversation.delete",
                        target_type="conversations.conversation",
                        target_id=locked.pk,
                        target_repr=str(locked),
                        detail={
                            "reason": form.cleaned_data["reason"],
                            "owner": locked.user.get_username(),
                            "messages": locked.messages.count(),
                        },
                        request=request,
                    )
                    conversation_purge(conversation=locked)
            except AppError:
                conversation.legal_hold = True
                self.message_user(
                    request,
                    _("This conversation is under legal hold and cannot be deleted."),
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    _("The conversation “%(title)s” was deleted.") % {"title": str(conversation)},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:conversations_conversation_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Delete a conversation"),
            "subtitle": str(conversation),
            "opts": self.opts,
            "object": conversation,
            "form": form,
            "message_total": conversation.messages.count(),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/conversations/conversation/delete_confirmation.html", context
        )

    # -- legal hold

    def legal_hold_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        conversation = self.get_object(request, unquote(object_id))
        if conversation is None:
            return self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
        if not self.has_legal_hold_permission(request):
            raise PermissionDenied
        form = LegalHoldForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            reason = form.cleaned_data["reason"]
            with transaction.atomic():
                locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
                if locked.legal_hold:
                    detail = {"reason": reason, "hold_reason": locked.legal_hold_reason}
                    locked.legal_hold, locked.legal_hold_reason = False, ""
                    action, text = "conversation.legal_hold_lifted", _("Legal hold lifted.")
                else:
                    detail = {"reason": reason}
                    locked.legal_hold, locked.legal_hold_reason = True, reason
                    action, text = "conversation.legal_hold", _("Legal hold placed.")
                locked.save(update_fields=["legal_hold", "legal_hold_reason"])
                trail.record(action, target=locked, detail=detail, request=request)
            self.message_user(request, text, messages.SUCCESS)
            return HttpResponseRedirect(
                reverse("admin:conversations_conversation_change", args=[conversation.pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Lift the legal hold")
            if conversation.legal_hold
            else _("Place a legal hold"),
            "subtitle": str(conversation),
            "opts": self.opts,
            "object": conversation,
            "form": form,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/conversations/conversation/legal_hold.html", context
        )

    # -- downloads

    @admin.action(description=_("Download selected transcripts as JSON"))
    def download_json(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> Any:
        return self._download(request, queryset, "json")

    @admin.action(description=_("Download selected transcripts as Markdown"))
    def download_markdown(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> Any:
        return self._download(request, queryset, "md")

    @staticmethod
    def _download(request: HttpRequest, queryset: QuerySet[Conversation], kind: str) -> Any:
        # Streamed in batches like the export of the filtered list (conversations/exports.py).
        selected = Conversation.objects.filter(pk__in=queryset.values("pk"))
        return admin_export.streamed(
            request,
            selected,
            kind,
            detail={
                "format": kind,
                "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)[:1000]],
                "count": queryset.count(),
            },
        )


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
class ProviderAdmin(AuditedAdmin):
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
class ChatModelAdmin(AuditedAdmin):
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
