"""An XSS corpus of over 200 payloads, in every text field, checked in Chromium.

The corpus (tests/fixtures/xss_payloads.txt: script tags, event handlers, script URLs,
SVG and MathML, broken markup, template and string breakouts, CSS, Unicode tricks) fills
every text field an import or a person can fill: clinic, organisation and source fields,
review texts, suggestions, neighbourhood names, the search box and every public form. Then
Chromium opens every page, map popup and JSON response that shows them, and on each:

- nothing ran: window.alert, confirm, prompt, print and a `top.__xss(n)` sentinel are
  hooked before any page script and must never be called; no dialog, console error, script
  error or CSP violation (a payload the CSP blocked still means it was not escaped);
- nothing was injected: no event-handler attribute, script URL, foreign script or style,
  frame, SVG outside the map, unknown element or "xss" marker anywhere in the DOM;
- the text is shown escaped: each payload is in the page's text (or an input's value)
  exactly as typed, so none of it was parsed as markup; JSON gives it back unchanged.

Every clinic, review, suggestion, neighbourhood and account is synthetic (xss_seed.py),
made only in this module's scratch SQLite files.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pyotp
import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Page

from directory import create_app, hsds, suggestions
from directory.api import clinic_detail
from directory.extensions import db
from directory.geo import find_neighbourhood
from directory.importer import run_import
from directory.models import ACTIVE, PENDING, PUBLISHED, Location, Review, Suggestion
from directory.public import address_line, safe_website
from directory.reviews import clean_text
from tests.browser.conftest import PHONE, REPORT_CSP_VIOLATIONS, Phone, serve
from tests.browser.live_site import settings_for
from tests.browser.xss_seed import (
    MODERATOR_NAME,
    RICH_FIELDS,
    SENTINEL,
    Seeded,
    can_run,
    load_payloads,
    payloads_by_category,
    seed,
)
from tests.factories import make_clinic, make_source
from tests.moderation_helpers import PASSWORD

pytestmark = pytest.mark.browser

PAYLOADS = load_payloads()
RICH_COUNT = math.ceil(len(PAYLOADS) / len(RICH_FIELDS))
PER_PAGE = 100  # results per page: three pages list every clinic
IMPORT_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "import"

# Runs before any page script, in every frame: the functions a payload would call count
# their calls, and each call is also a console error so no navigation can hide it.
SENTINELS = """
(() => {
  const hits = [];
  Object.defineProperty(window, "__xssHits", {value: hits});
  const hook = (name) => function () {
    const args = Array.prototype.map.call(arguments, String).join(",");
    hits.push(name + "(" + args + ")");
    console.error("XSS sentinel called: " + name + "(" + args + ")");
  };
  window.__xss = hook("__xss");
  for (const name of ["alert", "confirm", "prompt", "print"]) { window[name] = hook(name); }
})();
"""

# Everything in the DOM that only an injected payload could have put there.
INJECTED_JS = """
() => {
  const SVG = "http://www.w3.org/2000/svg";
  const URLS = ["href", "src", "action", "formaction", "data", "xlink:href", "poster",
                "background", "srcset", "codebase", "dynsrc", "lowsrc"];
  const NEVER = ["iframe", "frame", "frameset", "object", "embed", "applet", "base", "portal",
                 "math", "marquee", "xmp", "plaintext", "keygen", "bgsound", "isindex",
                 "image", "video", "audio", "source", "track", "picture", "dialog", "noembed",
                 "meter", "template"];
  const found = [];
  const say = (el, why) => found.push(why + ": " + el.outerHTML.slice(0, 160));
  for (const el of document.querySelectorAll("*")) {
    const tag = el.localName;
    for (const attr of el.attributes) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on")) { say(el, "event handler " + name); }
      if (name === "srcdoc") { say(el, "srcdoc"); }
      if (URLS.includes(name) && /^[\\s\\u0000-\\u001f]*(javascript|vbscript|data:(?!,$))/i
          .test(attr.value)) { say(el, "script URL in " + name); }
      if (name === "style" && /expression|javascript:|url\\(/i.test(attr.value)) {
        say(el, "style vector");
      }
    }
    if (NEVER.includes(tag)) { say(el, "element never in our pages"); }
    if (tag === "script" && !el.nonce) { say(el, "script without this page's nonce"); }
    if (tag === "style" && !el.nonce) { say(el, "style element without nonce"); }
    if (tag === "meta" && el.httpEquiv) { say(el, "meta http-equiv"); }
    if (tag === "link" && el.parentElement !== document.head) { say(el, "link in body"); }
    if (el.namespaceURI === SVG && !el.closest(".leaflet-container")) { say(el, "svg"); }
    if (el instanceof HTMLUnknownElement) { say(el, "unknown element"); }
    if (/xss/i.test((el.id || "") + " " + (el.getAttribute("class") || "") + " " +
                    (el.getAttribute("name") || ""))) { say(el, "xss marker"); }
  }
  return found;
}
"""

# The page's text as a reader gets it, without script, style and template contents.
PAGE_TEXT_JS = """
() => {
  const body = document.body.cloneNode(true);
  body.querySelectorAll("script, style, template, noscript").forEach((el) => el.remove());
  return body.textContent;
}
"""

# The text of each element matching a selector, without screen-reader-only additions.
TEXTS_JS = """
(selector) => Array.from(document.querySelectorAll(selector)).map((el) => {
  const copy = el.cloneNode(true);
  copy.querySelectorAll(".visually-hidden").forEach((hidden) => hidden.remove());
  return copy.textContent;
})
"""

# Opens every clinic marker's popup, as a tap would, and reads it. A clustered marker is
# first moved out of its cluster onto the map, so each popup is built by clinic-map.js.
POPUPS_JS = """
() => {
  const map = window[document.querySelector(".map").id];
  let group = null;
  const markers = [];
  map.eachLayer((layer) => {
    if (L.MarkerClusterGroup && layer instanceof L.MarkerClusterGroup) {
      group = layer;
      markers.push(...layer.getLayers());
    }
  });
  if (!group) { map.eachLayer((layer) => { if (layer instanceof L.Marker) markers.push(layer); }); }
  const read = [];
  for (const marker of markers) {
    if (group) { group.removeLayer(marker); marker.addTo(map); }
    marker.openPopup();
    const box = marker.getPopup().getElement().querySelector(".map-popup");
    read.push({title: marker.getElement().title, alt: marker.getElement().alt,
               lines: Array.from(box.children, (el) => el.textContent),
               tags: Array.from(box.querySelectorAll("*"), (el) => el.localName),
               links: Array.from(box.querySelectorAll("a"), (a) => a.getAttribute("href"))});
    marker.closePopup();
  }
  return read;
}
"""

HREFS_JS = "() => Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))"

INPUT_VALUES_JS = """
() => Object.fromEntries(Array.from(document.querySelectorAll(
  "input[type=text], input:not([type]), textarea")).map((el) => [el.id || el.name, el.value]))
"""


def shown(text: str) -> str:
    """Text as compared: HTML's whitespace runs made one space (only those five)."""
    return re.sub(r"[ \t\n\r\f]+", " ", text).strip()


def missing(expected: Iterable[str], text: str) -> list[str]:
    """The expected strings that are not in the text, exactly."""
    have = shown(text)
    return [item for item in dict.fromkeys(expected) if item and shown(item) not in have]


# --- The browser side ---------------------------------------------------------------------


@dataclass
class Tab:
    """A watched phone page on the live site, checked for escaping after every load."""

    phone: Phone
    base: str

    @property
    def page(self) -> Page:
        return self.phone.page

    def open(self, path: str, status: int | tuple[int, ...] = 200) -> Any:
        """Go to a path, let its map draw, and check nothing ran or was injected."""
        response = self.page.goto(self.base + path, wait_until="load")
        assert response is not None
        self.expect_status(response.status, status, response.url)
        self.settle()
        self.check(path)
        return response

    def submit(self, button: str, status: int | tuple[int, ...]) -> None:
        """Send a form from its button with the keyboard and check the page that comes back.

        The keyboard, not a tap: on these long forms a tap aimed at the button's middle
        was at times taken by a neighbouring label, which says nothing about escaping.
        """
        with self.page.expect_navigation(wait_until="load") as navigation:
            self.page.locator(button).press("Enter")
        response = navigation.value
        assert response is not None
        self.expect_status(response.status, status, response.url)
        self.settle()
        self.check(f"{button} sent from {response.request.url}")

    def expect_status(self, got: int, wanted: int | tuple[int, ...], url: str) -> None:
        """The status is one expected. Chromium logs a console error for a page sent with
        a 4xx status (a form sent back with its mistakes): that one line is let through."""
        assert got in (wanted if isinstance(wanted, tuple) else (wanted,)), url
        line = f"the server responded with a status of {got} "
        self.phone.console_errors = [e for e in self.phone.console_errors
                                     if not (line in e and e.endswith(f"({url})"))]

    def settle(self) -> None:
        """Wait for the map (drawn after the load event) so its script has run too."""
        if self.page.locator(".map[data-js]").count():
            self.page.wait_for_selector(".map .leaflet-marker-icon", state="attached")

    def check(self, where: str) -> None:
        """Nothing ran, nothing was injected, nothing complained on this page."""
        hits = self.page.evaluate("() => (window.__xssHits || []).slice()")
        assert hits == [], f"a payload ran on {where}: {hits}"
        injected = self.page.evaluate(INJECTED_JS)
        assert injected == [], f"markup from a payload on {where}: {injected}"
        phone = self.phone
        # Chromium asks for /favicon.ico after showing a JSON document (our pages name a
        # blank icon); that 404 is the browser's own, not a payload's.
        phone.console_errors = [e for e in phone.console_errors
                                if not e.endswith(f"{self.base}/favicon.ico)")]
        assert phone.dialogs == [], f"dialog on {where}"
        assert phone.page_errors == [], f"script error on {where}: {phone.page_errors}"
        assert phone.csp_violations == [], f"CSP violation on {where}: {phone.csp_violations}"
        assert phone.console_errors == [], f"console error on {where}: {phone.console_errors}"
        assert phone.foreign_requests() == [], f"request off 127.0.0.1 from {where}"

    def text(self) -> str:
        return str(self.page.evaluate(PAGE_TEXT_JS))

    def texts(self, selector: str) -> list[str]:
        return [shown(t) for t in self.page.evaluate(TEXTS_JS, selector)]

    def values(self) -> dict[str, str]:
        return dict(self.page.evaluate(INPUT_VALUES_JS))

    def shows(self, expected: Iterable[str], where: str) -> None:
        """Every expected string is in this page's text, exactly as stored."""
        lost = missing(expected, self.text())
        assert lost == [], f"{where} does not show {len(lost)} value(s) as text: {lost[:5]}"


def new_tab(browser: Browser, base: str, contexts: list[BrowserContext]) -> Tab:
    """A fresh phone context with the sentinels hooked, watching everything."""
    context = browser.new_context(**PHONE)
    context.set_default_timeout(10_000)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    context.add_init_script(SENTINELS)
    contexts.append(context)
    return Tab(Phone(context.new_page()).watch(), base)


@pytest.fixture
def tabs(browser: Browser) -> Iterator[Callable[[str], Tab]]:
    """Open watched tabs on a base URL; closed after the test."""
    contexts: list[BrowserContext] = []
    yield lambda base: new_tab(browser, base, contexts)
    for context in contexts:
        context.close()


# --- The hostile site -------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """The live hostile directory."""

    url: str
    app: Flask
    seeded: Seeded

    def read(self, fn: Callable[[], Any]) -> Any:
        """Run a database read in the app's context."""
        with self.app.app_context():
            try:
                return fn()
            finally:
                db.session.remove()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, neutral_site: str) -> Iterator[Site]:
    """Every payload in every field, served on 127.0.0.1 from a scratch SQLite file."""
    database = tmp_path_factory.mktemp("xss") / "xss.db"
    app = create_app(replace(settings_for(database, neutral_site), per_page=PER_PAGE))
    with app.app_context():
        db.create_all()
        seeded = seed(PAYLOADS, RICH_COUNT)
        db.session.remove()
    try:
        with serve(app) as url:
            yield Site(url, app, seeded)
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


def location(location_id: int) -> Location:
    """A listing by id (inside an app context)."""
    found = db.session.get(Location, location_id)
    assert found is not None
    return found


def page_texts(loc: Location) -> list[str]:
    """Every stored text a clinic page shows for a listing."""
    texts = [loc.name, address_line(loc), loc.phone or "", loc.transit or "",
             safe_website(loc.website or loc.organization.website)]
    if loc.organization.name != loc.name:
        texts.append(loc.organization.name)
    if loc.borough:
        texts.append(f"({loc.borough})")
    for sal in loc.services:
        texts += [sal.note or "", sal.source.title, sal.source.publisher]
        texts += [c.description or "" for c in sal.cost_options]
        texts += [d.description or "" for d in sal.required_documents]
    texts += [p.source.title for p in loc.provenance]
    return texts


def card_texts(loc: Location) -> list[str]:
    """Every stored text the printable card shows."""
    texts = [loc.name, address_line(loc), loc.phone or "", loc.transit or ""]
    return texts + ([f"({loc.borough})"] if loc.borough else [])


def published(location_id: int) -> list[str]:
    """A clinic's published review texts, newest first, as the pages order them."""
    return [r.text or "" for r in db.session.execute(
        db.select(Review).where(Review.location_id == location_id, Review.status == PUBLISHED)
        .order_by(Review.received_month.desc(), Review.id.desc())).scalars()]


# --- The corpus itself -------------------------------------------------------------------


def test_the_corpus_has_over_200_distinct_payloads_in_every_category() -> None:
    assert len(PAYLOADS) >= 200
    assert len(set(PAYLOADS)) == len(PAYLOADS)
    groups = payloads_by_category()
    for word in ("script tags", "event handlers", "javascript:", "SVG", "broken",
                 "template", "CSS", "Unicode"):
        assert any(word in name and len(found) >= 10 for name, found in groups.items()), word
    # Each payload that could run calls a sentinel with its own number.
    numbers = [m for p in PAYLOADS for m in re.findall(r"__xss\((\d+)\)", p)]
    assert len(numbers) == len(set(numbers))
    quiet = [p for p in PAYLOADS if can_run(p) and not SENTINEL.search(p)
             and re.search(r"<(script|img|svg|iframe)[^<]*>", p, re.I)]
    assert quiet == []
    # The invisible characters survived the file (split("\n"), never splitlines()).
    for char in ("\u202e", "\u200d", "\u200b", "\ufeff", "\u2028", "\u00a0"):
        assert any(char in p for p in PAYLOADS), hex(ord(char))


def test_the_checks_fail_on_a_sentinel_call_and_on_an_injected_element(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    """The harness itself: what a payload that got through would do is noticed."""
    ran = tabs(site.url)
    ran.open("/about")
    ran.page.evaluate("() => top.__xss(0)")
    with pytest.raises(AssertionError, match="a payload ran"):
        ran.check("/about after a sentinel call")
    injected = tabs(site.url)
    injected.open("/about")
    injected.page.evaluate("() => document.querySelector('main').insertAdjacentHTML("
                           "'beforeend', '<img src=x onerror=top.__xss(0)>')")
    with pytest.raises(AssertionError, match="markup from a payload"):
        injected.check("/about after an injected image")


# --- Public pages ------------------------------------------------------------------------


def test_every_results_page_and_map_popup_shows_each_clinic_name_as_text(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    listed: list[str] = []
    popups: list[str] = []
    page = 1
    while True:
        tab.open(f"/clinics?page={page}")
        names = tab.texts("ol.results > li.card .card-name")
        listed += names
        read = tab.page.evaluate(POPUPS_JS)
        assert len(read) == len(names)
        for popup in read:
            assert set(popup["tags"]) <= {"p", "a"}, popup
            assert all(link.startswith("/clinics/") for link in popup["links"]), popup
            assert popup["title"] == popup["alt"] == popup["lines"][0]
            popups.append(shown(popup["lines"][0]))
        addresses = tab.texts("ol.results > li.card .card-address")
        assert sorted(addresses) == sorted(shown(p["lines"][1]) for p in read)
        tab.check(f"results page {page} after opening {len(read)} popups")
        if not tab.page.locator("a[rel=next]").count():
            break
        page += 1

    def names() -> list[str]:
        rows = db.session.execute(db.select(Location).where(Location.status == ACTIVE))
        return sorted(shown(loc.name) for loc in rows.scalars())

    expected = site.read(names)
    assert sorted(listed) == expected
    assert sorted(popups) == expected
    assert set(expected) >= {shown(p) for p in PAYLOADS}


def test_clinic_pages_cards_and_review_pages_show_every_field_as_text(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    for location_id in site.seeded.rich:
        slug, texts, card, reviews = site.read(lambda i=location_id: (
            location(i).slug, page_texts(location(i)), card_texts(location(i)),
            published(i)))
        tab.open(f"/clinics/{slug}")
        tab.shows(texts, f"clinic page {slug}")
        # Script URLs stored as a website are dropped, never linked.
        assert all(href.startswith(("/", "#", "https://", "http://", "tel:"))
                   for href in tab.page.evaluate(HREFS_JS))
        assert tab.texts("article.clinic h1") == [shown(texts[0])]
        assert tab.texts("li.review .review-text") == [shown(t) for t in reviews[:10]]
        # The one marker's popup, opened with a real tap.
        tab.page.locator(".map .leaflet-marker-icon").first.tap()
        tab.page.wait_for_selector(".leaflet-popup-content .map-popup-name")
        assert tab.texts(".leaflet-popup-content .map-popup-name") == [shown(texts[0])]
        tab.check(f"clinic page {slug} with its popup open")

        tab.open(f"/clinics/{slug}/card")
        tab.shows(card, f"card {slug}")
        tab.open(f"/clinics/{slug}/reviews")
        assert tab.texts("li.review .review-text") == [shown(t) for t in reviews]
        tab.shows([texts[0]], f"all reviews of {slug}")
        tab.open(f"/clinics/{slug}/review")
        tab.shows([texts[0]], f"review form of {slug}")
        tab.open(f"/clinics/{slug}/correct")
        tab.shows([texts[0]], f"correction form of {slug}")
    all_fields = {v for values in site.seeded.fields.values() for v in values.values()}
    assert all_fields >= set(PAYLOADS)


def test_the_about_page_shows_every_source_field_as_text(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    tab.open("/about")
    # A source's link is kept only when it is http(s): "javascript:" is never linked.
    assert all(href.startswith(("/", "#", "https://", "http://"))
               for href in tab.page.evaluate(HREFS_JS))
    fields = site.seeded.fields.values()
    tab.shows([v for f in fields for k, v in f.items()
               if k in ("source_title", "source_publisher", "source_licence",
                        "source_caveats")], "about page")
    tab.shows([f["source_as_of_note"].rstrip(".") for f in fields], "about page")


def neighbourhood_name(text: str) -> str | None:
    """The name of the neighbourhood a search for `text` finds, if any."""
    found = find_neighbourhood(text)
    return found.name if found else None


def test_the_search_box_and_neighbourhood_names_stay_text(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    tab.open("/")
    options = tab.page.evaluate(
        "() => Array.from(document.querySelectorAll('#neighbourhood-names option'), o => o.value)")
    assert sorted(options) == sorted(PAYLOADS)
    # What was typed in the box comes back in it; a neighbourhood found is named in the title.
    found = 0
    for payload in PAYLOADS[::25]:
        tab.open("/clinics?" + urlencode({"near": payload}), status=(200, 404))
        assert tab.values()["near"] == payload
        hood = site.read(lambda p=payload: neighbourhood_name(p))
        if hood:
            assert shown(hood) in tab.texts("main h1")[0]
            found += 1
    assert found >= 5


# --- Forms sent with mistakes come back with what was typed, as text -----------------------


def chunks(items: list[str], size: int) -> list[list[str]]:
    """The items in runs of `size`, the last run topped up from the start."""
    return [(items[i:] + items)[:size] for i in range(0, len(items), size)]


def test_forms_sent_with_mistakes_keep_every_payload_as_typed_and_inert(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    page = tab.page
    rich = site.read(lambda: location(site.seeded.rich[1]).slug)
    short = [p for p in PAYLOADS if len(clean_text(p) or "") <= 40]  # a phone's limit
    # Each form comes back with its mistakes, and is sent again with the next payloads.
    runs = chunks(PAYLOADS, 12)
    for n, run in enumerate(runs):
        name, address, hours, languages, *notes = run
        if n == 0:
            tab.open("/suggest")
            page.fill("#postal_code", "10011")
        elif n == len(runs) // 2:
            tab.open(f"/clinics/{rich}/correct")
        typed = ({"name": name, "address_1": address} if n < len(runs) // 2
                 else {"moved_to": name, "services": address})
        typed |= {"phone": short[n % len(short)], "hours": hours, "languages": languages,
                  "notes": "\n".join(notes)}
        for key, value in typed.items():
            page.fill(f"#{key}", value)
        tab.submit('#community-form button[type="submit"]', status=400)
        values = tab.values()
        for key, value in typed.items():
            assert values[key] == clean_text(value), key
        # An unknown language is named back in the message, as text.
        with pytest.raises(suggestions.InvalidSuggestion) as problem:
            suggestions.check_languages(clean_text(languages) or "")
        assert shown(str(problem.value)) in shown(" ".join(tab.texts(".form-problems li")))

    tab.open(f"/clinics/{rich}/review")
    for run in chunks(PAYLOADS, 20):
        page.select_option("#visit_month", "3")  # a month without a year: sent back
        page.fill("#text", "\n".join(run))
        tab.submit('#review-form button[type="submit"]', status=400)
        assert tab.values()["text"] == clean_text("\n".join(run))

    tab.open("/reviews/withdraw")
    for run in chunks(PAYLOADS[::3], 6):
        page.fill("#code", " ".join(run))
        tab.submit('form[action="/reviews/withdraw"] button[type="submit"]', status=(400, 404))
        assert tab.values()["code"] == " ".join(run)


# --- Moderators' pages --------------------------------------------------------------------


def sign_in(tab: Tab, secret: str) -> None:
    """Sign in with password and TOTP, as a moderator does."""
    page = tab.page
    tab.open("/moderation/login")
    page.fill("#username", MODERATOR_NAME)
    page.fill("#password", PASSWORD)
    page.fill("#code", pyotp.TOTP(secret).now())
    tab.submit('form[action="/moderation/login"] button[type="submit"]', status=200)
    assert page.url == tab.base + "/moderation/"


def queue_expectations() -> dict[str, tuple[str, str]]:
    """Each pending review's element id: (clinic name, text)."""
    rows = db.session.execute(db.select(Review).where(Review.status == PENDING)).scalars()
    return {f"review-{r.id}": (shown(r.location.name), shown(r.text or "")) for r in rows}


def suggestion_expectations() -> dict[str, list[str]]:
    """Each pending suggestion's element id: every stored text its queue entry shows."""
    out = {}
    for item in db.session.execute(db.select(Suggestion).where(
            Suggestion.status == PENDING)).scalars():
        lines = suggestions.diff(item)
        texts = [line.suggested for line in lines] + [item.notes or ""]
        texts += [line.current for line in lines if item.kind != "new_clinic"]
        texts += [item.location.name] if item.location else []
        out[f"suggestion-{item.id}"] = texts
    return out


def test_moderators_see_every_payload_as_text_in_queues_details_and_messages(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    page = tab.page
    sign_in(tab, site.seeded.totp_secret)

    expected = site.read(queue_expectations)
    seen: set[str] = set()
    number = 1
    while True:
        tab.open(f"/moderation/?page={number}")
        for item_id in page.evaluate(
                "() => Array.from(document.querySelectorAll('li[id^=review-]'), li => li.id)"):
            name, text = expected[item_id]
            assert tab.texts(f"#{item_id} .card-name") == [name]
            assert tab.texts(f"#{item_id} blockquote.review-text") == [text]
            seen.add(item_id)
        if not page.locator("nav.pages a", has_text="Next").count():
            break
        number += 1
    assert seen == set(expected)
    for item_id in sorted(expected)[::40]:
        tab.open(f"/moderation/reviews/{item_id.removeprefix('review-')}")
        name, text = expected[item_id]
        assert tab.texts("blockquote.review-text") == [text]
        assert shown(tab.values()["text"]) == text

    # A redaction sent wrong comes back with the edit kept as text; sent right, it is public.
    review_id, raw, slug = site.read(lambda: next(
        (r.id, r.text or "", r.location.slug) for r in db.session.execute(
            db.select(Review).where(Review.status == PENDING).order_by(Review.id)).scalars()
        if "onerror=" in (r.text or "")))
    tab.open(f"/moderation/reviews/{review_id}")
    page.fill("#text", raw + " added")
    tab.submit('form:has(#text) button[type="submit"]', status=422)
    assert tab.values()["text"] == raw + " added"
    redacted = raw.replace("onerror", "[removed]", 1)
    page.fill("#text", redacted)
    tab.submit('form:has(#text) button[type="submit"]', status=200)
    tab.open(f"/clinics/{slug}")
    assert tab.texts("li.review .review-text") == [shown(redacted)]

    wanted = site.read(suggestion_expectations)
    found: set[str] = set()
    for kind in ("new_clinic", "correction", "closure"):
        tab.open(f"/moderation/suggestions?kind={kind}")
        for item_id in page.evaluate(
                "() => Array.from(document.querySelectorAll('li[id^=suggestion-]'), li => li.id)"):
            lost = missing(wanted[item_id], " ".join(tab.texts(f"#{item_id}")))
            assert lost == [], f"{item_id} does not show {lost}"
            found.add(item_id)
    assert found == set(wanted)
    for item_id in sorted(wanted)[::15]:
        number = item_id.removeprefix("suggestion-")
        tab.open(f"/moderation/suggestions/{number}")
        tab.shows(wanted[item_id], f"suggestion {number}")
        proposed = site.read(lambda n=int(number): suggestions.payload(
            db.session.get(Suggestion, n)))
        values = tab.values()
        for key, value in proposed.items():
            if f"edit-{key}" in values:
                assert values[f"edit-{key}"] == value, key

    # Approving a value that cannot be used says why, repeating the value as text.
    for suggestion_id in site.seeded.echo_suggestions:
        tab.open(f"/moderation/suggestions/{suggestion_id}")
        typed = site.read(lambda n=suggestion_id: suggestions.payload(
            db.session.get(Suggestion, n))["services"])
        with pytest.raises(suggestions.InvalidSuggestion) as problem:
            suggestions.check_services(typed)
        tab.submit(f'form[action="/moderation/suggestions/{suggestion_id}/approve"]'
                   ":not(:has(input[name=edited])) button", status=422)
        assert tab.texts(".notice-error") == [shown(str(problem.value))]

    # Approving one says so with the clinic's name; its history and re-checks name it too.
    flash = site.seeded.flash_suggestion
    tab.open(f"/moderation/suggestions/{flash}")
    tab.submit(f'form[action="/moderation/suggestions/{flash}/approve"]'
               ":not(:has(input[name=edited])) button", status=200)
    name = site.read(lambda: location(site.seeded.flash_clinic).name)
    assert tab.texts(".flashes .notice") == [shown(f"Approved: {name} is updated.")]
    tab.open(f"/moderation/clinics/{site.seeded.flash_clinic}/history")
    tab.shows([name], "listing history")
    tab.open("/moderation/reverify")
    names = site.read(lambda: {f"listing-{loc.id}": shown(loc.name) for loc in
                               db.session.execute(db.select(Location)).scalars()})
    for item_id in page.evaluate(
            "() => Array.from(document.querySelectorAll('li[id^=listing-]'), li => li.id)"):
        assert tab.texts(f"#{item_id} h2") == [names[item_id]]
    first = page.locator("li[id^=listing-]").first.get_attribute("id") or ""
    tab.submit(f'li#{first} button[type="submit"]', status=200)
    assert tab.texts(".flashes .notice") == [f"{names[first]}: marked as checked today."]
    tab.open("/moderation/audit")


# --- JSON, opened in the browser ------------------------------------------------------------


def json_in_browser(tab: Tab, path: str) -> Any:
    """A JSON response as the browser shows it (and checked like any page)."""
    response = tab.open(path)
    assert response.headers["content-type"].startswith("application/json")
    shown_body = tab.page.evaluate("() => document.body.innerText")
    assert json.loads(shown_body) == response.json()
    return response.json()


def test_the_json_api_gives_every_payload_back_unchanged(
    site: Site, tabs: Callable[[str], Tab]
) -> None:
    tab = tabs(site.url)
    names: list[str] = []
    page = 1
    while True:
        body = json_in_browser(tab, f"/api/v1/clinics?per_page=100&page={page}")
        names += [clinic["name"] for clinic in body["clinics"]]
        if not body["has_next"]:
            break
        page += 1
    assert set(names) >= set(PAYLOADS)

    def detail(location_id: int) -> Any:
        from datetime import UTC, datetime

        with site.app.test_request_context():
            return clinic_detail(location(location_id), datetime.now(UTC))

    for location_id in site.seeded.rich:
        body = json_in_browser(tab, f"/api/v1/clinics/{location_id}")
        values = site.seeded.fields[location_id]
        expected = site.read(lambda i=location_id: detail(i))
        for key in ("open_now", "modified_at", "oldest_verified"):
            body.pop(key, None)
            expected.pop(key, None)
        assert body == expected
        assert body["name"] == values["name"]
        assert body["organization"] == values["organization"]
        assert body["address"]["address_1"] == values["address_1"]
        assert body["transit"] == values["transit"]
        assert body["category"] == values["category"]
        assert body["facts"]["services"][0]["detail"] == values["service_note"]
    hoods = json_in_browser(tab, "/api/v1/neighbourhoods")["neighbourhoods"]
    assert sorted(h["name"] for h in hoods) == sorted(PAYLOADS)


# --- Through the real imports -----------------------------------------------------------------

# Payloads for the HSDS import, and for the seed importer: there, entity-encoded markup
# too, which the importer decodes into real brackets after stripping tags.
IMPORTED = PAYLOADS[::40]
SEED_IMPORTED = [p for p in PAYLOADS if p.startswith(("&lt;", "&#"))][:4] + PAYLOADS[5::60]


def hsds_package(tmp: Path, neutral: str) -> Path:
    """An HSDS datapackage exported from a scratch directory whose listings carry payloads."""
    app = create_app(settings_for(tmp / "export.db", neutral))
    out = tmp / "hostile-hsds.zip"
    with app.app_context():
        db.create_all()
        source = make_source("xss-hsds")
        for i, payload in enumerate(IMPORTED):
            loc = make_clinic(payload, lat=40.71 + i / 300, lng=-74.00, source=source,
                              services=("hiv_testing",), walk_in=True)
            loc.organization.name = f"Org {payload}"
            loc.address_2 = payload
            loc.transit = payload
            loc.services[0].note = payload
        db.session.commit()
        hsds.export_to(out)
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    return out


def seed_files(tmp: Path) -> Path:
    """The synthetic seed files, plus 2018 HIV-testing rows with payloads in free text."""
    folder = tmp / "seed"
    shutil.copytree(IMPORT_FIXTURE, folder)
    target = folder / "nyc_hiv_testing_locations_2018.csv"
    with target.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    for i, payload in enumerate(SEED_IMPORTED):
        row = dict.fromkeys(columns, "")
        row |= {"Site ID": str(900 + i), "Agency ID": f"Agency {payload}",
                "Site Name": f"Synthetic {payload}", "Hours Monday": "9am-5pm",
                "Address": f"{700 + i} Synthetic Avenue", "Building Floor Suite": payload,
                "City": "NEW YORK", "Zip Code": "10011", "State": "NY",
                "Intake": f"Walk-ins welcome {payload}", "Required Documents": payload}
        rows.append(row)
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_payloads_brought_in_by_both_imports_show_as_text_and_never_run(
    tmp_path: Path, neutral_site: str, tabs: Callable[[str], Tab]
) -> None:
    package = hsds_package(tmp_path, neutral_site)
    app = create_app(replace(settings_for(tmp_path / "imported.db", neutral_site),
                             per_page=PER_PAGE))
    with app.app_context():
        db.create_all()
        run_import(seed_files(tmp_path), db.session)
        db.session.commit()
    result = app.test_cli_runner().invoke(args=["import-hsds", str(package)])
    assert result.exit_code == 0, result.output
    try:
        with app.app_context():
            listings = [(loc.slug, page_texts(loc)) for loc in
                        db.session.execute(db.select(Location)).scalars()]
            db.session.remove()
        names = sorted(shown(texts[0]) for _slug, texts in listings)
        # The HSDS import keeps each name as the package gives it...
        assert set(names) >= {shown(p) for p in IMPORTED}
        # ...and the seed importer, which strips tags then decodes entities, stores real
        # brackets from "&lt;img ...&gt;": escaping on the way out is what keeps them inert.
        assert any(name.startswith("Synthetic <") for name in names)
        with serve(app) as url:
            tab = tabs(url)
            tab.open("/clinics")
            assert sorted(tab.texts("li.card .card-name")) == names
            for popup in tab.page.evaluate(POPUPS_JS):
                assert set(popup["tags"]) <= {"p", "a"}
                assert shown(popup["lines"][0]) in names
            tab.check("imported results with every popup opened")
            body = json_in_browser(tab, "/api/v1/clinics?per_page=100")
            assert sorted(shown(clinic["name"]) for clinic in body["clinics"]) == names
            for slug, texts in listings:
                tab.open(f"/clinics/{slug}")
                tab.shows(texts, f"imported clinic {slug}")
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()
