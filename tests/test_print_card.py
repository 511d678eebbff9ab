"""The printable clinic card: one page with what someone needs to get there, and nothing
that says what the directory is about. Every clinic here is synthetic."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from directory.extensions import db
from directory.models import CLOSED
from tests.factories import make_clinic

HOURS = {"MO": [(9 * 60, 17 * 60)], "TH": [(13 * 60, 20 * 60)], "SA": [(0, 0)]}


def card_clinic(**options: object):  # type: ignore[no-untyped-def]
    """A synthetic clinic with hours, documents, cost and transit."""
    location = make_clinic(
        "Synthetic Card Clinic", hours=HOURS, documents={"id": False, "insurance": None},
        cost={"free": True}, walk_in=True, languages=("es", "zh"), **options,  # type: ignore[arg-type]
    )
    location.transit = "Synthetic: A/C/E to 14 St"
    db.session.commit()
    return location


def test_the_card_has_address_hours_what_to_bring_transit_and_phone(client: FlaskClient) -> None:
    location = card_clinic()
    response = client.get(f"/clinics/{location.slug}/card")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "Synthetic Card Clinic" in text
    assert f"{location.address_1}, New York, NY 10011" in text
    assert "(212) 555-0100" in text
    assert "Synthetic: A/C/E to 14 St" in text
    assert "Monday 9:00 AM – 5:00 PM" in text
    assert "Thursday 1:00 PM – 8:00 PM" in text
    assert "Saturday Closed" in text
    assert "Tuesday not known yet" in text
    assert "Photo or personal ID: not asked for" in text
    # Unknown is "not known yet", never "no".
    assert "Insurance card: not known yet" in text
    assert "Walk-in without an appointment: Yes" in text
    assert "Free: Yes" in text
    assert "Spanish, Chinese" in text
    assert "call before you go" in text


def test_the_card_has_no_script_no_map_and_a_discreet_title(client: FlaskClient) -> None:
    location = card_clinic()
    html = client.get(f"/clinics/{location.slug}/card").get_data(as_text=True)
    assert "<script" not in html
    assert "leaflet" not in html.lower()
    assert 'class="map' not in html
    assert re.search(r"<title>Card · Health services</title>", html)
    # The services offered stay off paper: a card must not say what someone went for.
    assert "HIV" not in html
    # Nothing on it names what the directory is for.
    for word in ("sex", "CareMap"):
        assert word not in re.sub(r"<(title|head)>.*?</\1>", "", html, flags=re.S)
    assert re.search(r'href="/static/css/print\.css\?v=[0-9a-f]{12}"', html)


def test_the_clinic_page_links_to_its_card(client: FlaskClient) -> None:
    location = card_clinic()
    html = client.get(f"/clinics/{location.slug}").get_data(as_text=True)
    assert f'href="/clinics/{location.slug}/card"' in html


def test_the_card_is_never_stored_and_escapes_hostile_names(client: FlaskClient) -> None:
    location = make_clinic("Synthetic <script>alert(1)</script> Clinic")
    db.session.commit()
    response = client.get(f"/clinics/{location.slug}/card")
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_closed_clinic_card_says_so_and_an_unknown_one_is_404(client: FlaskClient) -> None:
    location = card_clinic(status=CLOSED)
    html = client.get(f"/clinics/{location.slug}/card").get_data(as_text=True)
    assert "Reported closed." in html
    assert client.get("/clinics/no-such-clinic/card").status_code == 404


def test_print_css_hides_the_site_chrome_and_the_browser_header(client: FlaskClient) -> None:
    css = client.get("/static/css/print.css").get_data(as_text=True)
    rules = css[css.index("@media print"):]
    assert "@page { margin: 0; }" in rules
    for selector in (".site-header", ".quick-exit", ".map-section", ".card-screen-only"):
        assert selector in rules
