"""The audit trail (docs/review.md, "Audit trail"): append-only, written for every staff change
that matters (approvals, quotas, prices, providers, groups) and by the commands, readable and
filterable by staff, and changed by nobody."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from accounts.models import User
from audit import trail
from audit.models import AppendOnly, AuditEntry
from governance.models import GroupPolicy, ModelPrice
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-audit-secret-value-1234"


@pytest.fixture
def staff(client) -> User:
    person = UserFactory(username="auditor-amy", is_staff=True, is_superuser=True)
    client.force_login(person)
    return person


def entries(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("at", "pk"))


# --- append-only ---------------------------------------------------------------------------------


def test_an_entry_cannot_be_changed_or_deleted_in_code():
    entry = trail.record("test.thing", target_type="x", target_id="1")

    entry.action = "rewritten"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(action="rewritten")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.thing"


def test_nobody_can_add_edit_or_delete_an_entry_from_the_site(client, staff):
    entry = trail.record("test.thing", target_type="x", target_id="1")

    assert client.get("/admin/audit/auditentry/add/").status_code == 403
    assert client.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"action": "rewritten"})
    page = client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="action"' not in page.content  # read-only: no input
    assert AuditEntry.objects.get(pk=entry.pk).action == "test.thing"


def test_deleting_the_actor_keeps_the_entry_and_its_name():
    actor = UserFactory(username="gone-soon", is_staff=True)
    trail.record("test.thing", actor=actor, target_type="x", target_id="1")

    actor.delete()

    entry = AuditEntry.objects.get(action="test.thing")
    assert entry.actor == "gone-soon"


def test_staff_filter_the_trail_by_action_and_search_it(client, staff):
    trail.record("user.approve", target_type="accounts.user", target_id="7", target_repr="ann")
    trail.record("modelprice.change", target_type="governance.modelprice", target_id="3")

    filtered = client.get("/admin/audit/auditentry/", {"action": "user.approve"})
    searched = client.get("/admin/audit/auditentry/", {"q": "ann"})

    assert filtered.status_code == 200
    assert [e.action for e in filtered.context["cl"].result_list] == ["user.approve"]
    assert [e.action for e in searched.context["cl"].result_list] == ["user.approve"]


def test_staff_without_the_view_permission_cannot_read_the_trail(client):
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/admin/audit/auditentry/").status_code == 403


def test_a_reviewer_cannot_read_or_change_the_trail(client):
    reviewer = UserFactory(is_staff=True)
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    client.force_login(reviewer)

    assert client.get("/admin/audit/auditentry/").status_code == 403
    assert not reviewer.has_perm("audit.change_auditentry")


# --- what is recorded ---------------------------------------------------------------------------


def test_approving_users_in_admin_is_recorded_per_user(client, staff):
    waiting = [UserFactory(approval_status="pending", is_active=False) for _ in range(2)]

    response = client.post(
        "/admin/accounts/user/",
        {"action": "approve", "_selected_action": [u.pk for u in waiting]},
    )

    assert response.status_code == 302
    approved = entries("user.approve")
    assert sorted(e.target_id for e in approved) == sorted(str(u.pk) for u in waiting)
    assert {e.actor for e in approved} == {"auditor-amy"}
    assert approved[0].detail["status_before"] == "pending"
    assert approved[0].ip == "127.0.0.1"


def test_a_quota_change_is_recorded_with_before_and_after(client, staff):
    group = Group.objects.create(name="teachers")
    policy = GroupPolicy.objects.create(group=group, day_messages=10)

    response = client.post(
        f"/admin/governance/grouppolicy/{policy.pk}/change/",
        {"group": group.pk, "allowed_models": "[]", "day_messages": "20"},
    )

    assert response.status_code == 302
    (entry,) = entries("grouppolicy.change")
    assert entry.actor == "auditor-amy"
    assert entry.target_id == str(policy.pk)
    assert entry.detail["values"]["day_messages"] == [10, 20]


def test_a_new_price_is_recorded(client, staff):
    response = client.post(
        "/admin/governance/modelprice/add/",
        {
            "model_id": "lite",
            "input_per_million": "1.5",
            "output_per_million": "3",
            "effective_from_0": "2026-12-01",
            "effective_from_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:1500]
    (entry,) = entries("modelprice.add")
    assert entry.target_id == str(ModelPrice.objects.get().pk)
    assert entry.detail["values"]["input_per_million"] == [None, "1.5"]


def test_a_provider_change_is_recorded_without_its_key(client, staff):
    response = client.post(
        "/admin/conversations/provider/add/",
        {
            "name": "deepseek",
            "label": "DeepSeek",
            "dialect": "deepseek",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key": SECRET,
            "connect_timeout": "",
            "read_timeout": "",
            "enabled": "on",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
            "models-MIN_NUM_FORMS": "0",
            "models-MAX_NUM_FORMS": "1000",
        },
    )

    assert response.status_code == 302, response.content.decode()[:1500]
    (entry,) = entries("provider.add")
    assert entry.detail["values"]["api_key"] == "(changed)"
    assert SECRET not in json.dumps(entry.detail)


def test_a_change_of_groups_is_on_the_trail(client, staff):
    member = UserFactory(username="member-ben")
    teachers = Group.objects.create(name="teachers")

    member.groups.add(teachers)

    (entry,) = entries("user.groups")
    assert entry.target_repr == "member-ben"
    assert entry.detail == {"before": [], "after": ["teachers"]}


def test_load_providers_is_recorded_as_the_system(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AUDIT_TEST_KEY", SECRET)
    file = tmp_path / "providers.yaml"
    file.write_text(
        "providers:\n"
        "  - name: kimi\n"
        "    dialect: kimi\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    api_key_env: AUDIT_TEST_KEY\n"
        "    models:\n"
        "      - id: kimi-k2\n",
        encoding="utf-8",
    )

    call_command("load_providers", str(file), stdout=StringIO())
    call_command("load_providers", str(file), stdout=StringIO())  # unchanged: nothing new

    (entry,) = entries("provider.load")
    assert entry.actor == "system"
    assert entry.detail["created"]
    assert SECRET not in json.dumps(entry.detail)


def test_the_reviewer_role_has_only_review_permissions():
    reviewer = Group.objects.get(name="reviewer")
    codenames = set(reviewer.permissions.values_list("codename", flat=True))

    assert {"view_conversation", "view_reviewitem", "change_reviewitem", "add_reviewnote"} <= (
        codenames
    )
    forbidden = Permission.objects.filter(
        content_type__app_label__in=["accounts", "governance", "audit"]
    ) | Permission.objects.filter(
        codename__in=[
            "change_provider",
            "change_chatmodel",
            "delete_conversation",
            "legal_hold_conversation",
        ]
    )
    assert not set(forbidden.values_list("codename", flat=True)) & codenames
