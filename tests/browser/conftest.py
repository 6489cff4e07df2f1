"""Browser tests: Debian's chromium, driven by Playwright's sync API, against the live server.

The live server and the loopback Spark server are threads of this process. Playwright's sync API
runs an event loop in the test thread, so Django's "no ORM call inside a running loop" guard must
be lifted for the ORM calls the tests make themselves.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.test import Client

from .helpers import DESKTOP

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        skip = pytest.mark.skip(reason=f"no chromium at {CHROMIUM}")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _browser_settings(settings) -> None:
    # Tests send more messages a minute than the production limit allows.
    settings.CHAT_RATE_LIMIT = "1000/m"


@dataclass
class Watch:
    """What a page did: console messages, uncaught errors, dialogs and every request."""

    origin: str
    console: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    # Some tests provoke HTTP errors on purpose (503 with no model configured): chromium logs
    # each as "Failed to load resource", which is then expected.
    allow_http_errors: bool = False

    def console_errors(self) -> list[str]:
        errors = [text for kind, text in self.console if kind == "error"]
        if self.allow_http_errors:
            errors = [text for text in errors if "Failed to load resource" not in text]
        return errors

    def csp_violations(self) -> list[str]:
        return [
            text for _, text in self.console if re.search(r"Content.Security.Policy", text, re.I)
        ]

    def foreign_requests(self) -> list[str]:
        foreign = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if f"{parts.scheme}://{parts.netloc}" != self.origin:
                foreign.append(url)
        return foreign

    def assert_clean(self) -> None:
        assert not self.errors, f"uncaught errors in the page: {self.errors}"
        assert not self.dialogs, f"dialogs opened: {self.dialogs}"
        assert not self.csp_violations(), f"CSP violations: {self.csp_violations()}"
        assert not self.console_errors(), f"console errors: {self.console_errors()}"
        assert not self.foreign_requests(), f"requests outside the site: {self.foreign_requests()}"


@dataclass
class Browsing:
    page: object
    context: object
    watch: Watch
    base: str

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def open_page(browser, live_server) -> Iterator[Callable[..., Browsing]]:
    """Factory: a fresh browser context (own cookies), watched from its first request."""
    contexts = []
    watches = []

    def make(
        *, user=None, locale: str = "en-US", color_scheme: str = "light", viewport=DESKTOP
    ) -> Browsing:
        context = browser.new_context(
            locale=locale, color_scheme=color_scheme, viewport=viewport, service_workers="block"
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        origin = live_server.url.rstrip("/")
        watch = Watch(origin=origin)
        watches.append(watch)
        context.on("request", lambda request: watch.requests.append(request.url))
        if user is not None:
            client = Client()
            client.force_login(user)
            host = urlsplit(origin).hostname
            context.add_cookies(
                [
                    {"name": name, "value": morsel.value, "domain": host, "path": "/"}
                    for name, morsel in client.cookies.items()
                ]
            )
        page = context.new_page()
        page.on("console", lambda message: watch.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: watch.errors.append(str(error)))

        def on_dialog(dialog) -> None:
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return Browsing(page=page, context=context, watch=watch, base=origin)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
