"""Searching the directory: places, filters, distance order and pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from directory import geo
from directory.extensions import db
from directory.models import CLOSED, Neighbourhood
from directory.search import SearchQuery, clinic_facts, filter_options, search
from tests.factories import make_clinic, make_source

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # Wednesday 10 am in New York

# Synthetic clinics around Chelsea (ZIP 10011) and one far away in Staten Island.
NEAR = (40.7420, -74.0000)


def test_a_person_near_10011_finds_free_spanish_care_nearest_first(app) -> None:
    make_clinic("Far free Spanish", lat=40.5800, lng=-74.1500, languages=("es",),
                cost={"free": True})
    make_clinic("Near free Spanish", lat=40.7410, lng=-74.0010, languages=("es", "en"),
                cost={"free": True})
    make_clinic("Mid free Spanish", lat=40.7600, lng=-73.9900, languages=("es",),
                cost={"free": True})
    make_clinic("Near but English only", lat=40.7405, lng=-74.0005, languages=("en",),
                cost={"free": True})
    make_clinic("Near but cost unknown", lat=40.7406, lng=-74.0006, languages=("es",))

    page = search(SearchQuery(near="10011", cost=("free",), lang=("es",)), NOW)

    names = [hit.location.name for hit in page.hits]
    assert names == ["Near free Spanish", "Mid free Spanish", "Far free Spanish"]
    distances = [hit.distance_miles for hit in page.hits]
    assert distances == sorted(distances)
    assert distances[0] is not None
    assert distances[0] < 1
    assert page.place is not None
    assert page.place.kind == "zip"


def test_unknown_facts_never_count_as_matches(app) -> None:
    make_clinic("Says ID is asked", documents={"id": True})
    make_clinic("Says nothing about ID")
    make_clinic("Says no ID needed", documents={"id": False})
    page = search(SearchQuery(no_id=True), NOW)
    assert [h.location.name for h in page.hits] == ["Says no ID needed"]


def test_services_must_all_match_and_languages_any(app) -> None:
    make_clinic("PrEP and testing", services=("prep", "hiv_testing"), languages=("ru",))
    make_clinic("Testing only", services=("hiv_testing",), languages=("bn",))
    both = search(SearchQuery(service=("prep", "hiv_testing")), NOW)
    assert [h.location.name for h in both.hits] == ["PrEP and testing"]
    any_lang = search(SearchQuery(lang=("ru", "bn")), NOW)
    assert {h.location.name for h in any_lang.hits} == {"PrEP and testing", "Testing only"}


def test_walk_in_no_insurance_medicaid_and_sliding(app) -> None:
    make_clinic("All of it", walk_in=True, cost={"medicaid": True, "sliding_fee": True},
                documents={"insurance": False})
    make_clinic("Appointments", walk_in=False, cost={"medicaid": True})
    query = SearchQuery(walk_in=True, cost=("medicaid", "sliding", "no_insurance"))
    assert [h.location.name for h in search(query, NOW).hits] == ["All of it"]


def test_closed_sites_are_never_listed(app) -> None:
    make_clinic("Gone", status=CLOSED)
    make_clinic("Here")
    assert [h.location.name for h in search(SearchQuery(near="10011"), NOW).hits] == ["Here"]


def test_pages_continue_in_distance_order_beyond_the_first_radius(app) -> None:
    # 30 synthetic clinics in a line going north from Chelsea, about 0.35 miles apart.
    for i in range(30):
        make_clinic(f"Line {i:02d}", lat=40.7420 + i * 0.005, lng=-74.0000)
    first = search(SearchQuery(lat=40.74, lng=-74.0), NOW, per_page=10)
    second = search(SearchQuery(lat=40.74, lng=-74.0, page=2), NOW, per_page=10)
    third = search(SearchQuery(lat=40.74, lng=-74.0, page=3), NOW, per_page=10)
    names = [h.location.name for p in (first, second, third) for h in p.hits]
    assert names == [f"Line {i:02d}" for i in range(30)]
    assert first.has_next
    assert second.has_next
    assert not third.has_next
    assert not first.has_prev
    assert third.has_prev
    assert first.radius_miles == 5.0  # the box grew only as far as the page needed


def test_empty_result_says_which_filter_to_loosen(app) -> None:
    make_clinic("Walk-in place", walk_in=True, languages=("en",))
    page = search(SearchQuery(near="10011", walk_in=True, lang=("zh",)), NOW)
    assert page.hits == []
    assert any("Chinese" in hint and "1 clinic" in hint for hint in page.loosen)
    assert not any("Walk-in" in hint for hint in page.loosen)


def test_near_me_is_rounded_to_about_a_kilometre(app) -> None:
    place = geo.resolve_place("", 40.741234, -74.001987)
    assert place is not None
    assert (place.latitude, place.longitude) == (40.74, -74.0)


@pytest.mark.parametrize(
    ("near", "lat", "lng", "message"),
    [
        ("90210", None, None, "outside New York City"),
        ("00000", None, None, "could not find the ZIP"),
        ("1001", None, None, "five digits"),
        ("", 999.0, 10.0, "does not look right"),
        ("", 34.05, -118.24, "outside New York City"),
        ("", 40.7, None, "incomplete"),
        ("Atlantis Heights", None, None, "could not find a neighbourhood"),
    ],
)
def test_places_we_cannot_search_get_a_kind_message(app, near, lat, lng, message) -> None:
    with pytest.raises(geo.PlaceNotFound, match=message):
        geo.resolve_place(near, lat, lng)


def _neighbourhoods() -> None:
    for code, name, borough, lat, lng in [
        ("BX0101", "Mott Haven-Port Morris", "Bronx", 40.806, -73.920),
        ("QN0301", "Jackson Heights", "Queens", 40.755, -73.885),
        ("MN0401", "Chelsea-Hudson Yards", "Manhattan", 40.748, -74.000),
    ]:
        db.session.add(Neighbourhood(code=code, name=name, borough=borough, latitude=lat,
                                     longitude=lng))
    db.session.flush()


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Mott Haven", "Mott Haven-Port Morris"),
        ("mott", "Mott Haven-Port Morris"),
        ("Port Morris", "Mott Haven-Port Morris"),
        ("Jackson Heights", "Jackson Heights"),
        ("Jakson Heights", "Jackson Heights"),
        ("jackson hieghts", "Jackson Heights"),
        ("CHELSEA", "Chelsea-Hudson Yards"),
    ],
)
def test_neighbourhood_names_forgive_case_parts_and_typos(app, typed, expected) -> None:
    _neighbourhoods()
    found = geo.find_neighbourhood(typed)
    assert found is not None
    assert found.name == expected


def test_search_by_neighbourhood_centres_on_it(app) -> None:
    _neighbourhoods()
    make_clinic("Bronx clinic", lat=40.807, lng=-73.921)
    make_clinic("Queens clinic", lat=40.756, lng=-73.884)
    page = search(SearchQuery(near="Mott Haven"), NOW)
    assert page.hits[0].location.name == "Bronx clinic"
    assert page.place is not None
    assert "Mott Haven" in page.place.label


def test_filter_options_come_from_the_data(app) -> None:
    make_clinic(languages=("es", "ht"), services=("prep",))
    make_clinic(languages=("es",), services=("prep", "pep"))
    options = filter_options()
    assert ("es", "Spanish", 2) in options.languages
    assert ("ht", "Haitian Creole", 1) in options.languages
    counts = {code: count for code, _label, count in options.services}
    assert counts["prep"] == 2
    assert counts["pep"] == 1
    assert counts["trans_care"] == 0


def test_clinic_facts_keep_sources_and_unknowns(app) -> None:
    source = make_source("fact-source")
    clinic = make_clinic("Facts", source=source, cost={"free": True, "medicaid": None},
                         documents={"id": False}, walk_in=True,
                         hours={"MO": [(540, 1020)], "SA": [(0, 0)]})
    facts = clinic_facts(clinic, NOW)
    assert [f.label for f in facts.services] == ["HIV testing"]
    assert all(f.source is source for f in facts.services + facts.costs + facts.documents)
    medicaid = next(f for f in facts.costs if f.label == "Medicaid accepted")
    assert medicaid.value is None  # unknown stays unknown
    days = {d.day: d for d in facts.hours}
    assert days["Monday"].intervals == ["9:00 AM – 5:00 PM"]
    assert days["Monday"].known
    assert days["Saturday"].intervals == []
    assert days["Saturday"].known
    assert not days["Tuesday"].known  # not known yet
    assert facts.hours_fact is not None
    assert facts.hours_fact.source is source
    assert facts.open_now is False  # Wednesday
