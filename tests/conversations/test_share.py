"""Shared links: a read-only snapshot of the active branch (docs/export-and-share.md, "Share")."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.admin import AdminSite
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from audit.models import AuditEntry
from conversations.admin_share import ShareAdmin
from conversations.models import Conversation, Share
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

SYSTEM_PROMPT = "SECRET-SYSTEM-PROMPT-do-not-leak"


@pytest.fixture
def conversation(user):
    conversation = ConversationFactory(user=user, title="Shared 分享", system_prompt=SYSTEM_PROMPT)
    first = MessageFactory(
        conversation=conversation, seq=1, role="user", content="What is **2+2**?"
    )
    MessageFactory(
        conversation=conversation,
        seq=2,
        role="assistant",
        parent=first,
        content="OLD-BRANCH-ANSWER",
        replaced=True,
    )
    MessageFactory(
        conversation=conversation,
        seq=3,
        role="assistant",
        parent=first,
        content="It is **4**.",
        reasoning="REASONING-NOT-SHARED",
        prompt_tokens=123456,
        completion_tokens=864198,
        total_tokens=987654,
    )
    return conversation


def share(api, conversation, **body):
    return api.post(f"/api/conversations/{conversation.id}/share/", body, format="json")


def path_of(response) -> str:
    assert response.status_code == 201, response.content
    url = response.json()["url"]
    assert url.startswith("http://testserver/s/")
    return urlsplit(url).path


def viewer(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_share_answers_a_url_with_a_strong_token(api, conversation):
    path = path_of(share(api, conversation))
    token = path.split("/")[2]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)  # secrets.token_urlsafe(32)
    stored = Share.objects.get()
    assert stored.token == token
    assert not stored.public
    assert stored.created_by == conversation.user


def test_another_logged_in_user_reads_the_snapshot(api, conversation, other_user):
    path = path_of(share(api, conversation))
    response = viewer(other_user).get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Shared 分享" in page
    assert "What is **2+2**?" in page
    assert "It is **4**." in page
    # Not the system prompt, another branch, the reasoning or the usage.
    for hidden in (SYSTEM_PROMPT, "OLD-BRANCH-ANSWER", "REASONING-NOT-SHARED", "987654", "864198"):
        assert hidden not in page
    snapshot = Share.objects.get().snapshot
    assert [m["role"] for m in snapshot] == ["user", "assistant"]
    assert set(snapshot[0]) == {"role", "content", "created_at"}


def test_the_page_is_noindex_and_sends_no_referrer(api, conversation, other_user):
    response = viewer(other_user).get(path_of(share(api, conversation)))
    assert response["X-Robots-Tag"].startswith("noindex")
    assert response["Referrer-Policy"] == "no-referrer"
    page = response.content.decode()
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert '<meta name="referrer" content="no-referrer">' in page
    assert "js/shared.js" in page
    # No inline script (the CSP allows none): the snapshot is a JSON data block.
    for tag in re.findall(r"<script[^>]*>", page):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_login_is_required_by_default(api, conversation):
    path = path_of(share(api, conversation))
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "next=" in response["Location"]


def test_public_links_are_refused_unless_staff_allow_them(api, conversation, settings):
    response = share(api, conversation, public=True)
    assert response.status_code == 403
    assert response.json()["code"] == "public_links_disabled"
    assert not Share.objects.exists()

    settings.SHARE_PUBLIC_LINKS = True
    path = path_of(share(api, conversation, public=True))
    response = Client().get(path)
    assert response.status_code == 200
    assert "It is **4**." in response.content.decode()


def test_public_must_be_a_boolean(api, conversation):
    response = share(api, conversation, public="yes")
    assert response.status_code == 400
    assert response.json()["field"] == "public"


def test_a_new_share_replaces_the_old_link(api, conversation, other_user):
    old = path_of(share(api, conversation))
    new = path_of(share(api, conversation))
    assert old != new
    client = viewer(other_user)
    assert client.get(old).status_code == 404
    assert client.get(new).status_code == 200


def test_revoke_then_the_link_is_404_like_an_unknown_one(api, conversation, other_user):
    path = path_of(share(api, conversation))
    response = api.delete(f"/api/conversations/{conversation.id}/share/")
    assert response.status_code == 204
    client = viewer(other_user)
    revoked = client.get(path)
    unknown = client.get("/s/" + "A" * 43 + "/")
    assert revoked.status_code == unknown.status_code == 404
    assert b"Not found" in revoked.content
    assert revoked.content == unknown.content
    # Idempotent.
    assert api.delete(f"/api/conversations/{conversation.id}/share/").status_code == 204


def test_a_deleted_conversation_s_link_stops_working(api, conversation, other_user):
    path = path_of(share(api, conversation))
    assert api.delete(f"/api/conversations/{conversation.id}/").status_code == 204
    assert viewer(other_user).get(path).status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk, deleted_at__isnull=False).exists()


def test_others_conversations_cannot_be_shared_or_revoked(api, other_user):
    theirs = ConversationFactory(user=other_user)
    assert share(api, theirs).status_code == 404
    assert api.delete(f"/api/conversations/{theirs.id}/share/").status_code == 404


def test_share_and_revoke_are_on_the_audit_trail(api, conversation):
    share(api, conversation)
    share(api, conversation)
    api.delete(f"/api/conversations/{conversation.id}/share/")
    entries = list(
        AuditEntry.objects.filter(target_id=str(conversation.id))
        .order_by("id")
        .values_list("action", "actor", "detail")
    )
    actions = [action for action, _, _ in entries]
    assert actions == ["conversation.share", "conversation.share", "conversation.unshare"]
    assert {actor for _, actor, _ in entries} == {conversation.user.username}
    first, second, _ = (detail for _, _, detail in entries)
    assert first["replaced"] == []
    assert second["replaced"] == [first["share"]]


def test_admin_revoke_action(api, conversation, other_user, admin_user, rf, monkeypatch):
    path = path_of(share(api, conversation))
    stored = Share.objects.get()
    model_admin = ShareAdmin(Share, AdminSite())
    assert not model_admin.has_change_permission(rf.get("/"))
    assert "token" not in model_admin.fields  # a credential: not shown in admin
    shown = []
    monkeypatch.setattr(
        model_admin, "message_user", lambda request, text, level: shown.append(text)
    )
    request = rf.post("/admin/conversations/share/")
    request.user = admin_user
    model_admin.revoke(request, Share.objects.all())
    assert shown == ["1 links revoked."]
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert stored.revoked_at <= timezone.now()
    assert viewer(other_user).get(path).status_code == 404
    assert AuditEntry.objects.filter(action="conversation.unshare").count() == 1


def test_the_page_is_read_only(api, conversation, other_user):
    path = path_of(share(api, conversation))
    client = viewer(other_user)
    assert client.post(path).status_code == 405
    page = client.get(path).content.decode()
    # The one form is the language switch: nothing writes to the conversation.
    forms = re.findall(r"<form[^>]*>", page)
    assert len(forms) == 1
    assert 'action="/i18n/setlang/"' in forms[0]
    assert "<textarea" not in page


# The admin of shares on a site of its own (conversations/admin.py registers it on the real one by
# importing conversations.admin_share).
share_site = AdminSite(name="admin")
share_site.register(Share, ShareAdmin)
# First, so that its "admin" namespace wins over the project's; the project's routes follow.
urlpatterns = [path("admin/", share_site.urls), path("", include("chatsite.urls"))]


@pytest.mark.urls(__name__)
def test_admin_lists_shares_without_their_token(api, conversation, admin_client):
    share(api, conversation)
    stored = Share.objects.get()
    listing = admin_client.get("/admin/conversations/share/")
    assert listing.status_code == 200
    assert "Shared 分享" in listing.content.decode()
    detail = admin_client.get(f"/admin/conversations/share/{stored.pk}/change/")
    assert detail.status_code == 200
    assert stored.token not in listing.content.decode() + detail.content.decode()
    response = admin_client.post(
        "/admin/conversations/share/", {"action": "revoke", "_selected_action": [stored.pk]}
    )
    assert response.status_code == 302
    stored.refresh_from_db()
    assert stored.revoked_at is not None
