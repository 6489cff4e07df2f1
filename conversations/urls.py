from django.urls import path

from . import views

app_name = "conversations"

urlpatterns = [
    path("", views.chat, name="chat"),
    path("c/<uuid:conversation_id>/", views.chat, name="conversation"),
]
