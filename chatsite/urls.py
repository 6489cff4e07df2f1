from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chatsite.api import exceptions
from chatsite.views import healthz, metrics_view

api_patterns: list[URLPattern | URLResolver] = [
    path("auth/", include("accounts.api_urls")),
    path("", include("conversations.api.urls")),
    path("", include("attachments.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    # Anything else under /api/ (a malformed id included) is a JSON 404, not Django's HTML page.
    re_path(r"^.*$", exceptions.api_not_found),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("healthz/", healthz),  # probes written either way answer the same
    path("metrics", metrics_view, name="metrics"),
    path("metrics/", metrics_view),
    path("accounts/", include("accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # A shared conversation (conversations/share_views.py), named by the app as a string: the
    # project package imports no app.
    path("s/", include("conversations.share_views")),
    path("", include("conversations.urls")),
]

handler400 = "chatsite.api.exceptions.bad_request"
handler403 = "chatsite.api.exceptions.permission_denied"
handler404 = "chatsite.api.exceptions.api_not_found"
handler500 = "chatsite.api.exceptions.server_error"
