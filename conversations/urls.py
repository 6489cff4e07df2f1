from django.urls import path

from . import usage_views, views

app_name = "conversations"

urlpatterns = [
    path("", views.chat, name="chat"),
    path("c/<uuid:conversation_id>/", views.chat, name="conversation"),
    path("usage/", usage_views.usage_page, name="usage"),
]
