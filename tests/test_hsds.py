"""Open Referral HSDS 3.0: the export checked against the specification's rules, the
import's checks and its source-keeping, and a round trip through an empty database."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import func, select

from directory import hsds
from directory.config import PROJECT_ROOT
from directory.extensions import db
from directory.importer import run_import
from directory.models import (
    CLOSED,
    CostOption,
    Language,
    Location,
    Organization,
    Provenance,
    RequiredDocument,
    Schedule,
    Service,
    ServiceAtLocation,
    Source,
)
from tests.factories import make_clinic, make_review, make_source

RULES = json.loads((Path(__file__).parent / "fixtures" / "hsds" / "hsds-3-rules.json")
                   .read_text())
TABLES = RULES["tables"]
REAL_DATA = PROJECT_ROOT / "data" / "raw"
CREATED = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FACT_MODELS = (Location, Provenance, Organization, Service, ServiceAtLocation, Schedule,
               Language, CostOption, RequiredDocument, Source)
# Fields that say where a fact comes from. An import gives every fact the package as its
# source and date (by design), so these differ between the first export and the second.
PROVENANCE_TERMS = {"source", "location_source", "moderator_checked"}


def directory_of_clinics() -> None:
    """Synthetic clinics with every kind of fact the profile has to carry."""
    source = make_source()
    make_clinic("Synthetic Night Clinic", languages=("es", "en"),
                cost={"free": True, "medicare": False, "sliding_fee": None},
                documents={"id": False, "insurance": None, "income": True}, walk_in=True,
                hours={"MO": [(540, 1020)], "TU": [(1320, 120)], "WE": [(0, 1440)],
                       "TH": [(600, 1440)], "SU": [(0, 0)]},
                services=("hiv_testing", "prep"), source=source)
    clinic = make_clinic("Synthetic Second Clinic", lat=40.81, lng=-73.95,
                         postal_code="10027", phone=None, walk_in=False,
                         services=("sti_testing",), source=source)
    clinic.website = "https://example.org/synthetic"
    clinic.transit = "Synthetic transit line"
    clinic.category = "Synthetic category"
    clinic.coordinates_precision = "zip"
    clinic.services[0].telehealth = True
    clinic.services[0].note = "Synthetic note"
    make_clinic("Synthetic Closed Clinic", status=CLOSED, source=source)
    db.session.commit()


def read_zip(data: bytes) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """The datapackage.json and each resource's rows, by resource name."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    descriptor = json.loads(archive.read("datapackage.json"))
    tables = {}
    for resource in descriptor["resources"]:
        text = archive.read(resource["path"]).decode()
        tables[resource["name"]] = list(csv.DictReader(io.StringIO(text, newline="")))
    return descriptor, tables


def export_zip() -> bytes:
    return b"".join(hsds.iter_zip(CREATED))


def export_json() -> dict[str, Any]:
    return json.loads(b"".join(hsds.iter_json(CREATED)))


# --- Checking against the specification's rules -------------------------------------


def table_schema(name: str, tabular: bool) -> dict[str, Any]:
    """A JSON Schema for one HSDS table: its fields only, its required fields present."""
    rule = TABLES[name]
    properties = {k: dict(v) for k, v in rule["properties"].items()}
    if not tabular:
        for key, (target, kind) in rule["nested"].items():
            inner = table_schema(target, tabular=False)
            properties[key] = inner if kind == "object" else {"type": "array", "items": inner}
    required = rule["required"] + (rule["tabular_required"] if tabular else [])
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def typed_row(name: str, row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as JSON values: empty cells absent, numbers as numbers."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value == "":
            continue
        kind = TABLES[name]["properties"].get(key, {}).get("type")
        out[key] = float(value) if kind == "number" else value
    return out


def rule_breaches(tables: dict[str, list[dict[str, str]]]) -> list[str]:
    """Every breach of the HSDS rules: fields, required, types, formats, ids, references."""
    problems = []
    ids = {name: {row["id"] for row in rows} for name, rows in tables.items()}
    for name, rows in tables.items():
        validator = Draft202012Validator(table_schema(name, tabular=True),
                                         format_checker=FormatChecker())
        if len(ids[name]) != len(rows):
            problems.append(f"{name}: ids not unique")
        for n, row in enumerate(rows):
            for error in validator.iter_errors(typed_row(name, row)):
                problems.append(f"{name}[{n}]: {error.message}")
            for key, value in row.items():
                if key.endswith("_id") and value:
                    target = key[:-3]
                    if target in ids and value not in ids[target]:
                        problems.append(f"{name}[{n}].{key}: {value} resolves to nothing")
            if name == "attribute" and row["link_id"] not in ids.get(row["link_entity"], ()):
                problems.append(f"attribute[{n}]: link_id resolves to no {row['link_entity']}")
    return problems


def test_the_datapackage_follows_the_hsds_rules(app: Flask) -> None:
    directory_of_clinics()
    descriptor, tables = read_zip(export_zip())
    assert rule_breaches(tables) == []
    assert {r["name"] for r in descriptor["resources"]} == set(TABLES)
    archive = zipfile.ZipFile(io.BytesIO(export_zip()))
    for resource in descriptor["resources"]:
        header = archive.read(resource["path"]).decode().splitlines()[0].split(",")
        assert header == [f["name"] for f in resource["schema"]["fields"]]
        assert set(header) <= set(TABLES[resource["name"]]["properties"])
    assert descriptor["profile"] == "tabular-data-package"
    assert descriptor["created"] == "2026-01-15T12:00:00Z"


def test_the_json_dataset_follows_the_hsds_rules(app: Flask) -> None:
    directory_of_clinics()
    page = export_json()
    for key in RULES["page"]["required"]:
        assert key in page
    assert page["total_items"] == len(page["contents"]) == 3  # closed clinic left out
    validator = Draft202012Validator(table_schema("service", tabular=False),
                                     format_checker=FormatChecker())
    errors = [e.message for s in page["contents"] for e in validator.iter_errors(s)]
    assert errors == []
    # The JSON and the tables describe the same services with the same ids.
    _descriptor, tables = read_zip(export_zip())
    assert {s["id"] for s in page["contents"]} == {r["id"] for r in tables["service"]}


def attributes_of(tables: dict[str, list[dict[str, str]]], link: str) -> dict[str, list[str]]:
    codes = {t["id"]: t["code"] for t in tables["taxonomy_term"]}
    out: dict[str, list[str]] = {}
    for row in tables["attribute"]:
        if row["link_id"] == link:
            out.setdefault(codes[row["taxonomy_term_id"]], []).append(row["value"])
    return out


def test_hours_closed_days_and_the_affirming_flags_are_carried_without_guessing(
        app: Flask) -> None:
    directory_of_clinics()
    _descriptor, tables = read_zip(export_zip())
    night = next(r for r in tables["location"] if r["name"] == "Synthetic Night Clinic")
    hiv = next(s for s in tables["service_at_location"] if s["location_id"] == night["id"]
               and "service:hiv_testing" in attributes_of(tables, s["service_id"]))
    hours = {(r["byday"], r["opens_at"], r["closes_at"]) for r in tables["schedule"]
             if r["service_at_location_id"] == hiv["id"]}
    assert hours == {("MO", "09:00", "17:00"), ("TU", "22:00", "02:00"),
                     ("WE", "00:00", "00:00"), ("TH", "10:00", "00:00")}
    assert all(r["freq"] == "WEEKLY" for r in tables["schedule"])
    flags = attributes_of(tables, hiv["service_id"])
    assert flags["closed_day"] == ["SU"]  # closed, not left unknown and not "open"
    assert flags["walk_in"] == ["yes"]
    documents = {r["document"]: attributes_of(tables, r["id"])
                 for r in tables["required_document"] if r["service_id"] == hiv["service_id"]}
    assert documents == {
        "Photo or personal ID: not required": {"document:id": ["not_required"]},
        "Insurance card: not known if required": {"document:insurance": ["unclear"]},
        "Proof of income: required": {"document:income": ["required"]},
    }
    costs = {r["option"]: (r["amount"], attributes_of(tables, r["id"]))
             for r in tables["cost_option"] if r["service_id"] == hiv["service_id"]}
    assert costs == {"Free": ("0", {"cost:free": ["yes"]}),
                     "Medicare accepted: no": ("", {"cost:medicare": ["no"]}),
                     "Sliding-scale fee: not known": ("", {"cost:sliding_fee": ["unclear"]})}


def test_nothing_about_reviews_or_moderation_is_exported(app: Flask) -> None:
    directory_of_clinics()
    clinic = db.session.execute(select(Location).limit(1)).scalar_one()
    make_review(clinic, status="published", text="SYNTHETIC-REVIEW-WORDS", respect=5)
    db.session.commit()
    blob = export_zip() + json.dumps(export_json()).encode()
    assert b"SYNTHETIC-REVIEW-WORDS" not in blob
    assert b"review" not in blob.lower()


def test_ids_are_stable_from_one_export_to_the_next(app: Flask) -> None:
    directory_of_clinics()
    first = read_zip(export_zip())[1]
    second = read_zip(b"".join(hsds.iter_zip(datetime(2027, 1, 1, tzinfo=UTC))))[1]
    assert first == second


def test_the_export_is_streamed_in_many_small_chunks(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(30):
        make_clinic(f"Synthetic Clinic {n}", hours={"MO": [(540, 1020)]})
    db.session.commit()
    monkeypatch.setattr(hsds, "BATCH", 8)
    monkeypatch.setattr(hsds, "JSON_CHUNK", 4)
    chunks = list(hsds.iter_zip(CREATED))
    assert len(chunks) > 20
    assert rule_breaches(read_zip(b"".join(chunks))[1]) == []
    json_chunks = list(hsds.iter_json(CREATED))
    assert len(json_chunks) > 5
    assert json.loads(b"".join(json_chunks))["total_items"] == 30


# --- Round trip ------------------------------------------------------------------------


def comparable(tables: dict[str, list[dict[str, str]]]) -> dict[str, set[tuple[Any, ...]]]:
    """The tables without provenance: the import re-sources every fact to the package."""
    codes = {t["id"]: t["code"] for t in tables["taxonomy_term"]}
    out = {}
    for name, rows in tables.items():
        kept = set()
        for row in rows:
            if name == "attribute" and codes[row["taxonomy_term_id"]] in PROVENANCE_TERMS:
                continue
            kept.add(tuple(sorted((k, v) for k, v in row.items() if k != "assured_date")))
        out[name] = kept
    return out


def empty_and_import(path: Path) -> hsds.HsdsReport:
    db.session.remove()
    db.drop_all()
    db.create_all()
    report = hsds.run_hsds_import(path, db.session)
    db.session.commit()
    return report


def test_round_trip_of_synthetic_clinics_gives_the_same_data(
        app: Flask, tmp_path: Path) -> None:
    directory_of_clinics()
    path = tmp_path / "first.zip"
    hsds.export_to(path, CREATED)
    first = read_zip(path.read_bytes())[1]
    report = empty_and_import(path)
    assert report.notes == []
    second = read_zip(export_zip())[1]
    assert comparable(second) == comparable(first)
    # The same ids, too: imported listings keep the package's location ids.
    assert {r["id"] for r in second["service"]} == {r["id"] for r in first["service"]}


def test_round_trip_of_the_real_seed_data_gives_the_same_data(
        app: Flask, tmp_path: Path) -> None:
    run_import(REAL_DATA, db.session)
    db.session.commit()
    path = tmp_path / "seed.zip"
    hsds.export_to(path, CREATED)
    first = read_zip(path.read_bytes())[1]
    assert rule_breaches(first) == []
    empty_and_import(path)
    second = read_zip(export_zip())[1]
    assert comparable(second) == comparable(first)
    assert len(first["location"]) > 250


def test_every_imported_fact_names_the_package_and_its_date(
        app: Flask, tmp_path: Path) -> None:
    directory_of_clinics()
    path = tmp_path / "package.zip"
    hsds.export_to(path, CREATED)
    report = empty_and_import(path)
    source = db.session.execute(select(Source)).scalar_one()
    assert source.key == report.source_key == "hsds:caremap-nyc:2026-01-15"
    assert source.as_of == date(2026, 1, 15)
    for model in (ServiceAtLocation, Schedule, Language, CostOption, RequiredDocument,
                  Provenance):
        rows = db.session.execute(select(model)).scalars().all()
        assert rows, model
        assert {(r.source_id, r.verified_on) for r in rows} == {(source.id, source.as_of)}
    night = db.session.execute(select(Location).where(
        Location.name == "Synthetic Night Clinic")).scalar_one()
    sal = next(s for s in night.services if s.service.code == "hiv_testing")
    assert sorted((s.byday, s.opens_minute, s.closes_minute) for s in sal.schedules) == [
        ("MO", 540, 1020), ("SU", 0, 0), ("TH", 600, 1440), ("TU", 1320, 120),
        ("WE", 0, 1440)]
    assert {d.document: d.required for d in sal.required_documents} == {
        "id": False, "insurance": None, "income": True}
    assert {c.option: c.available for c in sal.cost_options} == {
        "free": True, "medicare": False, "sliding_fee": None}
    assert sal.walk_in is True
    assert not night.moderator_checked  # a package cannot vouch for our moderators


def test_a_second_import_changes_nothing_not_even_modified_at(
        app: Flask, tmp_path: Path) -> None:
    directory_of_clinics()
    path = tmp_path / "package.zip"
    hsds.export_to(path, CREATED)
    empty_and_import(path)
    stamps = dict(db.session.execute(select(Location.id, Location.modified_at)).all())
    again = hsds.run_hsds_import(path, db.session)
    db.session.commit()
    assert again.changes.total_changes == 0
    assert dict(db.session.execute(
        select(Location.id, Location.modified_at)).all()) == stamps


# --- Rejection ---------------------------------------------------------------------------


def unpacked(tmp_path: Path) -> Path:
    """Our export, unzipped into a folder a test can break."""
    directory_of_clinics()
    folder = tmp_path / "package"
    zipfile.ZipFile(io.BytesIO(export_zip())).extractall(folder)
    return folder


def edit_csv(path: Path, change: Any) -> None:
    rows = list(csv.DictReader(path.open(newline="")))
    fields = list(rows[0])
    change(rows)
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fields)
        writer.writeheader()
        writer.writerows(rows)


def counts() -> dict[str, int]:
    return {m.__tablename__: db.session.execute(select(func.count()).select_from(m))
            .scalar_one() for m in FACT_MODELS}


BREAKAGES = {
    "broken reference": ("service_at_location.csv",
                         lambda rows: rows[0].update(service_id=hsds.term_uuid("nothing")),
                         "refers to no service"),
    "missing required field": ("organizations.csv", lambda rows: rows[0].update(name=""),
                               "required field “name” is empty"),
    "id not a uuid": ("locations.csv", lambda rows: rows[0].update(id="clinic-1"),
                      "is not a UUID"),
    "value outside its enumeration": ("services.csv",
                                      lambda rows: rows[0].update(status="open"),
                                      "must be one of active"),
    "time that is not a time": ("schedules.csv",
                                lambda rows: rows[0].update(opens_at="9am"),
                                "is not a time like 09:30"),
    "duplicate id": ("languages.csv", lambda rows: rows[1].update(id=rows[0]["id"]),
                     "is used twice"),
    "attribute value outside our taxonomy": (
        "attributes.csv", lambda rows: [r.update(value="maybe") for r in rows
                                        if r["value"] == "yes"], "must be one of"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_package_is_rejected_whole_with_each_problem(
        app: Flask, tmp_path: Path, breakage: str) -> None:
    folder = unpacked(tmp_path)
    filename, change, message = BREAKAGES[breakage]
    edit_csv(folder / filename, change)
    before = counts()
    with pytest.raises(hsds.HsdsRejected) as rejected:
        hsds.run_hsds_import(folder, db.session)
    assert any(message in p for p in rejected.value.problems), rejected.value.problems
    assert all(filename in p for p in rejected.value.problems if message in p)
    db.session.rollback()
    assert counts() == before


def test_every_problem_is_reported_not_only_the_first(app: Flask, tmp_path: Path) -> None:
    folder = unpacked(tmp_path)
    edit_csv(folder / "organizations.csv", lambda rows: [r.update(name="") for r in rows])
    edit_csv(folder / "addresses.csv", lambda rows: rows[0].update(city=""))
    with pytest.raises(hsds.HsdsRejected) as rejected:
        hsds.run_hsds_import(folder, db.session)
    problems = rejected.value.problems
    assert sum("organizations.csv" in p for p in problems) == len(
        list(csv.DictReader((folder / "organizations.csv").open())))
    assert any("addresses.csv line 2" in p and "city" in p for p in problems)


@pytest.mark.parametrize("damage", ["no descriptor", "not json", "missing file", "not zip"])
def test_an_unreadable_package_is_rejected(app: Flask, tmp_path: Path, damage: str) -> None:
    folder = unpacked(tmp_path)
    target: Path = folder
    if damage == "no descriptor":
        (folder / "datapackage.json").unlink()
    elif damage == "not json":
        (folder / "datapackage.json").write_text("{not json")
    elif damage == "missing file":
        (folder / "locations.csv").unlink()
    else:
        target = tmp_path / "fake.zip"
        target.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(hsds.HsdsRejected) as rejected:
        hsds.run_hsds_import(target, db.session)
    assert rejected.value.problems


def test_a_partner_package_without_our_profile_is_read_by_hsds_meaning(
        app: Flask, tmp_path: Path) -> None:
    """A minimal hand-written HSDS package: no CareMap attributes, hours in offset form."""
    folder = tmp_path / "partner"
    folder.mkdir()
    ids = {name: hsds.term_uuid(f"partner-{name}") for name in (
        "org", "loc", "svc", "food", "sal", "sal2", "addr", "lang", "cost", "doc", "sched")}

    def write(name: str, rows: list[dict[str, str]]) -> None:
        with (folder / name).open("w", newline="") as out:
            writer = csv.DictWriter(out, list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write("organizations.csv", [{"id": ids["org"], "name": "Synthetic Partner Org",
                                 "description": "A synthetic partner organization"}])
    write("locations.csv", [{"id": ids["loc"], "location_type": "physical",
                             "organization_id": ids["org"], "name": "Synthetic Partner Site",
                             "latitude": "", "longitude": ""}])
    write("addresses.csv", [{"id": ids["addr"], "location_id": ids["loc"],
                             "address_1": "1 Synthetic Plaza", "city": "New York",
                             "state_province": "NY", "postal_code": "10011", "country": "US",
                             "address_type": "physical"}])
    write("services.csv", [
        {"id": ids["svc"], "organization_id": ids["org"], "name": "HIV testing",
         "status": "active"},
        {"id": ids["food"], "organization_id": ids["org"], "name": "Food pantry",
         "status": "active"}])
    write("service_at_location.csv", [
        {"id": ids["sal"], "service_id": ids["svc"], "location_id": ids["loc"]},
        {"id": ids["sal2"], "service_id": ids["food"], "location_id": ids["loc"]}])
    write("schedules.csv", [{"id": ids["sched"], "service_id": ids["svc"], "freq": "WEEKLY",
                             "byday": "MO,TU", "opens_at": "09:00-05:00",
                             "closes_at": "17:00-05:00"}])
    write("languages.csv", [{"id": ids["lang"], "service_id": ids["svc"], "name": "Spanish",
                             "code": "es"}])
    write("cost_options.csv", [{"id": ids["cost"], "service_id": ids["svc"], "option": "Free"}])
    write("required_documents.csv", [{"id": ids["doc"], "service_id": ids["svc"],
                                      "document": "Photo or personal ID"}])
    resources = [("organization", "organizations.csv"), ("location", "locations.csv"),
                 ("address", "addresses.csv"), ("service", "services.csv"),
                 ("service_at_location", "service_at_location.csv"),
                 ("schedule", "schedules.csv"), ("language", "languages.csv"),
                 ("cost_option", "cost_options.csv"),
                 ("required_document", "required_documents.csv")]
    (folder / "datapackage.json").write_text(json.dumps({
        "name": "synthetic-partner", "title": "Synthetic partner directory",
        "created": "2025-11-02", "resources": [{"name": n, "path": p} for n, p in resources]}))
    report = hsds.run_hsds_import(folder, db.session)
    db.session.commit()
    assert any("Food pantry" in note for note in report.notes)
    assert any("ZIP's centre" in note for note in report.notes)
    site = db.session.execute(select(Location)).scalar_one()
    assert site.coordinates_precision == "zip"  # never passed off as the building's
    (sal,) = site.services
    assert sal.service.code == "hiv_testing"
    assert sorted((s.byday, s.opens_minute, s.closes_minute) for s in sal.schedules) == [
        ("MO", 540, 1020), ("TU", 540, 1020)]
    assert [(c.option, c.available) for c in sal.cost_options] == [("free", True)]
    assert [(d.document, d.required) for d in sal.required_documents] == [("id", True)]
    assert [lang.code for lang in sal.languages] == ["es"]
    assert sal.walk_in is None  # not stated: not known, never "no"
    assert sal.source.key == "hsds:synthetic-partner:2025-11-02"


# --- Command line and download -------------------------------------------------------------


def test_the_commands_export_and_import_and_reject_with_a_report(
        app: Flask, tmp_path: Path) -> None:
    directory_of_clinics()
    runner = app.test_cli_runner()
    out = tmp_path / "directory.zip"
    result = runner.invoke(args=["export-hsds", str(out)])
    assert result.exit_code == 0, result.output
    assert rule_breaches(read_zip(out.read_bytes())[1]) == []
    result = runner.invoke(args=["export-hsds", str(tmp_path / "directory.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "directory.json").read_text())["total_items"] == 3
    assert runner.invoke(args=["export-hsds", str(tmp_path / "x.txt")]).exit_code != 0

    broken = tmp_path / "broken"
    zipfile.ZipFile(out).extractall(broken)
    edit_csv(broken / "service_at_location.csv",
             lambda rows: rows[0].update(location_id=hsds.term_uuid("nowhere")))
    before = counts()
    result = runner.invoke(args=["import-hsds", str(broken)])
    assert result.exit_code != 0
    assert "refers to no location" in result.output
    assert "nothing was changed" in result.output
    assert counts() == before

    db.session.remove()
    db.drop_all()
    db.create_all()
    result = runner.invoke(args=["import-hsds", str(out)])
    assert result.exit_code == 0, result.output
    assert db.session.execute(select(func.count(Location.id))).scalar_one() == 2


def test_the_about_page_links_the_download_and_the_api_docs(
        client: FlaskClient, app: Flask) -> None:
    directory_of_clinics()
    page = client.get("/about").get_data(as_text=True)
    assert 'href="/api/v1/hsds.zip"' in page
    assert 'href="/api/v1/docs"' in page
    download = client.get("/api/v1/hsds.zip")
    assert download.status_code == 200
    assert download.mimetype == "application/zip"
    assert rule_breaches(read_zip(download.data)[1]) == []
    assert client.get("/api/v1/hsds.json").json["total_items"] == 3  # type: ignore[index]


def test_a_zip_package_may_keep_its_files_in_a_folder(app: Flask, tmp_path: Path) -> None:
    folder = unpacked(tmp_path)
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w") as archive:
        for path in folder.iterdir():
            archive.write(path, f"export-2026/{path.name}")
    shutil.rmtree(folder)
    db.session.remove()
    db.drop_all()
    db.create_all()
    report = hsds.run_hsds_import(nested, db.session)
    assert report.locations == 2
