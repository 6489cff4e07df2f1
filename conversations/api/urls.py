from django.urls import path

from . import transfer_views, views

app_name = "conversations-api"

urlpatterns = [
    path("models/", views.ModelListApi.as_view(), name="models"),
    path("usage/", views.UsageApi.as_view(), name="usage"),
    path("conversations/", views.ConversationListApi.as_view(), name="conversation-list"),
    # Export, import and share (conversations/api/transfer_views.py).
    path(
        "conversations/export/",
        transfer_views.ExportAllApi.as_view(),
        name="conversation-export-all",
    ),
    path(
        "conversations/import/",
        transfer_views.ImportApi.as_view(),
        name="conversation-import",
    ),
    path(
        "conversations/<uuid:conversation_id>/export/",
        transfer_views.ExportApi.as_view(),
        name="conversation-export",
    ),
    path(
        "conversations/<uuid:conversation_id>/share/",
        transfer_views.ShareApi.as_view(),
        name="conversation-share",
    ),
    path(
        "conversations/<uuid:conversation_id>/",
        views.ConversationDetailApi.as_view(),
        name="conversation-detail",
    ),
    path(
        "conversations/<uuid:conversation_id>/messages/",
        views.MessageListApi.as_view(),
        name="message-list",
    ),
    path(
        "conversations/<uuid:conversation_id>/branch/",
        views.BranchApi.as_view(),
        name="branch",
    ),
    path(
        "conversations/<uuid:conversation_id>/regenerate/",
        views.RegenerateApi.as_view(),
        name="regenerate",
    ),
    path(
        "messages/<uuid:message_id>/feedback/",
        views.FeedbackApi.as_view(),
        name="message-feedback",
    ),
    path("messages/<uuid:message_id>/stop/", views.StopApi.as_view(), name="message-stop"),
    path("feedback/reasons/", views.FeedbackReasonListApi.as_view(), name="feedback-reasons"),
]
