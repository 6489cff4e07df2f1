"""The staff's usage dashboard in admin: figures against known replies, filters, the CSV
export, and who may see it (conversations/dashboard.py, conversations/admin_dashboard.py)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, Permission

from conversations import dashboard
from conversations.models import Message
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/conversations/conversation/usage/"
EXPORT = "/admin/conversations/conversation/usage/export.csv"
SHANGHAI = ZoneInfo("Asia/Shanghai")
RANGE = {"start": "2026-11-01", "end": "2026-11-03"}


def reply(user, when: datetime, *, model="lite", tokens=100, cost="0.010000", **fields):
    conversation = ConversationFactory(user=user, model=model)
    message = MessageFactory(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        model=model,
        prompt_tokens=tokens // 4,
        completion_tokens=tokens - tokens // 4,
        total_tokens=tokens,
        charged_tokens=fields.pop("charged", tokens),
        cost_cny=None if cost is None else Decimal(cost),
        **fields,
    )
    # created_at is auto_now_add: set the moment the test needs afterwards.
    Message.objects.filter(pk=message.pk).update(created_at=when)
    return message


def local(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def people(db):
    staff_group = Group.objects.create(name="research")
    teaching = Group.objects.create(name="teaching")
    alice = UserFactory(username="alice")
    alice.groups.add(staff_group)
    bob = UserFactory(username="bob")
    bob.groups.add(staff_group, teaching)
    carol = UserFactory(username="carol")  # in no group
    reply(alice, local(1), tokens=100, cost="0.010000")
    reply(alice, local(2), model="deepseek-chat", tokens=300, cost="0.030000")
    reply(bob, local(2), tokens=50, cost="0.005000")
    # 00:30 on the 3rd in Shanghai is still the 2nd in UTC: it counts on the 3rd.
    reply(carol, local(3, 0, 30), tokens=1000, cost=None)
    reply(
        carol,
        local(3, 9),
        tokens=0,
        charged=0,
        cost="0",
        status=Message.Status.ERROR,
        error_code="upstream_timeout",
    )
    reply(
        bob,
        local(3, 10),
        tokens=20,
        cost="0.002000",
        status=Message.Status.INTERRUPTED,
        error_code="client_disconnected",
    )
    # Outside the range (the 31st of October, 23:59 in Shanghai), and a user's own message.
    reply(alice, datetime(2026, 10, 31, 23, 59, tzinfo=SHANGHAI), tokens=7777)
    MessageFactory(conversation=ConversationFactory(user=alice), role=Message.Role.USER)
    return {
        "research": staff_group,
        "teaching": teaching,
        "alice": alice,
        "bob": bob,
        "carol": carol,
    }


def figures(**params: str) -> dict:
    filters, invalid = dashboard.filters_from({**RANGE, **params})
    assert invalid == []
    return dashboard.usage_dashboard(filters)


def test_totals_and_days_count_the_range_in_the_quota_time_zone(people):
    data = figures()

    assert data["totals"] == {
        "messages": 6,
        "errors": 1,
        "prompt_tokens": 25 + 75 + 12 + 250 + 0 + 5,
        "completion_tokens": 75 + 225 + 38 + 750 + 0 + 15,
        "tokens": 1470,
        "cost_cny": "0.047000",
    }
    assert [(d["day"], d["messages"], d["tokens"], d["cost_cny"]) for d in data["days"]] == [
        ("2026-11-01", 1, 100, "0.010000"),
        ("2026-11-02", 2, 350, "0.035000"),
        ("2026-11-03", 3, 1020, "0.002000"),
    ]
    assert data["days"][2]["errors"] == 1


def test_by_model_group_user_and_error_code(people):
    data = figures()

    assert [(m["model"], m["messages"], m["tokens"]) for m in data["models"]] == [
        ("lite", 5, 1170),
        ("deepseek-chat", 1, 300),
    ]
    groups = {g["group"]: (g["messages"], g["tokens"], g["cost_cny"]) for g in data["groups"]}
    # Bob is in both groups: his replies count in each; Carol's are the "no group" row.
    assert groups == {
        "research": (4, 470, "0.047000"),
        "teaching": (2, 70, "0.007000"),
        None: (2, 1000, "0.000000"),
    }
    assert [(u["username"], u["tokens"]) for u in data["users"]] == [
        ("carol", 1000),
        ("alice", 400),
        ("bob", 70),
    ]
    assert data["errors"] == [
        {"error_code": "client_disconnected", "status": "interrupted", "count": 1},
        {"error_code": "upstream_timeout", "status": "error", "count": 1},
    ]


def test_filters_by_group_user_model_and_days(people):
    assert figures(group=str(people["teaching"].pk))["totals"]["tokens"] == 70
    assert figures(user=str(people["alice"].pk))["totals"]["tokens"] == 400
    assert figures(model="deepseek-chat")["totals"]["messages"] == 1
    one_day = figures(start="2026-11-02", end="2026-11-02")
    assert one_day["totals"]["messages"] == 2
    assert [d["day"] for d in one_day["days"]] == ["2026-11-02"]
    assert figures(start="2026-10-31", end="2026-10-31")["totals"]["tokens"] == 7777


def test_unreadable_filters_are_ignored_and_named():
    filters, invalid = dashboard.filters_from({"start": "yesterday", "group": "x", "end": ""})
    assert sorted(invalid) == ["group", "start"]
    assert (filters.end - filters.start).days == dashboard.DEFAULT_DAYS - 1
    assert filters.group_id is None


def staff_client(client, *, perm: bool = True):
    user = UserFactory(is_staff=True)
    if perm:
        user.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(user)
    return client


def test_the_page_shows_the_figures_to_staff_with_the_permission(client, people):
    response = staff_client(client).get(URL, {**RANGE, "username": "bob"})

    assert response.status_code == 200
    body = response.content.decode()
    data = json.loads(
        body.split('id="usage-dashboard-data" type="application/json">')[1].split("</script>")[0]
    )
    assert data["totals"]["tokens"] == 70
    assert data["filters"]["user"] == str(people["bob"].pk)
    assert 'id="chart-days"' in body
    assert "chart.umd.min.js" in body
    assert "<script>" not in body  # no inline script: the CSP would refuse it


@pytest.mark.parametrize("who", ["anonymous", "user", "staff_without_permission"])
def test_the_dashboard_and_export_are_refused_to_others(client, people, who):
    if who == "user":
        client.force_login(UserFactory())
    elif who == "staff_without_permission":
        staff_client(client, perm=False)
    for url in (URL, EXPORT):
        response = client.get(url)
        if who == "staff_without_permission":
            assert response.status_code == 403
        else:
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")


def test_a_superuser_sees_the_dashboard(client, people):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get(URL).status_code == 200


def read_csv(response) -> list[list[str]]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_the_csv_export_streams_rows_per_day_user_and_model(client, people):
    response = staff_client(client).get(EXPORT, RANGE)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == dashboard.CSV_HEADER
    assert rows[1:] == [
        [
            "2026-11-01",
            str(people["alice"].pk),
            "alice",
            "lite",
            "1",
            "0",
            "25",
            "75",
            "100",
            "0.010000",
        ],
        [
            "2026-11-02",
            str(people["alice"].pk),
            "alice",
            "deepseek-chat",
            "1",
            "0",
            "75",
            "225",
            "300",
            "0.030000",
        ],
        [
            "2026-11-02",
            str(people["bob"].pk),
            "bob",
            "lite",
            "1",
            "0",
            "12",
            "38",
            "50",
            "0.005000",
        ],
        ["2026-11-03", str(people["bob"].pk), "bob", "lite", "1", "0", "5", "15", "20", "0.002000"],
        [
            "2026-11-03",
            str(people["carol"].pk),
            "carol",
            "lite",
            "2",
            "1",
            "250",
            "750",
            "1000",
            "0.000000",
        ],
    ]


def test_the_csv_export_respects_the_filters(client, people):
    rows = read_csv(
        staff_client(client).get(EXPORT, {**RANGE, "group": str(people["teaching"].pk)})
    )
    assert {row[2] for row in rows[1:]} == {"bob"}
    rows = read_csv(client.get(EXPORT, {**RANGE, "model": "deepseek-chat"}))
    assert [row[3] for row in rows[1:]] == ["deepseek-chat"]


def test_a_username_that_could_run_as_a_formula_is_quoted(client, db):
    sly = UserFactory(username="=cmd")
    reply(sly, local(2))
    rows = read_csv(staff_client(client).get(EXPORT, RANGE))
    assert rows[1][2] == "'=cmd"
