"""Reads: the history sent to the model, conversation and message lists, and their query counts."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from chatsite.errors import NotFound, UserInactive
from conversations import selectors
from conversations.llm.base import ChatMessage
from conversations.models import Conversation
from tests.factories import PASSWORD, ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


def add(conversation: Conversation, *turns: tuple[str, str] | tuple[str, str, str], **extra):
    start = conversation.messages.count() + 1
    for seq, turn in enumerate(turns, start=start):
        role, content, *status = turn
        MessageFactory(
            conversation=conversation,
            seq=seq,
            role=role,
            content=content,
            status=status[0] if status else "complete",
            **extra,
        )


def history(conversation: Conversation, budget: int = 8000, **kwargs) -> list[tuple[str, str]]:
    messages = selectors.message_history_for_model(
        conversation=conversation, budget_tokens=budget, **kwargs
    )
    assert all(isinstance(m, ChatMessage) for m in messages)
    return [(m.role, m.content) for m in messages]


# --- message_history_for_model ------------------------------------------------------------------


def test_history_puts_the_system_prompt_first_then_the_turns_in_order():
    conversation = ConversationFactory(system_prompt="  Be brief.  ")
    add(conversation, ("user", "q1"), ("assistant", "a1"), ("user", "q2"))

    assert history(conversation) == [
        ("system", "Be brief."),
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
    ]


def test_history_without_a_system_prompt_has_no_system_message():
    conversation = ConversationFactory(system_prompt="   ")
    add(conversation, ("user", "q1"))

    assert history(conversation) == [("user", "q1")]


def test_history_of_an_empty_conversation_is_empty():
    assert history(ConversationFactory()) == []


@pytest.mark.parametrize(
    "failed",
    [
        ("assistant", "partial text", "error"),
        ("assistant", "", "interrupted"),
        ("assistant", "   ", "complete"),
        ("assistant", "still going", "streaming"),
    ],
    ids=["error", "empty-interrupted", "blank", "streaming"],
)
def test_history_leaves_out_a_failed_or_empty_reply_and_its_question(failed):
    conversation = ConversationFactory()
    add(conversation, ("user", "q1"), ("assistant", "a1"), ("user", "q2"), failed, ("user", "q3"))

    assert history(conversation) == [("user", "q1"), ("assistant", "a1"), ("user", "q3")]


def test_history_keeps_an_interrupted_reply_with_text():
    conversation = ConversationFactory()
    add(conversation, ("user", "q1"), ("assistant", " half ", "interrupted"), ("user", "q2"))

    assert history(conversation) == [("user", "q1"), ("assistant", "half"), ("user", "q2")]


def test_history_leaves_out_replaced_replies():
    conversation = ConversationFactory()
    add(conversation, ("user", "q1"))
    add(conversation, ("assistant", "old answer"), replaced=True)
    add(conversation, ("assistant", "new answer"), ("user", "q2"))

    assert history(conversation) == [("user", "q1"), ("assistant", "new answer"), ("user", "q2")]


def test_history_stops_at_up_to_seq():
    conversation = ConversationFactory()
    add(
        conversation,
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "", "streaming"),
    )

    assert history(conversation, up_to_seq=3) == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
    ]


def test_history_never_ends_with_an_assistant_turn():
    conversation = ConversationFactory()
    add(conversation, ("user", "q1"), ("assistant", "a1"))

    assert history(conversation) == [("user", "q1")]


def test_history_is_trimmed_from_the_oldest_turn_to_fit_the_budget():
    conversation = ConversationFactory(system_prompt="sys")
    text = "x" * 400  # 101 tokens by the estimate, 105 with the per-message overhead
    add(conversation, *[("user" if n % 2 == 0 else "assistant", f"{n}{text}") for n in range(9)])

    sent = history(conversation, budget=350)

    assert sent[0] == ("system", "sys")
    contents = [content for _, content in sent[1:]]
    assert [c[0] for c in contents] == ["6", "7", "8"]
    used = sum(selectors.estimate_tokens(c) + selectors.MESSAGE_OVERHEAD_TOKENS for c in contents)
    assert used <= 350 - selectors.estimate_tokens("sys") - selectors.MESSAGE_OVERHEAD_TOKENS


def test_trimmed_history_starts_with_a_user_turn():
    conversation = ConversationFactory()
    text = "y" * 400
    add(conversation, *[("user" if n % 2 == 0 else "assistant", f"{n}{text}") for n in range(9)])

    # Room for four messages: the oldest of them would be an assistant, so it goes too.
    sent = history(conversation, budget=4 * 110)

    assert [content[0] for _, content in sent] == ["6", "7", "8"]
    assert sent[0][0] == "user"


def test_history_always_keeps_the_newest_user_message_even_over_budget():
    conversation = ConversationFactory(system_prompt="sys")
    add(conversation, ("user", "old"), ("assistant", "reply"), ("user", "z" * 4000))

    assert history(conversation, budget=50) == [("system", "sys"), ("user", "z" * 4000)]


def test_estimate_tokens_counts_chinese_denser_than_english():
    assert selectors.estimate_tokens("汉" * 150) >= 100
    assert selectors.estimate_tokens("a" * 400) >= 100
    assert selectors.estimate_tokens("汉" * 150) > selectors.estimate_tokens("a" * 150)
    assert selectors.estimate_tokens("") >= 0


def test_history_takes_one_query_however_long_the_conversation(django_assert_num_queries):
    conversation = ConversationFactory()
    add(conversation, *[("user" if n % 2 == 0 else "assistant", f"m{n}") for n in range(101)])

    with django_assert_num_queries(1):
        sent = selectors.message_history_for_model(conversation=conversation, budget_tokens=100_000)

    assert len(sent) == 101


# --- conversation_list and message_list ---------------------------------------------------------


def test_conversation_list_is_scoped_to_the_owner(user, other_user):
    mine = ConversationFactory(user=user)
    ConversationFactory(user=other_user)

    assert list(selectors.conversation_list(user_id=user.pk)) == [mine]


def test_conversation_list_shows_nothing_of_an_inactive_user(user):
    ConversationFactory(user=user)
    user.is_active = False
    user.save()

    assert list(selectors.conversation_list(user_id=user.pk)) == []
    with pytest.raises(UserInactive):
        selectors.user_check(user_id=user.pk)


def test_conversation_get_refuses_another_users_conversation(user, other_user):
    foreign = ConversationFactory(user=other_user)

    with pytest.raises(NotFound):
        selectors.conversation_get(user_id=user.pk, conversation_id=foreign.pk)


def test_conversation_get_refuses_an_inactive_owner(user):
    mine = ConversationFactory(user=user)
    user.is_active = False
    user.save()

    with pytest.raises(UserInactive):
        selectors.conversation_get(user_id=user.pk, conversation_id=mine.pk)


def test_message_list_reports_whether_more_messages_lie_beyond_the_page():
    conversation = ConversationFactory()
    add(conversation, *[("user", f"m{n}") for n in range(5)])

    page, more = selectors.message_list(conversation=conversation, limit=5)
    assert [m.content for m in page] == [f"m{n}" for n in range(5)]
    assert more is False
    page, more = selectors.message_list(conversation=conversation, limit=4)
    assert len(page) == 4
    assert more is True
    page, more = selectors.message_list(conversation=conversation, latest=True, limit=2)
    assert [m.content for m in page] == ["m3", "m4"]
    assert more is True


# --- query counts of the list endpoints ---------------------------------------------------------


@pytest.fixture
def jwt_client(user) -> APIClient:
    client = APIClient()
    tokens = client.post(
        "/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    ).json()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return client


@pytest.mark.parametrize("size", [1, 40])
def test_conversation_list_runs_at_most_three_queries(
    jwt_client, user, size, django_assert_max_num_queries
):
    for conversation in ConversationFactory.create_batch(size, user=user):
        add(conversation, ("user", "hello rust"), ("assistant", "hi"))

    with django_assert_max_num_queries(3):
        response = jwt_client.get("/api/conversations/")
    with django_assert_max_num_queries(3):
        searched = jwt_client.get("/api/conversations/", {"search": "rust"})

    assert response.status_code == 200
    assert response.json()["count"] == size
    assert searched.json()["count"] == size


@pytest.mark.parametrize("size", [1, 120])
def test_message_list_runs_at_most_three_queries(
    jwt_client, user, size, django_assert_max_num_queries
):
    conversation = ConversationFactory(user=user)
    add(conversation, *[("user" if n % 2 == 0 else "assistant", f"m{n}") for n in range(size)])

    with django_assert_max_num_queries(3):
        response = jwt_client.get(f"/api/conversations/{conversation.pk}/messages/")
    with django_assert_max_num_queries(3):
        latest = jwt_client.get(
            f"/api/conversations/{conversation.pk}/messages/", {"latest": "true", "limit": 20}
        )

    assert response.status_code == 200
    assert len(response.json()["results"]) == min(size, 50)
    assert len(latest.json()["results"]) == min(size, 20)


# --- stored token estimates -------------------------------------------------------------------


def test_history_trims_by_the_estimate_stored_with_each_message():
    conversation = ConversationFactory()
    add(conversation, ("user", "old question"), ("assistant", "old answer"), ("user", "new"))
    # Stored estimates are trusted (not recomputed): an old answer said to cost 10,000 tokens
    # cannot fit a 1,000-token budget, so the history starts after it.
    conversation.messages.filter(seq=2).update(token_estimate=10_000)

    assert history(conversation, budget=1000) == [("user", "new")]
    conversation.messages.filter(seq=2).update(token_estimate=None)  # old rows: estimated again
    assert history(conversation, budget=1000) == [
        ("user", "old question"),
        ("assistant", "old answer"),
        ("user", "new"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_turn_stores_the_estimates_of_the_question_and_the_reply(spark, user):
    conversation = ConversationFactory(user=user, model="lite")
    api = APIClient()
    api.force_authenticate(user)

    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": " 你好，世界 [[reply:alpha beta gamma]] "},
        format="json",
    )

    assert response.status_code == 201, response.content
    question, reply = conversation.messages.order_by("seq")
    assert question.token_estimate == selectors.estimate_tokens(question.content.strip())
    assert reply.content == "alpha beta gamma"
    assert reply.token_estimate == selectors.estimate_tokens("alpha beta gamma")
