"""Sign-in, sign-up and sign-out pages (session authentication, CSRF enforced)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from chatsite.api.exceptions import ratelimited_view
from chatsite.ratelimit import RateLimited, enforce

from .forms import SignUpForm


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            enforce(request, group="login", rate=settings.LOGIN_RATE_LIMIT, per_user=False)
        except RateLimited as exc:
            return ratelimited_view(request, exc)
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    pass


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if request.method == "POST":
        try:
            enforce(request, group="register", rate=settings.REGISTER_RATE_LIMIT, per_user=False)
        except RateLimited as exc:
            return ratelimited_view(request, exc)
        form = SignUpForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            if next_url and url_has_allowed_host_and_scheme(
                next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
            ):
                return redirect(next_url)
            return redirect(reverse(settings.LOGIN_REDIRECT_URL))
    else:
        form = SignUpForm()
    return render(request, "accounts/signup.html", {"form": form, "next": next_url})
