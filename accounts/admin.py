from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from audit import trail
from audit.admin import AuditedAdmin

from .models import Invite, SignupSettings, User
from .selectors import signup_settings_get
from .services import users_approve, users_reject


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    change_form_template = "admin/accounts/user/change_form.html"
    list_display = (
        "username",
        "email",
        "first_name",
        "last_name",
        "is_staff",
        "approval_status",
        "date_joined",
    )
    list_filter = ("approval_status", *DjangoUserAdmin.list_filter)
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        (_("Sign-up"), {"fields": ("approval_status", "invite")}),
    )
    readonly_fields = ("invite",)
    actions = ["approve", "reject"]

    @admin.action(description=_("Approve the selected users"), permissions=["change"])
    def approve(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset)
        count = users_approve(users=users)
        _record_decision(request, "user.approve", users)
        self.message_user(
            request,
            ngettext("%(count)d user approved.", "%(count)d users approved.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(
        description=_("Reject the selected users (deactivates them)"), permissions=["change"]
    )
    def reject(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset)
        count = users_reject(users=users)
        _record_decision(request, "user.reject", users)
        self.message_user(
            request,
            ngettext(
                "%(count)d user rejected and deactivated.",
                "%(count)d users rejected and deactivated.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def response_change(self, request: HttpRequest, obj: User) -> HttpResponse:
        """The change page's "Approve" and "Reject" buttons (accounts/templates/admin/...)."""
        for name, action in (("_approve", self.approve), ("_reject", self.reject)):
            if name in request.POST:
                action(request, User.objects.filter(pk=obj.pk))
                return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


def _record_decision(request: HttpRequest, action: str, users: list[User]) -> None:
    """One audit entry per user approved or rejected (docs/review.md, "Audit trail")."""
    for user in users:
        trail.record(
            action,
            target=user,
            detail={"status_before": user.approval_status, "active_before": user.is_active},
            request=request,
        )


@admin.register(SignupSettings)
class SignupSettingsAdmin(AuditedAdmin):
    """The one row: the list opens it, it cannot be added twice or deleted."""

    fields = ("mode", "allowed_email_domains", "updated_at")
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        row = signup_settings_get()
        return HttpResponseRedirect(reverse("admin:accounts_signupsettings_change", args=[row.pk]))


@admin.register(Invite)
class InviteAdmin(AuditedAdmin):
    list_display = ("code", "note", "group", "uses", "max_uses", "expires_at", "created_at")
    list_filter = ("group",)
    search_fields = ("code", "note")
    readonly_fields = ("code", "invite_link", "uses", "created_by", "created_at")
    fields = (
        "code",
        "invite_link",
        "note",
        "group",
        "max_uses",
        "uses",
        "expires_at",
        "created_by",
        "created_at",
    )

    @admin.display(description=_("sign-up link"))
    def invite_link(self, obj: Invite) -> str:
        if not obj.pk:
            return str(_("Shown once the invite is saved."))
        return f"{reverse('accounts:signup')}?invite={obj.code}"

    def save_model(self, request: HttpRequest, obj: Invite, form: Any, change: bool) -> None:
        if not change and request.user.is_authenticated:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
