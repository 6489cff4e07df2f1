"""The browser chat page. Everything after the first render goes through the REST API."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import ensure_csrf_cookie

from chatsite.errors import NotFound

from . import catalog, selectors


def js_strings() -> dict[str, str]:
    """Every string the page's scripts show, translated into the request's language.

    Rendered as a JSON data block (``json_script``), which the CSP allows because it never runs.
    Placeholders use Python's ``%(name)s`` form so translators see one convention.
    """
    return {
        # conversation list
        "untitled": _("Untitled conversation"),
        "new_chat": _("New chat"),
        "search_results": _("%(count)s conversations found"),
        "no_matches": _("No conversation matches."),
        "no_conversations": _("No conversations yet."),
        "rename": _("Rename"),
        "rename_named": _("Rename “%(title)s”"),
        "delete": _("Delete"),
        "delete_named": _("Delete “%(title)s”"),
        "delete_confirm": _("Delete “%(title)s” and all its messages? This cannot be undone."),
        "new_title": _("New title"),
        "conversation_not_found": _("That conversation does not exist or was deleted."),
        # messages
        "you_said": _("You said:"),
        "assistant_said": _("The assistant said:"),
        "thinking": _("Thinking… %(seconds)s s"),
        "queued": _("Queued: sent when the current reply ends"),
        "cancel_queued": _("Cancel"),
        "not_sent": _("Not sent."),
        "not_sent_reason": _("Not sent: %(reason)s"),
        "retry": _("Retry"),
        "edit": _("Edit"),
        "regenerate": _("Regenerate"),
        "copy": _("Copy"),
        "copied": _("Copied"),
        "copy_code": _("Copy code"),
        "copy_reply": _("Copy reply"),
        "code": _("code"),
        "image": _("Image"),
        "empty_reply": _("(The model sent an empty reply.)"),
        "error_heading": _("Error:"),
        "error_code": _("Error code %(code)s"),
        "error_generic": _("Something went wrong."),
        "stopped": _("Stopped: the reply was stopped before it was complete."),
        "interrupted_server": _("Interrupted: the server stopped while writing this reply."),
        "still_writing": _("This reply is still being written…"),
        "usage": _("%(total)s tokens (%(prompt)s in, %(completion)s out)"),
        "first_token_after": _("first token after %(seconds)s s"),
        "total_time": _("total %(seconds)s s"),
        "connection_lost": _("The connection was lost before the reply was complete."),
        "network_error": _("The server could not be reached. Check your connection."),
        "rate_limited": _("Too many messages. Try again in %(seconds)s seconds."),
        "reply_in_progress": _("A reply is already being written in this conversation."),
        "no_model": _(
            "No model is configured, so messages cannot be sent. "
            "Ask the administrator to set an API key."
        ),
        # composer
        "send": _("Send"),
        "send_queued_hint": _("Send: waits in the queue until the current reply ends"),
        "empty_message": _("Type a message first."),
        "too_long": _("Too long: %(count)s characters, the limit is %(max)s."),
        "char_count": _("%(count)s / %(max)s characters"),
        # models and system prompt
        "model_unconfigured": _("%(label)s (not configured)"),
        "model_unavailable": _("%(label)s (no longer offered)"),
        "other_models": _("Other models"),
        "prompt_saved": _("Saved."),
        "prompt_saved_new": _("Saved: used when this chat starts."),
        # reasoning and references
        "reasoning_live": _("The model is thinking"),
        "reasoning_done": _("Thought for %(seconds)s s"),
        "reasoning_done_untimed": _("Thought process"),
        "references": _("Sources"),
        # model settings
        "temperature_range": _("From %(min)s to %(max)s."),
        "temperature_range_default": _(
            "From %(min)s to %(max)s; the model's default is %(default)s."
        ),
        "max_tokens_range": _("At most %(max)s."),
        "model_default_help": _("Empty uses the model's default."),
        "not_a_number": _("Enter a number, or leave the field empty."),
        "not_a_whole_number": _("Enter a whole number, or leave the field empty."),
        "settings_not_applied": _("The settings were not applied: %(reason)s"),
        "temperature_invalid": _(
            "The temperature must be between %(min)s and %(max)s for %(model)s."
        ),
        "max_tokens_invalid": _(
            "The maximum output tokens must be between %(min)s and %(max)s for %(model)s."
        ),
        "reasoning_invalid": _("%(model)s cannot switch deep thinking on or off."),
        "web_search_invalid": _("%(model)s has no web search."),
        # feedback on replies (static/js/feedback.js)
        "feedback_group": _("Rate this reply"),
        "feedback_up": _("Good reply"),
        "feedback_down": _("Bad reply"),
        "feedback_why_up": _("What was good?"),
        "feedback_why_down": _("What went wrong?"),
        "feedback_comment": _("Comment (optional)"),
        "feedback_send": _("Send"),
        "feedback_cancel": _("Cancel"),
        "feedback_thanks": _("Thank you for your feedback."),
        "feedback_removed": _("Your rating was taken back."),
        "feedback_failed": _("Your feedback was not saved: %(reason)s"),
        "feedback_comment_too_long": _("The comment is too long: at most %(max)s characters."),
        # versions (branches), editing a sent message, copying it
        "versions": _("Versions"),
        "previous_version": _("Previous version"),
        "next_version": _("Next version"),
        "version_of": _("%(index)s / %(count)s"),
        "edit_message": _("Edit your message"),
        "save_and_send": _("Save & send"),
        "cancel_edit": _("Cancel"),
        "copy_message": _("Copy message"),
        "stopped_badge": _("Stopped"),
        # conversation list groups and pins
        "group_pinned": _("Pinned"),
        "group_today": _("Today"),
        "group_yesterday": _("Yesterday"),
        "group_week": _("Previous 7 days"),
        "group_earlier": _("Earlier"),
        "pin": _("Pin"),
        "unpin": _("Unpin"),
        "pin_named": _("Pin “%(title)s”"),
        "unpin_named": _("Unpin “%(title)s”"),
        # export and share
        "share_failed": _("The conversation could not be shared: %(reason)s"),
        "share_stopped": _("This conversation is no longer shared."),
        "link_copied": _("Link copied."),
        # settings panel
        "theme_saved": _("Theme changed."),
        # attached files (static/js/attachments.js)
        "attach_files": _("Attach files"),
        "attached_files": _("Attached files"),
        "remove_file": _("Remove %(name)s"),
        "file_uploading": _("Uploading…"),
        "file_one_page": _("1 page"),
        "file_pages": _("%(count)s pages"),
        "file_tokens": _("about %(tokens)s tokens"),
        "file_refused": _("Not attached: %(reason)s"),
        "file_pages_label": _("Pages of %(name)s to send"),
        "file_pages_placeholder": _("pages, e.g. 1-12"),
        "file_pages_hint": _("Leave empty to send every page."),
        "file_page_range": _("pages %(pages)s"),
        "files_uploading": _("Wait until the files have uploaded."),
        "files_too_long": _(
            "The files are about %(tokens)s tokens; this model takes %(limit)s (%(over)s too many)."
        ),
        "switch_model": _("Switch to %(model)s"),
        "files_page_range_hint": _(
            "Or give a page range on the file's chip (e.g. 1-12) to send fewer pages."
        ),
        "files_shorter_hint": _("Or attach a shorter file."),
        "size_bytes": _("%(size)s B"),
        "size_kb": _("%(size)s KB"),
        "size_mb": _("%(size)s MB"),
    }


@login_required
@ensure_csrf_cookie
def chat(request: HttpRequest, conversation_id: str | None = None) -> HttpResponse:
    model_id = settings.DEFAULT_MODEL
    if conversation_id is not None:
        try:
            conversation = selectors.conversation_get(
                user_id=request.user.pk, conversation_id=conversation_id
            )
        except NotFound as exc:
            raise Http404 from exc
        model_id = conversation.model
    # The picker names the conversation's model at once, before the model list arrives.
    info = catalog.current().models.get(model_id)
    initial_model = {"id": model_id, "label": info.label if info else model_id}
    config = {
        "conversationId": str(conversation_id or ""),
        "maxMessageChars": settings.MAX_MESSAGE_CHARS,
        "maxSystemPromptChars": settings.MAX_SYSTEM_PROMPT_CHARS,
        "modelConfigured": selectors.any_model_configured(),
        "defaultModel": settings.DEFAULT_MODEL,
        "loginUrl": reverse(settings.LOGIN_URL),
        "csrfToken": get_token(request),
        "siteName": "chatsite",
        "initialModel": initial_model,
    }
    return render(
        request,
        "conversations/chat.html",
        {
            "conversation_id": config["conversationId"],
            "max_message_chars": settings.MAX_MESSAGE_CHARS,
            "model_configured": config["modelConfigured"],
            "chat_config": config,
            "initial_model": initial_model,
            "js_strings": js_strings(),
            # The reasons offered with a rating, labelled in the page's language: read by
            # static/js/feedback.js, so the page needs no request of its own for them.
            "feedback_reasons": selectors.feedback_reason_list(language=get_language()),
        },
    )
