"""Quotas, model access and prices through the API and the reply engine (docs/governance.md)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from conversations.models import Conversation, Message
from governance.models import GroupPolicy, ModelPrice, PolicyChange, SitePolicy, UserPolicy
from tests.factories import ConversationFactory, UserFactory
from tests.support.api import assert_json_error, parse_sse

pytestmark = pytest.mark.django_db

REPLY = "[[reply:alpha beta gamma delta]]"


def send(api, conversation: Conversation, content: str = f"hi {REPLY}", **extra: object):
    return api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": content, **extra},
        format="json",
    )


def price_lite(input_cny: int, output_cny: int, since: object = None) -> ModelPrice:
    """Spark Lite's price per million tokens, in force from ``since`` (default: yesterday)."""
    return ModelPrice.objects.create(
        model_id="lite",
        input_per_million=Decimal(input_cny),
        output_per_million=Decimal(output_cny),
        effective_from=since or timezone.now() - timedelta(days=1),
    )


def site_limits(**limits: object) -> None:
    policy = SitePolicy.get()
    for name, value in limits.items():
        setattr(policy, name, value)
    policy.save()


# --- limits -------------------------------------------------------------------------------------


def test_the_site_default_comes_from_settings(settings):
    settings.QUOTA_DAILY_MESSAGES = 5
    settings.QUOTA_DAILY_TOKENS = 1000
    settings.QUOTA_MONTHLY_COST_CNY = "12.5"

    policy = SitePolicy.get()

    assert (policy.day_messages, policy.day_tokens) == (5, 1000)
    assert policy.month_cost_cny == Decimal("12.5")


def test_a_message_limit_refuses_with_the_numbers_and_saves_nothing(api, user, spark):
    site_limits(day_messages=2)
    conversation = ConversationFactory(user=user, model="lite")
    assert send(api, conversation).status_code == 201
    assert send(api, conversation).status_code == 201

    response = send(api, conversation)

    data = assert_json_error(response, 429, "quota_exceeded")
    assert (data["period"], data["kind"]) == ("day", "messages")
    assert (data["limit"], data["used"], data["remaining"]) == (2, 2, 0)
    resets_at = data["resets_at"]
    assert resets_at.endswith("+08:00")  # midnight in Asia/Shanghai
    assert int(response["Retry-After"]) > 0
    assert conversation.messages.count() == 4


def test_a_reply_that_failed_upstream_is_charged_nothing(api, user, spark):
    site_limits(day_messages=1)
    conversation = ConversationFactory(user=user, model="lite")

    failed = send(api, conversation, "hi [[upstream:10013]]")
    assert failed.status_code == 502
    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert (reply.charged_tokens, reply.cost_cny) == (0, Decimal(0))

    assert send(api, conversation).status_code == 201  # the one message of the day is still there


def test_a_token_limit_lowers_the_replys_maximum_then_refuses(api, user, spark):
    conversation = ConversationFactory(user=user, model="lite")
    site_limits(day_tokens=1500)

    response = send(api, conversation, f"hi {REPLY}")

    assert response.status_code == 201, response.content
    assert response.json()["notice"]["code"] == "max_tokens_lowered"
    lowered = response.json()["notice"]["max_tokens"]
    assert 256 <= lowered < 4096  # Spark Lite's own maximum is 4096
    assert spark.requests[-1]["json"]["max_tokens"] == lowered
    reply = Message.objects.get(pk=response.json()["assistant_message"]["id"])
    assert reply.charged_tokens == reply.total_tokens
    assert reply.held_tokens is not None

    site_limits(day_tokens=reply.charged_tokens + 100)  # too little left for a reply
    data = assert_json_error(send(api, conversation), 429, "quota_exceeded")
    assert data["kind"] == "tokens"
    assert data["used"] == reply.charged_tokens


def test_a_group_policy_wins_over_the_site_default_and_a_user_override_over_both(api, user, spark):
    site_limits(day_messages=1)
    staff = Group.objects.create(name="staff")
    GroupPolicy.objects.create(group=staff, day_messages=3)
    user.groups.add(staff)
    conversation = ConversationFactory(user=user, model="lite")
    for _ in range(3):
        assert send(api, conversation).status_code == 201
    assert send(api, conversation).status_code == 429

    UserPolicy.objects.create(user=user, day_messages=4)
    assert send(api, conversation).status_code == 201
    assert send(api, conversation).status_code == 429


def test_the_most_generous_group_wins_and_no_limit_is_most_generous(api, user, spark):
    tight, loose = Group.objects.create(name="tight"), Group.objects.create(name="loose")
    GroupPolicy.objects.create(group=tight, day_messages=1)
    GroupPolicy.objects.create(group=loose)  # no limits
    user.groups.add(tight, loose)
    conversation = ConversationFactory(user=user, model="lite")

    for _ in range(3):
        assert send(api, conversation).status_code == 201


def test_editing_a_limit_never_resets_what_was_used(api, user, spark):
    site_limits(day_messages=2)
    conversation = ConversationFactory(user=user, model="lite")
    send(api, conversation)
    send(api, conversation)

    site_limits(day_messages=3)
    assert send(api, conversation).status_code == 201
    assert send(api, conversation).status_code == 429


# response.close() sends request_finished, which closes a connection a test transaction holds.
@pytest.mark.django_db(transaction=True)
def test_a_reply_the_client_left_is_charged_for_what_was_produced(api, user, spark):
    site_limits(day_tokens=100_000)
    conversation = ConversationFactory(user=user, model="lite")
    response = send(api, conversation, "hi [[tokens:40]] [[interval:0.05]]", stream=True)
    stream = iter(response.streaming_content)
    for _ in range(4):  # start and a few deltas
        next(stream)
    response.close()

    reply = Message.objects.get(conversation=conversation, role="assistant")
    assert reply.status == "interrupted"
    assert reply.content
    assert 0 < reply.charged_tokens < reply.held_tokens


def test_a_dead_workers_hold_stops_counting_once_recovered(api, user, spark, settings):
    from conversations import recovery

    settings.STALE_STREAM_SECONDS = 0
    site_limits(day_tokens=10_000)
    conversation = ConversationFactory(user=user, model="lite")
    stuck = Message.objects.create(
        conversation=conversation,
        seq=1,
        role="assistant",
        status="streaming",
        held_tokens=9_000,
        worker="elsewhere:1:1",
    )
    stuck.created_at = timezone.now() - timedelta(minutes=30)
    Message.objects.filter(pk=stuck.pk).update(created_at=stuck.created_at)
    assert api.get("/api/usage/").json()["day"]["used"]["tokens"] == 9_000

    recovery.messages_recover_stale(conversation=conversation)

    assert api.get("/api/usage/").json()["day"]["used"]["tokens"] == 0


# --- model access -------------------------------------------------------------------------------


def test_a_model_the_group_may_not_use_is_hidden_and_refused(api, user, spark):
    students = Group.objects.create(name="students")
    GroupPolicy.objects.create(group=students, allowed_models=["lite", "generalv3"])
    user.groups.add(students)

    listed = [m["id"] for m in api.get("/api/models/").json()]
    assert listed == ["lite", "generalv3"]
    response = api.post("/api/conversations/", {"model": "4.0Ultra"}, format="json")
    assert_json_error(response, 403, "model_not_allowed")
    conversation = ConversationFactory(user=user, model="4.0Ultra")  # from before the policy
    assert_json_error(send(api, conversation), 403, "model_not_allowed")
    assert not conversation.messages.exists()
    patched = api.patch(
        f"/api/conversations/{conversation.pk}/", {"model": "max-32k"}, format="json"
    )
    assert_json_error(patched, 403, "model_not_allowed")


def test_the_default_model_falls_back_to_one_the_group_may_use(api, user, spark):
    group = Group.objects.create(name="g")
    GroupPolicy.objects.create(group=group, allowed_models=["generalv3"])
    user.groups.add(group)

    created = api.post("/api/conversations/", {}, format="json")

    assert created.json()["model"] == "generalv3"


# --- prices and cost ----------------------------------------------------------------------------


def test_each_reply_stores_its_cost_at_the_price_in_force(api, user, spark):
    price_lite(2, 8)
    conversation = ConversationFactory(user=user, model="lite")

    first = send(api, conversation).json()["assistant_message"]
    usage = first["usage"]
    expected = (Decimal(usage["prompt_tokens"]) * 2 + Decimal(usage["completion_tokens"]) * 8) / (
        Decimal(1_000_000)
    )
    assert Decimal(first["cost_cny"]) == expected.quantize(Decimal("0.000001"))

    price_lite(200, 800, since=timezone.now())
    second = send(api, conversation).json()["assistant_message"]
    assert Decimal(second["cost_cny"]) > Decimal(first["cost_cny"]) * 50
    first_now = Message.objects.get(pk=first["id"])
    assert first_now.cost_cny == Decimal(first["cost_cny"])  # the past is not rewritten


def test_an_unpriced_model_counts_tokens_and_its_cost_is_unknown(api, user, spark):
    conversation = ConversationFactory(user=user, model="lite")

    reply = send(api, conversation).json()["assistant_message"]

    assert reply["cost_cny"] is None
    usage = api.get("/api/usage/").json()
    assert usage["day"]["used"]["tokens"] == reply["usage"]["total_tokens"]


def test_a_cost_limit_refuses_once_spent(api, user, spark):
    price_lite(1000, 1000)
    site_limits(month_cost_cny=Decimal("0.5"))
    conversation = ConversationFactory(user=user, model="lite")
    assert send(api, conversation).status_code == 201

    site_limits(month_cost_cny=Decimal("0.01"))
    data = assert_json_error(send(api, conversation), 429, "quota_exceeded")
    assert (data["period"], data["kind"]) == ("month", "cost_cny")


# --- usage --------------------------------------------------------------------------------------


def test_usage_shows_each_period_with_limits_and_what_remains(api, user, spark):
    site_limits(day_messages=10, month_tokens=50_000)
    conversation = ConversationFactory(user=user, model="lite")
    reply = send(api, conversation).json()["assistant_message"]

    data = api.get("/api/usage/").json()

    assert data["time_zone"] == "Asia/Shanghai"
    assert set(data) == {"time_zone", "day", "week", "month"}
    day = data["day"]
    assert day["used"]["messages"] == 1
    assert day["used"]["prompt_tokens"] == reply["usage"]["prompt_tokens"]
    assert day["used"]["completion_tokens"] == reply["usage"]["completion_tokens"]
    assert day["limits"] == {"messages": 10, "tokens": None, "cost_cny": None}
    assert day["remaining"] == {"messages": 9, "tokens": None, "cost_cny": None}
    month_tokens = reply["usage"]["total_tokens"]
    assert data["month"]["remaining"]["tokens"] == 50_000 - month_tokens
    assert day["start"] < day["resets_at"]


def test_nobody_sees_another_users_usage(api, user, spark):
    other = UserFactory()
    ConversationFactory(user=other, model="lite")
    conversation = ConversationFactory(user=other, model="lite")
    Message.objects.create(
        conversation=conversation, seq=1, role="assistant", status="complete", charged_tokens=500
    )

    assert api.get("/api/usage/").json()["day"]["used"]["tokens"] == 0


def test_usage_needs_authentication(anon):
    assert_json_error(anon.get("/api/usage/"), 401, "not_authenticated")


# --- audit --------------------------------------------------------------------------------------


def test_staff_changes_to_a_policy_are_recorded_and_cannot_be_edited(client, spark):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    group = Group.objects.create(name="teachers")
    policy = GroupPolicy.objects.create(group=group, day_messages=10)

    response = client.post(
        f"/admin/governance/grouppolicy/{policy.pk}/change/",
        {"group": group.pk, "allowed_models": "[]", "day_messages": "20"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    change = PolicyChange.objects.get()
    assert change.actor == staff
    assert change.before["day_messages"] == 10
    assert change.after["day_messages"] == 20
    assert client.get(f"/admin/governance/policychange/{change.pk}/delete/").status_code == 403
    edit = client.post(f"/admin/governance/policychange/{change.pk}/change/", {"target": "x"})
    assert edit.status_code in (302, 403)
    change.refresh_from_db()
    assert change.target != "x"


def test_a_stream_start_frame_says_when_the_maximum_was_lowered(api, user, spark):
    site_limits(day_tokens=1500)
    conversation = ConversationFactory(user=user, model="lite")

    response = send(api, conversation, f"hi {REPLY}", stream=True)
    frames = parse_sse(b"".join(response.streaming_content))

    assert frames[0][0] == "start"
    assert frames[0][1]["notice"]["code"] == "max_tokens_lowered"


def test_a_change_to_a_users_groups_in_admin_is_recorded_with_its_author(client):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    member = UserFactory(username="member-ann")
    teachers = Group.objects.create(name="teachers")
    member.groups.add(Group.objects.create(name="students"))  # outside a request: no author

    response = client.post(
        f"/admin/accounts/user/{member.pk}/change/",
        {
            "username": member.username,
            "password": member.password,
            "is_active": "on",
            "approval_status": "approved",
            "groups": [teachers.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "00:00:00",
        },
    )

    assert response.status_code in (200, 302)
    changes = list(
        PolicyChange.objects.filter(target="groups of user member-ann").order_by("at", "pk")
    )
    assert changes[0].actor is None
    assert changes[0].after == {"groups": ["students"]}
    by_staff = [c for c in changes if c.actor == staff]
    assert by_staff, [(c.actor, c.before, c.after) for c in changes]
    assert by_staff[-1].after == {"groups": ["teachers"]}


def test_no_api_lets_a_user_change_their_own_limits_or_groups(api, user, spark):
    for method in ("put", "patch", "post", "delete"):
        assert (
            getattr(api, method)("/api/auth/me/", {"groups": [1]}, format="json").status_code == 405
        )
        assert getattr(api, method)("/api/usage/", {"used": 0}, format="json").status_code == 405
    assert not user.groups.exists()


def test_membership_changes_from_the_group_side_and_clears_are_recorded():
    ann, bob = UserFactory(username="ann-m"), UserFactory(username="bob-m")
    editors = Group.objects.create(name="editors")

    editors.user_set.add(ann, bob)
    editors.user_set.clear()

    records = {
        (c.target, tuple(c.before["groups"]), tuple(c.after["groups"]))
        for c in PolicyChange.objects.all()
    }
    assert ("groups of user ann-m", (), ("editors",)) in records
    assert ("groups of user bob-m", ("editors",), ()) in records


def test_the_admin_user_list_shows_groups_and_this_months_use(client, api, user, spark):
    price_lite(1000, 1000)
    user.groups.add(Group.objects.create(name="physics-2026"))
    conversation = ConversationFactory(user=user, model="lite")
    reply = send(api, conversation).json()["assistant_message"]
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    page = client.get("/admin/accounts/user/", {"q": user.username})

    assert page.status_code == 200
    text = page.content.decode()
    assert "physics-2026" in text
    assert f">{reply['usage']['total_tokens']}<" in text
    assert f"{Decimal(reply['cost_cny']):.2f}" in text


def test_the_refusal_speaks_the_users_language(api, user, spark):
    site_limits(week_tokens=10)
    conversation = ConversationFactory(user=user, model="lite")

    response = api.post(
        f"/api/conversations/{conversation.pk}/messages/",
        {"content": "你好"},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )

    data = assert_json_error(response, 429, "quota_exceeded")
    assert data["detail"].startswith("已达到每周词元上限")
    assert data["kind"] == "tokens"
