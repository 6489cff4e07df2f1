"""Everyday chat (issue 12) in the browser: versions (edit, regenerate, ‹ n/m ›), the generated
title, stop keeps what was shown, the grouped sidebar with pins, export and share, settings
(theme, language, password), the phone header, and the page in Chinese."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from conversations.models import Conversation, Message, Share
from tests.factories import PASSWORD, ConversationFactory

from .helpers import PHONE, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WORDS = " ".join(f"word{i}" for i in range(1, 31))


def send(page, text: str) -> None:
    box = page.locator("#composer-input")
    box.fill(text)
    box.press("Enter")


def last_reply(page):
    return page.locator("li.msg--assistant").last


def user_message(page):
    return page.locator("li.msg--user").last


def test_edit_makes_a_new_version_and_the_choice_survives_a_reload(
    open_page, spark, user, screenshot_dir
):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, "First question [[reply:Answer one]]")
    expect(last_reply(page).locator(".msg__body")).to_have_text("Answer one")

    # Edit opens the text in place; Save & send answers it on a new branch.
    mine = user_message(page)
    mine.get_by_role("button", name="Edit").click()
    editor = mine.get_by_label("Edit your message")
    expect(editor).to_have_value("First question [[reply:Answer one]]")
    editor.fill("Second question [[reply:Answer two]]")
    mine.get_by_role("button", name="Save & send").click()
    expect(last_reply(page).locator(".msg__body")).to_have_text("Answer two")
    expect(page.locator("li.msg--user")).to_have_count(1)
    versions = user_message(page).get_by_role("group", name="Versions")
    expect(versions).to_contain_text("2 / 2")
    expect(versions.get_by_role("button", name="Next version")).to_be_disabled()
    page.screenshot(path=str(screenshot_dir / "branch-navigation.png"))

    # ‹ goes back to the original and its answer, from the keyboard too.
    previous = versions.get_by_role("button", name="Previous version")
    previous.focus()
    page.keyboard.press("Enter")
    expect(user_message(page).locator(".msg__text")).to_have_text(
        "First question [[reply:Answer one]]"
    )
    expect(last_reply(page).locator(".msg__body")).to_have_text("Answer one")
    expect(user_message(page).locator(".versions__label")).to_have_text("1 / 2")
    first = Message.objects.get(role="user", content__startswith="First")
    second = Message.objects.get(role="user", content__startswith="Second")
    wait_until(lambda: not Message.objects.get(pk=first.pk).replaced)
    assert Message.objects.get(pk=second.pk).replaced

    # The choice is saved: a reload shows the same branch.
    page.reload()
    expect(user_message(page).locator(".msg__text")).to_have_text(
        "First question [[reply:Answer one]]"
    )
    expect(user_message(page).locator(".versions__label")).to_have_text("1 / 2")
    user_message(page).get_by_role("button", name="Next version").click()
    expect(last_reply(page).locator(".msg__body")).to_have_text("Answer two")
    page.reload()
    expect(last_reply(page).locator(".msg__body")).to_have_text("Answer two")
    expect(user_message(page).locator(".versions__label")).to_have_text("2 / 2")
    b.watch.assert_clean()


def test_regenerate_keeps_the_earlier_reply_reachable(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    spark.reply = "The first answer."
    send(page, "Question")
    expect(last_reply(page).locator(".msg__body")).to_have_text("The first answer.")
    spark.reply = "A better second answer."
    last_reply(page).get_by_role("button", name="Regenerate").click()
    expect(last_reply(page).locator(".msg__body")).to_have_text("A better second answer.")
    expect(last_reply(page).locator(".versions__label")).to_have_text("2 / 2")
    last_reply(page).get_by_role("button", name="Previous version").click()
    expect(last_reply(page).locator(".msg__body")).to_have_text("The first answer.")
    expect(last_reply(page).locator(".versions__label")).to_have_text("1 / 2")
    expect(page.locator("li.msg--assistant")).to_have_count(1)
    page.reload()
    expect(last_reply(page).locator(".msg__body")).to_have_text("The first answer.")
    b.watch.assert_clean()


def test_the_title_frame_names_the_conversation_in_the_header_and_the_sidebar(
    open_page, spark, user, settings
):
    settings.TITLE_MODEL = "lite"
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    # The title model is asked beside the reply (the stand-in answers it with the [[reply]]
    # text of the question in its prompt); its frame comes before `done`.
    send(page, "Plan my weekend please [[reply:Weekend in Kyoto]] [[delay:1]]")
    expect(last_reply(page).locator(".msg__body")).to_have_text("Weekend in Kyoto", timeout=10_000)
    expect(page.get_by_role("button", name="Stop the reply")).to_be_hidden()
    expect(last_reply(page).get_by_role("button", name="Regenerate")).to_be_visible()
    expect(page.locator("#conversation-title")).to_have_text("Weekend in Kyoto", timeout=10_000)
    expect(page.locator("#conversation-list li.conv .conv__title").first).to_have_text(
        "Weekend in Kyoto"
    )
    wait_until(lambda: Conversation.objects.filter(title="Weekend in Kyoto").exists())
    b.watch.assert_clean()


def test_stop_keeps_exactly_what_was_shown_and_looks_stopped(
    open_page, spark, user, screenshot_dir
):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, f"Count slowly [[reply:{WORDS}]] [[interval:0.3]]")
    body = last_reply(page).locator(".msg__body")
    expect(body).to_contain_text("word3")
    page.get_by_role("button", name="Stop the reply").click()
    expect(page.get_by_role("button", name="Stop the reply")).to_be_hidden()
    badge = last_reply(page).locator(".msg__badge")
    expect(badge).to_be_visible()
    expect(badge).to_have_text("Stopped")
    expect(last_reply(page)).to_have_class(re.compile(r"\bis-stopped\b"))
    shown = body.inner_text()
    assert "word30" not in shown
    saved = wait_until(
        lambda: Message.objects.filter(role="assistant", status="interrupted").first()
    )
    # The server keeps exactly the text the page showed (give the stop call a moment).
    wait_until(lambda: Message.objects.get(pk=saved.pk).content.strip() == shown.strip())

    page.reload()
    expect(last_reply(page).locator(".msg__badge")).to_be_visible()
    assert last_reply(page).locator(".msg__body").inner_text() == shown
    page.screenshot(path=str(screenshot_dir / "stopped-reply.png"))
    b.watch.assert_clean()


def test_sidebar_groups_by_day_and_pins_on_top(open_page, spark, user, screenshot_dir):
    now = timezone.now()
    ages = {
        "Fresh today": timedelta(minutes=1),
        "From yesterday": timedelta(days=1),
        "Three days old": timedelta(days=3),
        "Last month": timedelta(days=30),
    }
    for title, age in ages.items():
        conversation = ConversationFactory(user=user, title=title)
        Conversation.objects.filter(pk=conversation.pk).update(updated_at=now - age)
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    headings = page.locator("#conversation-list .conv-group__title")
    expect(headings).to_have_text(["Today", "Yesterday", "Previous 7 days", "Earlier"])
    groups = page.locator("#conversation-list section.conv-group")
    expect(groups.nth(3).locator(".conv__title")).to_have_text(["Last month"])
    expect(groups.nth(1).locator(".conv__title")).to_have_text(["From yesterday"])

    old = page.locator("#conversation-list li.conv", has_text="Last month")
    old.hover()
    old.get_by_role("button", name="Pin “Last month”").click()
    expect(headings).to_have_text(["Pinned", "Today", "Yesterday", "Previous 7 days"])
    expect(groups.first.locator(".conv__title")).to_have_text(["Last month"])
    wait_until(lambda: Conversation.objects.get(title="Last month").pinned)
    page.screenshot(path=str(screenshot_dir / "sidebar-groups.png"))

    page.reload()
    expect(headings).to_have_text(["Pinned", "Today", "Yesterday", "Previous 7 days"])
    expect(groups.first.locator(".conv__title")).to_have_text(["Last month"])
    pinned = page.locator("#conversation-list li.conv", has_text="Last month")
    pinned.hover()
    pinned.get_by_role("button", name="Unpin “Last month”").click()
    expect(headings).to_have_text(["Today", "Yesterday", "Previous 7 days", "Earlier"])
    wait_until(lambda: not Conversation.objects.get(title="Last month").pinned)
    b.watch.assert_clean()


def test_export_menu_links_and_copy_and_time_of_messages(open_page, spark, user, screenshot_dir):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    send(page, "Hello there [[reply:General Kenobi]]")
    expect(last_reply(page).locator(".msg__body")).to_have_text("General Kenobi")
    conversation = Conversation.objects.get()
    menu = page.get_by_role("button", name="Export or share")
    menu.click()
    base = f"/api/conversations/{conversation.id}/export/?format="
    for name, fmt in (("Markdown", "md"), ("JSON", "json"), ("PDF", "pdf")):
        link = page.get_by_role("link", name=name, exact=True)
        expect(link).to_be_visible()
        expect(link).to_have_attribute("href", base + fmt)
        expect(link).to_have_attribute("download", "")
    expect(page.get_by_role("button", name="Share…")).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "export-menu.png"))
    page.keyboard.press("Escape")
    expect(page.get_by_role("link", name="Markdown", exact=True)).to_be_hidden()

    # A download with the session cookie.
    menu.click()
    with page.expect_download() as download:
        page.get_by_role("link", name="Markdown", exact=True).click()
    assert download.value.suggested_filename.endswith(".md")
    assert "General Kenobi" in Path(download.value.path()).read_text(encoding="utf-8")

    # Share: the link is shown with Copy; Stop sharing revokes it.
    menu.click()
    page.get_by_role("button", name="Share…").click()
    dialog = page.get_by_role("dialog", name="Share this conversation")
    link = dialog.get_by_label("Link")
    expect(link).to_have_value(re.compile(r"/s/"))
    share = wait_until(lambda: Share.objects.filter(revoked_at__isnull=True).first())
    assert share.token in link.input_value()
    expect(dialog.get_by_role("button", name="Copy link")).to_be_visible()
    dialog.get_by_role("button", name="Stop sharing").click()
    expect(dialog).to_contain_text("This conversation is no longer shared.")
    expect(link).to_be_hidden()
    wait_until(lambda: Share.objects.get(pk=share.pk).revoked_at is not None)
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    # User messages can be copied; hovering a message shows when it was written.
    mine = user_message(page)
    expect(mine.get_by_role("button", name="Copy message")).to_be_attached()
    expect(mine.locator(".msg__bubble")).to_have_attribute("title", re.compile(r"\d"))
    expect(last_reply(page).locator(".msg__bubble")).to_have_attribute("title", re.compile(r"\d"))
    # The picker names the model before the model list arrives: the page is rendered with it.
    client = Client()
    client.force_login(user)
    html = client.get(f"/c/{conversation.id}/").content.decode()
    assert re.search(
        r'<select id="model-select"[^>]*><option value="lite" selected>Spark Lite<', html
    )
    page.goto(b.url(f"/c/{conversation.id}/"))
    expect(page.locator("#model-select")).to_have_value("lite")
    b.watch.assert_clean()


def test_settings_panel_switches_theme_and_language(open_page, spark, user, screenshot_dir):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    html = page.locator("html")
    expect(html).not_to_have_attribute("data-theme", re.compile("."))
    page.get_by_role("button", name="Settings", exact=True).click()
    dialog = page.get_by_role("dialog", name="Settings")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Dark").check()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(dialog.get_by_role("link", name="Change password")).to_have_attribute(
        "href", "/accounts/password/"
    )
    page.screenshot(path=str(screenshot_dir / "settings-panel.png"))
    dialog.get_by_role("button", name="Done").click()
    expect(dialog).to_be_hidden()

    # Saved: the next page starts dark (applied before the first paint).
    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg != "rgb(255, 255, 255)"
    page.get_by_role("button", name="Settings", exact=True).click()
    expect(dialog.get_by_label("Dark")).to_be_checked()
    dialog.get_by_label("System").check()
    expect(html).not_to_have_attribute("data-theme", re.compile("."))
    dialog.get_by_label("Light").check()
    expect(html).to_have_attribute("data-theme", "light")

    # Language, from the same panel.
    dialog.get_by_role("button", name="中文").click()
    expect(html).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("button", name="设置", exact=True)).to_be_visible()
    b.watch.assert_clean()


def test_change_password_then_sign_in_with_the_new_one(open_page, spark, user):
    b = open_page(user=user)
    page = b.page
    page.goto(b.url("/"))
    page.get_by_role("button", name="Settings", exact=True).click()
    page.get_by_role("link", name="Change password").click()
    expect(page).to_have_url(b.url("/accounts/password/"))
    new = "a-fresh-password-42-xyz"
    page.get_by_label("Old password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(new)
    page.get_by_label("New password confirmation").fill(new)
    page.get_by_role("button", name="Change password").click()
    expect(page).to_have_url(b.url("/accounts/password/done/"))
    expect(page.get_by_role("heading", name="Password changed")).to_be_visible()

    # Signed out elsewhere: the new password signs in, the old one no longer does.
    other = open_page()
    page = other.page
    page.goto(other.url("/accounts/login/"))
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(new)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(other.url("/"))
    b.watch.assert_clean()


def test_phone_header_fits(open_page, spark, user, screenshot_dir):
    conversation = ConversationFactory(user=user, title="Weekend trip to the mountains")
    b = open_page(user=user, viewport=PHONE)
    page = b.page
    page.goto(b.url(f"/c/{conversation.id}/"))
    title = page.locator("#conversation-title")
    expect(title).to_have_text("Weekend trip to the mountains")
    expect(page.locator("#model-select")).to_be_visible()
    expect(page.get_by_role("button", name="Show the conversation list")).to_be_visible()
    box = title.bounding_box()
    assert box is not None
    assert box["width"] > 120, box
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    page.screenshot(path=str(screenshot_dir / "phone-header.png"))
    b.watch.assert_clean()


def test_chinese_page_has_no_english_leftovers(open_page, spark, user, screenshot_dir):
    b = open_page(user=user, locale="zh-CN")
    page = b.page
    page.goto(b.url("/"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    send(page, "你好 [[reply:你好，很高兴见到你。]]")
    reply = last_reply(page)
    expect(reply.locator(".msg__body")).to_have_text("你好，很高兴见到你。")
    meta = reply.locator(".msg__meta")
    expect(meta).to_contain_text("词元")
    assert "token" not in meta.inner_text().lower()
    expect(user_message(page).get_by_role("button", name="编辑")).to_be_visible()
    expect(page.locator("#conversation-list .conv-group__title").first).to_have_text("今天")
    page.get_by_role("button", name="导出或分享").click()
    expect(page.get_by_role("button", name="分享…")).to_be_visible()
    page.keyboard.press("Escape")
    page.screenshot(path=str(screenshot_dir / "chat-zh.png"))

    # The settings dialog and the password page in Chinese too.
    page.get_by_role("button", name="设置", exact=True).click()
    dialog = page.get_by_role("dialog", name="设置")
    expect(dialog.get_by_label("深色")).to_be_visible()
    expect(dialog).to_contain_text("主题")
    dialog.get_by_role("button", name="完成").click()
    expect(dialog).to_be_hidden()

    # A stopped reply in Chinese.
    send(page, f"数数 [[reply:{WORDS}]] [[interval:0.3]]")
    expect(last_reply(page).locator(".msg__body")).to_contain_text("word2")
    page.locator("#stop-button").click()
    expect(last_reply(page).locator(".msg__badge")).to_have_text("已停止")
    # The page's own words (not the conversation's text, the model names or the key names).
    visible = page.evaluate(
        """() => [
            ...[...document.querySelectorAll(
                '.msg__foot, .conv-group__title, .sidebar__foot, .composer__status, .topbar__tools'
            )].map((el) => el.innerText),
            ...[...document.querySelectorAll('button[aria-label], button[title]')]
                .flatMap((el) => [el.getAttribute('aria-label'), el.title])
                .filter((text) => text && !text.includes('“')),
        ].join(' ')"""
    )
    allowed = {"English", "Enter", "Shift", "chatsite", "Spark", "Lite", "Ultra", "Max", "Pro"}
    leftovers = [w for w in re.findall(r"\b[A-Za-z]{3,}\b", visible) if w not in allowed]
    assert not leftovers, leftovers
    b.watch.assert_clean()


def test_a_provider_error_shows_the_servers_detail_and_its_code(open_page, spark, user):
    b = open_page(user=user, locale="zh-CN")
    page = b.page
    page.goto(b.url("/"))
    send(page, "出错吧 [[upstream:11202]]")
    notice = last_reply(page).locator(".msg__notice--error")
    expect(notice).to_be_visible()
    failed = wait_until(lambda: Message.objects.filter(role="assistant", status="error").first())
    # The detail is the server's (translated on output when it can be), with the code beside it.
    api = page.evaluate(
        """async (id) => {
            const r = await fetch(`/api/conversations/${id}/messages/`);
            return (await r.json()).results.at(-1);
        }""",
        str(failed.conversation_id),
    )
    expect(notice).to_contain_text(api["error_detail"])
    expect(notice.locator(".msg__code")).to_contain_text(failed.error_code)
    expect(notice).to_contain_text("错误")
    b.watch.assert_clean()
