from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("pending/", views.pending, name="pending"),
    # The names other sites use for the same page.
    path(
        "register/",
        RedirectView.as_view(pattern_name="accounts:signup", query_string=True),
    ),
]
