"""Sign-in, sign-up, sign-out and waiting-for-approval pages (session authentication, CSRF)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from chatsite.api.exceptions import ratelimited_view
from chatsite.ratelimit import RateLimited, enforce

from .errors import SignupClosed, SignupRefused
from .forms import REFUSAL_MESSAGES, SignUpForm
from .models import SignupMode
from .selectors import signup_settings_get
from .services import UsernameTaken, user_register


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            enforce(request, group="login", rate=settings.LOGIN_RATE_LIMIT, per_user=False)
        except RateLimited as exc:
            return ratelimited_view(request, exc)
        return super().post(request, *args, **kwargs)

    def get_success_url(self) -> str:
        if getattr(self.request.user, "is_pending", False):
            return reverse("accounts:pending")
        return super().get_success_url()


class LogoutView(auth_views.LogoutView):
    pass


def _safe_next(request: HttpRequest, next_url: str) -> bool:
    return bool(next_url) and url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    signup_settings = signup_settings_get()
    if signup_settings.mode == SignupMode.CLOSED:
        return render(
            request,
            "accounts/signup_closed.html",
            {"message": REFUSAL_MESSAGES[SignupClosed.code], "next": next_url},
            status=403 if request.method == "POST" else 200,
        )
    invite_in_link = request.GET.get("invite", "").strip()
    form_options: dict[str, Any] = {
        "mode": signup_settings.mode,
        "email_domains": signup_settings.email_domains,
        "show_invite": bool(invite_in_link or request.POST.get("invite")),
    }
    if request.method == "POST":
        try:
            enforce(request, group="register", rate=settings.REGISTER_RATE_LIMIT, per_user=False)
        except RateLimited as exc:
            return ratelimited_view(request, exc)
        form = SignUpForm(request.POST, **form_options)
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = user_register(
                    username=data["username"],
                    password=data["password1"],
                    email=data.get("email") or "",
                    invite=data.get("invite") or "",
                    signup=signup_settings,
                )
            except SignupRefused as exc:
                form.add_refusal(exc)
            except UsernameTaken:
                form.add_error("username", _("A user with that username already exists."))
            except DjangoValidationError as exc:  # the password, judged again: cannot differ
                form.add_error("password2", exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                if user.is_pending:
                    return redirect("accounts:pending")
                if _safe_next(request, next_url):
                    return redirect(next_url)
                return redirect(reverse(settings.LOGIN_REDIRECT_URL))
    else:
        form = SignUpForm(initial={"invite": invite_in_link}, **form_options)
    context = {"form": form, "next": next_url, "signup_mode": signup_settings.mode}
    return render(request, "accounts/signup.html", context)


@login_required
def pending(request: HttpRequest) -> HttpResponse:
    """The page a signed-in account waiting for approval sees instead of the chat."""
    if not getattr(request.user, "is_pending", False):
        return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/pending.html")
