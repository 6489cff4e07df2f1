"""The browser chat page. Everything after the first render goes through the REST API."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from .llm import registry


@login_required
@ensure_csrf_cookie
def chat(request: HttpRequest, conversation_id: str | None = None) -> HttpResponse:
    return render(
        request,
        "conversations/chat.html",
        {
            "conversation_id": conversation_id or "",
            "max_message_chars": settings.MAX_MESSAGE_CHARS,
            "model_configured": registry.any_model_configured(),
        },
    )
