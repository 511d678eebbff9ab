"""Browser fixtures: Debian's chromium through Playwright, live servers on 127.0.0.1, a phone.

Playwright never downloads a browser here: it drives /usr/bin/chromium. Outside CI a
machine without it skips these tests and says why; under CI=true that is a failure.
Every page a test opens is watched for what a person would not see: requests that leave
127.0.0.1, console errors, CSP violations, script errors and dialogs.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LOCAL_HOST = "127.0.0.1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# A mid-size phone held upright (an iPhone 12-14 sized screen).
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
    "locale": "en-US",
    "timezone_id": "America/New_York",
}

# Chromium reports CSP violations to the page only; this makes each one a console line.
# Init scripts run outside the page's CSP, so the policy under test cannot block it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " +
                (event.blockedURI || "inline") + " on " + event.documentURI);
}, true);
"""
CSP_PREFIX = "CSP violation: "


def _unavailable(reason: str) -> NoReturn:
    """Skip outside CI; under CI=true a browser test that cannot run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def launched_chromium(unavailable: Callable[[str], object] = _unavailable) -> Iterator[Browser]:
    """Debian's chromium, headless; `unavailable(reason)` when it cannot be started."""
    if not CHROMIUM.exists():
        unavailable(f"no chromium at {CHROMIUM}: install it with `apt-get install -y chromium`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (requirements-dev.txt)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless, started once for the whole run."""
    with launched_chromium() as chromium:
        yield chromium


@contextmanager
def serve(app: WSGIApplication) -> Iterator[str]:
    """Serve a WSGI app on a free port of 127.0.0.1 in a thread; yield its base URL."""
    server = make_server(LOCAL_HOST, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


NEUTRAL_PAGE = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Weather</title>"
    b"<link rel='icon' href='data:,'></head><body><h1>Neutral weather page</h1>"
    b"<p>Local forecast: mild.</p></body></html>"
)


def neutral_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A stand-in for the neutral site quick exit leaves for: one plain page at any path."""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Cache-Control", "no-store")])
    return [NEUTRAL_PAGE]


@pytest.fixture(scope="session")
def neutral_site() -> Iterator[str]:
    """Base URL of the neutral site, on 127.0.0.1 like everything these tests touch."""
    with serve(neutral_app) as url:
        yield url


@dataclass
class Phone:
    """A page on a phone-sized screen, with a record of what it did behind the scenes."""

    page: Page
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        if message.text.startswith(CSP_PREFIX):
            self.csp_violations.append(message.text)
        else:
            self.console_errors.append(f"{message.text} ({message.location.get('url')})")

    def _on_dialog(self, dialog: Dialog) -> None:
        # Dismiss so the page does not hang; the record is what fails the test.
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def watch(self) -> Phone:
        """Start recording requests, console errors, CSP violations and dialogs."""
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("dialog", self._on_dialog)
        return self

    def foreign_requests(self) -> list[str]:
        """Requests to any host but 127.0.0.1 (data: URLs never leave the phone)."""
        return [url for url in self.requests
                if not url.startswith("data:") and urlsplit(url).hostname != LOCAL_HOST]

    def assert_quiet(self) -> None:
        """Nothing went wrong behind the scenes on any page this phone opened."""
        assert self.foreign_requests() == []
        assert self.csp_violations == []
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.dialogs == []

    def screenshot(self, name: str) -> Path:
        """Save the whole page as test-artifacts/<name>.png, for a person to look at."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def open_phone(browser: Browser) -> Iterator[Callable[..., Phone]]:
    """Open a watched page in a fresh phone context (extra context options allowed)."""
    contexts: list[BrowserContext] = []

    def open_(**options: Any) -> Phone:
        context = browser.new_context(**{**PHONE, **options})
        context.set_default_timeout(10_000)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        contexts.append(context)
        return Phone(context.new_page()).watch()

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def phone(open_phone: Callable[..., Phone]) -> Phone:
    """A watched page on a phone, with no permissions granted."""
    return open_phone()
