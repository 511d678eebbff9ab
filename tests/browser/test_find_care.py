"""A person on a phone finds care: search, map, clinic page, near me and quick exit.

Chromium drives a live server on 127.0.0.1 with no tile server configured. Every clinic
here is synthetic (tests.factories), made only in this module's own SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from directory import create_app
from directory.config import Settings
from directory.extensions import db
from directory.models import CLOSED
from tests.browser.conftest import Phone, serve
from tests.factories import make_clinic

pytestmark = pytest.mark.browser

# What the person searches for in most journeys: ZIP 10011, free, Spanish spoken.
ZIP_SEARCH = "/clinics?near=10011&cost=free&lang=es"

# Synthetic clinics that match the ZIP search, nearest first, with the distance the list
# shows from ZIP 10011's centroid (40.7402, -73.9996).
ALPHA = "Synthetic Test Clinic Alpha"
MATCHES = [
    (ALPHA, 40.7425, -73.9985, "0.2 mi"),
    ("Synthetic Test Clinic Beta", 40.7460, -73.9920, "0.6 mi"),
    ("Synthetic Test Clinic Gamma", 40.7300, -74.0080, "0.8 mi"),
    ("Synthetic Test Clinic Staten Island", 40.5800, -74.1500, "13.6 mi"),
]

# Names built to run script if any page, popup or map script let them through as code.
HOSTILE_IMG = "Synthetic <img src=x onerror=alert(1)>"
HOSTILE_TEMPLATE = "Synthetic ${alert(1)} `${alert(2)}` </script><script>alert(3)</script>"
HOSTILE_SEARCH = "/clinics?near=10451"

# A precise position the phone reports; only its 2-decimal rounding may leave the browser.
PRECISE = {"latitude": 40.741234, "longitude": -74.001987}

# The map script of a results or clinic page: folium's map is a global named by the div id.
MAP_MARKERS_JS = """
() => {
  const map = window[document.querySelector(".map").id];
  const markers = [];
  map.eachLayer((layer) => {
    if (layer instanceof L.MarkerClusterGroup) { markers.push(...layer.getLayers()); }
  });
  return markers.map((m) => ({title: m.options.title, lat: m.getLatLng().lat,
                              lng: m.getLatLng().lng}));
}
"""

# What a person sees on the map: lone marker icons plus the numbers on cluster icons.
SHOWN_ON_MAP_JS = """
() => {
  const box = document.querySelector(".map").getBoundingClientRect();
  const inside = (el) => {
    const r = el.getBoundingClientRect();
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    return x >= box.left && x <= box.right && y >= box.top && y <= box.bottom;
  };
  const icons = [...document.querySelectorAll(".map .leaflet-marker-icon")].filter(inside);
  const clusters = icons.filter((el) => el.classList.contains("marker-cluster"));
  return {
    lone: icons.length - clusters.length,
    clustered: clusters.reduce((sum, el) => sum + parseInt(el.textContent, 10), 0),
  };
}
"""

# After each tap and key press, log whether the page is on screen and its title.
SCREEN_PREFIX = "screen after "
SCREEN_AFTER_INPUT_JS = """
for (const type of ["click", "keydown"]) {
  window.addEventListener(type, () => {
    console.log("screen after " + type + " display=" +
                getComputedStyle(document.body).display + " title=" +
                JSON.stringify(document.title));
  });
}
"""

# Zoom the cluster group until the named marker has its own icon.
SHOW_MARKER_JS = """
(title) => new Promise((resolve, reject) => {
  const map = window[document.querySelector(".map").id];
  let found = null, group = null;
  map.eachLayer((layer) => {
    if (!(layer instanceof L.MarkerClusterGroup)) { return; }
    layer.getLayers().forEach((m) => {
      if (m.options.title === title) { found = m; group = layer; }
    });
  });
  if (!found) { reject(new Error("no marker titled " + title)); return; }
  group.zoomToShowLayer(found, () => resolve(true));
})
"""


@dataclass(frozen=True)
class Site:
    """The live directory and the neutral site quick exit leaves for."""

    url: str
    neutral: str
    slugs: dict[str, str]

    def clinic_url(self, name: str) -> str:
        """The address of a seeded clinic's page."""
        return f"{self.url}/clinics/{self.slugs[name]}"


def seed() -> dict[str, str]:
    """Synthetic clinics around ZIP 10011, decoys the filters must drop, hostile names."""
    made = {}
    for name, lat, lng, _ in MATCHES:
        beta = name.endswith("Beta")
        made[name] = make_clinic(
            name, lat=lat, lng=lng, languages=("es", "en") if beta else ("es",),
            cost={"free": True}, walk_in=True if beta else None,
            # Alpha's source names insurance but does not say yes or no: still unknown.
            documents={"id": False} if beta else {"insurance": None},
        )
    # Nearer than every match, each missing one thing the search asks for.
    decoys = [
        make_clinic("Synthetic Decoy English Only", lat=40.7405, lng=-73.9993,
                    languages=("en",), cost={"free": True}),
        make_clinic("Synthetic Decoy Not Free", lat=40.7406, lng=-73.9995,
                    languages=("es",), cost={"free": False}),
        make_clinic("Synthetic Decoy Cost Unknown", lat=40.7404, lng=-73.9997,
                    languages=("es",)),
        make_clinic("Synthetic Decoy Closed", lat=40.7403, lng=-73.9994, languages=("es",),
                    cost={"free": True}, status=CLOSED),
    ]
    hostile = [
        make_clinic(HOSTILE_IMG, lat=40.8230, lng=-73.9200, postal_code="10451"),
        make_clinic(HOSTILE_TEMPLATE, lat=40.8150, lng=-73.9300, postal_code="10451"),
    ]
    for location in [*made.values(), *decoys, *hostile]:
        made[location.name] = location
    db.session.commit()
    return {name: location.slug for name, location in made.items()}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, neutral_site: str) -> Iterator[Site]:
    """The app on a free port of 127.0.0.1, its own SQLite file, no tile server at all."""
    database = tmp_path_factory.mktemp("browser") / "browser.db"
    settings = Settings(
        env="testing",
        secret_key="browser-test-secret-not-for-production",
        database_url=f"sqlite:///{database}",
        map_tiles_url="",
        quick_exit_url=f"{neutral_site}/",
        testing=True,
        extra={"RATELIMIT_ENABLED": False},
    )
    app = create_app(settings)
    with app.app_context():
        db.create_all()
        slugs = seed()
        db.session.remove()
    try:
        with serve(app) as url:
            yield Site(url, neutral_site, slugs)
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


def query_of(url: str) -> dict[str, list[str]]:
    """The query string of a URL, as lists of values."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def listed(page: Page) -> list[tuple[str, str]]:
    """(name, distance) of every clinic in the results list, in order."""
    cards = page.locator("ol.results > li.card")
    return [
        (card.locator(".card-name").inner_text(), card.locator(".distance").inner_text())
        for card in cards.all()
    ]


# True once markers are drawn and MarkerCluster's fade between zoom levels is over: while
# it runs, the icons of the old zoom level are still in the page at opacity 0.
MAP_SETTLED_JS = """
() => {
  const icons = [...document.querySelectorAll(".map .leaflet-marker-icon")];
  return icons.length > 0 && !document.querySelector(".leaflet-cluster-anim") &&
    icons.every((el) => getComputedStyle(el).opacity === "1");
}
"""


def wait_for_map(page: Page) -> None:
    """Wait until the map has drawn its markers (lone or clustered) and stopped moving."""
    page.wait_for_function(MAP_SETTLED_JS, polling="raf")


def visible(page: Page) -> bool:
    """Whether the page's body is displayed at all."""
    return bool(page.evaluate("getComputedStyle(document.body).display !== 'none'"))


def tour(phone: Phone, site: Site) -> None:
    """Open every public page: search, results with a map, a clinic page, about, safety."""
    page = phone.page
    page.goto(site.url + "/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.goto(site.url + ZIP_SEARCH)
    wait_for_map(page)
    page.goto(site.clinic_url(ALPHA))
    wait_for_map(page)
    page.goto(site.url + "/about")
    page.goto(site.url + "/safety")
    expect(page.get_by_role("heading", name="Quick exit", exact=True)).to_be_visible()


# --- Searching -----------------------------------------------------------------------


def test_search_by_zip_with_two_filters_lists_and_maps_the_same_clinics_nearest_first(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    page.goto(site.url + "/")
    phone.screenshot("phone-home")
    page.get_by_label("ZIP code or neighbourhood").fill("10011")
    page.get_by_role("checkbox", name="Free", exact=True).check()
    page.get_by_role("checkbox", name="Spanish", exact=True).check()
    # The Search button under the filters, where a thumb is after ticking them.
    page.get_by_role("button", name="Search", exact=True).last.click()
    page.wait_for_url("**/clinics?**")

    # The form also says how to order the list; nearest first is the default.
    assert query_of(page.url) == {"near": ["10011"], "cost": ["free"], "lang": ["es"],
                                  "sort": ["distance"]}
    expect(page.get_by_role("heading", level=1)).to_have_text("Clinics near ZIP 10011 (Manhattan)")
    assert listed(page) == [(name, distance) for name, _, _, distance in MATCHES]
    chips = page.locator(".chips .chip")
    expect(chips).to_have_count(2)

    wait_for_map(page)
    markers = page.evaluate(MAP_MARKERS_JS)
    assert sorted((m["title"], m["lat"], m["lng"]) for m in markers) == sorted(
        (name, lat, lng) for name, lat, lng, _ in MATCHES
    )
    shown = page.evaluate(SHOWN_ON_MAP_JS)
    assert shown["lone"] + shown["clustered"] == len(MATCHES), shown
    # Tiles are off: markers on a blank map, not a single map image.
    assert page.locator(".leaflet-tile").count() == 0
    phone.screenshot("phone-results")
    phone.assert_quiet()


def test_a_clinic_page_names_its_sources_and_says_not_known_yet_for_unknown_facts(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    page.goto(site.url + ZIP_SEARCH)
    page.get_by_role("link", name=ALPHA, exact=True).click()
    page.wait_for_url(site.clinic_url(ALPHA))

    expect(page.get_by_role("heading", level=1)).to_have_text(ALPHA)
    article = page.locator("article.clinic")
    expect(article).to_contain_text("From public data only")
    sources = page.locator("p.source")
    expect(sources.first).to_be_visible()
    for text in sources.all_inner_texts():
        assert "Synthetic test data (test-source)" in text
        assert "last verified December 2025" in text
    # The source says nothing about ID, insurance, walk-in or hours: unknown, never "no".
    for heading in ("Is ID asked for?", "Is insurance asked for?",
                    "Walk-in without an appointment"):
        policy = page.locator(".policy").filter(has=page.get_by_role("heading", name=heading))
        expect(policy).to_contain_text("not known yet")
        expect(policy.locator(".no")).to_have_count(0)
    expect(page.locator("table.hours .unknown")).to_have_count(7)
    expect(article).to_contain_text("Hours not known yet")
    wait_for_map(page)
    phone.screenshot("phone-clinic")
    phone.assert_quiet()


def test_near_me_sends_only_a_position_rounded_in_the_browser(
    site: Site, open_phone: Callable[..., Phone]
) -> None:
    phone = open_phone(permissions=["geolocation"], geolocation=PRECISE)
    page = phone.page
    page.goto(site.url + "/")
    page.get_by_role("button", name="Use my location").click()
    page.wait_for_url("**/clinics?**")

    query = query_of(page.url)
    assert query == {"lat": ["40.74"], "lng": ["-74.00"], "sort": ["distance"]}
    assert (float(query["lat"][0]), float(query["lng"][0])) == (40.74, -74.0)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Clinics near your location (about 1 km)"
    )
    assert listed(page), "no clinics listed near the rounded position"
    # The precise digits never reached the server, in any request.
    assert not [url for url in phone.requests if "741234" in url or "001987" in url]
    phone.assert_quiet()


def test_refusing_location_gets_a_friendly_word_and_the_zip_search_still_works(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    page.context.clear_permissions()
    page.goto(site.url + "/")
    page.get_by_role("button", name="Use my location").click()
    expect(page.locator("#near-me-status")).to_contain_text("Your location was not shared")
    assert urlsplit(page.url).path == "/"

    page.get_by_label("ZIP code or neighbourhood").fill("10011")
    page.get_by_label("ZIP code or neighbourhood").press("Enter")
    page.wait_for_url("**/clinics?**")
    assert query_of(page.url)["near"] == ["10011"]
    assert "lat" not in query_of(page.url)
    names = [name for name, _ in listed(page)]
    assert names
    assert "Synthetic Decoy Closed" not in names
    phone.assert_quiet()


# --- Quick exit ----------------------------------------------------------------------


def watch_screen_after_input(phone: Phone) -> list[str]:
    """Record, right after each tap or key press, whether the page was still on screen.

    The listeners sit on window, so they run after quick-exit.js's own (on the link and
    on document) in the same event: what they see is the screen at that very moment,
    before the neutral site has even been asked for.
    """
    seen: list[str] = []
    phone.page.add_init_script(SCREEN_AFTER_INPUT_JS)
    phone.page.on("console", lambda message: seen.append(message.text)
                  if message.text.startswith(SCREEN_PREFIX) else None)
    return seen


def wait_for_lines(page: Page, seen: list[str], count: int) -> list[str]:
    """Wait (up to 5 s) until `count` lines were seen; a page that is leaving reports late."""
    for _ in range(100):
        if len(seen) >= count:
            break
        page.wait_for_timeout(50)
    return seen


def test_quick_exit_button_blanks_the_page_at_once_and_leaves_no_way_back(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    seen = watch_screen_after_input(phone)
    exit_url = f"{site.neutral}/"
    page.goto(f"{site.neutral}/before")
    page.goto(site.url + ZIP_SEARCH)
    wait_for_map(page)
    button = page.get_by_role("link", name="Quick exit")
    # Without JavaScript the button is a plain link to the same neutral site.
    assert button.get_attribute("href") == exit_url
    entries = page.evaluate("history.length")

    button.tap()
    page.wait_for_url(exit_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Neutral weather page")
    assert wait_for_lines(page, seen, 1) == [f'{SCREEN_PREFIX}click display=none title=""']

    # location.replace: the directory page is gone from the tab's history.
    assert page.evaluate("history.length") == entries
    page.go_back()
    assert page.url == f"{site.neutral}/before"
    page.go_forward()
    assert page.url == exit_url
    phone.assert_quiet()


def test_quick_exit_by_pressing_shift_three_times_but_not_when_another_key_comes_between(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    seen = watch_screen_after_input(phone)
    clinic = site.clinic_url(ALPHA)
    page.goto(f"{site.neutral}/before")
    page.goto(clinic)
    wait_for_map(page)
    entries = page.evaluate("history.length")

    for key in ("Shift", "Shift", "a", "Shift"):
        page.keyboard.press(key)
    page.wait_for_timeout(300)  # time enough for a navigation to have started
    assert page.url == clinic
    assert visible(page)
    assert len(wait_for_lines(page, seen, 4)) == 4
    assert all("display=block" in line for line in seen), seen

    page.reload()
    seen.clear()
    for _ in range(3):
        page.keyboard.press("Shift")
    page.wait_for_url(f"{site.neutral}/")
    assert wait_for_lines(page, seen, 3)[2] == f'{SCREEN_PREFIX}keydown display=none title=""'
    assert page.evaluate("history.length") == entries
    page.go_back()
    assert page.url == f"{site.neutral}/before"
    phone.assert_quiet()


# --- Nothing behind the person's back --------------------------------------------------


def test_no_request_leaves_127_0_0_1_with_tiles_off(site: Site, phone: Phone) -> None:
    tour(phone, site)
    paths = [urlsplit(url).path for url in phone.requests]
    # The map really loaded, from our own copies of Leaflet and its marker images.
    assert "/static/vendor/leaflet/leaflet.js" in paths
    assert "/static/vendor/leaflet.markercluster/leaflet.markercluster.js" in paths
    assert any(path.startswith("/static/vendor/leaflet/images/") for path in paths)
    assert phone.foreign_requests() == []
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in phone.requests
               if not url.startswith("data:"))


def test_no_console_errors_or_csp_violations_on_any_page(site: Site, phone: Phone) -> None:
    tour(phone, site)
    assert phone.csp_violations == []
    assert phone.console_errors == []
    assert phone.page_errors == []


def test_hostile_clinic_names_show_literally_in_list_popup_and_page_and_never_run(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    page.goto(site.url + HOSTILE_SEARCH)
    names = [name for name, _ in listed(page)]
    assert names[:2] == [HOSTILE_IMG, HOSTILE_TEMPLATE]
    assert page.locator("img[src='x']").count() == 0

    wait_for_map(page)
    popup = page.locator(".leaflet-popup-content .map-popup-name")
    for name in (HOSTILE_IMG, HOSTILE_TEMPLATE):
        expect(popup).to_have_count(0)
        page.evaluate(SHOW_MARKER_JS, name)
        page.get_by_title(name, exact=True).tap()
        expect(popup).to_have_text(name)
        if name == HOSTILE_IMG:
            # Leaflet fades a popup in: let it finish so the screenshot shows it plainly.
            page.wait_for_function(
                "() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'"
            )
            phone.screenshot("phone-hostile-popup")
            page.locator(".leaflet-popup-close-button").tap()
    page.locator(".leaflet-popup-content a").click()
    page.wait_for_url(site.clinic_url(HOSTILE_TEMPLATE))
    expect(page.get_by_role("heading", level=1)).to_have_text(HOSTILE_TEMPLATE)

    page.goto(site.clinic_url(HOSTILE_IMG))
    expect(page.get_by_role("heading", level=1)).to_have_text(HOSTILE_IMG)
    wait_for_map(page)
    assert page.locator("img[src='x']").count() == 0
    assert not [url for url in phone.requests if urlsplit(url).path.endswith("/x")]
    assert phone.dialogs == []
    phone.assert_quiet()

