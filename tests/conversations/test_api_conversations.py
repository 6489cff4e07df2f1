"""Conversations, models, schema, docs and health endpoints (README.md, "Use the API")."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, MessageFactory
from tests.fuzz.openapi import documented_codes, openapi, schema_valid_cases
from tests.support.api import assert_json_error

pytestmark = pytest.mark.django_db

CONVERSATION_FIELDS = {"id", "title", "model", "system_prompt", "created_at", "updated_at"}


def aged(conversation: Conversation, minutes: int) -> Conversation:
    """Set ``updated_at`` in the past (auto_now would overwrite it on save())."""
    Conversation.objects.filter(pk=conversation.pk).update(
        updated_at=timezone.now() - timedelta(minutes=minutes)
    )
    return conversation


# --- create -------------------------------------------------------------------------------------


def test_create_with_no_fields_uses_the_defaults(api, user, settings):
    settings.DEFAULT_MODEL = "generalv3"

    response = api.post("/api/conversations/", {}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= CONVERSATION_FIELDS
    assert body["title"] == ""
    assert body["model"] == "generalv3"
    assert body["system_prompt"] == ""
    conversation = Conversation.objects.get(pk=body["id"])
    assert conversation.user == user


def test_create_with_title_model_and_system_prompt(api):
    response = api.post(
        "/api/conversations/",
        {"title": "  Trip plans  ", "model": "max-32k", "system_prompt": "You are terse.\n"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["title"], body["model"], body["system_prompt"]) == (
        "Trip plans",
        "max-32k",
        "You are terse.\n",
    )


def test_create_with_an_unknown_model_is_400_and_saves_nothing(api):
    response = api.post("/api/conversations/", {"model": "gpt-17"}, format="json")

    assert_json_error(response, 400, "unknown_model")
    assert Conversation.objects.count() == 0


def test_create_with_a_model_not_in_spark_models_is_400(api, settings):
    settings.SPARK_MODELS = ["lite"]

    assert_json_error(api.post("/api/conversations/", {"model": "max-32k"}, format="json"), 400)


@pytest.mark.parametrize(
    "payload",
    [
        {"title": 5},
        {"title": "x" * 201},
        {"model": None},
        {"system_prompt": ["a"]},
        {"title": "a\x00b"},
    ],
    ids=["int-title", "long-title", "null-model", "list-prompt", "nul-title"],
)
def test_create_with_invalid_fields_is_400(api, payload):
    assert_json_error(api.post("/api/conversations/", payload, format="json"), 400)
    assert Conversation.objects.count() == 0


def test_create_with_a_system_prompt_over_the_limit_is_400(api, settings):
    settings.MAX_SYSTEM_PROMPT_CHARS = 5

    assert_json_error(
        api.post("/api/conversations/", {"system_prompt": "x" * 6}, format="json"), 400
    )
    assert (
        api.post("/api/conversations/", {"system_prompt": "x" * 5}, format="json").status_code
        == 201
    )


def test_create_with_invalid_json_is_400(api):
    response = api.post("/api/conversations/", data="{nope", content_type="application/json")

    assert_json_error(response, 400, "parse_error")


# --- list and search ----------------------------------------------------------------------------


def test_list_is_paginated_newest_first(api, user):
    conversations = [aged(ConversationFactory(user=user), minutes=100 - n) for n in range(23)]
    newest_first = [str(c.pk) for c in reversed(conversations)]

    first = api.get("/api/conversations/")
    assert first.status_code == 200
    page = first.json()
    assert page["count"] == 23
    assert [c["id"] for c in page["results"]] == newest_first[:20]
    assert set(page["results"][0]) >= CONVERSATION_FIELDS
    assert page["previous"] is None

    second = api.get(page["next"]).json()
    assert [c["id"] for c in second["results"]] == newest_first[20:]
    assert second["next"] is None


def test_a_renamed_conversation_moves_to_the_top(api, user):
    older = aged(ConversationFactory(user=user), minutes=10)
    aged(ConversationFactory(user=user), minutes=5)

    api.patch(f"/api/conversations/{older.pk}/", {"title": "renamed"}, format="json")

    assert api.get("/api/conversations/").json()["results"][0]["id"] == str(older.pk)


def test_list_shows_only_the_users_conversations(api, user, other_user):
    mine = ConversationFactory(user=user)
    ConversationFactory(user=other_user)

    body = api.get("/api/conversations/").json()

    assert body["count"] == 1
    assert body["results"][0]["id"] == str(mine.pk)


def test_search_matches_titles_and_message_text_case_insensitively(api, user, other_user):
    by_title = aged(ConversationFactory(user=user, title="Rust borrow checker"), minutes=3)
    by_message = aged(ConversationFactory(user=user, title="misc"), minutes=2)
    MessageFactory(conversation=by_message, seq=1, content="How do I learn RUST quickly?")
    MessageFactory(conversation=by_message, seq=2, content="Read the rust book.", role="assistant")
    unrelated = ConversationFactory(user=user, title="Cooking")
    MessageFactory(conversation=unrelated, seq=1, content="pasta")
    foreign = ConversationFactory(user=other_user, title="rust too")
    MessageFactory(conversation=foreign, seq=1, content="rust")

    body = api.get("/api/conversations/", {"search": "rust"}).json()

    assert body["count"] == 2  # each conversation once, however many messages match
    assert [c["id"] for c in body["results"]] == [str(by_message.pk), str(by_title.pk)]


def test_search_ignores_replaced_replies(api, user):
    conversation = ConversationFactory(user=user, title="t")
    MessageFactory(conversation=conversation, seq=1, content="question")
    MessageFactory(
        conversation=conversation, seq=2, role="assistant", content="zebra", replaced=True
    )

    assert api.get("/api/conversations/", {"search": "zebra"}).json()["count"] == 0
    assert api.get("/api/conversations/", {"search": "question"}).json()["count"] == 1


def test_blank_search_lists_everything(api, user):
    ConversationFactory.create_batch(3, user=user)

    assert api.get("/api/conversations/", {"search": "   "}).json()["count"] == 3


# --- detail, rename, delete ---------------------------------------------------------------------


def test_get_returns_the_conversation(api, user):
    conversation = ConversationFactory(user=user, title="Hello", system_prompt="Be kind.")

    body = api.get(f"/api/conversations/{conversation.pk}/").json()

    assert body["id"] == str(conversation.pk)
    assert (body["title"], body["model"], body["system_prompt"]) == ("Hello", "lite", "Be kind.")


def test_patch_renames_and_changes_model_and_prompt(api, user):
    conversation = ConversationFactory(user=user, title="old")

    response = api.patch(
        f"/api/conversations/{conversation.pk}/",
        {"title": "new", "model": "pro-128k", "system_prompt": "Answer in French."},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["title"] == "new"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.model, conversation.system_prompt) == (
        "new",
        "pro-128k",
        "Answer in French.",
    )


def test_patch_with_only_a_title_keeps_the_rest(api, user):
    conversation = ConversationFactory(user=user, model="max-32k", system_prompt="keep me")

    api.patch(f"/api/conversations/{conversation.pk}/", {"title": "only"}, format="json")

    conversation.refresh_from_db()
    assert (conversation.title, conversation.model, conversation.system_prompt) == (
        "only",
        "max-32k",
        "keep me",
    )


def test_patch_with_an_unknown_model_is_400_and_changes_nothing(api, user):
    conversation = ConversationFactory(user=user, title="same")

    response = api.patch(
        f"/api/conversations/{conversation.pk}/", {"title": "x", "model": "nope"}, format="json"
    )

    assert_json_error(response, 400, "unknown_model")
    conversation.refresh_from_db()
    assert (conversation.title, conversation.model) == ("same", "lite")


def test_patch_with_a_non_string_title_is_400(api, user):
    conversation = ConversationFactory(user=user)

    assert_json_error(
        api.patch(f"/api/conversations/{conversation.pk}/", {"title": 1}, format="json"), 400
    )


def test_delete_answers_204_hides_it_everywhere_and_keeps_it_for_review(api, user):
    conversation = ConversationFactory(user=user, title="to delete")
    MessageFactory(conversation=conversation, seq=1, content="kept for review")

    response = api.delete(f"/api/conversations/{conversation.pk}/")

    assert response.status_code == 204
    for method, suffix in (("get", ""), ("patch", ""), ("delete", ""), ("get", "messages/")):
        call = getattr(api, method)
        assert_json_error(call(f"/api/conversations/{conversation.pk}/{suffix}"), 404, "not_found")
    assert_json_error(
        api.post(f"/api/conversations/{conversation.pk}/messages/", {"content": "hi"}), 404
    )
    assert str(conversation.pk) not in [
        c["id"] for c in api.get("/api/conversations/").json()["results"]
    ]
    # Kept for review until purge_deleted (docs/review.md, "Retention").
    kept = Conversation.objects.get(pk=conversation.pk)
    assert kept.deleted_at is not None
    assert kept.deleted_by == user.username
    assert Message.objects.get(conversation_id=conversation.pk).content == "kept for review"


# --- another user's conversation, unknown and malformed ids ------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [
        ("get", "", None),
        ("patch", "", {"title": "stolen"}),
        ("delete", "", None),
        ("get", "messages/", None),
        ("post", "messages/", {"content": "hi"}),
        ("post", "regenerate/", {}),
    ],
    ids=["get", "patch", "delete", "list-messages", "send-message", "regenerate"],
)
def test_another_users_conversation_is_404_like_an_unknown_one(
    api, other_user, method, suffix, payload
):
    foreign = ConversationFactory(user=other_user, title="private")
    MessageFactory(conversation=foreign, seq=1, content="secret")
    MessageFactory(conversation=foreign, seq=2, role="assistant", content="reply")
    call = getattr(api, method)

    foreign_response = call(f"/api/conversations/{foreign.pk}/{suffix}", payload, format="json")
    unknown_response = call(f"/api/conversations/{uuid.uuid4()}/{suffix}", payload, format="json")

    assert_json_error(foreign_response, 404, "not_found")
    assert foreign_response.json() == unknown_response.json()
    assert b"secret" not in foreign_response.content
    foreign.refresh_from_db()
    assert foreign.title == "private"
    assert list(foreign.messages.values_list("seq", "content", "replaced")) == [
        (1, "secret", False),
        (2, "reply", False),
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/api/conversations/not-a-uuid/",
        "/api/conversations/1234/messages/",
        "/api/conversations/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz/regenerate/",
        "/api/no-such-endpoint/",
    ],
)
def test_malformed_ids_and_unknown_paths_under_api_are_json_404(api, path):
    assert_json_error(api.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/conversations/"),
        ("post", "/api/conversations/"),
        ("get", "/api/conversations/{id}/"),
        ("patch", "/api/conversations/{id}/"),
        ("delete", "/api/conversations/{id}/"),
        ("get", "/api/conversations/{id}/messages/"),
        ("post", "/api/conversations/{id}/messages/"),
        ("post", "/api/conversations/{id}/regenerate/"),
        ("get", "/api/models/"),
    ],
)
def test_anonymous_requests_are_401_json(anon, user, method, path):
    conversation = ConversationFactory(user=user)

    response = getattr(anon, method)(
        path.format(id=conversation.pk), {"content": "x"}, format="json"
    )

    assert_json_error(response, 401, "not_authenticated")
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 0


def test_session_authenticated_api_post_requires_csrf(user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)

    response = strict.post("/api/conversations/", {}, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["code"]
    assert Conversation.objects.count() == 0


# --- models -------------------------------------------------------------------------------------


def test_models_lists_spark_models_with_labels_and_context_windows(api, settings):
    settings.SPARK_API_PASSWORD = "k:s"

    response = api.get("/api/models/")

    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()}
    assert [m["id"] for m in response.json()] == list(settings.SPARK_MODELS)
    expected = {
        "lite": ("Spark Lite", 8192),
        "generalv3": ("Spark Pro", 8192),
        "pro-128k": ("Spark Pro-128K", 131072),
        "generalv3.5": ("Spark Max", 8192),
        "max-32k": ("Spark Max-32K", 32768),
        "4.0Ultra": ("Spark 4.0 Ultra", 8192),
    }
    assert {k: (m["label"], m["context_window"]) for k, m in models.items()} == expected
    assert all(m["provider"] == "spark" for m in models.values())


def test_models_follows_the_spark_models_setting(api, settings):
    settings.SPARK_API_PASSWORD = "k:s"
    settings.SPARK_MODELS = ["max-32k", "lite"]

    assert [m["id"] for m in api.get("/api/models/").json()] == ["max-32k", "lite"]


def test_models_with_only_a_per_model_key_marks_which_are_configured(api, settings):
    settings.SPARK_API_PASSWORD = ""
    settings.SPARK_API_PASSWORDS = {"generalv3": "pro:key"}

    response = api.get("/api/models/")

    assert response.status_code == 200
    configured = {m["id"]: m["configured"] for m in response.json()}
    assert configured["generalv3"] is True
    assert configured["lite"] is False


def test_models_without_any_key_is_503_model_not_configured(api, settings):
    settings.SPARK_API_PASSWORD = ""
    settings.SPARK_API_PASSWORDS = {}

    assert_json_error(api.get("/api/models/"), 503, "model_not_configured")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_sending_without_any_key_is_503_and_saves_nothing(api, user, settings, stream):
    settings.SPARK_API_PASSWORD = ""
    settings.SPARK_API_PASSWORDS = {}
    conversation = ConversationFactory(user=user)

    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "hello", "stream": stream},
        format="json",
    )

    assert_json_error(response, 503, "model_not_configured")
    assert Message.objects.count() == 0
    assert_json_error(
        api.post(f"/api/conversations/{conversation.pk}/regenerate/", {}, format="json"),
        503,
        "model_not_configured",
    )


# --- schema, docs, health -----------------------------------------------------------------------


def test_openapi_schema_describes_the_api(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    text = response.content.decode()
    assert "openapi" in text
    for path in (
        "/api/conversations/",
        "/api/conversations/{conversation_id}/messages/",
        "/api/auth/token/refresh/",
        "/api/models/",
    ):
        assert path in text


def test_openapi_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))

    assert (
        "/api/conversations/{conversation_id}/regenerate/" in (tmp_path / "schema.yml").read_text()
    )


MESSAGES = "/api/conversations/{conversation_id}/messages/"
REGENERATE = "/api/conversations/{conversation_id}/regenerate/"


def _query(case) -> dict[str, str]:
    # As schemathesis puts a generated query on the wire: booleans as `true`/`false`.
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in (case.query or {}).items()
    }


def test_page_with_a_cursor_is_a_refusal_the_schema_documents(api, user):
    """Finding 2 of the outside fuzz: `page` with `after`/`before`/`latest` is schema-valid (no
    OpenAPI 3.0 keyword makes query parameters exclude each other) and refused: documented."""
    conversation = ConversationFactory(user=user)
    MessageFactory.create_batch(3, conversation=conversation)
    operation = openapi(api)["paths"][MESSAGES]["get"]
    documented = documented_codes(operation)
    assert documented == {"conflicting_parameters"}
    assert "conflicting_parameters" in operation["description"]

    url = MESSAGES.format(conversation_id=conversation.pk)
    for cursor in ({"after": 0}, {"before": 9}, {"latest": "true"}):
        response = api.get(url, {"page": 1, **cursor})
        assert_json_error(response, 400, "conflicting_parameters")
    assert api.get(url, {"page": 1, "latest": "false"}).status_code == 200


def test_schema_valid_message_list_queries_are_answered_or_refused_with_a_documented_code(
    api, user
):
    conversation = ConversationFactory(user=user)
    MessageFactory.create_batch(3, conversation=conversation)
    schema = openapi(api)
    documented = documented_codes(schema["paths"][MESSAGES]["get"])
    url = MESSAGES.format(conversation_id=conversation.pk)
    cases = schema_valid_cases(
        schema, MESSAGES, "GET", 60, path_parameters={"conversation_id": str(conversation.pk)}
    )

    statuses = set()
    for case in cases:
        response = api.get(url, _query(case))
        statuses.add(response.status_code)
        if response.status_code == 400:
            assert response.json()["code"] in documented, (case.query, response.json())
        else:  # 404 is a page past the end, which the schema documents
            assert response.status_code in (200, 404), (case.query, response.content)
    assert 200 in statuses


@pytest.mark.parametrize(
    "query",
    ["latest=1", "latest=yes", "latest=", "after=", "after=1&after=2", "limit=+5", "limit=1_0"],
)
def test_message_list_queries_the_schema_calls_invalid_are_refused(api, user, query):
    conversation = ConversationFactory(user=user)
    response = api.get(f"{MESSAGES.format(conversation_id=conversation.pk)}?{query}")

    assert_json_error(response, 400, "invalid")


def test_the_schema_bounds_page_size_of_the_message_list_as_the_api_does(api, user):
    parameters = openapi(api)["paths"][MESSAGES]["get"]["parameters"]
    bounds = {p["name"]: p["schema"] for p in parameters if p["name"] in ("limit", "page_size")}
    conversation = ConversationFactory(user=user)
    url = MESSAGES.format(conversation_id=conversation.pk)

    for name, schema in bounds.items():
        assert (schema["minimum"], schema["maximum"]) == (1, 200), name
        assert api.get(url, {name: 200}).status_code == 200
        assert_json_error(api.get(url, {name: 201}), 400)


def test_the_schema_says_an_empty_page_is_the_first_page_of_the_conversation_list(api, user):
    ConversationFactory(user=user)
    (page,) = [
        p
        for p in openapi(api)["paths"]["/api/conversations/"]["get"]["parameters"]
        if p["name"] == "page"
    ]

    assert page["allowEmptyValue"] is True
    assert api.get("/api/conversations/?page=").json()["count"] == 1


def test_nothing_to_regenerate_is_a_refusal_the_schema_documents(api, user, spark):
    """Finding 4 of the outside fuzz: regenerating in a conversation with no message yet is
    schema-valid (the conversation's state is no part of a request) and refused: documented."""
    conversation = ConversationFactory(user=user)
    operation = openapi(api)["paths"][REGENERATE]["post"]
    assert documented_codes(operation) == {"nothing_to_regenerate", "invalid_parent", "not_a_reply"}
    assert "nothing_to_regenerate" in operation["responses"]["400"]["description"]

    pinned = {"conversation_id": str(conversation.pk)}
    for case in schema_valid_cases(openapi(api), REGENERATE, "POST", 5, path_parameters=pinned):
        body = case.body if isinstance(case.body, dict) else {}  # the body is optional
        response = api.post(REGENERATE.format(conversation_id=conversation.pk), body, format="json")
        if body.get("parent"):  # a message id the conversation does not hold
            assert_json_error(response, 404, "not_found")
        else:
            assert_json_error(response, 400, "nothing_to_regenerate")


def test_api_docs_render_with_local_assets_only(api, client):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower()
    references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls = references + re.findall(r"""https?://[^\s"'<>)]+""", html)
    for url in urls:
        assert urlsplit(url).hostname in (None, "testserver"), url
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    # CSP allows scripts from self only: every script is a file, none inline.
    assert all("src=" in attributes for attributes in scripts), scripts
    assets = [url for url in references if urlsplit(url).path.endswith((".js", ".css"))]
    assert len(assets) >= 3
    assets += re.findall(r"""<script[^>]*src\s*=\s*["']([^"']+)["']""", html)
    for url in assets:
        asset = client.get(url) if url.startswith("/static/") else api.get(url)
        assert asset.status_code == 200, url
        body = b"".join(asset.streaming_content) if asset.streaming else asset.content
        assert b"https://cdn" not in body, url


@pytest.mark.parametrize("path", ["/healthz", "/healthz/"])
def test_healthz_reports_the_database(anon, path):
    response = anon.get(path)

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_refuses_post(anon):
    assert anon.post("/healthz").status_code == 405


@pytest.mark.parametrize("query", ["page=1&page=2", "page_size=5&page_size=50"])
def test_a_repeated_page_parameter_of_the_conversation_list_is_refused(api, user, query):
    ConversationFactory.create_batch(3, user=user)

    body = assert_json_error(api.get(f"/api/conversations/?{query}"), 400, "invalid")

    assert query.split("=")[0] in body["detail"]


def test_pinning_is_saved_and_does_not_move_the_conversation(api, user):
    older = ConversationFactory(user=user, title="older")
    newer = ConversationFactory(user=user, title="newer")
    assert older.pinned is False

    response = api.patch(f"/api/conversations/{older.pk}/", {"pinned": True}, format="json")

    assert response.status_code == 200
    assert response.json()["pinned"] is True
    listed = api.get("/api/conversations/").json()["results"]
    assert [c["title"] for c in listed] == ["newer", "older"]  # order by activity, as before
    assert [c["pinned"] for c in listed] == [False, True]
    assert_json_error(
        api.patch(f"/api/conversations/{newer.pk}/", {"pinned": "yes"}, format="json"), 400
    )
