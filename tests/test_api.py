"""The partner API: the web search as JSON, clinics with their sources, problem details,
ETags, CORS, rate limits, incremental sync, and a spec that cannot drift from the code."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from directory import create_app
from directory.api import ApiSearchForm, parse_datetime
from directory.config import Settings
from directory.extensions import db
from directory.forms import SearchForm
from directory.importer import run_import
from directory.models import CLOSED, ClinicScore, Location, Neighbourhood
from directory.openapi import build_spec
from directory.search import SearchQuery, search
from tests.factories import make_clinic, make_review

FIXTURE = Path(__file__).parent / "fixtures" / "import"


def chelsea_clinics() -> None:
    """Synthetic clinics around ZIP 10011, with a far one in Staten Island."""
    make_clinic("Far Free Spanish", lat=40.5800, lng=-74.1500, languages=("es",),
                cost={"free": True})
    make_clinic("Near Free Spanish", lat=40.7410, lng=-74.0010, languages=("es", "en"),
                cost={"free": True}, walk_in=True, documents={"id": False},
                hours={"MO": [(540, 1020)], "SU": [(0, 0)]})
    make_clinic("Mid Free Spanish", lat=40.7600, lng=-73.9900, languages=("es",),
                cost={"free": True})
    make_clinic("Near English Only", lat=40.7405, lng=-74.0005, languages=("en",),
                cost={"free": True})
    make_clinic("Near Cost Unknown", lat=40.7406, lng=-74.0006, languages=("es",))
    db.session.add(Neighbourhood(code="MN0401", name="Chelsea-Hudson Yards",
                                 borough="Manhattan", latitude=40.7455, longitude=-74.0008))
    db.session.commit()


def names(response_json: dict) -> list[str]:  # type: ignore[type-arg]
    return [c["name"] for c in response_json["clinics"]]


# --- Search ------------------------------------------------------------------------------


def test_a_partner_searches_near_10011_for_free_care_in_spanish(
        client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    response = client.get("/api/v1/clinics?near=10011&cost=free&lang=es")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.json
    assert names(body) == ["Near Free Spanish", "Mid Free Spanish", "Far Free Spanish"]
    assert body["place"]["label"] == "ZIP 10011 (Manhattan)"
    first = body["clinics"][0]
    assert first["distance_miles"] < first["distance_miles"] + 1
    assert first["url"].startswith("/clinics/")
    assert first["services"] == ["hiv_testing"]
    assert first["score"] is None


def test_the_api_finds_exactly_what_the_web_search_finds(
        client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    for args, query in [
        ("near=10011&cost=free&lang=es", SearchQuery(near="10011", cost=("free",),
                                                     lang=("es",))),
        ("walk_in=true&no_id=true", SearchQuery(walk_in=True, no_id=True)),
        ("lat=40.74&lng=-74.0&service=hiv_testing", SearchQuery(lat=40.74, lng=-74.0,
                                                                service=("hiv_testing",))),
    ]:
        expected = [hit.location.name for hit in search(query, datetime.now(UTC)).hits]
        assert names(client.get(f"/api/v1/clinics?{args}").json) == expected
        web = client.get(f"/clinics?{args.replace('=true', '=y')}").get_data(as_text=True)
        assert [n for n in expected if n in web] == expected


def test_paging_with_per_page_and_links_that_repeat_the_search(
        client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    first = client.get("/api/v1/clinics?near=10011&per_page=2").json
    assert len(first["clinics"]) == 2
    assert first["has_next"]
    assert first["links"]["prev"] is None
    second = client.get(first["links"]["next"]).json
    assert second["page"] == 2
    assert not set(names(first)) & set(names(second))
    assert "near=10011" in first["links"]["next"]
    assert "per_page=2" in first["links"]["next"]


BAD_PARAMETERS = [
    ("page=abc", "page"), ("page=0", "page"), ("page=100000", "page"),
    ("per_page=0", "per_page"), ("per_page=101", "per_page"), ("per_page=1.5", "per_page"),
    ("lat=NaN&lng=-74", "lat"), ("lat=91&lng=-74", "lat"), ("lng=1e999&lat=40.7", "lng"),
    ("cost=cheap", "cost"), ("lang=xx", "lang"), ("service=massage", "service"),
    ("hours=midnight", "hours"), ("walk_in=yes", "walk_in"), ("no_id=1", "no_id"),
    ("near=" + "x" * 201, "near"), ("modified_after=yesterday", "modified_after"),
    ("modified_after=2026-01-01", "modified_after"), ("sort=random", "sort"),
    ("colour=blue", "colour"), ("tiles=off", "tiles"),
]


@pytest.mark.parametrize(("query", "parameter"), BAD_PARAMETERS)
def test_malformed_parameters_get_a_400_problem_naming_each_one(
        client: FlaskClient, app: Flask, query: str, parameter: str) -> None:
    response = client.get(f"/api/v1/clinics?{query}")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == 400
    assert body["type"].endswith("invalid-parameters")
    assert {"title", "detail"} <= set(body)
    assert parameter in [e["parameter"] for e in body["errors"]]


@pytest.mark.parametrize("query", [
    "near=10011&sort=score", "rated=true", "rated=true&sort=score",
    "near=10011&rated=true&sort=score&page=2", "hours=open_now&hours=evening&hours=weekend",
    "modified_after=2000-01-01T00:00:00Z&rated=true&sort=score",
])
def test_every_filter_and_order_answers_200(
        client: FlaskClient, app: Flask, query: str) -> None:
    chelsea_clinics()
    assert client.get(f"/api/v1/clinics?{query}").status_code == 200


def test_several_bad_parameters_are_all_named(client: FlaskClient, app: Flask) -> None:
    body = client.get("/api/v1/clinics?page=x&cost=cheap&walk_in=maybe&foo=1").json
    assert {e["parameter"] for e in body["errors"]} == {"page", "cost", "walk_in", "foo"}


def test_a_place_we_do_not_know_is_a_422_problem(client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    for query, parameter in [("near=Atlantis", "near"), ("near=90210", "near"),
                             ("lat=40.7", "lat"), ("lat=51.5&lng=-0.12", "lat")]:
        response = client.get(f"/api/v1/clinics?{query}")
        assert response.status_code == 422, query
        assert response.mimetype == "application/problem+json"
        assert response.json["errors"][0]["parameter"] == parameter


def test_a_neighbourhood_name_works_as_near(client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    body = client.get("/api/v1/clinics?near=Chelsea").json
    assert body["place"]["kind"] == "neighbourhood"
    assert body["clinics"]


# --- One clinic -------------------------------------------------------------------------


def test_a_clinic_by_number_or_slug_has_every_fact_with_its_source_and_date(
        client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    clinic = db.session.execute(select(Location).where(
        Location.name == "Near Free Spanish")).scalar_one()
    by_id = client.get(f"/api/v1/clinics/{clinic.id}").json
    by_slug = client.get(f"/api/v1/clinics/{clinic.slug}").json
    assert by_id == by_slug
    facts = by_id["facts"]
    assert {f["label"] for f in facts["languages"]} == {"Spanish", "English"}
    for group in facts.values():
        for fact in group:
            assert fact["source"] == "test-source"
            assert fact["verified_on"] == "2025-12-01"
    assert facts["documents"] == [{"label": "Photo or personal ID", "value": False,
                                   "context": "for HIV testing", "detail": None,
                                   "source": "test-source", "verified_on": "2025-12-01"}]
    assert by_id["sources"]["test-source"]["title"].startswith("Synthetic test data")
    assert by_id["contact_sources"]["address"]["source"] == "test-source"
    week = {d["day"]: d for d in by_id["hours"]["week"]}
    assert week["Monday"]["intervals"] == ["9:00 AM – 5:00 PM"]
    assert week["Sunday"] == {"day": "Sunday", "known": True, "intervals": []}  # closed
    assert week["Tuesday"]["known"] is False  # not known, never "closed"


def test_an_unknown_clinic_is_a_404_problem(client: FlaskClient, app: Flask) -> None:
    for ref in ("999999", "no-such-clinic", "%C2%B2", "9" * 30):
        response = client.get(f"/api/v1/clinics/{ref}")
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_a_score_is_shown_only_when_there_is_one(client: FlaskClient, app: Flask) -> None:
    rated = make_clinic("Synthetic Rated")
    few = make_clinic("Synthetic Few Reviews")
    db.session.add(ClinicScore(location_id=rated.id, review_count=4, respect_sum=20,
                               respect_count=4, open_about_work_sum=20,
                               open_about_work_count=4, privacy_sum=20, privacy_count=4,
                               gender_respected_sum=20, gender_respected_count=4))
    db.session.add(ClinicScore(location_id=few.id, review_count=1, respect_sum=5,
                               respect_count=1))
    db.session.commit()
    body = client.get(f"/api/v1/clinics/{rated.id}").json
    assert body["score"]["review_count"] == 4
    assert 3 < body["score"]["score"] <= 5
    assert client.get(f"/api/v1/clinics/{few.id}").json["score"] is None
    listed = {c["name"]: c["score"] for c in client.get("/api/v1/clinics").json["clinics"]}
    assert listed["Synthetic Rated"] == body["score"]
    assert listed["Synthetic Few Reviews"] is None


def test_nothing_about_reviewers_or_moderation_notes_is_ever_answered(
        client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic("Synthetic Reviewed")
    make_review(clinic, status="published", text="SYNTHETIC-PUBLISHED-TEXT", respect=5)
    make_review(clinic, status="rejected", text="SYNTHETIC-REJECTED-TEXT",
                reject_reason="spam")
    db.session.commit()
    for url in ("/api/v1/clinics", f"/api/v1/clinics/{clinic.id}", "/api/v1/hsds.json"):
        text = client.get(url).get_data(as_text=True)
        assert "SYNTHETIC-PUBLISHED-TEXT" not in text
        assert "SYNTHETIC-REJECTED-TEXT" not in text
        assert "spam" not in text
        assert "withdraw" not in text


# --- Lists, ETags, CORS, methods ----------------------------------------------------------


def test_services_languages_and_neighbourhoods(client: FlaskClient, app: Flask) -> None:
    chelsea_clinics()
    services = {s["code"]: s["clinics"] for s in client.get("/api/v1/services").json["services"]}
    assert services["hiv_testing"] == 5
    assert services["prep"] == 0
    languages = {s["code"]: s["clinics"]
                 for s in client.get("/api/v1/languages").json["languages"]}
    assert languages == {"es": 4, "en": 2}
    hoods = client.get("/api/v1/neighbourhoods").json["neighbourhoods"]
    assert hoods == [{"code": "MN0401", "name": "Chelsea-Hudson Yards", "borough": "Manhattan",
                      "latitude": 40.7455, "longitude": -74.0008}]


@pytest.mark.parametrize("url", ["/api/v1/clinics?near=10011", "/api/v1/services",
                                 "/api/v1/languages", "/api/v1/neighbourhoods"])
def test_lists_have_an_etag_and_answer_304_when_unchanged(
        client: FlaskClient, app: Flask, url: str) -> None:
    chelsea_clinics()
    first = client.get(url)
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    compressed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert client.get(url, headers={"Accept-Encoding": "gzip", "If-None-Match": compressed
                                    .headers["ETag"]}).status_code == 304
    make_clinic("Synthetic Newcomer", languages=("es",), cost={"free": True})
    db.session.add(Neighbourhood(code="MN0402", name="Synthetic Hood", borough="Manhattan",
                                 latitude=40.75, longitude=-74.0))
    db.session.commit()
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 200


def test_any_site_may_read_but_nobody_may_write(client: FlaskClient, app: Flask) -> None:
    response = client.get("/api/v1/services")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    preflight = client.options("/api/v1/clinics", headers={
        "Origin": "https://partner.example", "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert "If-None-Match" in preflight.headers["Access-Control-Allow-Headers"]
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/clinics")
        assert response.status_code == 405
        assert response.mimetype == "application/problem+json"
        assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert client.head("/api/v1/services").status_code == 200


def test_unknown_api_paths_are_problems_but_the_site_keeps_its_html_pages(
        client: FlaskClient, app: Flask) -> None:
    for path in ("/api/v1/nothing", "/api/v2/clinics", "/api/v1/clinics/1/extra"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
        assert response.json["title"] == "Not Found"
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert client.post("/clinics").mimetype == "text/html"


def test_the_api_is_rate_limited_with_a_problem(settings: Settings, app: Flask) -> None:
    limited = create_app(replace(settings, search_rate_limit="2 per minute",
                                 extra={**settings.extra, "RATELIMIT_ENABLED": True}))
    client = limited.test_client()
    codes = [client.get("/api/v1/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    response = client.get("/api/v1/")
    assert response.mimetype == "application/problem+json"
    assert response.json["status"] == 429


def test_an_error_inside_a_view_is_a_500_problem(
        settings: Settings, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = create_app(replace(settings, extra={**settings.extra,
                                                 "PROPAGATE_EXCEPTIONS": False}))

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("synthetic fault")

    monkeypatch.setattr("directory.api.cached_filter_options", explode)
    response = broken.test_client().get("/api/v1/services")
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert "synthetic fault" not in response.get_data(as_text=True)


# --- Incremental sync ---------------------------------------------------------------------


def test_modified_after_returns_changed_listings_including_closed_ones(
        client: FlaskClient, app: Flask) -> None:
    old = make_clinic("Synthetic Unchanged")
    changed = make_clinic("Synthetic Changed")
    closed = make_clinic("Synthetic Closed", status=CLOSED)
    long_ago = datetime(2025, 1, 1, tzinfo=UTC)
    old.modified_at = long_ago
    changed.modified_at = long_ago + timedelta(days=40)
    closed.modified_at = long_ago + timedelta(days=50)
    db.session.commit()
    body = client.get("/api/v1/clinics?modified_after=2025-02-01T00:00:00Z").json
    assert sorted(names(body)) == ["Synthetic Changed", "Synthetic Closed"]
    assert {c["name"]: c["status"] for c in body["clinics"]}["Synthetic Closed"] == "closed"
    # Offsets are honoured: 2025-02-09T20:00-05:00 is 2025-02-10T01:00Z.
    body = client.get("/api/v1/clinics?modified_after=2025-02-09T20:00:00-05:00").json
    assert sorted(names(body)) == ["Synthetic Closed"]
    # Without modified_after a closed listing is never in search.
    assert "Synthetic Closed" not in names(client.get("/api/v1/clinics").json)
    assert body["clinics"][0]["modified_at"] == "2025-02-20T00:00:00Z"


def test_parse_datetime_reads_rfc3339_only() -> None:
    assert parse_datetime("2026-01-31T09:00:00Z") == datetime(2026, 1, 31, 9, tzinfo=UTC)
    assert parse_datetime("2026-01-31t04:00:00.123456789-05:00") == datetime(
        2026, 1, 31, 9, 0, 0, 123456, tzinfo=UTC)
    assert parse_datetime("2016-12-31T23:59:60Z").year == 2016  # a leap second
    for bad in ("2026-01-31", "2026-01-31T09:00:00", "31/01/2026", "now", ""):
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_datetime(bad)


def copy_fixture(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


def stamps() -> dict[str, datetime]:
    return dict(db.session.execute(select(Location.import_key, Location.modified_at)).all())


def test_the_seed_importer_stamps_only_listings_that_changed(
        app: Flask, tmp_path: Path) -> None:
    data = copy_fixture(tmp_path)
    run_import(data, db.session)
    db.session.commit()
    first = stamps()
    assert first
    # Nothing changed: nothing stamped (a second import is a no-op, modified_at included).
    report = run_import(data, db.session)
    db.session.commit()
    assert report.total_changes == 0
    assert stamps() == first
    # One site's Thursday hours change in one file: that listing alone gets a new stamp.
    path = data / "nyc_hiv_testing_locations_2018.csv"
    text = path.read_text(encoding="utf-8")
    assert text.count("9am-1pm, 2pm-6pm") == 1
    path.write_text(text.replace("9am-1pm, 2pm-6pm", "9am-1pm, 2pm-7pm"), encoding="utf-8")
    report = run_import(data, db.session)
    db.session.commit()
    assert report.total_changes > 0
    after = stamps()
    moved = [key for key in first if after[key] != first[key]]
    assert len(moved) == 1
    assert after[moved[0]] > first[moved[0]]


# --- The description: generated from the code, checked against it ---------------------


def api_routes(app: Flask) -> dict[str, set[str]]:
    """Every API route (as an OpenAPI path under /api/v1) with its view's methods."""
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.unknown_path":
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            out[path.removeprefix("/api/v1")] = set(rule.methods or ())
    return out


def test_the_spec_lists_exactly_the_routes_the_app_serves(app: Flask) -> None:
    spec = build_spec()
    routes = api_routes(app)
    assert set(spec["paths"]) == set(routes)
    for path, operations in spec["paths"].items():
        assert set(operations) == {"get"}
        assert "GET" in routes[path]
        for parameter in operations["get"].get("parameters", []):
            if parameter["in"] == "path":
                assert "{" + parameter["name"] + "}" in path


def test_the_search_parameters_are_the_forms_fields(app: Flask) -> None:
    spec = build_spec()
    documented = [p for p in spec["paths"]["/clinics"]["get"]["parameters"]
                  if p["in"] == "query"]
    assert [p["name"] for p in documented] == ApiSearchForm.parameter_names()
    form = ApiSearchForm(formdata=None, meta={"csrf": False})
    for parameter in documented:
        field = form[parameter["name"]]
        schema = parameter["schema"]
        if schema["type"] == "array":
            assert schema["items"]["enum"] == [c.value for c in field.choices]
    # Every filter the web search has is in the API too (minus the map's image setting).
    web = [f.name for f in SearchForm(formdata=None, meta={"csrf": False})]
    assert [n for n in web if n != "tiles"] == [n for n in ApiSearchForm.parameter_names()
                                                if n not in ("per_page", "modified_after")]


def test_the_spec_is_served_and_the_docs_page_lists_every_operation(
        client: FlaskClient, app: Flask) -> None:
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"
    assert spec == build_spec()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for path in spec["paths"]:
        assert f"/api/v1{path}" in html
    for name in ApiSearchForm.parameter_names():
        assert f"<code>{name}</code>" in html
    # Served from our own origin: no script, style or image from anywhere else.
    assert not re.findall(r'src="(?:https?:)?//', html)
    assert not re.findall(r'<link[^>]+href="(?:https?:)?//', html)
