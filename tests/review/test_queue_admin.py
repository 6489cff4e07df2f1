"""The review queue in Django admin (review/admin.py): filters, claims that expire, notes, bulk
actions that honour the list's filters, the audit trail of each, and the reviewer role."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditEntry
from conversations.models import Conversation, Message
from review import roles
from review.models import Label, ReviewItem, ReviewNote, ReviewSettings
from tests.factories import ConversationFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

QUEUE = "/admin/review/reviewitem/"


def item_url(item: ReviewItem, suffix: str = "change/") -> str:
    return f"{QUEUE}{item.pk}/{suffix}"


def make_reviewer(username: str = "rita") -> object:
    roles.ensure_reviewer_role()
    user = UserFactory(username=username, is_staff=True)
    user.groups.add(Group.objects.get(name=roles.REVIEWER_GROUP))
    return user


@pytest.fixture
def reviewer(client):
    user = make_reviewer()
    client.force_login(user)
    return user


def make_item(
    *,
    title: str = "A chat",
    model: str = "lite",
    owner=None,
    source: str = ReviewItem.Source.KEYWORD,
    status: str = ReviewItem.Status.NEW,
    severity: str = ReviewItem.Severity.MEDIUM,
    detail: str = "",
    with_message: bool = True,
) -> ReviewItem:
    conversation = ConversationFactory(
        title=title, model=model, **({"user": owner} if owner else {})
    )
    MessageFactory(conversation=conversation, seq=1, content=f"question in {title}")
    reply = MessageFactory(
        conversation=conversation, seq=2, role=Message.Role.ASSISTANT, content=f"reply in {title}"
    )
    return ReviewItem.objects.create(
        conversation=conversation,
        message=reply if with_message else None,
        source=source,
        status=status,
        severity=severity,
        detail=detail,
    )


def listed(html: str) -> set[str]:
    """The conversation titles of the queue's rows."""
    rows = re.findall(r'<tr[^>]*>\s*<td class="action-checkbox">.*?</tr>', html, re.S)
    titles = set()
    for row in rows:
        match = re.search(r'class="field-conversation_title">(.*?)</td>', row, re.S)
        assert match
        titles.add(match.group(1).strip())
    return titles


def item_form(item: ReviewItem, **overrides: object) -> dict[str, object]:
    """The item's change form as the browser posts it, notes inline included."""
    notes = list(item.notes.order_by("pk"))
    data: dict[str, object] = {
        "status": item.status,
        "severity": item.severity,
        "labels": [str(pk) for pk in item.labels.values_list("pk", flat=True)],
        "assignee": str(item.assignee_id or ""),
        "resolution": item.resolution,
        "notes-TOTAL_FORMS": str(len(notes) + 1),
        "notes-INITIAL_FORMS": str(len(notes)),
        "notes-MIN_NUM_FORMS": "0",
        "notes-MAX_NUM_FORMS": "1000",
        f"notes-{len(notes)}-item": str(item.pk),
        f"notes-{len(notes)}-body": "",
        f"notes-{len(notes)}-message": "",
        "_save": "Save",
    }
    for index, note in enumerate(notes):
        data[f"notes-{index}-id"] = str(note.pk)
        data[f"notes-{index}-item"] = str(item.pk)
    if "note" in overrides:
        data[f"notes-{len(notes)}-body"] = overrides.pop("note")
    if "note_message" in overrides:
        data[f"notes-{len(notes)}-message"] = str(overrides.pop("note_message"))
    data.update(overrides)
    return data


def actions(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


# -- the list and its filters ------------------------------------------------------------------


def test_the_queue_lists_items_with_owner_model_labels_and_claim(client, reviewer):
    owner = UserFactory(username="owner-olga")
    item = make_item(title="Refund dispute", model="max-32k", owner=owner)
    item.labels.add(Label.objects.create(name="pii"), Label.objects.create(name="abuse"))
    item.claimed_by, item.claimed_until = reviewer, timezone.now() + timedelta(minutes=5)
    item.save()

    html = client.get(QUEUE).content.decode()

    row = next(r for r in re.findall(r"<tr[^>]*>.*?</tr>", html, re.S) if "Refund dispute" in r)
    for shown in ("owner-olga", "max-32k", "abuse, pii", "rita until", "keyword", "medium", "new"):
        assert shown in row, shown


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "in_review"}, {"In review one"}),
        ({"source__exact": "feedback"}, {"Feedback one"}),
        ({"severity__exact": "high"}, {"High one"}),
        ({"model": "deepseek-chat"}, {"Deepseek one"}),
        ({"q": "needle"}, {"Detail one"}),
    ],
)
def test_the_queue_filters(client, reviewer, params, expected):
    make_item(title="In review one", status=ReviewItem.Status.IN_REVIEW)
    make_item(title="Feedback one", source=ReviewItem.Source.FEEDBACK)
    make_item(title="High one", severity=ReviewItem.Severity.HIGH)
    make_item(title="Deepseek one", model="deepseek-chat")
    make_item(title="Detail one", detail="matched needle")

    html = client.get(QUEUE, params).content.decode()

    assert listed(html) == expected


def test_the_queue_filters_by_label_assignee_group_and_date(client, reviewer):
    research = Group.objects.create(name="research")
    member = UserFactory(username="member")
    member.groups.add(research)
    labelled = make_item(title="Labelled")
    label = Label.objects.create(name="pii")
    labelled.labels.add(label)
    assigned = make_item(title="Assigned")
    assigned.assignee = reviewer
    assigned.save()
    make_item(title="Of the group", owner=member)
    old = make_item(title="Old one")
    ReviewItem.objects.filter(pk=old.pk).update(
        created_at=timezone.now().replace(year=2024, month=3, day=15)
    )

    def titles(**params: object) -> set[str]:
        return listed(client.get(QUEUE, params).content.decode())

    assert titles(labels__id__exact=label.pk) == {"Labelled"}
    assert titles(assignee__id__exact=reviewer.pk) == {"Assigned"}
    assert titles(group=research.pk) == {"Of the group"}
    assert titles(created_at__year=2024) == {"Old one"}
    assert titles() == {"Labelled", "Assigned", "Of the group", "Old one"}
    # The filters offer the models and groups to choose from.
    html = client.get(QUEUE).content.decode()
    assert "?group=" in html
    assert "?model=lite" in html


def test_the_queue_does_not_query_per_row(client, reviewer):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(QUEUE).status_code == 200
        return len(queries)

    label = Label.objects.create(name="pii")
    for n in range(3):
        make_item(title=f"first {n}").labels.add(label)
    few = count()
    for n in range(15):
        item = make_item(title=f"more {n}")
        item.labels.add(label)
        item.assignee = reviewer
        item.claimed_by, item.claimed_until = reviewer, timezone.now() + timedelta(minutes=5)
        item.save()

    assert count() == few


def test_the_queue_list_stays_within_a_fixed_number_of_queries(
    client, reviewer, django_assert_max_num_queries
):
    for n in range(25):
        make_item(title=f"chat {n}").labels.add(Label.objects.get_or_create(name=f"l{n % 3}")[0])

    with django_assert_max_num_queries(20):
        assert client.get(QUEUE).status_code == 200


# -- claims ------------------------------------------------------------------------------------


def test_claiming_locks_the_item_for_others_until_it_expires(client, reviewer):
    item = make_item(title="Claimed one")
    other = make_reviewer("otto")

    response = client.post(item_url(item, "claim/"))

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.claimed_by == reviewer
    assert item.status == ReviewItem.Status.IN_REVIEW
    length = ReviewItem.claim_length()
    assert timezone.now() + length - timedelta(seconds=30) < item.claimed_until
    assert item.claimed_until <= timezone.now() + length
    (entry,) = actions("review.claim")
    assert (entry.actor, entry.target_id) == ("rita", str(item.pk))

    # Otto reads the item, sees who holds it, cannot claim or change it.
    client.force_login(other)
    page = client.get(item_url(item)).content.decode()
    assert "Claimed by rita until" in page
    refused = client.post(item_url(item, "claim/"), follow=True).content.decode()
    assert "rita has claimed this item until" in refused.lower()
    response = client.post(item_url(item), item_form(item, status="resolved", note="mine"))
    assert response.status_code == 200
    assert "rita has claimed this item until" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.IN_REVIEW
    assert item.claimed_by == reviewer
    assert not item.notes.exists()

    # The claim expires on its own: then Otto may change and claim it.
    ReviewItem.objects.filter(pk=item.pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    item.refresh_from_db()
    assert item.claim_holder() is None
    assert "Not claimed" in client.get(item_url(item)).content.decode()
    response = client.post(item_url(item), item_form(item, severity="high"))
    assert response.status_code == 302
    client.post(item_url(item, "claim/"))
    item.refresh_from_db()
    assert (item.severity, item.claimed_by) == ("high", other)


def test_the_holder_releases_the_claim_and_no_one_else_can(client, reviewer):
    item = make_item()
    client.post(item_url(item, "claim/"))
    other = make_reviewer("otto")

    client.force_login(other)
    client.post(item_url(item, "release/"))
    item.refresh_from_db()
    assert item.claimed_by == reviewer

    client.force_login(reviewer)
    client.post(item_url(item, "release/"))
    item.refresh_from_db()
    assert item.claimed_by is None
    assert item.claimed_until is None
    assert [e.actor for e in actions("review.release")] == ["rita"]
    # Claim and release only by POST.
    assert client.get(item_url(item, "claim/")).status_code == 405


# -- the item's page: fields, notes, transcript --------------------------------------------------


def test_notes_get_their_author_and_time_and_stay_read_only(client, reviewer):
    item = make_item(title="Noted")
    reply = item.message
    before = timezone.now()

    response = client.post(
        item_url(item), item_form(item, note="Looks like spam.", note_message=reply.pk)
    )

    assert response.status_code == 302
    note = ReviewNote.objects.get(item=item)
    assert (note.author, note.body, note.message) == (reviewer, "Looks like spam.", reply)
    assert before <= note.created_at <= timezone.now()
    (entry,) = actions("review.note")
    assert entry.target_id == str(item.pk)
    assert entry.detail["body"] == "Looks like spam."

    # A second note by another reviewer; the first can be neither edited nor deleted.
    other = make_reviewer("otto")
    client.force_login(other)
    form = item_form(item, note="Agreed.")
    form["notes-0-body"] = "rewritten"
    form["notes-0-DELETE"] = "on"
    assert client.post(item_url(item), form).status_code == 302
    notes = list(item.notes.order_by("created_at"))
    assert [(n.body, n.author.username) for n in notes] == [
        ("Looks like spam.", "rita"),
        ("Agreed.", "otto"),
    ]
    html = client.get(item_url(item)).content.decode()
    assert not re.search(r'name="notes-0-(body|DELETE)"', html)
    assert 'name="notes-2-body"' in html
    # Each note shows beside the message it concerns in the transcript, with author and time.
    assert re.search(r"rita · \d{4}-\d\d-\d\d \d\d:\d\d", html)


def test_the_item_page_shows_the_transcript_with_the_items_message_highlighted(client, reviewer):
    item = make_item(title="Shown", detail="matched badword")
    other = ReviewItem.objects.create(
        conversation=item.conversation, source=ReviewItem.Source.SAMPLE, detail="1% sample"
    )

    response = client.get(item_url(item))

    html = response.content.decode()
    html = html[html.index('<section class="tx"') :]
    assert "reply in Shown" in html
    assert "question in Shown" in html
    highlighted = re.findall(r'<div class="tx-row is-highlighted[^"]*" id="message-([^"]+)"', html)
    assert highlighted == [str(item.message_id)]
    assert "matched badword" in html
    # The whole-conversation item is at the top of the transcript, before the first message.
    assert html.index("1% sample") < html.index("question in Shown")
    assert f"/admin/review/reviewitem/{other.pk}/change/" in html
    # Reading the item is reading the transcript: on the trail.
    (entry,) = actions("transcript.view")
    assert entry.target_id == str(item.conversation_id)
    assert entry.detail == {"review_item": item.pk}


def test_resolving_sets_resolved_at_and_reopening_clears_it(client, reviewer):
    item = make_item()
    client.post(item_url(item, "claim/"))
    item.refresh_from_db()

    response = client.post(
        item_url(item), item_form(item, status="resolved", resolution="Warned the user.")
    )

    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "resolved"
    assert item.resolved_at is not None
    assert item.resolution == "Warned the user."
    assert item.claimed_by is None  # done: the claim goes
    (entry,) = actions("reviewitem.change")
    assert entry.detail["values"]["status"] == ["in_review", "resolved"]

    client.post(item_url(item), item_form(item, status="in_review"))
    item.refresh_from_db()
    assert item.resolved_at is None


def test_assignee_choices_are_staff_only(client, reviewer):
    item = make_item()
    UserFactory(username="plain-user")

    html = client.get(item_url(item)).content.decode()

    select = re.search(r'<select name="assignee".*?</select>', html, re.S).group(0)
    assert "rita" in select
    assert "plain-user" not in select


# -- bulk actions ------------------------------------------------------------------------------


def test_assign_to_asks_whom_then_assigns_and_audits(client, reviewer):
    first, second = make_item(title="One"), make_item(title="Two")
    make_item(title="Not selected")
    colleague = make_reviewer("otto")
    selected = [str(first.pk), str(second.pk)]

    page = client.post(QUEUE, {"action": "assign_to", "_selected_action": selected})

    assert page.status_code == 200
    html = page.content.decode()
    assert '<select name="assignee"' in html
    assert "Not selected" not in html
    done = client.post(
        QUEUE,
        {
            "action": "assign_to",
            "_selected_action": selected,
            "assignee": str(colleague.pk),
            "apply": "Assign",
        },
    )
    assert done.status_code == 302
    assert set(ReviewItem.objects.filter(assignee=colleague).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    (entry,) = actions("review.assign")
    assert sorted(entry.detail["items"]) == sorted([first.pk, second.pk])
    assert entry.detail["assignee"] == "otto"
    assert entry.actor == "rita"


def test_assign_to_me_and_dismiss(client, reviewer):
    first, second = make_item(), make_item()

    client.post(QUEUE, {"action": "assign_to_me", "_selected_action": [str(first.pk)]})
    client.post(QUEUE, {"action": "dismiss", "_selected_action": [str(second.pk)]})

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.assignee == reviewer
    assert second.status == "dismissed"
    assert second.resolved_at is not None
    assert [e.detail["items"] for e in actions("review.assign")] == [[first.pk]]
    assert [e.detail["items"] for e in actions("review.dismiss")] == [[second.pk]]


def test_select_all_resolves_only_what_the_filters_show(client, reviewer):
    news = [make_item(title=f"new {n}") for n in range(3)]
    in_review = make_item(title="being read", status=ReviewItem.Status.IN_REVIEW)
    filtered = f"{QUEUE}?status__exact=new"
    # "Select all 3": the page's checkboxes plus select_across.
    across = {"action": "resolve", "select_across": "1", "_selected_action": [str(news[0].pk)]}

    page = client.post(filtered, across)

    assert page.status_code == 200
    html = page.content.decode()
    assert set(re.findall(r'name="_selected_action" value="(\d+)"', html)) == {
        str(i.pk) for i in news
    }
    assert "being read" not in html
    done = client.post(
        filtered,
        {
            "action": "resolve",
            "_selected_action": [str(i.pk) for i in news],
            "resolution": "Spam, user warned.",
            "apply": "Resolve",
        },
    )
    assert done.status_code == 302
    for item in news:
        item.refresh_from_db()
        assert (item.status, item.resolution) == ("resolved", "Spam, user warned.")
        assert item.resolved_at is not None
    in_review.refresh_from_db()
    assert in_review.status == "in_review"
    (entry,) = actions("review.resolve")
    assert sorted(entry.detail["items"]) == sorted(i.pk for i in news)


def test_select_all_of_a_filtered_list_dismisses_only_the_filtered(client, reviewer):
    lite = [make_item(title=f"lite {n}") for n in range(2)]
    other = make_item(title="deepseek", model="deepseek-chat")

    client.post(
        f"{QUEUE}?model=lite",
        {"action": "dismiss", "select_across": "1", "_selected_action": [str(lite[0].pk)]},
    )

    assert set(ReviewItem.objects.filter(status="dismissed").values_list("pk", flat=True)) == {
        i.pk for i in lite
    }
    other.refresh_from_db()
    assert other.status == "new"


def test_bulk_actions_skip_items_someone_else_has_claimed(client, reviewer):
    free, held = make_item(), make_item()
    otto = make_reviewer("otto")
    ReviewItem.objects.filter(pk=held.pk).update(
        claimed_by=otto, claimed_until=timezone.now() + timedelta(minutes=5)
    )

    response = client.post(
        QUEUE, {"action": "dismiss", "_selected_action": [str(free.pk), str(held.pk)]}, follow=True
    )

    assert "1 items skipped: someone else has claimed them." in response.content.decode()
    assert ReviewItem.objects.get(pk=free.pk).status == "dismissed"
    assert ReviewItem.objects.get(pk=held.pk).status == "new"
    (entry,) = actions("review.dismiss")
    assert entry.detail["skipped_claimed"] == [held.pk]


# -- flagging from the conversation list -------------------------------------------------------


def test_flag_for_review_queues_a_manual_item_once(client, reviewer):
    conversation = ConversationFactory(title="Suspicious")

    for _ in range(2):
        client.post(
            "/admin/conversations/conversation/",
            {"action": "flag_for_review", "_selected_action": [str(conversation.pk)]},
        )

    (item,) = ReviewItem.objects.filter(conversation=conversation)
    assert item.source == ReviewItem.Source.MANUAL
    assert item.message is None
    assert "rita" in item.detail
    assert [e.detail["items"] for e in actions("review.flag")] == [[item.pk], []]


def test_flag_for_review_is_offered_only_to_those_who_work_the_queue(client):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_conversation"))
    ConversationFactory()
    client.force_login(viewer)
    assert (
        "flag_for_review" not in client.get("/admin/conversations/conversation/").content.decode()
    )

    client.force_login(make_reviewer())
    assert "flag_for_review" in client.get("/admin/conversations/conversation/").content.decode()


# -- labels, keywords, settings ----------------------------------------------------------------


def test_review_settings_is_one_row_never_deleted(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    ReviewSettings.get()

    assert client.get("/admin/review/reviewsettings/add/").status_code == 403
    assert client.get("/admin/review/reviewsettings/1/delete/").status_code == 403
    response = client.post("/admin/review/reviewsettings/1/change/", {"sample_percent": "2.5"})
    assert response.status_code == 302
    assert str(ReviewSettings.get().sample_percent) == "2.50"
    (entry,) = actions("reviewsettings.change")
    assert entry.detail["values"]["sample_percent"][1] == "2.5"


def test_keyword_and_label_changes_are_audited(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    client.post(
        "/admin/review/flagkeyword/add/", {"phrase": "refund", "severity": "high", "enabled": "on"}
    )
    client.post("/admin/review/label/add/", {"name": "spam"})

    assert [e.target_repr for e in actions("flagkeyword.add")] == ["refund"]
    assert [e.target_repr for e in actions("label.add")] == ["spam"]


# -- the reviewer role -------------------------------------------------------------------------


def test_a_reviewer_works_the_queue_and_reads_transcripts(client, reviewer):
    item = make_item(title="Work me")

    assert client.get(QUEUE).status_code == 200
    assert client.post(item_url(item, "claim/")).status_code == 302
    item.refresh_from_db()
    assert item.claimed_by == reviewer
    response = client.post(item_url(item), item_form(item, note="Checked.", status="resolved"))
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "resolved"
    assert item.notes.get().author == reviewer
    transcript = client.get(f"/admin/conversations/conversation/{item.conversation_id}/change/")
    assert transcript.status_code == 200
    assert "reply in Work me" in transcript.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/admin/accounts/user/{user}/change/",
        "/admin/accounts/user/",
        "/admin/governance/sitepolicy/",
        "/admin/governance/grouppolicy/",
        "/admin/governance/userpolicy/",
        "/admin/governance/modelprice/",
        "/admin/conversations/provider/",
        "/admin/conversations/provider/add/",
        "/admin/conversations/chatmodel/",
        "/admin/auth/group/",
    ],
)
def test_a_reviewer_cannot_touch_users_quotas_or_providers(client, reviewer, url):
    other = UserFactory()

    assert client.get(url.format(user=other.pk)).status_code == 403


def test_a_reviewer_cannot_delete_a_conversation(client, reviewer):
    item = make_item(title="Keep me")
    url = f"/admin/conversations/conversation/{item.conversation_id}/delete/"

    assert client.get(url).status_code == 403
    assert client.post(url, {"reason": "because"}).status_code == 403
    assert Conversation.objects.filter(pk=item.conversation_id).exists()
    html = client.get(f"/admin/conversations/conversation/{item.conversation_id}/change/")
    assert "deletelink" not in html.content.decode()
