"""Slow phones: every journey works with JavaScript off, and the results page keeps its
budgets on a simulated slow 3G connection (bench/pages.py prints the same figures).

Every clinic, review and account is synthetic (tests/browser/live_site.py); the
neighbourhood names are the real public NTA 2020 list, so the page weighs what it weighs.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Phone
from tests.browser.live_site import MAIN, ZIP_SEARCH, LiveSite, live_site

pytestmark = pytest.mark.browser

# WebPageTest's "3G Slow": 400 ms round trip, 400 kbit/s each way (bytes per second here),
# and a CPU 4x slower than this machine's, as Lighthouse assumes for a phone.
SLOW_3G = {"offline": False, "latency": 400, "downloadThroughput": 400_000 // 8,
           "uploadThroughput": 400_000 // 8}
CPU_SLOWDOWN = 4
RESULTS_BUDGET_BYTES = 150 * 1024
FIRST_PAINT_BUDGET_MS = 1500

FIRST_PAINT_JS = """
() => new Promise((resolve) => {
  const read = () => {
    const entry = performance.getEntriesByType('paint').find((e) => e.name === 'first-paint');
    resolve(entry ? entry.startTime : null);
  };
  if (document.readyState === 'complete') { read(); } else { addEventListener('load', read); }
})
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, neutral_site: str) -> Iterator[LiveSite]:
    """A busy directory (a full page of results, every neighbourhood name), served."""
    database = tmp_path_factory.mktemp("slow") / "slow.db"
    with live_site(database, neutral_site, busy=True) as live:
        yield live


@pytest.fixture
def no_js(open_phone: Callable[..., Phone]) -> Phone:
    """A phone with JavaScript turned off."""
    return open_phone(java_script_enabled=False)


def query_of(url: str) -> dict[str, list[str]]:
    """The query string of a URL, as lists of values."""
    return parse_qs(urlsplit(url).query)


# --- Without JavaScript -------------------------------------------------------------


def test_without_javascript_search_filter_and_open_a_clinic(site: LiveSite, no_js: Phone) -> None:
    page = no_js.page
    page.goto(site.url + "/")
    # "Use my location" needs JavaScript, so it is never shown without it.
    expect(page.get_by_role("button", name="Use my location")).to_be_hidden()
    page.get_by_label("ZIP code or neighbourhood").fill("10011")
    page.get_by_role("checkbox", name="Free", exact=True).check()
    page.get_by_role("button", name="Search", exact=True).first.click()
    page.wait_for_url("**/clinics?**")
    assert query_of(page.url)["cost"] == ["free"]
    expect(page.locator("ol.results > li.card").first).to_be_visible()
    # The map cannot draw: its box is hidden and the page says the list has everything.
    expect(page.locator(".map")).to_be_hidden()
    note = page.evaluate("(() => { const p = document.querySelector('.map-section noscript p');"
                         " return p && p.getBoundingClientRect().height > 0 ? p.textContent"
                         " : ''; })()")
    assert "Every clinic on it is also in the list" in note

    # Filters live in a <details>, which opens without JavaScript.
    page.get_by_text("Change your search or filters").click()
    page.get_by_role("checkbox", name="Spanish", exact=True).check()
    page.get_by_role("button", name="Search", exact=True).last.click()
    page.wait_for_url("**lang=es**")
    # A chip removes its filter with a plain link.
    page.get_by_role("link", name="Remove filter: Free").click()
    page.wait_for_url("**/clinics?**")
    assert "cost" not in query_of(page.url)

    page.get_by_role("link", name=MAIN, exact=True).click()
    page.wait_for_url(f"**{site.clinic()}")
    expect(page.get_by_role("heading", level=1)).to_have_text(MAIN)
    expect(page.locator("table.hours")).to_contain_text("9:00")
    no_js.assert_quiet()


def test_without_javascript_a_review_is_sent_and_withdrawn(site: LiveSite, no_js: Phone) -> None:
    page = no_js.page
    page.goto(site.url + site.clinic())
    page.get_by_role("link", name="Share how you were treated").first.click()
    page.wait_for_url("**/review")
    page.locator("#q-respect").get_by_label("Mostly").check()
    page.get_by_label("In your own words").fill("Synthetic review sent without JavaScript.")
    page.get_by_role("button", name="Send for review").click()
    expect(page.get_by_role("heading", name="Your withdrawal code")).to_be_visible()
    code = " ".join(page.locator(".code-word").all_inner_texts())
    assert len(code.split()) == 6

    page.goto(site.url + "/reviews/withdraw")
    page.get_by_label("Your withdrawal code").fill(code)
    page.get_by_role("button", name="Withdraw my review").click()
    page.wait_for_url("**/reviews/withdrawn")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your review was withdrawn")
    no_js.assert_quiet()


def test_without_javascript_quick_exit_is_still_a_link_away(site: LiveSite, no_js: Phone) -> None:
    page = no_js.page
    page.goto(site.url + site.clinic())
    page.get_by_role("link", name="Quick exit").click()
    page.wait_for_url(f"{site.neutral}/")


# --- Budgets on slow 3G ---------------------------------------------------------------


def visit_on_slow_3g(phone: Phone, url: str) -> tuple[int, float]:
    """Open a page on a cold cache over slow 3G: bytes transferred, first paint in ms."""
    cdp = phone.page.context.new_cdp_session(phone.page)
    cdp.send("Network.enable")
    sizes: list[int] = []
    cdp.on("Network.loadingFinished", lambda event: sizes.append(int(event["encodedDataLength"])))
    cdp.send("Network.emulateNetworkConditions", SLOW_3G)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    phone.page.goto(url, wait_until="load", timeout=60_000)
    first_paint = phone.page.evaluate(FIRST_PAINT_JS)
    phone.page.wait_for_load_state("networkidle")
    assert first_paint is not None
    return sum(sizes), float(first_paint)


def test_results_page_stays_under_150_kb_on_slow_3g(
    site: LiveSite, open_phone: Callable[..., Phone]
) -> None:
    runs = []
    for _ in range(3):
        phone = open_phone()
        runs.append(visit_on_slow_3g(phone, site.url + ZIP_SEARCH))
        # No tile server: every byte is "before tiles", and none left 127.0.0.1.
        assert phone.foreign_requests() == []
        assert phone.page.locator("ol.results > li.card").count() == 20
    sent = max(size for size, _ in runs)
    paints = [paint for _, paint in runs]
    # The quickest of three cold visits is the page's own cost: whatever else this machine
    # is doing (another test run, a build) can only add time, never take it away.
    first_paint = min(paints)
    # First paint is printed, not asserted: timings on a shared machine flake, so the
    # 1.5 s budget is measured and printed by bench/pages.py instead.
    print(f"results page: {sent / 1024:.1f} kB transferred, first paint {first_paint:.0f} ms "
          f"(median {statistics.median(paints):.0f} ms; budget {FIRST_PAINT_BUDGET_MS} ms)")
    assert sent < RESULTS_BUDGET_BYTES


class AccessLog(logging.Handler):
    """The site's own access log lines (method, path, status), as the server sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    """Record what reaches the server while a test runs."""
    handler = AccessLog()
    logger = logging.getLogger("caremap.access")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def test_a_second_page_reuses_the_cached_map_and_styles(
    site: LiveSite, phone: Phone, access_log: AccessLog
) -> None:
    page = phone.page
    page.goto(site.url + ZIP_SEARCH)
    page.wait_for_load_state("networkidle")
    first = list(access_log.lines)
    assert any("/static/vendor/leaflet/leaflet.js" in line for line in first)
    access_log.lines.clear()
    page.get_by_role("link", name=MAIN, exact=True).click()
    page.wait_for_url(f"**{site.clinic()}")
    page.wait_for_load_state("networkidle")
    # Leaflet, the styles and the scripts (hashed URLs) come from the phone's cache: only
    # the page itself, and at most a quick "not modified" for marker images, reach us.
    assert access_log.lines[0] == f"GET {site.clinic()} 200"
    assert [line for line in access_log.lines[1:] if not line.endswith(" 304")] == []
