"""Importing the seed data: pure helpers, a synthetic fixture, then the real files."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from directory.config import PROJECT_ROOT
from directory.extensions import db
from directory.importer import (
    DOH_SHC_2025,
    FILES,
    HIV_2018,
    NYS_FACILITIES,
    PREP_2025,
    ZIPCODES,
    ImportFailed,
    ImportReport,
    clean_org_name,
    clean_text,
    clean_website,
    format_phone,
    normalise_address,
    normalise_name,
    nyc_zip,
    parse_cost_options,
    parse_intake,
    parse_languages,
    parse_required_documents,
    run_import,
    services_named_in,
    slugify,
    split_one_line_address,
    strip_closed_marker,
)
from directory.models import (
    ACTIVE,
    CostOption,
    Language,
    Location,
    Neighbourhood,
    Organization,
    Provenance,
    RequiredDocument,
    Schedule,
    Service,
    ServiceAtLocation,
    Source,
)

REAL_DATA = PROJECT_ROOT / "data" / "raw"
FIXTURE = Path(__file__).parent / "fixtures" / "import"
FACT_MODELS = (ServiceAtLocation, Schedule, Language, CostOption, RequiredDocument)
ALL_MODELS = (Source, Neighbourhood, Organization, Location, Provenance, Service,
              *FACT_MODELS)

# ---------------------------------------------------------------------------------------
# Pure helpers.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("303 9th Avenue, 2nd Floor", "303 Ninth Ave"),
        ("303 9th Avenue", "303 9th Ave., Fl 4"),
        ("2238 Fifth Avenue", "2238 5th Avenue,1st Floor"),
        ("295 Flatbush Avenue Extension", "295 Flatbush Ave Ext"),
        ("90-37 Parsons Boulevard", "90 - 37 Parsons Blvd"),
        ("160 West 100 Street", "160 W. 100th St."),
        ("1000 10th Avenue Suite 2T", "1000 Tenth Ave"),
        ("555 West 57th Street #1500", "555 W 57 St"),
        ("3452 Richmond Avenue Suite 200 Staten Island, NY 10312", "3452 Richmond Ave"),
        ("Bronx County Public Administration, 851 Grand Concourse", "851 Grand Concourse"),
        ("1901 1st Avenue, New York, NY, USA", "1901 First Avenue"),
        ("One Gustave L. Levy Place", "1 Gustave L Levy Pl"),
        ("462 East 1st Ave", "462 1 Avenue"),
        ("1391Nelson Avenue", "1391 Nelson Ave"),
        ("429 W 127th St. 2nd Fl.", "429 West 127th Street"),
        ("3960 Broadway, Lab 501", "3960 Broadway"),
        ("230 West 17th StreetStreet", "230 W 17th St"),
    ],
)
def test_addresses_that_name_one_building_normalise_alike(a: str, b: str) -> None:
    assert normalise_address(a) == normalise_address(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("303 9th Avenue", "303 10th Avenue"),
        ("1400 Pelham Parkway South", "1400 Pelham Parkway North"),
        ("1 Avenue U", "1 Avenue X"),
        ("160 West 100 Street", "160 East 100 Street"),
    ],
)
def test_different_buildings_stay_apart(a: str, b: str) -> None:
    assert normalise_address(a) != normalise_address(b)


def test_saint_and_street_are_told_apart() -> None:
    assert normalise_address("444 St Mark\x1as Place") == "444 st marks pl"
    assert normalise_address("353 West Street 353 West Street New York, NY 10014") == "353 w st"


def test_names_normalise_without_punctuation_or_closed_markers() -> None:
    assert normalise_name("Chelsea STD Clinic **CLOSED AS OF 3/23**") == "chelsea std clinic"
    assert normalise_name("The Door & Co., Inc.") == "door and co"
    assert strip_closed_marker("Chelsea STD Clinic **CLOSED AS OF 3/23**") == (
        "Chelsea STD Clinic", "CLOSED AS OF 3/23")
    assert strip_closed_marker("Open Door Clinic") == ("Open Door Clinic", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("None", {"id": False, "insurance": False, "income": False}),
        ("None.", {"id": False, "insurance": False, "income": False}),
        ("no", {"id": False, "insurance": False, "income": False}),
        ("Personal ID is not required but may allow quicker access to services.", {"id": False}),
        ("No ID necessary.", {"id": False}),
        ("Photo ID preferred-- not necessary.", {"id": False}),
        ("Photo ID", {"id": True}),
        ("Personal ID is required.", {"id": True}),
        ("Government ID is required.", {"id": True}),
        ("ID will be needed", {"id": True}),
        ("Photo ID is preferred.", {"id": None}),
        ("Photo ID, proof of address, proof of income, list of medicines, past health records",
         {"id": True, "address": True, "income": True}),
        ("Photo ID or similar documentation like paystub necessary. Proof of address, proof of "
         "income, list of medicines, past health records preferred",
         {"id": True, "address": None, "income": None}),
        # Stated both ways, or with a way in without it: unknown, not a guess.
        ("For free rapid tests, no documents are required. For lab-based blood tests, Photo ID "
         "and insurance card are required.", {"id": None, "insurance": None, "income": False}),
        ("Photo ID and insurance card are required. If uninsured, sliding fee scale is "
         "available.", {"id": True, "insurance": None}),
        ("Clients under 18 must present a written consent signed by a parent or legal "
         "guardian.", {}),
    ],
)
def test_required_documents_read_as_stated(text: str, expected: dict[str, bool | None]) -> None:
    assert parse_required_documents(text) == expected


def test_languages_skip_phone_interpreters_and_report_unknown_names() -> None:
    codes, unknown = parse_languages(
        "English, Spanish, Mandarin, Cantonese, For more than 150 other languages we use our "
        "Language Line, a live telephone translation service.")
    assert codes == [("en", "English"), ("es", "Spanish"), ("zh", "Chinese")]
    assert unknown == []
    codes, unknown = parse_languages("English, French, Spanish, Bambara, Wulof, Amharic, Jula,")
    assert [c for c, _ in codes] == ["en", "fr", "es", "bm", "wo", "am", "dyu"]
    assert unknown == []
    assert parse_languages("English, Klingon")[1] == ["Klingon"]
    assert parse_languages("Spanish + Phone Translations are available") == (
        [("es", "Spanish")], [])
    assert parse_languages("English/Spanish onsite")[0] == [("en", "English"), ("es", "Spanish")]
    assert parse_languages("Language Bank - Offers over 50 languages") == ([], [])


def test_cost_false_is_not_stated_never_no() -> None:
    empty_head_office = {"Medicaid": "", "Sliding Fee": "", "Low Cost": "FALSE",
                         "Free": "FALSE", "Medicare": ""}
    assert parse_cost_options(empty_head_office) == {}
    full = {"Medicaid": "Yes", "Sliding Fee": "Yes", "Low Cost": "TRUE", "Free": "TRUE",
            "Medicare": "Yes"}
    assert parse_cost_options(full) == {"medicaid": True, "sliding_fee": True,
                                        "low_cost": True, "free": True, "medicare": True}
    # Only an explicit "No" is a stated no.
    assert parse_cost_options({**empty_head_office, "Medicare": "No"}) == {"medicare": False}


def test_intake_walk_in_is_tri_state() -> None:
    assert parse_intake("Walk-ins welcome") == (True, None)
    assert parse_intake("Appointment required") == (False, None)
    assert parse_intake("Appointment preferred") == (None, "Intake: Appointment preferred")
    assert parse_intake("") == (None, None)


def test_services_named_in_site_names() -> None:
    assert services_named_in("Fort Greene STD Clinic") == ["sti_testing"]
    assert services_named_in("Central Harlem Sexual Health Clinic") == ["sti_testing"]
    assert services_named_in("BOOM! Health Harm Reduction Center") == ["harm_reduction"]
    assert services_named_in("Syringe Exchange") == ["harm_reduction"]
    assert services_named_in("Standard Clinic") == []


def test_small_text_helpers() -> None:
    assert split_one_line_address("1309 Fulton Avenue, Second Floor, Bronx, NY 10456") == (
        "1309 Fulton Avenue", "Second Floor", "Bronx", "10456")
    with pytest.raises(ValueError, match="one-line"):
        split_one_line_address("1309 Fulton Avenue")
    assert slugify("Chelsea Sexual Health Clinic") == "chelsea-sexual-health-clinic"
    assert slugify("Señora's Clinic & Co.") == "senora-s-clinic-co"
    assert slugify("!!!") == "clinic"
    assert clean_website('"http://example.org"') == "http://example.org"
    assert clean_website("manhattanbp.nyc.gov") == "http://manhattanbp.nyc.gov"
    assert clean_website("Acacia Network") is None
    assert format_phone("2122371707") == "(212) 237-1707"
    assert format_phone("(718) 555-0100 ext. 12") == "(718) 555-0100 ext. 12"
    assert format_phone("N/A") is None
    assert clean_org_name("Housing Works Housing Works") == "Housing Works"
    assert clean_text("Happy Healthy<br />(This is a mobile site)") == (
        "Happy Healthy (This is a mobile site)")
    assert clean_text("St Mark\x1as\tPlace") == "St Mark's Place"


def test_nyc_zips_come_with_float_centroids() -> None:
    chelsea = nyc_zip("10001-1234")
    assert chelsea is not None
    assert chelsea.borough == "Manhattan"
    assert isinstance(chelsea.latitude, float)
    assert nyc_zip("11201") is not None
    assert nyc_zip("11549") is None  # Hempstead, Nassau County
    assert nyc_zip("") is None


# ---------------------------------------------------------------------------------------
# The synthetic fixture: every rule on a handful of rows.
# ---------------------------------------------------------------------------------------


def _location(key: str) -> Location:
    return db.session.execute(select(Location).filter_by(import_key=key)).scalar_one()


def _services(location: Location) -> dict[str, ServiceAtLocation]:
    return {sal.service.code: sal for sal in location.services}


def test_fixture_merges_by_address_and_by_name(app: Flask) -> None:
    report = run_import(FIXTURE, db.session)
    db.session.commit()

    keys = set(db.session.scalars(select(Location.import_key)))
    assert keys == {"100 example ave|10001", "200 sample st|10011", "7 other rd|10011",
                    "300 demo blvd|10001", "6 st marks pl|10002"}

    # By address: the 2018 row and two PrEP rows at 200 Sample St become one site, named
    # after the newest source; the 2018 facts stay on its HIV testing service.
    site = _location("200 sample st|10011")
    assert site.name == "Synthetic Health Center Inc"
    assert site.organization.name == "Synthetic Health Network"
    services = _services(site)
    assert set(services) == {"hiv_testing", "prep", "pep"}
    hiv = services["hiv_testing"]
    assert hiv.walk_in is True
    assert sorted((s.byday, s.opens_minute, s.closes_minute) for s in hiv.schedules) == [
        ("MO", 540, 1020), ("TH", 540, 780), ("TH", 840, 1080), ("TU", 0, 0)]  # TU: CLOSED
    assert {c.option: c.available for c in hiv.cost_options} == {"medicaid": True,
                                                                  "low_cost": True}
    assert {d.document: d.required for d in hiv.required_documents} == {
        "id": False, "insurance": False, "income": False}
    assert {lang.code for lang in hiv.languages} == {"en", "es"}
    assert services["prep"].walk_in is True
    assert services["prep"].telehealth is None  # the duplicate PrEP rows disagree
    assert site.latitude == pytest.approx(40.7402)  # PrEP's point beats the 2017 copy's

    # By name within the ZIP: "5 Other Rd" (2018) and "7 Other Road" (PrEP).
    named = _location("7 other rd|10011")
    services = _services(named)
    assert set(services) == {"hiv_testing", "prep", "harm_reduction"}
    assert services["hiv_testing"].walk_in is None
    assert services["hiv_testing"].note == "Intake: Appointment preferred"
    assert services["harm_reduction"].note == "named in the source's site name"

    assert any("same name in ZIP" in m for m in report.merges)
    assert any("same address" in m for m in report.merges)


def test_fixture_city_clinic_is_active_and_enriched_by_the_state_file(app: Flask) -> None:
    run_import(FIXTURE, db.session)
    clinic = _location("100 example ave|10001")
    assert clinic.status == ACTIVE  # the 2018 row said CLOSED; the 2025 list lists it
    assert clinic.name == "Synthetic Sexual Health Clinic"
    assert clinic.category == "Sexual health clinic (NYC Health Department)"
    # Coordinates and phone from the licensed facility; never its licence name.
    assert (clinic.latitude, clinic.longitude) == (40.75, -73.997)
    assert clinic.phone == "(212) 555-0100"
    prov = {p.field: p for p in clinic.provenance}
    assert prov["coordinates"].source.key == NYS_FACILITIES
    assert prov["name"].source.key == DOH_SHC_2025
    assert "CLOSED" in (prov["status"].note or "")
    # The closed 2018 row's hours describe nothing open: no facts from it.
    assert clinic.services == []


def test_fixture_rejects_and_places_what_it_must(app: Flask) -> None:
    report = run_import(FIXTURE, db.session)
    hiv = report.files[HIV_2018]
    assert hiv.rows_read == 7
    reasons = dict(hiv.rejected)
    assert reasons["Site ID 3"].startswith("no street address")
    assert reasons["Site ID 4"].startswith("outside NYC")
    assert reasons["Site ID 7"].startswith("no hours, intake or documents")
    assert any("Klingon" in msg for _, msg in hiv.notes)
    assert any("OPEN DURING SCHOOL HOURS" in msg for _, msg in hiv.notes)
    condoms = dict(report.files["nyc_condom_availability_program"].rejected)
    assert "venue is not a clinic" in condoms["Facility PK 2"]  # a barber shop
    assert "partner type is not a clinic" in condoms["Facility PK 3"]
    assert dict(report.files[PREP_2025].rejected)["id 13/siteid 131"].startswith(
        "no street address")

    # No coordinates in any file: the ZIP centre, marked as approximate.
    zip_site = _location("6 st marks pl|10002")
    assert zip_site.coordinates_precision == "zip"
    prov = {p.field: p for p in zip_site.provenance}
    assert prov["coordinates"].source.key == ZIPCODES
    hours = _services(zip_site)["hiv_testing"]
    assert [(s.byday, s.opens_minute, s.closes_minute) for s in hours.schedules] == [
        ("FR", 0, 1440)]
    assert [(c.option, c.available) for c in hours.cost_options] == [("medicare", False)]

    # Parks are not neighbourhoods; a site inside one is named after the nearest area.
    assert set(db.session.scalars(select(Neighbourhood.code))) == {"XX0101"}
    hospital = _location("300 demo blvd|10001")
    assert hospital.neighbourhood is not None
    assert hospital.neighbourhood.code == "XX0101"
    assert _services(hospital)["condoms"].note == "Free external condoms, lubricant"
    assert _services(hospital)["condoms"].schedules == []  # pickup hours are not clinic hours


def test_cli_dry_run_saves_nothing_and_writes_the_full_report(app: Flask,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "report.txt"
    result = app.test_cli_runner().invoke(
        args=["import-clinics", "--data-dir", str(FIXTURE), "--dry-run", "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert "dry run" in result.output
    assert "nyc_hiv_testing_locations_2018.csv: read 7" in result.output
    assert db.session.scalar(select(func.count()).select_from(Location)) == 0
    assert "rejected Site ID 3: no street address" in out.read_text()

    result = app.test_cli_runner().invoke(args=["import-clinics", "--data-dir", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Location)) == 5


def test_cli_exits_non_zero_on_a_bad_file(app: Flask, tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "data")
    (tmp_path / "data" / FILES[DOH_SHC_2025]).write_text("name,borough\nX,Bronx\n")
    result = app.test_cli_runner().invoke(
        args=["import-clinics", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code != 0
    assert "missing columns address" in result.output


# ---------------------------------------------------------------------------------------
# The real seed data.
# ---------------------------------------------------------------------------------------


def _rows(result: Iterable[Sequence[object]]) -> set[tuple[object, ...]]:
    return {tuple(row) for row in result}


def _snapshot() -> dict[str, set[tuple[object, ...]]]:
    """Every row of every directory table, as (id, natural key) tuples."""
    return {
        "source": {(s.id, s.key, s.as_of) for s in db.session.scalars(select(Source))},
        "location": {(loc.id, loc.import_key, loc.slug, loc.name, loc.status)
                     for loc in db.session.scalars(select(Location))},
        **{model.__tablename__: _rows(db.session.execute(
            select(model.id, model.source_id, model.verified_on)))
           for model in FACT_MODELS},
        "provenance": _rows(db.session.execute(
            select(Provenance.id, Provenance.location_id, Provenance.field))),
        "organization": _rows(db.session.execute(
            select(Organization.id, Organization.name))),
        "service": _rows(db.session.execute(select(Service.id, Service.code))),
        "neighbourhood": _rows(db.session.execute(
            select(Neighbourhood.id, Neighbourhood.code))),
    }


@pytest.fixture
def imported(app: Flask) -> ImportReport:
    """The real seed data, imported and committed."""
    report = run_import(REAL_DATA, db.session)
    db.session.commit()
    return report


def test_real_import_counts_are_sensible(imported: ImportReport) -> None:
    for line in imported.lines():
        print(line)  # recorded with -s: the figures the resolve note quotes
    files = imported.files
    assert files[HIV_2018].rows_read == 599
    assert files[PREP_2025].rows_read == 156
    assert files[DOH_SHC_2025].rows_read == 8
    assert files["nyc_condom_availability_program"].rows_read == 593
    assert files[NYS_FACILITIES].rows_read == 1001
    assert files["nyc_nta_2020"].rows_read == 262
    for rep in files.values():
        handled = rep.imported + rep.merged + len(rep.rejected)
        if rep.key in (HIV_2018, PREP_2025, DOH_SHC_2025, "nyc_condom_availability_program"):
            assert handled == rep.rows_read, rep.key  # every row accounted for
        assert all(reason for _, reason in rep.rejected)
    assert 200 <= imported.counts["location"] <= 400
    assert imported.active_locations >= 200
    assert imported.counts["neighbourhood"] >= 190
    assert imported.counts["source"] == 8
    assert imported.counts["schedule"] > 500
    assert len(imported.merges) > 50
    assert imported.total_changes > 0


CITY_CLINICS = {
    "Morrisania Sexual Health Clinic": "1309 fulton ave|10456",
    "Jamaica Sexual Health Clinic": "9037 parsons blvd|11432",
    "Corona Sexual Health Clinic": "3433 junction blvd|11372",
    "Fort Greene Sexual Health Clinic": "295 flatbush ave ext|11201",
    "Fort Greene Express Clinic": "295 flatbush ave ext|11201",
    "Chelsea Sexual Health Clinic": "303 9 ave|10001",
    "Chelsea Express Clinic": "303 9 ave|10001",
    "Central Harlem Sexual Health Clinic": "2238 5 ave|10037",
}


def test_the_eight_city_clinics_are_listed_and_active(imported: ImportReport) -> None:
    for name, key in CITY_CLINICS.items():
        clinic = _location(key)
        assert clinic.status == ACTIVE, name
        assert clinic.category == "Sexual health clinic (NYC Health Department)", name
        assert clinic.coordinates_precision == "site", name
        assert clinic.organization.name == "NYC Department of Health and Mental Hygiene"
        prov = {p.field: p.source.key for p in clinic.provenance}
        assert prov["name"] in (DOH_SHC_2025, PREP_2025), name
    # The express clinics share their clinic's building, so they merge into it.
    assert _location("303 9 ave|10001").name == "Chelsea Sexual Health Clinic"
    assert _location("295 flatbush ave ext|11201").name == "Fort Greene Sexual Health Clinic"
    # Old hours from 2018 ride along on the city clinics that were open then.
    fort_greene = _services(_location("295 flatbush ave ext|11201"))
    assert fort_greene["hiv_testing"].schedules
    assert fort_greene["hiv_testing"].source.key == HIV_2018


def test_chelsea_is_active_not_closed(imported: ImportReport) -> None:
    chelsea = _location("303 9 ave|10001")
    assert chelsea.status == ACTIVE
    assert chelsea.address_1 == "303 9th Avenue"
    status = next(p for p in chelsea.provenance if p.field == "status")
    assert status.source.key == DOH_SHC_2025
    assert status.verified_on.isoformat() == "2025-12-19"


def test_every_location_is_inside_nyc_with_a_neighbourhood(imported: ImportReport) -> None:
    locations = db.session.scalars(select(Location)).all()
    assert locations
    for loc in locations:
        assert 40.49 <= loc.latitude <= 40.92, loc.name
        assert -74.27 <= loc.longitude <= -73.68, loc.name
        assert loc.neighbourhood_id is not None, loc.name
        assert loc.borough in {"Manhattan", "Brooklyn", "Queens", "Bronx", "Staten Island"}
        assert loc.moderator_checked is False
    assert len({loc.slug for loc in locations}) == len(locations)


def test_every_fact_has_its_source_and_as_of_date(imported: ImportReport) -> None:
    as_of = {s.id: s.as_of for s in db.session.scalars(select(Source))}
    for model in (*FACT_MODELS, Provenance):
        rows = db.session.execute(select(model.source_id, model.verified_on)).all()
        assert rows, model.__tablename__
        for source_id, verified_on in rows:
            assert verified_on == as_of[source_id], model.__tablename__
    for loc in db.session.scalars(select(Location)):
        fields = {p.field for p in loc.provenance}
        assert {"name", "address", "coordinates", "status"} <= fields, loc.name
        if loc.phone:
            assert "phone" in fields
        if loc.category:
            assert "category" in fields


def test_no_location_comes_only_from_the_state_facility_file(imported: ImportReport) -> None:
    state = db.session.execute(select(Source).filter_by(key=NYS_FACILITIES)).scalar_one()
    for loc in db.session.scalars(select(Location)):
        assert {p.source_id for p in loc.provenance} - {state.id}, loc.name
        name_source = next(p for p in loc.provenance if p.field == "name")
        assert name_source.source_id != state.id
    assert imported.files[NYS_FACILITIES].imported == 0


def test_unknown_cost_is_never_stored_as_no(imported: ImportReport) -> None:
    stated_no = db.session.execute(
        select(CostOption.option).where(CostOption.available.is_(False))).scalars().all()
    # The only "no" in the files is one explicit Medicare "No".
    assert set(stated_no) <= {"medicare"}
    assert len(stated_no) <= 1


def test_importing_twice_changes_nothing(imported: ImportReport) -> None:
    before = _snapshot()
    second = run_import(REAL_DATA, db.session)
    db.session.commit()
    assert second.total_changes == 0, second.changes
    assert "0 changed" in second.lines()[-1]
    assert _snapshot() == before


@pytest.mark.parametrize(
    ("filename", "damage"),
    [
        (FILES[PREP_2025], lambda text: text[: len(text) // 2]),  # truncated JSON
        (FILES[HIV_2018], lambda text: text.replace("Site Name", "Site Title", 1)),
        (FILES["nyc_nta_2020"], lambda text: "not json"),
        (FILES[DOH_SHC_2025], None),  # missing
    ],
)
def test_a_bad_file_fails_and_changes_nothing(imported: ImportReport, tmp_path: Path,
                                              filename: str,
                                              damage: Callable[[str], str] | None) -> None:
    before = _snapshot()
    data = tmp_path / "raw"
    shutil.copytree(REAL_DATA, data)
    target = data / filename
    if damage is None:
        target.unlink()
    else:
        target.write_text(damage(target.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(ImportFailed, match=filename.split(".")[0]):
        run_import(data, db.session)
    db.session.rollback()
    assert _snapshot() == before
