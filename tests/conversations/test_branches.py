"""Edit, regenerate and branches through the API and the loopback Spark (docs/architecture.md,
"Branches"): siblings are added, never changed in place; the model gets the active branch's
history, built by the server; the chosen branch is saved."""

from __future__ import annotations

import importlib
import time

import pytest
from django.apps import apps as django_apps

from conversations.models import Conversation, Message
from tests.factories import ConversationFactory, UserFactory
from tests.support.api import assert_json_error, parse_sse

pytestmark = pytest.mark.django_db


@pytest.fixture
def conversation(user) -> Conversation:
    return ConversationFactory(user=user, model="lite")


def send(api, conversation, content, **extra):
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, **extra},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def regenerate(api, conversation, **extra):
    response = api.post(f"/api/conversations/{conversation.pk}/regenerate/", extra, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def active(api, conversation) -> list[tuple[str, str]]:
    body = api.get(f"/api/conversations/{conversation.pk}/messages/").json()
    return [(m["role"], m["content"]) for m in body["results"]]


def sent_to_model(spark) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in spark.requests[-1]["json"]["messages"]]


def test_an_edit_is_a_new_sibling_and_the_model_gets_the_edited_history(api, spark, conversation):
    first = send(api, conversation, "one")
    second = send(api, conversation, "two")

    edited = send(
        api, conversation, "two, edited", parent=second["user_message"]["id"]
    )  # replaces "two"

    assert edited["user_message"]["parent"] == first["assistant_message"]["id"]
    assert sent_to_model(spark) == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two, edited"),
    ]
    assert active(api, conversation) == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two, edited"),
        ("assistant", "Echo: two, edited"),
    ]
    # The original is kept, unchanged, off the active branch.
    original = Message.objects.get(pk=second["user_message"]["id"])
    assert (original.content, original.replaced) == ("two", True)


def test_editing_the_first_message_starts_a_new_root(api, spark, conversation):
    first = send(api, conversation, "hello")
    send(api, conversation, "more")

    send(api, conversation, "hi instead", parent=first["user_message"]["id"])

    assert sent_to_model(spark) == [("user", "hi instead")]
    assert active(api, conversation) == [("user", "hi instead"), ("assistant", "Echo: hi instead")]


def test_answering_an_earlier_reply_branches_from_it(api, spark, conversation):
    first = send(api, conversation, "one")
    send(api, conversation, "two")

    send(api, conversation, "other", parent=first["assistant_message"]["id"])

    assert sent_to_model(spark) == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "other"),
    ]


def test_regenerate_adds_a_sibling_and_lists_both(api, spark, conversation):
    first = send(api, conversation, "one")

    again = regenerate(api, conversation)

    assert again["assistant_message"]["parent"] == first["user_message"]["id"]
    body = api.get(f"/api/conversations/{conversation.pk}/messages/").json()["results"]
    assert [m["id"] for m in body] == [
        first["user_message"]["id"],
        again["assistant_message"]["id"],
    ]
    assert body[1]["siblings"] == [
        first["assistant_message"]["id"],
        again["assistant_message"]["id"],
    ]
    assert body[0]["siblings"] == [first["user_message"]["id"]]


def test_regenerating_an_earlier_reply_drops_what_followed_from_the_branch(
    api, spark, conversation
):
    first = send(api, conversation, "one")
    send(api, conversation, "two")

    regenerate(api, conversation, parent=first["assistant_message"]["id"])

    assert sent_to_model(spark) == [("user", "one")]
    assert active(api, conversation) == [("user", "one"), ("assistant", "Echo: one")]


def test_the_chosen_branch_is_saved_and_every_branch_can_be_listed(api, spark, conversation):
    first = send(api, conversation, "one")
    send(api, conversation, "two")
    send(api, conversation, "two, edited", parent=Message.objects.get(content="two").pk.hex)

    response = api.put(
        f"/api/conversations/{conversation.pk}/branch/",
        {"message": str(Message.objects.get(content="two").pk)},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert active(api, conversation) == [
        ("user", "one"),
        ("assistant", "Echo: one"),
        ("user", "two"),
        ("assistant", "Echo: two"),
    ]
    # The next message follows the chosen branch.
    send(api, conversation, "three")
    assert sent_to_model(spark)[-3:] == [
        ("user", "two"),
        ("assistant", "Echo: two"),
        ("user", "three"),
    ]
    every = api.get(f"/api/conversations/{conversation.pk}/messages/", {"branches": "all"}).json()
    contents = [m["content"] for m in every["results"]]
    assert contents == [
        "one",
        "Echo: one",
        "two",
        "Echo: two",
        "two, edited",
        "Echo: two, edited",
        "three",
        "Echo: three",
    ]
    assert {m["content"]: m["active"] for m in every["results"]}["two, edited"] is False
    assert every["results"][0]["id"] == first["user_message"]["id"]


def test_choosing_a_sibling_goes_to_its_newest_leaf(api, spark, conversation):
    send(api, conversation, "one")
    send(api, conversation, "two")
    edited = send(api, conversation, "two b", parent=Message.objects.get(content="two").pk)
    send(api, conversation, "three b")
    api.put(
        f"/api/conversations/{conversation.pk}/branch/",
        {"message": str(Message.objects.get(content="two").pk)},
        format="json",
    )

    api.put(
        f"/api/conversations/{conversation.pk}/branch/",
        {"message": edited["user_message"]["id"]},
        format="json",
    )

    assert [c for _, c in active(api, conversation)][-2:] == ["three b", "Echo: three b"]


@pytest.mark.parametrize("route", ["messages", "regenerate", "branch"])
def test_a_bad_or_unknown_id_is_404_and_one_of_another_conversation_400(
    api, spark, user, conversation, route
):
    send(api, conversation, "one")
    other = ConversationFactory(user=user, model="lite")
    foreign = send(api, other, "elsewhere")["assistant_message"]["id"]
    strangers = ConversationFactory(user=UserFactory(), model="lite")
    stranger_message = Message.objects.create(
        conversation=strangers, seq=1, role="assistant", content="x"
    )

    def call(message_id):
        url = f"/api/conversations/{conversation.pk}/{route}/"
        if route == "branch":
            return api.put(url, {"message": message_id}, format="json")
        payload = {"parent": message_id}
        if route == "messages":
            payload["content"] = "hi"
        return api.post(url, payload, format="json")

    assert_json_error(call("00000000-0000-0000-0000-000000000000"), 404, "not_found")
    assert_json_error(call(str(stranger_message.pk)), 404, "not_found")
    body = assert_json_error(call(foreign), 400, "invalid_parent")
    assert body["field"] in ("parent", "message")
    assert_json_error(call("not-a-uuid"), 400)


def test_switching_branches_while_a_reply_is_written_is_a_conflict(api, spark, conversation):
    first = send(api, conversation, "one")
    Message.objects.filter(pk=first["assistant_message"]["id"]).update(status="streaming")

    response = api.put(
        f"/api/conversations/{conversation.pk}/branch/",
        {"message": first["user_message"]["id"]},
        format="json",
    )

    assert_json_error(response, 409, "reply_in_progress")


def test_a_stream_start_frame_names_the_parents(api, spark, conversation):
    first = send(api, conversation, "one")
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "two", "stream": True, "parent": first["assistant_message"]["id"]},
        format="json",
    )
    frames = parse_sse(b"".join(response.streaming_content))

    start = frames[0][1]
    assert start["user_message"]["parent"] == first["assistant_message"]["id"]
    assert start["assistant_message"]["parent"] == start["user_message"]["id"]


def test_the_migration_links_a_conversation_made_before_branches(user):
    conversation = ConversationFactory(user=user)
    rows = [
        ("user", False),
        ("assistant", True),  # regenerated
        ("assistant", False),
        ("user", False),
        ("assistant", False),
    ]
    made = [
        Message.objects.create(conversation=conversation, seq=i + 1, role=role, replaced=replaced)
        for i, (role, replaced) in enumerate(rows)
    ]
    migration = importlib.import_module("conversations.migrations.0009_message_parent")

    migration.link_parents(django_apps, None)

    parents = [Message.objects.get(pk=m.pk).parent_id for m in made]
    assert parents == [None, made[0].pk, made[0].pk, made[2].pk, made[3].pk]


# --- Stop keeps what the page showed -------------------------------------------------------------


# response.close() sends request_finished, which closes a connection held in a test's transaction.
@pytest.mark.django_db(transaction=True)
def test_stop_cuts_the_saved_reply_to_what_the_page_showed(api, spark, conversation):
    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "hi [[reply:alpha beta gamma delta]] [[interval:0.2]]", "stream": True},
        format="json",
    )
    frames = iter(response.streaming_content)
    received = b""
    while b"event: delta" not in received:
        received += next(frames)
    # The page showed "alpha " and stopped; the server got more from the model meanwhile.
    time.sleep(0.5)
    response.close()
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == "interrupted"
    assert len(reply.content) > len("alpha ")  # more than the page showed

    stopped = api.post(f"/api/messages/{reply.pk}/stop/", {"shown": 6}, format="json")

    assert stopped.status_code == 200, stopped.content
    assert stopped.json()["content"] == "alpha "
    assert stopped.json()["status"] == "interrupted"
    reply.refresh_from_db()
    assert (reply.content, reply.status) == ("alpha ", "interrupted")
    listed = api.get(f"/api/conversations/{conversation.pk}/messages/").json()["results"]
    assert listed[-1]["content"] == "alpha "


def test_a_reply_finished_before_the_stop_is_cut_to_what_was_shown(api, spark, conversation):
    body = send(api, conversation, "hi [[reply:alpha beta gamma delta]]")
    reply_id = body["assistant_message"]["id"]

    stopped = api.post(f"/api/messages/{reply_id}/stop/", {"shown": 10}, format="json")

    assert stopped.json()["content"] == "alpha beta"
    assert stopped.json()["status"] == "interrupted"


def test_stop_leaves_a_shorter_or_failed_reply_alone(api, spark, conversation):
    body = send(api, conversation, "hi [[reply:short]]")
    reply_id = body["assistant_message"]["id"]

    assert (
        api.post(f"/api/messages/{reply_id}/stop/", {"shown": 99}, format="json").json()["status"]
        == "complete"
    )
    user_id = body["user_message"]["id"]
    assert_json_error(
        api.post(f"/api/messages/{user_id}/stop/", {"shown": 1}, format="json"), 400, "not_a_reply"
    )
    assert_json_error(
        api.post(f"/api/messages/{reply_id}/stop/", {"shown": -1}, format="json"), 400
    )
    other = UserFactory()
    stranger = ConversationFactory(user=other)
    theirs = Message.objects.create(conversation=stranger, seq=1, role="assistant", content="x")
    assert_json_error(
        api.post(f"/api/messages/{theirs.pk}/stop/", {"shown": 0}, format="json"), 404, "not_found"
    )


def test_stop_waits_for_a_reply_still_streaming_then_gives_up(api, conversation, monkeypatch):
    from conversations import replies

    monkeypatch.setattr(replies, "STOP_WAIT_SECONDS", 0.2)
    reply = Message.objects.create(
        conversation=conversation, seq=1, role="assistant", status="streaming", content="abc"
    )

    assert_json_error(
        api.post(f"/api/messages/{reply.pk}/stop/", {"shown": 1}, format="json"),
        409,
        "reply_in_progress",
    )
