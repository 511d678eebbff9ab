"""Journeys through the public pages: search, results, clinic pages, about and safety.

Every clinic here is synthetic (tests.factories), made only in the test database.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from directory import create_app
from directory.config import Settings
from directory.extensions import db
from directory.models import CLOSED
from tests.factories import make_clinic, make_source

TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
HOSTILE = "<script>alert(1)</script> ${alert(1)} `tick` \"double\" 'single'"


class Page(HTMLParser):
    """A parsed response: tags with attributes, inline scripts, and the visible text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.scripts: list[tuple[dict[str, str], str]] = []
        self.text_parts: list[str] = []
        self._in: str | None = None
        self._attrs: dict[str, str] = {}
        self._buffer: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append((tag, attributes))
        if tag in ("script", "style", "title"):
            self._in, self._attrs, self._buffer = tag, attributes, []

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            if tag == "script":
                self.scripts.append((self._attrs, "".join(self._buffer)))
            if tag == "title":
                self.title = "".join(self._buffer)
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self._buffer.append(data)
        else:
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        """The visible text, with runs of white space collapsed."""
        return " ".join(" ".join(self.text_parts).split())

    def all(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        """Attributes of every tag of this name whose attributes include `wanted`."""
        return [a for t, a in self.tags
                if t == tag and all(a.get(k) == v for k, v in wanted.items())]

    def links(self) -> list[str]:
        """Every href of an <a>."""
        return [a["href"] for a in self.all("a") if "href" in a]


def get(client: FlaskClient, url: str, status: int = 200) -> Page:
    """Fetch a page, check its status, and parse it."""
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    page = Page(response.get_data(as_text=True))
    page.response = response  # type: ignore[attr-defined]
    return page


def map_data(page: Page) -> dict[str, object]:
    """The clinic data the page's map script hands to clinic-map.js."""
    for _attrs, code in page.scripts:
        found = re.search(r"CareMap\.addClinics\(\w+, \w+, (\{.*\})\);", code)
        if found:
            return json.loads(found.group(1))
    raise AssertionError("no map script on the page")


def chelsea_clinics() -> None:
    """Synthetic clinics around ZIP 10011, with a far one in Staten Island."""
    make_clinic("Far Free Spanish", lat=40.5800, lng=-74.1500, languages=("es",),
                cost={"free": True})
    make_clinic("Near Free Spanish", lat=40.7410, lng=-74.0010, languages=("es", "en"),
                cost={"free": True}, walk_in=True, documents={"id": False})
    make_clinic("Mid Free Spanish", lat=40.7600, lng=-73.9900, languages=("es",),
                cost={"free": True})
    make_clinic("Near English Only", lat=40.7405, lng=-74.0005, languages=("en",),
                cost={"free": True})
    make_clinic("Near Cost Unknown", lat=40.7406, lng=-74.0006, languages=("es",))
    db.session.commit()


# --- The search page ------------------------------------------------------------------


def test_the_home_page_has_quick_exit_a_discreet_title_and_the_search_form(
    client: FlaskClient, app: Flask
) -> None:
    page = get(client, "/")
    title = page.title
    assert app.config["SITE_TITLE"] in title
    assert "sex" not in title.lower()
    exits = page.all("a", id="quick-exit")
    assert exits
    assert exits[0]["href"] == app.config["QUICK_EXIT_URL"]
    assert page.all("a", href="/safety")
    form = page.all("form", action="/clinics")[0]
    assert form["method"] == "get"
    assert page.all("input", name="near")
    assert page.all("datalist", id="neighbourhood-names")
    for name in ("cost", "lang", "service", "hours", "walk_in", "no_id"):
        assert page.all("input", name=name) or name == "lang", name
    # "Near me" is hidden until near-me.js shows it: without JavaScript the form still works.
    near_me = page.all("button", id="near-me")[0]
    assert "hidden" in near_me
    assert page.all("fieldset")
    assert page.all("legend")


def test_every_page_allows_zoom_and_uses_no_inline_handlers_or_unnonced_scripts(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic("Some Clinic").slug
    db.session.commit()
    for url in ("/", "/clinics?near=10011", f"/clinics/{slug}", "/about", "/safety",
                "/no-such-page"):
        response = client.get(url)
        html = response.get_data(as_text=True)
        page = Page(html)
        viewport = page.all("meta", name="viewport")
        assert len(viewport) == 1
        assert viewport[0]["content"] == "width=device-width, initial-scale=1"
        assert "user-scalable" not in html
        assert not re.search(r"\son[a-z]+\s*=", html), url
        nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])
        assert nonce
        for attrs, _code in page.scripts:
            assert attrs.get("nonce") == nonce.group(1), url
        assert page.all("a", id="quick-exit"), url
        assert page.all("a", **{"class": "skip-link"}), url


# --- Results --------------------------------------------------------------------------


def test_a_person_near_10011_finds_free_spanish_care_nearest_first(
    client: FlaskClient, app: Flask
) -> None:
    chelsea_clinics()
    page = get(client, "/clinics?near=10011&cost=free&lang=es")
    names = [h.strip() for h in re.findall(r'<h3 class="card-name"><a [^>]*>([^<]*)</a>',
                                           page.response.get_data(as_text=True))]
    assert names == ["Near Free Spanish", "Mid Free Spanish", "Far Free Spanish"]
    assert "Near English Only" not in page.text
    assert "Near Cost Unknown" not in page.text
    distances = [float(d) for d in re.findall(r"(\d+\.\d) mi", page.text)]
    assert len(distances) == 3
    assert distances == sorted(distances)
    assert "ZIP 10011" in page.text
    # Key facts appear only where a source says yes.
    card = page.text.split("Near Free Spanish")[1].split("Mid Free Spanish")[0]
    assert "Walk-in" in card
    assert "No ID needed" in card
    assert "Free" in card
    # The filters are offered again, pre-filled.
    assert page.all("input", name="cost", value="free")[0].get("checked") is not None
    assert page.all("input", name="near")[0]["value"] == "10011"
    # The map comes after the list and shows the same clinics.
    html = page.response.get_data(as_text=True)
    assert html.index('class="results"') < html.index('class="map"')
    pins = [c["name"] for c in map_data(page)["clinics"]]  # type: ignore[index, union-attr]
    assert pins == names


def test_pagination_links_keep_the_whole_search(client: FlaskClient, app: Flask) -> None:
    for i in range(25):
        make_clinic(f"Line {i:02d}", lat=40.7420 + i * 0.002, lng=-74.0000,
                    cost={"free": True}, languages=("es",), services=("prep",),
                    walk_in=True, documents={"id": False}, hours={"SA": [(600, 900)]})
    db.session.commit()
    args = ("near=10011&cost=free&lang=es&service=prep&hours=weekend&walk_in=1&no_id=1"
            "&tiles=off")
    first = get(client, f"/clinics?{args}")
    next_link = [a["href"] for a in first.all("a", rel="next")][0]
    query = parse_qs(urlsplit(next_link).query)
    assert query == {"near": ["10011"], "cost": ["free"], "lang": ["es"], "service": ["prep"],
                     "hours": ["weekend"], "walk_in": ["1"], "no_id": ["1"], "page": ["2"],
                     "tiles": ["off"]}
    second = get(client, next_link)
    assert "Line 20" in second.text
    assert "Line 00" not in second.text
    prev_link = [a["href"] for a in second.all("a", rel="prev")][0]
    assert parse_qs(urlsplit(prev_link).query)["near"] == ["10011"]
    assert "page" not in parse_qs(urlsplit(prev_link).query)

    # A "near me" search keeps its rounded point instead of a place name.
    near_me = get(client, "/clinics?lat=40.7421&lng=-74.0003&cost=free")
    query = parse_qs(urlsplit(near_me.all("a", rel="next")[0]["href"]).query)
    assert query["lat"] == ["40.74"]
    assert query["lng"] == ["-74.0"]
    assert query["cost"] == ["free"]
    assert query["page"] == ["2"]


def test_each_filter_in_use_can_be_removed_with_one_tap(
    client: FlaskClient, app: Flask
) -> None:
    chelsea_clinics()
    page = get(client, "/clinics?near=10011&cost=free&lang=es&walk_in=1")
    remove = {a["aria-label"]: a["href"] for a in page.all("a", **{"class": "chip"})}
    assert set(remove) == {"Remove filter: Free", "Remove filter: Language: Spanish",
                           "Remove filter: Walk-in"}
    assert parse_qs(urlsplit(remove["Remove filter: Free"]).query) == {
        "near": ["10011"], "lang": ["es"], "walk_in": ["1"]}


def test_an_empty_result_says_which_filter_to_loosen(client: FlaskClient, app: Flask) -> None:
    make_clinic("Free Only", cost={"free": True})
    db.session.commit()
    page = get(client, "/clinics?near=10011&cost=free&lang=ru")
    assert "No clinics match" in page.text
    assert "Remove “Language: Russian”" in page.text


# --- Hostile data and bad input -------------------------------------------------------


def test_hostile_names_are_escaped_in_the_list_the_clinic_page_and_the_map(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic(HOSTILE, lat=40.7410, lng=-74.0010).slug
    db.session.commit()
    for url in ("/clinics?near=10011", f"/clinics/{slug}"):
        response = client.get(url)
        html = response.get_data(as_text=True)
        assert "<script>alert(1)" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        page = Page(html)
        assert HOSTILE in page.text
        for _attrs, code in page.scripts:
            assert "alert(1)</script" not in code
            assert "`" not in code
            assert "${" not in code
        assert map_data(page)["clinics"][0]["name"] == HOSTILE  # type: ignore[index]


BAD_SEARCHES = [
    ("near=00000", 404, "could not find the ZIP code"),
    ("near=90210", 404, "outside New York City"),
    ("near=Nowhereville", 404, "could not find a neighbourhood"),
    ("lat=999&lng=0", 400, "location did not come through"),
    ("lat=nan&lng=-74", 400, "location did not come through"),
    ("lat=40.7", 404, "incomplete"),
    ("lat=abc&lng=def", 400, "location did not come through"),
    ("cost=bogus", 400, "cost choices"),
    ("lang=zz", 400, "languages"),
    ("service=%3Cscript%3E", 400, "services"),
    ("hours=midnight", 400, "opening-hours"),
    ("page=-1", 400, "page of results"),
    ("page=abc", 400, "page of results"),
    ("page=99999999999999999999", 400, "page of results"),
    ("tiles=sometimes", 400, "map setting"),
    ("near=" + "x" * 10_000, 400, "too long"),
]


@pytest.mark.parametrize(("args", "status", "message"), BAD_SEARCHES)
def test_bad_searches_get_a_friendly_search_page_never_a_500(
    client: FlaskClient, app: Flask, args: str, status: int, message: str
) -> None:
    page = get(client, f"/clinics?{args}", status)
    assert message in page.text
    assert page.all("form", action="/clinics")
    assert page.all("a", id="quick-exit")


def test_what_was_typed_is_kept_after_an_error(client: FlaskClient, app: Flask) -> None:
    page = get(client, "/clinics?near=90210&cost=free&walk_in=1", 404)
    assert page.all("input", name="near")[0]["value"] == "90210"
    assert "checked" in page.all("input", name="cost", value="free")[0]
    assert "checked" in page.all("input", name="walk_in")[0]


def test_an_unknown_clinic_is_a_friendly_404(client: FlaskClient, app: Flask) -> None:
    page = get(client, "/clinics/no-such-clinic", 404)
    assert "could not find that page" in page.text
    assert page.all("a", id="quick-exit")


def test_a_post_to_search_is_a_friendly_405(client: FlaskClient, app: Flask) -> None:
    response = client.post("/clinics")
    assert response.status_code == 405
    assert "That did not work" in response.get_data(as_text=True)


def test_too_many_searches_get_a_slow_down_page(settings: Settings, app: Flask) -> None:
    limited = create_app(replace(
        settings, search_rate_limit="2 per minute",
        extra={**settings.extra, "RATELIMIT_ENABLED": True},
    ))
    client = limited.test_client()
    codes = [client.get("/clinics").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert "Please slow down" in client.get("/clinics").get_data(as_text=True)


# --- Third parties and map images -----------------------------------------------------


def test_no_page_loads_anything_from_another_site(client: FlaskClient, app: Flask) -> None:
    app.config["MAP_TILES_URL"] = TILES
    chelsea_clinics()
    slug = make_clinic("Another Clinic").slug
    db.session.commit()
    for url in ("/", "/clinics?near=10011", f"/clinics/{slug}", "/about", "/safety",
                "/nope"):
        html = client.get(url).get_data(as_text=True)
        page = Page(html)
        assets = [a["src"] for a in page.all("script") if "src" in a]
        assets += [a["href"] for a in page.all("link") if a.get("rel") == "stylesheet"]
        assets += [a["src"] for a in page.all("img")]
        assert assets, url
        assert all(u.startswith("/static/") for u in assets), (url, assets)
        addresses = set(re.findall(r"https?://[^\"'\s<>]+", html))
        # The neutral quick-exit site, and the tile template inside the map script.
        assert addresses <= {app.config["QUICK_EXIT_URL"], TILES}, (url, addresses)
        lowered = html.lower()
        for word in ("cdn.", "bootstrap", "jquery", "googleapis", "fontawesome"):
            assert word not in lowered, (url, word)


def test_hiding_map_images_leaves_a_marker_map_with_no_tile_requests(
    client: FlaskClient, app: Flask
) -> None:
    app.config["MAP_TILES_URL"] = TILES
    chelsea_clinics()
    shown = get(client, "/clinics?near=10011")
    scripts = " ".join(code for _a, code in shown.scripts)
    assert "L.tileLayer" in scripts
    assert TILES in scripts
    hide = [a["href"] for a in shown.all("a") if a.get("href", "").endswith("tiles=off")]
    assert hide

    hidden = get(client, hide[0])
    scripts = " ".join(code for _a, code in hidden.scripts)
    assert "L.tileLayer" not in scripts
    assert "tile.openstreetmap" not in hidden.text
    assert "tile.openstreetmap" not in scripts
    assert map_data(hidden)["clinics"]
    # The choice follows the person to the clinic pages and is offered back.
    clinic_links = [h for h in hidden.links() if h.startswith("/clinics/")]
    assert clinic_links
    assert all(h.endswith("tiles=off") for h in clinic_links)
    assert "Show map images" in hidden.text
    clinic = get(client, clinic_links[0])
    assert "L.tileLayer" not in " ".join(code for _a, code in clinic.scripts)


def test_with_no_tile_server_configured_there_is_no_switch_and_no_tiles(
    client: FlaskClient, app: Flask
) -> None:
    chelsea_clinics()
    page = get(client, "/clinics?near=10011")
    assert "Hide map images" not in page.text
    assert "tileLayer" not in " ".join(code for _a, code in page.scripts)
    assert "'self' data:;" in page.response.headers["Content-Security-Policy"]


# --- The clinic page ------------------------------------------------------------------


def test_a_clinic_page_shows_unknown_facts_as_not_known_yet_never_no(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic("Quiet Clinic", phone=None).slug
    db.session.commit()
    page = get(client, f"/clinics/{slug}")
    text = page.text
    assert text.count("not known yet") >= 8  # phone, 7 days, cost, walk-in, ID, …
    assert not re.search(r"\bNo\b", text), text
    assert "Closed" not in text.replace("Closed now", "")
    assert "Hours not known yet" in text
    assert "From public data only — not yet checked by CareMap moderators" in text
    assert "Synthetic test data (test-source)" in text
    assert "last verified December 2025" in text


def test_a_clinic_page_shows_each_known_fact_with_its_source(
    client: FlaskClient, app: Flask
) -> None:
    old = make_source("old-source", as_of=date(2018, 11, 13))
    slug = make_clinic("Old Clinic", services=("hiv_testing", "prep"), languages=("es",),
                cost={"free": True, "medicaid": False}, documents={"id": True},
                walk_in=False, hours={"MO": [(540, 1020)], "SU": [(0, 0)]}, source=old,
                phone="(212) 555-0199").slug
    db.session.commit()
    page = get(client, f"/clinics/{slug}")
    text = page.text
    assert "Monday 9:00 AM – 5:00 PM" in text
    assert "Sunday Closed" in text
    assert "Tuesday not known yet" in text
    assert "Free: Yes" in text
    assert "Medicaid accepted: No" in text
    assert "Photo or personal ID: asked for" in text
    assert "Walk-in: No, appointment needed" in text
    assert "Is insurance asked for? not known yet" in text
    assert "Spanish" in text
    assert "PrEP (HIV prevention pill)" in text
    assert "Synthetic test data (old-source)" in text
    assert "last verified November 2018" in text
    assert "call before you go" in text
    assert page.all("a", href="tel:+12125550199")


def test_a_closed_clinic_says_reported_closed(client: FlaskClient, app: Flask) -> None:
    slug = make_clinic("Gone Clinic", status=CLOSED).slug
    db.session.commit()
    page = get(client, f"/clinics/{slug}")
    assert "Reported closed" in page.text
    assert "Gone Clinic" not in get(client, "/clinics?near=10011").text


# --- About and safety -----------------------------------------------------------------


def test_about_lists_every_source_with_its_date(client: FlaskClient, app: Flask) -> None:
    make_source("about-source", as_of=date(2025, 12, 1))
    make_source("older-source", as_of=date(2018, 11, 13))
    db.session.commit()
    page = get(client, "/about")
    assert "Synthetic test data (about-source)" in page.text
    assert "As of December 2025" in page.text
    assert "As of November 2018" in page.text
    assert "only from public data" in page.text


def test_the_safety_page_is_honest_about_what_quick_exit_cannot_do(
    client: FlaskClient, app: Flask
) -> None:
    text = get(client, "/safety").text
    assert "does not delete your browsing history" in text
    assert "private window" in text
    assert "about 1 km" in text
    assert "do not store or log your IP address" in text


# --- How old the facts are ------------------------------------------------------------


@pytest.mark.parametrize(("earlier", "later", "months"), [
    (date(2026, 5, 25), date(2026, 11, 25), 6),
    (date(2026, 5, 26), date(2026, 11, 25), 5),  # not yet a whole sixth month
    (date(2026, 1, 31), date(2026, 2, 28), 0),
    (date(2025, 12, 1), date(2026, 1, 1), 1),
    (date(2018, 11, 13), date(2026, 11, 25), 96),
    (date(2026, 11, 25), date(2026, 11, 25), 0),
    (date(2026, 12, 1), date(2026, 11, 25), 0),  # a date in the future is not negative
])
def test_months_between_counts_whole_calendar_months(
    earlier: date, later: date, months: int
) -> None:
    from directory.public import months_between

    assert months_between(earlier, later) == months


def test_facts_older_than_reverify_after_days_say_how_many_months_and_call_first(
    client: FlaskClient, app: Flask
) -> None:
    from datetime import UTC, datetime, timedelta

    from directory.public import months_between

    today = datetime.now(UTC).date()
    checked = today - timedelta(days=200)
    old = make_clinic("Half-Year Clinic", source=make_source("half-year", as_of=checked)).slug
    fresh = make_clinic("Fresh Clinic",
                        source=make_source("fresh", as_of=today - timedelta(days=30))).slug
    db.session.commit()
    months = months_between(checked, today)
    text = get(client, f"/clinics/{old}").text
    assert f"Last checked {months} months ago — call before you go" in text
    assert f"({months} months ago)" in text
    assert "over a year ago" not in text
    assert "call before you go" not in get(client, f"/clinics/{fresh}").text
    app.config["REVERIFY_AFTER_DAYS"] = 365
    assert "call before you go" not in get(client, f"/clinics/{old}").text
