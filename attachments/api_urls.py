from django.urls import path

from . import api

app_name = "attachments-api"

urlpatterns = [
    path("files/", api.FileListApi.as_view(), name="file-list"),
    path("files/<uuid:file_id>/", api.FileDetailApi.as_view(), name="file-detail"),
]
