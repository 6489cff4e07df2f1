"""The review queue in admin (docs/review.md, "The queue"): items to read, claimed, assigned,
labelled, noted and resolved; the transcript of each item's conversation beside it.

Every change is on the audit trail: item edits through ``AuditedAdmin``, claims, notes and bulk
actions recorded here by name (``review.claim``, ``review.note``, ``review.assign``, ...).

Also from here, because conversations knows nothing of review: the flags and notes shown beside
the messages of every admin transcript (``conversations.admin.transcript_annotations``), and the
"Flag for review" action of the conversation list.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit import trail
from audit.admin import AuditedAdmin
from conversations.admin import (
    Annotation,
    ConversationAdmin,
    transcript_annotations,
    transcript_context,
)
from conversations.models import Conversation, Message

from .flagging import flag
from .models import FlagKeyword, Label, ReviewItem, ReviewNote, ReviewSettings

CLOSED = (ReviewItem.Status.RESOLVED, ReviewItem.Status.DISMISSED)
# How many of the items an action applies to its confirmation page names.
LISTED = 50


def _stamp(moment: Any) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _who(user: Any) -> str:
    return user.get_username() if user is not None else str(_("(deleted user)"))


# -- the transcript's flags and notes --------------------------------------------------------------


def review_annotations(conversation: Conversation) -> Iterator[Annotation]:
    """The conversation's review items and their notes, beside the messages they concern (or at
    the top for a whole-conversation item): two queries."""
    items = list(
        conversation.review_items.select_related("assignee")
        .prefetch_related("labels")
        .order_by("created_at")
    )
    for item in items:
        meta = [_stamp(item.created_at)]
        labels = ", ".join(label.name for label in item.labels.all())
        if labels:
            meta.append(labels)
        if item.assignee_id:
            meta.append(str(_("assigned to %(who)s")) % {"who": _who(item.assignee)})
        yield Annotation(
            kind=f"flag-{item.severity}",
            title=(
                f"{item.get_source_display()} · {item.get_severity_display()} · "
                f"{item.get_status_display()}"
            ),
            text=item.detail + (f"\n→ {item.resolution}" if item.resolution else ""),
            meta=" · ".join(meta),
            url=reverse("admin:review_reviewitem_change", args=[item.pk]),
            message_id=item.message_id,
            key=f"reviewitem:{item.pk}",
        )
    notes = ReviewNote.objects.filter(item__conversation=conversation).select_related(
        "author", "item"
    )
    for note in notes.order_by("created_at"):
        yield Annotation(
            kind="note",
            title=str(_("Note on %(item)s")) % {"item": note.item},
            text=note.body,
            meta=f"{_who(note.author)} · {_stamp(note.created_at)}",
            message_id=note.message_id or note.item.message_id,
            key=f"reviewnote:{note.pk}",
        )


if review_annotations not in transcript_annotations:
    transcript_annotations.append(review_annotations)


# -- "Flag for review" on the conversation list --------------------------------------------------


@admin.action(description=_("Flag for review"))
def flag_for_review(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Conversation]
) -> None:
    created, already = [], []
    for pk in queryset.values_list("pk", flat=True):
        item = flag(
            conversation_id=pk,
            source=ReviewItem.Source.MANUAL,
            detail=str(_("flagged by %(who)s")) % {"who": request.user.get_username()},
        )
        if item is None:
            already.append(str(pk))
        else:
            created.append(item.pk)
    trail.record(
        "review.flag",
        target_type="review.reviewitem",
        target_repr=f"{len(created)} review items",
        detail={"items": created, "already_flagged": already},
        request=request,
    )
    modeladmin.message_user(
        request,
        _("%(new)d conversations queued for review; %(old)d already were.")
        % {"new": len(created), "old": len(already)},
        messages.SUCCESS,
    )


flag_for_review.required_perms = ("review.change_reviewitem",)  # type: ignore[attr-defined]
if flag_for_review not in ConversationAdmin.actions:
    ConversationAdmin.actions = [*ConversationAdmin.actions, flag_for_review]


# -- the queue -------------------------------------------------------------------------------------


class ModelFilter(admin.SimpleListFilter):
    """The conversation's model, among those of the items queued."""

    title = _("model")
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        models = (
            ReviewItem.objects.order_by("conversation__model")
            .values_list("conversation__model", flat=True)
            .distinct()
        )
        return [(m, m) for m in models if m]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ReviewItem]
    ) -> QuerySet[ReviewItem]:
        if self.value():
            return queryset.filter(conversation__model=self.value())
        return queryset


class GroupFilter(admin.SimpleListFilter):
    """A group of the conversation's owner."""

    title = _("owner's group")
    parameter_name = "group"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (str(pk), name) for pk, name in Group.objects.order_by("name").values_list("pk", "name")
        ]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[ReviewItem]
    ) -> QuerySet[ReviewItem]:
        if self.value():
            try:
                group = int(self.value() or "")
            except ValueError:
                return queryset.none()
            return queryset.filter(conversation__user__groups=group)
        return queryset


def _staff() -> QuerySet[Any]:
    return get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=_staff(), label=_("Assign to"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = _staff()  # type: ignore[attr-defined]


class ResolveForm(forms.Form):
    resolution = forms.CharField(
        label=_("Resolution"),
        required=False,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Optional: what was found and done. Empty keeps each item's own."),
    )


class ReviewNoteInline(admin.StackedInline):
    """Notes: a reviewer adds one (author and time set here); nobody edits or deletes one."""

    model = ReviewNote
    extra = 1
    can_delete = False
    fields = ("body", "message", "author", "created_at")
    readonly_fields = ("author", "created_at")
    verbose_name = _("note")
    verbose_name_plural = _("notes")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewNote]:
        return super().get_queryset(request).select_related("author", "message")

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        field: Any = formset.form.base_fields.get("message")
        if field is not None:
            # A note may concern one message of this item's conversation.
            conversation_id: Any = obj.conversation_id if obj is not None else None
            field.queryset = Message.objects.filter(conversation_id=conversation_id).order_by("seq")
            field.label_from_instance = lambda m: (
                f"#{m.seq} {m.role}: {m.content[:60]}{'…' if len(m.content) > 60 else ''}"
            )
            field.help_text = _("Optional: the message the note is about.")
        return formset


@admin.register(ReviewItem)
class ReviewItemAdmin(AuditedAdmin):
    list_display = (
        "number",
        "conversation_title",
        "owner",
        "source",
        "severity",
        "status",
        "assignee",
        "claim",
        "label_list",
        "conversation_model",
        "created_at",
    )
    list_filter = (
        "status",
        "source",
        "labels",
        ("assignee", admin.RelatedOnlyFieldListFilter),
        "severity",
        ModelFilter,
        GroupFilter,
        "created_at",
    )
    list_select_related = ("conversation__user", "assignee", "claimed_by")
    search_fields = (
        "conversation__title",
        "conversation__user__username",
        "conversation__user__email",
        "detail",
    )
    date_hierarchy = "created_at"
    fields = (
        "conversation_link",
        "message_link",
        "source",
        "detail",
        "status",
        "severity",
        "labels",
        "assignee",
        "resolution",
        "claim",
        "created_at",
        "resolved_at",
    )
    readonly_fields = (
        "conversation_link",
        "message_link",
        "source",
        "detail",
        "claim",
        "created_at",
        "resolved_at",
    )
    inlines = [ReviewNoteInline]
    actions = ["assign_to", "assign_to_me", "resolve", "dismiss"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewItem]:
        return super().get_queryset(request).prefetch_related("labels")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Items come from flags and from "Flag for review" on the conversation list.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An item is dismissed, not deleted: the queue keeps what was reviewed.
        return False

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "assignee":
            kwargs["queryset"] = _staff()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "labels":
            kwargs["widget"] = forms.CheckboxSelectMultiple
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    # -- columns and fields

    @admin.display(description=_("item"), ordering="pk")
    def number(self, item: ReviewItem) -> str:
        return f"#{item.pk}"

    @admin.display(description=_("conversation"), ordering="conversation__title")
    def conversation_title(self, item: ReviewItem) -> str:
        return item.conversation.title or str(item.conversation_id)

    @admin.display(description=_("owner"), ordering="conversation__user__username")
    def owner(self, item: ReviewItem) -> str:
        return item.conversation.user.get_username()

    @admin.display(description=_("model"), ordering="conversation__model")
    def conversation_model(self, item: ReviewItem) -> str:
        return item.conversation.model

    @admin.display(description=_("labels"))
    def label_list(self, item: ReviewItem) -> str:
        return ", ".join(label.name for label in item.labels.all()) or "—"

    @admin.display(description=_("claimed by"))
    def claim(self, item: ReviewItem) -> str:
        holder = item.claim_holder()
        if holder is None:
            return "—"
        return str(_("%(who)s until %(until)s")) % {
            "who": _who(holder),
            "until": _stamp(item.claimed_until),
        }

    @admin.display(description=_("conversation"))
    def conversation_link(self, item: ReviewItem) -> Any:
        url = reverse("admin:conversations_conversation_change", args=[item.conversation_id])
        return format_html(
            '<a href="{}">{}</a> · {} · {}',
            url,
            item.conversation,
            item.conversation.user.get_username(),
            item.conversation.model,
        )

    @admin.display(description=_("message"))
    def message_link(self, item: ReviewItem) -> Any:
        if item.message_id is None:
            return _("the whole conversation")
        return format_html('<a href="#message-{}">{}</a>', item.message_id, item.message)

    # -- the claim: a lock that expires

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        base = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class ClaimCheckedForm(base):  # type: ignore[misc, valid-type]
            def clean(self) -> Any:
                data = super().clean()
                if self.instance.pk:
                    current = ReviewItem.objects.select_related("claimed_by").get(
                        pk=self.instance.pk
                    )
                    holder: Any = current.claim_holder()
                    if holder is not None and holder.pk != user.pk:
                        raise ValidationError(
                            _(
                                "%(who)s has claimed this item until %(until)s: only they can "
                                "change it until then."
                            ),
                            code="claimed",
                            params={"who": _who(holder), "until": _stamp(current.claimed_until)},
                        )
                return data

        return ClaimCheckedForm

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/claim/",
                wrap(self.claim_view),
                name="review_reviewitem_claim",
            ),
            path(
                "<path:object_id>/release/",
                wrap(self.release_view),
                name="review_reviewitem_release",
            ),
            *super().get_urls(),
        ]

    def _item_for_post(self, request: HttpRequest, object_id: str) -> ReviewItem:
        item = self.get_object(request, unquote(object_id))
        if item is None or not self.has_change_permission(request, item):
            raise PermissionDenied
        return item

    def _back(self, item: ReviewItem) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:review_reviewitem_change", args=[item.pk]))

    def claim_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        item = self._item_for_post(request, object_id)
        now = timezone.now()
        until = now + ReviewItem.claim_length()
        free = (
            Q(claimed_by__isnull=True)
            | Q(claimed_until__isnull=True)
            | Q(claimed_until__lte=now)
            | Q(claimed_by=request.user)
        )
        # One statement: of two reviewers claiming at once, one wins.
        won = (
            ReviewItem.objects.filter(free, pk=item.pk).update(
                claimed_by=request.user, claimed_until=until, updated_at=now
            )
            == 1
        )
        if not won:
            item.refresh_from_db()
            self.message_user(
                request,
                _("%(who)s has claimed this item until %(until)s.")
                % {"who": _who(item.claim_holder()), "until": _stamp(item.claimed_until)},
                messages.ERROR,
            )
            return self._back(item)
        ReviewItem.objects.filter(pk=item.pk, status=ReviewItem.Status.NEW).update(
            status=ReviewItem.Status.IN_REVIEW
        )
        trail.record(
            "review.claim", target=item, detail={"until": until.isoformat()}, request=request
        )
        self.message_user(
            request, _("Claimed until %(until)s.") % {"until": _stamp(until)}, messages.SUCCESS
        )
        return self._back(item)

    def release_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        item = self._item_for_post(request, object_id)
        holder: Any = item.claim_holder()
        if holder is not None and holder.pk != request.user.pk and not request.user.is_superuser:
            self.message_user(
                request,
                _("Only %(who)s can release this claim.") % {"who": _who(holder)},
                messages.ERROR,
            )
            return self._back(item)
        ReviewItem.objects.filter(pk=item.pk).update(
            claimed_by=None, claimed_until=None, updated_at=timezone.now()
        )
        trail.record(
            "review.release",
            target=item,
            detail={"holder": _who(holder) if holder is not None else ""},
            request=request,
        )
        self.message_user(request, _("Claim released."), messages.SUCCESS)
        return self._back(item)

    # -- the item's page: fields, notes and the transcript

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
            holder: Any = obj.claim_holder()
            context["claim"] = {
                "holder": _who(holder) if holder is not None else "",
                "mine": holder is not None and holder.pk == request.user.pk,
                "until": _stamp(obj.claimed_until) if holder is not None else "",
                "minutes": int(ReviewItem.claim_length().total_seconds() // 60),
            }
            context["transcript"] = transcript_context(
                obj.conversation,
                highlight_message=obj.message_id,
                highlight_key=f"reviewitem:{obj.pk}",
            )
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
            item = getattr(response, "context_data", {}).get("original")
            if item is not None:
                trail.record(
                    "transcript.view",
                    target=item.conversation,
                    detail={"review_item": item.pk},
                    request=request,
                )
        return response

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if obj.status in CLOSED:
            if obj.resolved_at is None or "status" in form.changed_data:
                obj.resolved_at = timezone.now()
            # The work is done: the claim goes.
            obj.claimed_by, obj.claimed_until = None, None
        else:
            obj.resolved_at = None
        super().save_model(request, obj, form, change)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not ReviewNote:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)
        # Only new notes: the existing ones are read-only (their forms only echo them back).
        for note in formset.new_objects:
            note.item = form.instance
            note.author = request.user
            note.save()
            trail.record(
                "review.note",
                target=form.instance,
                detail={
                    "note": note.pk,
                    "message": str(note.message_id or ""),
                    "body": note.body[:2000],
                },
                request=request,
            )

    # -- bulk actions

    def _free_of_others(
        self, request: HttpRequest, queryset: QuerySet[ReviewItem]
    ) -> tuple[list[int], list[int]]:
        """The selected items, apart from those someone else holds a claim on (skipped)."""
        now = timezone.now()
        held = Q(claimed_by__isnull=False) & Q(claimed_until__gt=now) & ~Q(claimed_by=request.user)
        skipped = list(queryset.filter(held).values_list("pk", flat=True))
        free = list(queryset.exclude(pk__in=skipped).values_list("pk", flat=True))
        return free, skipped

    def _apply(
        self,
        request: HttpRequest,
        queryset: QuerySet[ReviewItem],
        verb: str,
        changes: dict[str, Any],
        detail: dict[str, Any] | None = None,
    ) -> None:
        free, skipped = self._free_of_others(request, queryset)
        now = timezone.now()
        changed = ReviewItem.objects.filter(pk__in=free).update(**changes, updated_at=now)
        trail.record(
            f"review.{verb}",
            target_type="review.reviewitem",
            target_repr=f"{changed} review items",
            detail={"items": free, "skipped_claimed": skipped, **(detail or {})},
            request=request,
        )
        self.message_user(
            request,
            _("%(count)d items updated.") % {"count": changed},
            messages.SUCCESS,
        )
        if skipped:
            self.message_user(
                request,
                _("%(count)d items skipped: someone else has claimed them.")
                % {"count": len(skipped)},
                messages.WARNING,
            )

    def _confirm(
        self,
        request: HttpRequest,
        queryset: QuerySet[ReviewItem],
        *,
        action: str,
        title: str,
        form: forms.Form,
        button: str,
    ) -> TemplateResponse:
        pks = list(queryset.values_list("pk", flat=True))
        shown = list(queryset.select_related("conversation__user")[:LISTED])
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "action": action,
            "form": form,
            "button": button,
            "items": shown,
            "more": max(0, len(pks) - len(shown)),
            "selected": pks,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/review/reviewitem/action_form.html", context)

    @admin.action(description=_("Assign selected items to…"), permissions=["change"])
    def assign_to(
        self, request: HttpRequest, queryset: QuerySet[ReviewItem]
    ) -> HttpResponse | None:
        form = AssignForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            assignee = form.cleaned_data["assignee"]
            self._apply(
                request,
                queryset,
                "assign",
                {"assignee": assignee},
                {"assignee": assignee.get_username()},
            )
            return None
        return self._confirm(
            request,
            queryset,
            action="assign_to",
            title=str(_("Assign review items")),
            form=form,
            button=str(_("Assign")),
        )

    @admin.action(description=_("Assign selected items to me"), permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        self._apply(
            request,
            queryset,
            "assign",
            {"assignee": request.user},
            {"assignee": request.user.get_username()},
        )

    @admin.action(description=_("Resolve selected items…"), permissions=["change"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> HttpResponse | None:
        form = ResolveForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            resolution = form.cleaned_data["resolution"]
            changes: dict[str, Any] = {
                "status": ReviewItem.Status.RESOLVED,
                "resolved_at": timezone.now(),
                "claimed_by": None,
                "claimed_until": None,
            }
            if resolution:
                changes["resolution"] = resolution
            self._apply(request, queryset, "resolve", changes, {"resolution": resolution})
            return None
        return self._confirm(
            request,
            queryset,
            action="resolve",
            title=str(_("Resolve review items")),
            form=form,
            button=str(_("Resolve")),
        )

    @admin.action(description=_("Dismiss selected items"), permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        self._apply(
            request,
            queryset,
            "dismiss",
            {
                "status": ReviewItem.Status.DISMISSED,
                "resolved_at": timezone.now(),
                "claimed_by": None,
                "claimed_until": None,
            },
        )


# -- what flags, and how much is sampled ----------------------------------------------------------


@admin.register(Label)
class LabelAdmin(AuditedAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(FlagKeyword)
class FlagKeywordAdmin(AuditedAdmin):
    list_display = ("phrase", "severity", "enabled", "updated_at")
    list_filter = ("severity", "enabled")
    search_fields = ("phrase",)


@admin.register(ReviewSettings)
class ReviewSettingsAdmin(AuditedAdmin):
    """One row: no second one added, never deleted."""

    list_display = ("__str__", "sample_percent", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not ReviewSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
