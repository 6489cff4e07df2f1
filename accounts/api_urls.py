from django.urls import path

from . import api

app_name = "auth-api"

urlpatterns = [
    path("register/", api.RegisterApi.as_view(), name="register"),
    path("token/", api.TokenObtainApi.as_view(), name="token"),
    path("token/refresh/", api.TokenRefreshApi.as_view(), name="token-refresh"),
    path("logout/", api.LogoutApi.as_view(), name="logout"),
    path("me/", api.MeApi.as_view(), name="me"),
]
