"""Open Referral HSDS 3.0: the directory out as a dataset, partners' datapackages in.

The mapping is the CareMap NYC profile of HSDS, documented in docs/hsds-profile.md. In
short: one HSDS service per service-at-location (so cost options, documents and languages,
which HSDS hangs on a service, stay tied to one site); schedules per day in New York wall
time, closed days as `closed_day` attributes rather than schedule rows; and the yes / no /
not-known facts this community filters on (walk-in, ID, insurance, cost) as attributes of
our own taxonomy, so "no" never turns into "not stated" and "not known" never into "no".

Export streams: each table is one pass over the database with server-side cursors
(yield_per), written row by row into a zip or a JSON document that is handed out in
chunks, so memory stays flat whatever the size of the directory. Identifiers are UUIDs
derived from stable keys (a location's import key, a service code, a day and hours), so
the same listing has the same id in every export.

Import reads a whole datapackage, checks it (required fields, identifiers, references,
enumerations, times) and raises HsdsRejected with every problem before anything is
written; writing then changes only what differs, with one Source named after the
package's name and date on every fact. The caller owns the transaction.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import itertools
import json
import re
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, NamedTuple

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from directory import hours
from directory.extensions import db
from directory.importer import (
    ImportReport,
    _maker,
    _sync_rows,
    mark_modified,
    nyc_zip,
    slugify,
)
from directory.models import (
    ACTIVE,
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
from directory.taxonomy import COST_OPTIONS, DOCUMENTS, LANGUAGES, SERVICES, language_code

HSDS_VERSION = "3.0"
PROFILE_NAME = "CareMap NYC profile of HSDS 3.0 (docs/hsds-profile.md)"
PACKAGE_NAME = "caremap-nyc"
# Import keys of listings that came from an HSDS package keep the package's location id.
HSDS_KEY_PREFIX = "hsds|"
# Rows per round trip to the database while exporting.
BATCH = 2000
# Listings per chunk of the JSON export: each is loaded whole, with all its facts.
JSON_CHUNK = 100

# The namespace every derived identifier hangs from. Never change it: partners join
# successive exports on these ids.
_NAMESPACE = bytes.fromhex("6f0b3c1e2a5d4e7f9b8c1d2e3f4a5b6c")


# The variant bits of an RFC 4122 UUID (10xx) applied to one hex digit.
_VARIANT = {f"{i:x}": f"{(i & 0x3) | 0x8:x}" for i in range(16)}


def _uuid5(namespace: bytes, name: str) -> str:
    """An RFC 4122 version-5 UUID as text: uuid.uuid5 without its per-call overhead."""
    h = hashlib.sha1(namespace + name.encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{12}$")


def is_uuid(value: str) -> bool:
    """Whether a value is a UUID in its usual hyphenated text form."""
    return bool(_UUID_RE.match(value))


@lru_cache(maxsize=8192)
def location_uuid(import_key: str) -> str:
    """A location's HSDS id: the package's own id for an HSDS import, else derived."""
    if import_key.startswith(HSDS_KEY_PREFIX) and is_uuid(import_key[len(HSDS_KEY_PREFIX):]):
        return import_key[len(HSDS_KEY_PREFIX):].lower()
    return _uuid5(_NAMESPACE, "location:" + import_key)


@lru_cache(maxsize=8192)
def _namespace(parent: str) -> bytes:
    return bytes.fromhex(parent.replace("-", ""))


def child_uuid(parent: str, *parts: object) -> str:
    """The id of a row that belongs to another (a location's address, a service's hours)."""
    name = parts[0] if len(parts) == 1 else ":".join(map(str, parts))
    return _uuid5(_namespace(parent), name)  # type: ignore[arg-type]


def organization_uuid(name: str) -> str:
    """An organization's id, from its name: the importers merge organizations by name."""
    return _uuid5(_NAMESPACE, "organization:" + name)


@lru_cache(maxsize=256)
def term_uuid(code: str) -> str:
    """The id of one term of our taxonomy."""
    return _uuid5(_NAMESPACE, "taxonomy_term:" + code)


TAXONOMY_ID = _uuid5(_NAMESPACE, "taxonomy:caremap-nyc")
TAXONOMY_NAME = "CareMap NYC affirming care"
TAXONOMY_DESCRIPTION = (
    "Services and intake facts that matter to people in the sex trade in New York City: "
    "what a site offers, walk-in, and whether ID, insurance or money is asked for. "
    "Values: see docs/hsds-profile.md."
)

YES, NO, UNCLEAR = "yes", "no", "unclear"
REQUIRED, NOT_REQUIRED = "required", "not_required"


@dataclass(frozen=True)
class Term:
    """One term of our taxonomy: what it is attached to and the values it takes."""

    code: str
    name: str
    description: str
    link_entity: str
    values: tuple[str, ...] = ()  # empty: the value is free text (or absent)


def _terms() -> list[Term]:
    terms = [Term(f"service:{code}", label, f"The site offers: {label}.", "service")
             for code, label in SERVICES.items()]
    terms += [
        Term("walk_in", "Walk-in", "Whether people can come without an appointment.",
             "service", (YES, NO)),
        Term("telehealth", "Telehealth", "Whether the service is offered remotely.",
             "service", (YES, NO)),
        Term("closed_day", "Closed on", "A day (MO..SU) the source says this service is "
             "closed. Days with neither hours nor this attribute are not known.",
             "service", hours.DAYS),
        Term("source", "Source", "The published dataset this service's facts come from, "
             "with its date.", "service"),
    ]
    terms += [Term(f"cost:{code}", label, f"Payment option “{label}”: yes (available), "
                   "no (the source says not available) or unclear.", "cost_option",
                   (YES, NO, UNCLEAR))
              for code, label in COST_OPTIONS.items()]
    terms += [Term(f"document:{code}", label, f"Whether “{label}” is asked for: required, "
                   "not_required or unclear (mentioned, not known to be required).",
                   "required_document", (REQUIRED, NOT_REQUIRED, UNCLEAR))
              for code, label in DOCUMENTS.items()]
    terms += [
        Term("website", "Website", "The site's own web page.", "location"),
        Term("coordinates_precision", "Coordinates precision", "zip: the coordinates are "
             "only the ZIP code's centre, not the building's.", "location", ("site", "zip")),
        Term("moderator_checked", "Checked by a CareMap moderator", "yes: a CareMap "
             "moderator checked this listing by hand. Absent: not checked.", "location",
             (YES,)),
        Term("location_source", "Source", "The published dataset this location's address "
             "comes from, with its date.", "location"),
    ]
    return terms


TERMS: dict[str, Term] = {term.code: term for term in _terms()}
TERM_BY_ID: dict[str, Term] = {term_uuid(code): term for code, term in TERMS.items()}

# --- The tables of the tabular datapackage, in the order they are written -------------

# (resource name, file, columns). Field names are HSDS 3.0's; see tests/fixtures/hsds.
TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("organization", "organizations.csv", ("id", "name", "description", "website")),
    ("location", "locations.csv", ("id", "location_type", "organization_id", "name",
                                   "description", "transportation", "latitude", "longitude")),
    ("address", "addresses.csv", ("id", "location_id", "address_1", "address_2", "city",
                                  "region", "state_province", "postal_code", "country",
                                  "address_type")),
    ("phone", "phones.csv", ("id", "location_id", "number", "type")),
    ("service", "services.csv", ("id", "organization_id", "name", "description", "status",
                                 "assured_date")),
    ("service_at_location", "service_at_location.csv", ("id", "service_id", "location_id",
                                                        "description")),
    ("schedule", "schedules.csv", ("id", "service_id", "location_id", "service_at_location_id",
                                   "freq", "byday", "opens_at", "closes_at", "description")),
    ("language", "languages.csv", ("id", "service_id", "location_id", "name", "code")),
    ("cost_option", "cost_options.csv", ("id", "service_id", "option", "currency", "amount",
                                         "amount_description")),
    ("required_document", "required_documents.csv", ("id", "service_id", "document")),
    ("taxonomy", "taxonomies.csv", ("id", "name", "description", "version")),
    ("taxonomy_term", "taxonomy_terms.csv", ("id", "code", "name", "description",
                                             "taxonomy_id", "taxonomy")),
    ("attribute", "attributes.csv", ("id", "link_id", "taxonomy_term_id", "link_entity",
                                     "value")),
)
NUMBER_FIELDS = {"latitude", "longitude", "amount"}
ATTRIBUTE_COLUMNS = TABLES[-1][2]

# What HSDS 3.0 requires of each table (its "required" and, for the tabular form,
# "tabular_required" lists), and where each table's references point.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "organization": ("id", "name", "description"),
    "location": ("id", "location_type"),
    "address": ("id", "address_1", "city", "state_province", "postal_code", "country",
                "address_type"),
    "phone": ("id", "number"),
    "service": ("id", "name", "status", "organization_id"),
    "service_at_location": ("id", "service_id", "location_id"),
    "schedule": ("id",),
    "language": ("id",),
    "cost_option": ("id", "service_id"),
    "required_document": ("id",),
    "taxonomy": ("id", "name", "description"),
    "taxonomy_term": ("id", "name", "description"),
    "attribute": ("id", "link_id", "taxonomy_term_id", "link_entity"),
}
REFERENCES: dict[str, dict[str, str]] = {
    "location": {"organization_id": "organization"},
    "address": {"location_id": "location"},
    "phone": {"location_id": "location", "service_id": "service",
              "organization_id": "organization", "service_at_location_id": "service_at_location"},
    "service": {"organization_id": "organization"},
    "service_at_location": {"service_id": "service", "location_id": "location"},
    "schedule": {"service_id": "service", "location_id": "location",
                 "service_at_location_id": "service_at_location"},
    "language": {"service_id": "service", "location_id": "location"},
    "cost_option": {"service_id": "service"},
    "required_document": {"service_id": "service"},
    "taxonomy_term": {"taxonomy_id": "taxonomy", "parent_id": "taxonomy_term"},
    "attribute": {"taxonomy_term_id": "taxonomy_term"},
}
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("location", "location_type"): ("physical", "postal", "virtual"),
    ("address", "address_type"): ("physical", "postal", "virtual"),
    ("service", "status"): ("active", "inactive", "defunct", "temporarily closed"),
    ("schedule", "freq"): ("WEEKLY", "MONTHLY"),
}
# The tables a package must have for us to find any listing in it.
NEEDED_TABLES = ("organization", "location", "service", "service_at_location")
ORGANIZATION_DESCRIPTION = "Runs one or more places listed in the CareMap NYC directory."


# --- Helpers shared by both directions -------------------------------------------------


def format_time(minute: int) -> str:
    """Local minutes as HSDS HH:MM; 1440 (midnight at the day's end) is "00:00"."""
    minute %= hours.MIDNIGHT
    return f"{minute // 60:02d}:{minute % 60:02d}"


_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:?\d{2})?$")
# Offsets New York keeps: a time written with one of these is already local wall time.
_NEW_YORK_OFFSETS = {"-05:00", "-04:00", "-0500", "-0400"}


def parse_time(text: str) -> int:
    """HSDS HH:MM (or HH:MM:SS) in New York local time as minutes; ValueError otherwise."""
    found = _TIME.match(text.strip())
    if not found:
        raise ValueError(f"“{text}” is not a time like 09:30")
    h, m, _s, offset = found.groups()
    if offset and offset not in _NEW_YORK_OFFSETS:
        raise ValueError(f"“{text}” is not in New York time (offset {offset})")
    hour, minute = int(h), int(m)
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise ValueError(f"“{text}” is not a time of day")
    return hour * 60 + minute


def interval_from(opens_at: str, closes_at: str) -> tuple[int, int]:
    """An HSDS opening interval as (opens, closes) minutes, the way hours.py keeps them."""
    opens, closes = parse_time(opens_at), parse_time(closes_at)
    opens %= hours.MIDNIGHT
    if closes == 0 or closes == hours.MIDNIGHT:
        closes = hours.MIDNIGHT  # "00:00" closing: midnight at the end of the day
    if opens == closes:
        raise ValueError(f"opens and closes at the same time ({opens_at})")
    return opens, closes


def _yes_no(value: bool | None) -> str | None:
    return None if value is None else (YES if value else NO)


def _source_text(title: str, publisher: str, as_of: date) -> str:
    return f"{title} ({publisher}), as of {as_of.isoformat()}"


# --- Export: rows, table by table ------------------------------------------------------

AnySelect = Select[*tuple[Any, ...]]


def _active() -> Any:
    return Location.status == ACTIVE


def _stream(statement: AnySelect) -> Iterator[Any]:
    """Rows of a statement through a server-side cursor, BATCH at a time.

    Run on the session's connection as plain Core: the rows are columns, and skipping the
    ORM's row processing halves the time of a large export.
    """
    # On the statement, not the connection: Connection.execution_options() changes the
    # session's connection in place, and every later statement in the transaction (an
    # UPDATE included) would then run through a server-side cursor, which PostgreSQL refuses.
    result = db.session.connection().execute(statement.execution_options(yield_per=BATCH))
    for rows in result.partitions():
        yield from rows


def _services_at_active() -> AnySelect:
    # Plain columns, not ORM objects: building 100,000s of objects is most of the cost.
    return (select(ServiceAtLocation.note, ServiceAtLocation.walk_in,
                   ServiceAtLocation.telehealth, ServiceAtLocation.source_id,
                   ServiceAtLocation.verified_on, Location.import_key,
                   Service.code.label("service_code"), Service.name.label("service_name"),
                   Organization.name.label("org_name"))
            .join(Location, Location.id == ServiceAtLocation.location_id)
            .join(Service, Service.id == ServiceAtLocation.service_id)
            .join(Organization, Organization.id == Location.organization_id)
            .where(_active()))


class _SalIds(NamedTuple):
    location: str
    service: str
    sal: str


@lru_cache(maxsize=4096)
def _service_id(import_key: str, code: str) -> str:
    """The HSDS service for one of our services-at-location (rows come grouped by it)."""
    return child_uuid(location_uuid(import_key), "service", code)


@lru_cache(maxsize=4096)
def _sal_id(import_key: str, code: str) -> str:
    """The HSDS service_at_location for one of ours."""
    return child_uuid(location_uuid(import_key), "sal", code)


def _sal_ids(import_key: str, code: str) -> _SalIds:
    return _SalIds(location_uuid(import_key), _service_id(import_key, code),
                   _sal_id(import_key, code))


# The columns each export pass reads: no more, as each costs time per row.
_FACT_COLUMNS: dict[Any, tuple[str, ...]] = {
    Schedule: ("byday", "opens_minute", "closes_minute", "description"),
    Language: ("code", "name"),
    CostOption: ("option", "available", "description"),
    RequiredDocument: ("document", "required", "description"),
}


def _fact_rows(model: Any, *order: Any) -> Iterator[Any]:
    """Fact rows of active listings, with their location's import_key and service_code."""
    statement = (select(*(getattr(model, c) for c in _FACT_COLUMNS[model]),
                        Location.import_key, Service.code.label("service_code"))
                 .join(ServiceAtLocation, ServiceAtLocation.id == model.service_at_location_id)
                 .join(Location, Location.id == ServiceAtLocation.location_id)
                 .join(Service, Service.id == ServiceAtLocation.service_id)
                 .where(_active())
                 # Grouped by service-at-location (an index order, little sorting): all the
                 # id caches need, and duplicate rows come out next to each other.
                 .order_by(model.service_at_location_id, *order))
    yield from _stream(statement)


# Each function yields one table's rows as tuples in the order of its TABLES columns: the
# export's cost is per row, and tuples unpacked from plain SQL rows are the cheapest.
Row = tuple[Any, ...]


def organization_rows() -> Iterator[Row]:
    """Organizations that run an active listing, one per name."""
    statement = (select(Organization.name, func.min(Organization.website))
                 .join(Location, Location.organization_id == Organization.id)
                 .where(_active()).group_by(Organization.name).order_by(Organization.name))
    for name, website in _stream(statement):
        yield organization_uuid(name), name, ORGANIZATION_DESCRIPTION, website


def _location_statement() -> AnySelect:
    return (select(Location.import_key, Location.name, Location.category, Location.transit,
                   Location.latitude, Location.longitude, Organization.name,
                   Location.address_1, Location.address_2, Location.city, Location.borough,
                   Location.state, Location.postal_code, Location.phone)
            .join(Organization, Organization.id == Location.organization_id)
            .where(_active()).order_by(Location.id))


Side = Callable[[Row], None]


def _ignore(_row: Row) -> None:
    pass


def location_rows(side: Side = _ignore) -> Iterator[Row]:
    """Active listings as HSDS locations; their attributes go to side."""
    sources = _sources()
    address_source = (select(Provenance.source_id)
                      .where(Provenance.location_id == Location.id,
                             Provenance.field == "address").scalar_subquery())
    statement = _location_statement().add_columns(
        Location.website, Location.coordinates_precision, Location.moderator_checked,
        address_source)
    for row in _stream(statement):
        key, name, category, transit, lat, lng, org = row[:7]
        website, precision, checked, source_id = row[14:]
        loc = location_uuid(key)
        yield loc, "physical", organization_uuid(org), name, category, transit, lat, lng
        for attribute in _location_attributes(loc, website, precision, checked,
                                              sources.get(source_id)):
            side(tuple(attribute.values()))


def address_rows() -> Iterator[Row]:
    """Each active listing's street address."""
    for row in _stream(_location_statement()):
        loc = location_uuid(row[0])
        yield (child_uuid(loc, "address"), loc, row[7], row[8], row[9], row[10], row[11],
               row[12], "US", "physical")


def phone_rows() -> Iterator[Row]:
    """Each active listing's phone number, where one is known."""
    for row in _stream(_location_statement().where(Location.phone.is_not(None))):
        loc = location_uuid(row[0])
        yield child_uuid(loc, "phone"), loc, row[13], "voice"


def service_rows(side: Side = _ignore) -> Iterator[Row]:
    """One HSDS service per service-at-location of an active listing; attributes to side."""
    sources = _sources()
    for _note, walk_in, telehealth, source_id, verified_on, key, code, name, org in _stream(
            _services_at_active().order_by(ServiceAtLocation.id)):
        service = _service_id(key, code)
        yield (service, organization_uuid(org), SERVICES.get(code, name), None, "active",
               verified_on)
        if f"service:{code}" in TERMS:
            side(_attribute_row(service, "service", f"service:{code}", None))
        if walk_in is not None:
            side(_attribute_row(service, "service", "walk_in", _yes_no(walk_in)))
        if telehealth is not None:
            side(_attribute_row(service, "service", "telehealth", _yes_no(telehealth)))
        side(_attribute_row(service, "service", "source", sources.get(source_id)))


def service_at_location_rows() -> Iterator[Row]:
    """The link of each service to its one location."""
    for note, _walk, _tele, _source, _verified, key, code, _name, _org in _stream(
            _services_at_active().order_by(ServiceAtLocation.id)):
        yield _sal_id(key, code), _service_id(key, code), location_uuid(key), note


def schedule_rows(side: Side = _ignore) -> Iterator[Row]:
    """Weekly opening hours, one row per day and interval; closed days go to side."""
    for byday, opens, closes, description, key, code in _fact_rows(
            Schedule, Schedule.byday, Schedule.opens_minute, Schedule.closes_minute):
        if opens == closes:
            # A closed day is an attribute: as a schedule row it would read as "open".
            side(_attribute_row(_service_id(key, code), "service", "closed_day", byday))
            continue
        sal = _sal_id(key, code)
        yield (child_uuid(sal, f"schedule:{byday}:{opens}:{closes}"), _service_id(key, code),
               location_uuid(key), sal, "WEEKLY", byday, format_time(opens),
               format_time(closes), description)


def language_rows() -> Iterator[Row]:
    """Languages staff speak, per service at its location."""
    for lang, name, key, code in _fact_rows(Language, Language.code):
        service = _service_id(key, code)
        yield child_uuid(service, "language", lang), service, location_uuid(key), name, lang


def _cost_text(option: str, available: bool | None) -> str:
    label = COST_OPTIONS.get(option, option)
    if available is True:
        return label
    return f"{label}: {'no' if available is False else 'not known'}"


def cost_option_rows(side: Side = _ignore) -> Iterator[Row]:
    """Every stated payment option; its attribute cost:<code> (yes, no, unclear) to side."""
    for option, available, description, key, code in _fact_rows(CostOption, CostOption.option):
        service = _service_id(key, code)
        free = option == "free" and available is True
        cost_id = child_uuid(service, "cost_option", option)
        yield (cost_id, service, _cost_text(option, available), "USD" if free else None,
               0 if free else None, description)
        if f"cost:{option}" in TERMS:
            side(_attribute_row(cost_id, "cost_option", f"cost:{option}",
                                _COST_STATES[available]))


def _document_text(document: str, required: bool | None, description: str | None) -> str:
    if description:
        return description
    label = DOCUMENTS.get(document, document)
    state = {True: "required", False: "not required", None: "not known if required"}
    return f"{label}: {state[required]}"


def required_document_rows(side: Side = _ignore) -> Iterator[Row]:
    """Every document a source speaks of, in its words; document:<code> (the state) to side."""
    for document, required, description, key, code in _fact_rows(
            RequiredDocument, RequiredDocument.document):
        service = _service_id(key, code)
        doc_id = child_uuid(service, "required_document", document)
        yield doc_id, service, _document_text(document, required, description)
        if f"document:{document}" in TERMS:
            side(_attribute_row(doc_id, "required_document", f"document:{document}",
                                _DOCUMENT_STATES[required]))


def taxonomy_rows() -> Iterator[Row]:
    """Our one taxonomy."""
    yield TAXONOMY_ID, TAXONOMY_NAME, TAXONOMY_DESCRIPTION, "1"


def taxonomy_term_rows() -> Iterator[Row]:
    """Every term of our taxonomy."""
    for term in TERMS.values():
        yield (term_uuid(term.code), term.code, term.name, term.description, TAXONOMY_ID,
               TAXONOMY_NAME)


def _attribute_row(link_id: str, entity: str, code: str, value: str | None) -> Row:
    return (child_uuid(link_id, f"attribute:{code}:{value or ''}"), link_id, term_uuid(code),
            entity, value)


def _attribute(link_id: str, entity: str, code: str, value: str | None) -> dict[str, Any]:
    return dict(zip(ATTRIBUTE_COLUMNS, _attribute_row(link_id, entity, code, value),
                    strict=True))


def _sources() -> dict[int, str]:
    return {s.id: _source_text(s.title, s.publisher, s.as_of)
            for s in db.session.execute(select(Source)).scalars()}


_DOCUMENT_STATES = {True: REQUIRED, False: NOT_REQUIRED, None: UNCLEAR}
_COST_STATES = {True: YES, False: NO, None: UNCLEAR}


# The passes that also write attributes, in the order the attributes come out.
_ATTRIBUTE_PASSES = ("location", "service", "schedule", "cost_option", "required_document")


def attribute_rows() -> Iterator[Row]:
    """Our taxonomy's facts, on locations, services, cost options and documents.

    They come from the passes over those tables; iter_zip collects them during its own
    passes instead of running these again.
    """
    collected: list[Row] = []
    for name in _ATTRIBUTE_PASSES:
        for _row in ROW_SOURCES[name](collected.append):
            yield from collected
            collected.clear()


def _location_attributes(loc: str, website: str | None, precision: str, checked: bool,
                         source: str | None) -> Iterator[dict[str, Any]]:
    if website:
        yield _attribute(loc, "location", "website", website)
    if precision == "zip":
        yield _attribute(loc, "location", "coordinates_precision", "zip")
    if checked:
        yield _attribute(loc, "location", "moderator_checked", YES)
    if source:
        yield _attribute(loc, "location", "location_source", source)


ROW_SOURCES: dict[str, Callable[..., Iterator[Row]]] = {
    "organization": organization_rows,
    "location": location_rows,
    "address": address_rows,
    "phone": phone_rows,
    "service": service_rows,
    "service_at_location": service_at_location_rows,
    "schedule": schedule_rows,
    "language": language_rows,
    "cost_option": cost_option_rows,
    "required_document": required_document_rows,
    "taxonomy": taxonomy_rows,
    "taxonomy_term": taxonomy_term_rows,
    "attribute": attribute_rows,
}


def table_rows(name: str, side: Side | None = None) -> Iterator[Row]:
    """One table's rows, each id once (duplicate facts in the database are written once).

    With side, the passes that find attributes hand them to it instead of leaving them
    for a pass of their own.
    """
    last = None
    source = ROW_SOURCES[name]
    rows = source(_unique(side)) if side is not None and name in _ATTRIBUTE_PASSES else source()
    for row in rows:
        if row[0] != last:
            last = row[0]
            yield row


def _unique(side: Side) -> Side:
    """side, skipping a row whose id is the previous row's (a duplicate fact's attribute)."""
    last: list[Any] = [None]

    def write(row: Row) -> None:
        if row[0] != last[0]:
            last[0] = row[0]
            side(row)
    return write


def datapackage(created: datetime) -> dict[str, Any]:
    """The datapackage.json of our export: resources, fields, keys and the profile."""
    resources = []
    for name, path, columns in TABLES:
        fields = [{"name": c, "type": "number" if c in NUMBER_FIELDS else (
            "date" if c == "assured_date" else "string")} for c in columns]
        schema: dict[str, Any] = {"fields": fields, "primaryKey": "id"}
        foreign = [{"fields": column, "reference": {"resource": target, "fields": "id"}}
                   for column, target in REFERENCES.get(name, {}).items() if column in columns]
        if foreign:
            schema["foreignKeys"] = foreign
        resources.append({"name": name, "path": path, "profile": "tabular-data-resource",
                          "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                          "schema": schema})
    sources = [{"title": _source_text(s.title, s.publisher, s.as_of),
                **({"path": s.url} if s.url else {})}
               for s in db.session.execute(select(Source).order_by(Source.key)).scalars()]
    return {
        "name": PACKAGE_NAME,
        "title": "CareMap NYC: clinics in New York City for people in the sex trade",
        "profile": "tabular-data-package",
        "version": HSDS_VERSION,
        "created": created.astimezone(UTC).isoformat(timespec="seconds").replace(
            "+00:00", "Z"),
        "description": f"Open Referral HSDS {HSDS_VERSION}, {PROFILE_NAME}. Active listings "
                       "only; each fact's source is named in the attributes.",
        "contributors": [{"title": "CareMap NYC", "role": "publisher"}],
        "sources": sources,
        "resources": resources,
    }


class _Sink:
    """A write-only, unseekable file that hands what was written to a generator."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def iter_zip(created: datetime) -> Iterator[bytes]:
    """The tabular datapackage as zip bytes, chunk by chunk (memory stays flat)."""
    sink = _Sink()
    # Level 1: three times faster than the default for a file about 8% larger.
    # Attributes are found in the passes over other tables and wait in a spool (on disk
    # past a few MB) until their own file is written, last: one pass fewer over everything.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED,  # type: ignore[call-overload]
                         compresslevel=1) as archive, tempfile.SpooledTemporaryFile(
            max_size=2 * 2**20, mode="w+", newline="") as spool:
        archive.writestr("datapackage.json", json.dumps(datapackage(created), indent=2,
                                                        ensure_ascii=False))
        yield sink.drain()
        attributes = csv.writer(spool, lineterminator="\r\n")
        for name, path, columns in TABLES:
            with archive.open(path, "w") as entry:
                entry.write((",".join(columns) + "\r\n").encode())
                if name == "attribute":
                    spool.seek(0)
                    while text := spool.read(BATCH * 64):
                        entry.write(text.encode())
                        yield sink.drain()
                    continue
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\r\n")
                rows = table_rows(name, side=attributes.writerow)
                # csv writes None as "" and numbers and dates with str(): exactly HSDS's text.
                while batch := list(itertools.islice(rows, BATCH)):
                    writer.writerows(batch)
                    entry.write(buffer.getvalue().encode())
                    buffer.seek(0)
                    buffer.truncate()
                    yield sink.drain()
            yield sink.drain()
    yield sink.drain()


# --- Export: the JSON dataset (HSDS services, dereferenced, in an HSDS API Page) --------


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A row as HSDS JSON: absent values left out rather than null, dates as text."""
    return {k: (v.isoformat() if type(v) is date else v) for k, v in row.items()
            if v is not None}


def _service_object(sal: ServiceAtLocation, location: Location,
                    sources: dict[int, str]) -> dict[str, Any]:
    """One HSDS service with its organization, its one service_at_location and its facts."""
    code = sal.service.code
    ids = _sal_ids(location.import_key, code)
    org = location.organization
    org_row = {"id": organization_uuid(org.name), "name": org.name,
               "description": ORGANIZATION_DESCRIPTION, "website": org.website}
    address_source = next((p.source_id for p in location.provenance if p.field == "address"),
                          None)
    loc_row = _clean({
        "id": ids.location, "location_type": "physical",
        "organization_id": organization_uuid(org.name), "name": location.name,
        "description": location.category, "transportation": location.transit,
        "latitude": location.latitude, "longitude": location.longitude,
    })
    loc_row["addresses"] = [_clean({
        "id": child_uuid(ids.location, "address"), "location_id": ids.location,
        "address_1": location.address_1, "address_2": location.address_2,
        "city": location.city, "region": location.borough, "state_province": location.state,
        "postal_code": location.postal_code, "country": "US", "address_type": "physical"})]
    if location.phone:
        loc_row["phones"] = [{"id": child_uuid(ids.location, "phone"),
                              "location_id": ids.location, "number": location.phone,
                              "type": "voice"}]
    loc_row["attributes"] = [_embed_term(a) for a in _location_attributes(
        ids.location, location.website, location.coordinates_precision,
        location.moderator_checked, sources.get(address_source) if address_source else None)]
    schedules = []
    closed = []
    for s in sorted(sal.schedules, key=lambda s: (hours.DAYS.index(s.byday)
                                                  if s.byday in hours.DAYS else 9,
                                                  s.opens_minute, s.closes_minute)):
        if s.opens_minute == s.closes_minute:
            closed.append(s.byday)
            continue
        schedules.append(_clean({
            "id": child_uuid(ids.sal, "schedule", s.byday, s.opens_minute, s.closes_minute),
            "service_id": ids.service, "location_id": ids.location,
            "service_at_location_id": ids.sal, "freq": "WEEKLY", "byday": s.byday,
            "opens_at": format_time(s.opens_minute), "closes_at": format_time(s.closes_minute),
            "description": s.description}))
    attributes = []
    if f"service:{code}" in TERMS:
        attributes.append(_attribute(ids.service, "service", f"service:{code}", None))
    for name, value in (("walk_in", sal.walk_in), ("telehealth", sal.telehealth)):
        if value is not None:
            attributes.append(_attribute(ids.service, "service", name, _yes_no(value)))
    attributes.append(_attribute(ids.service, "service", "source", sources.get(sal.source_id)))
    attributes += [_attribute(ids.service, "service", "closed_day", day) for day in closed]
    costs = []
    for cost in sorted(sal.cost_options, key=lambda c: c.option):
        cost_id = child_uuid(ids.service, "cost_option", cost.option)
        free = cost.option == "free" and cost.available is True
        row = _clean({"id": cost_id, "service_id": ids.service,
                      "option": _cost_text(cost.option, cost.available),
                      "currency": "USD" if free else None, "amount": 0 if free else None,
                      "amount_description": cost.description})
        if f"cost:{cost.option}" in TERMS:
            row["attributes"] = [_embed_term(_attribute(
                cost_id, "cost_option", f"cost:{cost.option}",
                UNCLEAR if cost.available is None else _yes_no(cost.available)))]
        costs.append(row)
    documents = []
    for doc in sorted(sal.required_documents, key=lambda d: d.document):
        doc_id = child_uuid(ids.service, "required_document", doc.document)
        row = {"id": doc_id, "service_id": ids.service,
               "document": _document_text(doc.document, doc.required, doc.description)}
        if f"document:{doc.document}" in TERMS:
            state = {True: REQUIRED, False: NOT_REQUIRED, None: UNCLEAR}[doc.required]
            row["attributes"] = [_embed_term(_attribute(
                doc_id, "required_document", f"document:{doc.document}", state))]
        documents.append(row)
    return _clean({
        "id": ids.service, "organization_id": organization_uuid(org.name),
        "name": SERVICES.get(code, sal.service.name), "status": "active",
        "assured_date": sal.verified_on,
        "organization": _clean(org_row),
        "service_at_locations": [_clean({
            "id": ids.sal, "service_id": ids.service, "location_id": ids.location,
            "description": sal.note, "schedules": schedules, "location": loc_row})],
        "languages": [{"id": child_uuid(ids.service, "language", lang.code),
                       "service_id": ids.service, "location_id": ids.location,
                       "name": lang.name, "code": lang.code}
                      for lang in sorted(sal.languages, key=lambda x: x.code)],
        "cost_options": costs,
        "required_documents": documents,
        "attributes": [_embed_term(a) for a in attributes],
    })


@lru_cache(maxsize=256)
def _term_object(term_id: str) -> dict[str, Any]:
    term = TERM_BY_ID[term_id]
    return {"id": term_id, "code": term.code, "name": term.name,
            "description": term.description, "taxonomy_id": TAXONOMY_ID,
            "taxonomy": TAXONOMY_NAME}


def _embed_term(attribute: dict[str, Any]) -> dict[str, Any]:
    """An attribute with its taxonomy term embedded, as dereferenced HSDS JSON wants."""
    return _clean({**attribute, "taxonomy_term": _term_object(attribute["taxonomy_term_id"])})


def iter_json(created: datetime) -> Iterator[bytes]:
    """Every service as dereferenced HSDS JSON in one HSDS API Page, chunk by chunk."""
    total = db.session.execute(
        select(func.count(ServiceAtLocation.id))
        .join(Location, Location.id == ServiceAtLocation.location_id).where(_active())
    ).scalar_one()
    head = {"total_items": total, "total_pages": 1, "page_number": 1, "size": total,
            "first_page": True, "last_page": True, "empty": total == 0}
    yield (json.dumps(head)[:-1] + ', "contents": [').encode()
    sources = _sources()
    first = True
    last_id = 0
    while True:
        ids = list(db.session.execute(
            select(Location.id).where(_active(), Location.id > last_id)
            .order_by(Location.id).limit(JSON_CHUNK)).scalars())
        if not ids:
            break
        last_id = ids[-1]
        locations = db.session.execute(
            select(Location).where(Location.id.in_(ids)).order_by(Location.id).options(
                selectinload(Location.organization),
                selectinload(Location.provenance),
                selectinload(Location.services).selectinload(ServiceAtLocation.service),
                selectinload(Location.services).selectinload(ServiceAtLocation.schedules),
                selectinload(Location.services).selectinload(ServiceAtLocation.languages),
                selectinload(Location.services).selectinload(ServiceAtLocation.cost_options),
                selectinload(Location.services).selectinload(
                    ServiceAtLocation.required_documents),
            )).scalars().all()
        parts = []
        for location in locations:
            for sal in sorted(location.services, key=lambda s: s.service.code):
                parts.append(json.dumps(_service_object(sal, location, sources),
                                        ensure_ascii=False))
        if parts:
            yield (("" if first else ",") + ",".join(parts)).encode()
            first = False
        # Objects are only weakly held by the session: dropping these frees the chunk.
        del locations, parts
    yield b"]}"


def export_to(path: Path, created: datetime | None = None) -> int:
    """Write the export to OUT.zip (datapackage) or OUT.json; the number of bytes written."""
    created = created or datetime.now(UTC)
    if path.suffix == ".zip":
        chunks = iter_zip(created)
    elif path.suffix == ".json":
        chunks = iter_json(created)
    else:
        raise ValueError("the export file must end in .zip (datapackage) or .json")
    written = 0
    with path.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
    return written


# --- Import ------------------------------------------------------------------------------


class HsdsRejected(Exception):
    """A package is unreadable or breaks HSDS rules; nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


@dataclass
class HsdsReport:
    """What one import read, used, skipped and changed."""

    source_key: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    changes: ImportReport = field(default_factory=ImportReport)
    locations: int = 0

    def lines(self, notes: int = 20) -> list[str]:
        """The report as text."""
        out = [f"source: {self.source_key}",
               "rows read: " + ", ".join(f"{k} {v}" for k, v in self.rows.items()),
               f"locations imported: {self.locations}"]
        out += [f"  note: {n}" for n in self.notes[:notes]]
        if len(self.notes) > notes:
            out.append(f"  … {len(self.notes) - notes} more notes")
        for table, counter in sorted(self.changes.changes.items()):
            parts = ", ".join(f"{a} {n}" for a, n in sorted(counter.items()) if n)
            if parts:
                out.append(f"changed {table}: {parts}")
        out.append(f"{self.changes.total_changes} changed")
        return out


@dataclass
class Package:
    """A datapackage as read: its descriptor and each known table's rows."""

    descriptor: dict[str, Any]
    tables: dict[str, list[dict[str, str]]]
    paths: dict[str, str]


MAX_MEMBER_BYTES = 512 * 1024 * 1024


def read_package(path: Path) -> Package:
    """Read a datapackage from a .zip or a folder; HsdsRejected if it cannot be read."""
    files: dict[str, Callable[[], bytes]] = {}
    if path.is_dir():
        for file in path.rglob("*"):
            if file.is_file():
                files[file.relative_to(path).as_posix()] = file.read_bytes
    elif path.is_file():
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise HsdsRejected([f"{path.name}: not a zip file ({exc})"]) from exc
        for info in archive.infolist():
            if info.is_dir():
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                raise HsdsRejected([f"{info.filename}: larger than "
                                    f"{MAX_MEMBER_BYTES // 2**20} MB"])
            files[info.filename] = functools.partial(archive.read, info.filename)
    else:
        raise HsdsRejected([f"{path}: no such file or folder"])
    descriptors = sorted((n for n in files if PurePosixPath(n).name == "datapackage.json"),
                         key=lambda n: n.count("/"))
    if not descriptors:
        raise HsdsRejected(["datapackage.json: missing"])
    base = PurePosixPath(descriptors[0]).parent
    try:
        descriptor = json.loads(files[descriptors[0]]().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HsdsRejected([f"datapackage.json: not valid JSON ({exc})"]) from exc
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("resources"), list):
        raise HsdsRejected(["datapackage.json: no list of resources"])
    problems: list[str] = []
    tables: dict[str, list[dict[str, str]]] = {}
    paths: dict[str, str] = {}
    for resource in descriptor["resources"]:
        if not isinstance(resource, dict):
            problems.append("datapackage.json: a resource is not an object")
            continue
        name: Any = resource.get("name")
        rel: Any = resource.get("path")
        if name not in REQUIRED_FIELDS:
            continue  # tables outside our profile are read past
        if not isinstance(rel, str):
            problems.append(f"datapackage.json: resource {name} has no path")
            continue
        member = str(base / rel) if str(base) != "." else rel
        if member not in files:
            problems.append(f"{rel}: listed in datapackage.json but missing")
            continue
        paths[name] = rel
        try:
            text = files[member]().decode("utf-8-sig")
            reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
            rows = [{k: (v or "").strip() for k, v in row.items() if k is not None}
                    for row in reader]
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(f"{rel}: not a readable UTF-8 CSV file ({exc})")
            continue
        missing = [c for c in REQUIRED_FIELDS[name] if c not in (reader.fieldnames or [])]
        if missing:
            problems.append(f"{rel}: missing required column(s) {', '.join(missing)}")
        tables[name] = rows
    for name in NEEDED_TABLES:
        if name not in tables and not any(p.startswith(f"{name}") for p in problems):
            problems.append(f"datapackage.json: no “{name}” resource")
    if problems:
        raise HsdsRejected(problems)
    return Package(descriptor, tables, paths)


def validate(package: Package) -> list[str]:
    """Every breach of HSDS rules in a package: required fields, ids, references, values."""
    problems: list[str] = []
    ids: dict[str, set[str]] = {}
    for name, rows in package.tables.items():
        rel = package.paths[name]
        seen: set[str] = set()
        for n, row in enumerate(rows, start=2):
            where = f"{rel} line {n}"
            for column in REQUIRED_FIELDS[name]:
                if not row.get(column):
                    problems.append(f"{where}: required field “{column}” is empty")
            for column, value in row.items():
                if value and (column == "id" or column.endswith("_id")) and not is_uuid(value):
                    problems.append(f"{where}: “{column}” is not a UUID ({value[:40]})")
            if row.get("id"):
                if row["id"] in seen:
                    problems.append(f"{where}: id {row['id']} is used twice")
                seen.add(row["id"])
            for (table, column), allowed in ENUMS.items():
                given = row.get(column)
                if table == name and given and given not in allowed:
                    problems.append(f"{where}: “{column}” must be one of "
                                    f"{', '.join(allowed)}, not “{given[:40]}”")
            for column in NUMBER_FIELDS:
                if row.get(column):
                    try:
                        float(row[column])
                    except ValueError:
                        problems.append(f"{where}: “{column}” is not a number")
        ids[name] = seen
    for name, rows in package.tables.items():
        rel = package.paths[name]
        for n, row in enumerate(rows, start=2):
            for column, target in REFERENCES.get(name, {}).items():
                reference = row.get(column)
                if reference and reference not in ids.get(target, set()):
                    problems.append(f"{rel} line {n}: “{column}” {reference} refers to no "
                                    f"{target}")
            if name == "attribute" and row.get("link_id"):
                entity = row.get("link_entity") or ""
                if entity in ids and row["link_id"] not in ids[entity]:
                    problems.append(f"{rel} line {n}: “link_id” {row['link_id']} refers to "
                                    f"no {entity}")
    problems += _profile_problems(package)
    return problems


def _profile_problems(package: Package) -> list[str]:
    """Breaches of our profile's own rules: term values, hours, coordinates."""
    problems: list[str] = []
    rel = package.paths.get("attribute", "")
    for n, row in enumerate(package.tables.get("attribute", []), start=2):
        term = TERM_BY_ID.get(row.get("taxonomy_term_id", ""))
        if term and term.values and row.get("value") not in term.values:
            problems.append(f"{rel} line {n}: “{term.code}” must be one of "
                            f"{', '.join(term.values)}, not “{(row.get('value') or '')[:40]}”")
        if term and row.get("link_entity") and row["link_entity"] != term.link_entity:
            problems.append(f"{rel} line {n}: “{term.code}” belongs on a {term.link_entity}, "
                            f"not a {row['link_entity']}")
    rel = package.paths.get("schedule", "")
    for n, row in enumerate(package.tables.get("schedule", []), start=2):
        if not (row.get("opens_at") or row.get("closes_at")):
            continue
        days = [d.strip() for d in (row.get("byday") or "").split(",") if d.strip()]
        if (row.get("freq") or "WEEKLY") != "WEEKLY" or not days or any(
                d not in hours.DAYS for d in days):
            problems.append(f"{rel} line {n}: only weekly hours on named days (byday MO..SU) "
                            "can be read")
        try:
            interval_from(row.get("opens_at") or "", row.get("closes_at") or "")
        except ValueError as exc:
            problems.append(f"{rel} line {n}: {exc}")
    rel = package.paths.get("location", "")
    for n, row in enumerate(package.tables.get("location", []), start=2):
        for column, low, high in (("latitude", -90, 90), ("longitude", -180, 180)):
            try:
                value = float(row.get(column) or "nan")
            except ValueError:
                continue
            if value == value and not low <= value <= high:
                problems.append(f"{rel} line {n}: “{column}” is out of range")
    return problems


# What an import wants stored for one location, computed before any write.


@dataclass
class _Facts:
    note: str | None = None
    walk_in: bool | None = None
    telehealth: bool | None = None
    schedules: dict[tuple[str, int, int], str | None] = field(default_factory=dict)
    languages: dict[str, str] = field(default_factory=dict)
    costs: dict[str, tuple[bool | None, str | None]] = field(default_factory=dict)
    documents: dict[str, tuple[bool | None, str | None]] = field(default_factory=dict)


@dataclass
class _Listing:
    hsds_id: str
    org_name: str
    org_website: str | None
    fields: dict[str, Any]
    services: dict[str, _Facts]


def _package_date(package: Package, as_of: date | None) -> date:
    if as_of is not None:
        return as_of
    created = package.descriptor.get("created")
    if isinstance(created, str):
        try:
            return datetime.fromisoformat(created.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    raise HsdsRejected(["datapackage.json: no “created” date, and no --as-of date given: "
                        "every fact needs the date its source vouches for it"])


def _source_for(session: Session, package: Package, as_of: date,
                report: ImportReport) -> Source:
    """The Source row named after the package's name and date (created once)."""
    d = package.descriptor
    name = str(d.get("name") or "unnamed")[:40]
    key = f"hsds:{name}:{as_of.isoformat()}"[:64]
    source = session.execute(select(Source).where(Source.key == key)).scalar_one_or_none()
    if source is not None:
        return source
    contributors: list[Any] = d.get("contributors") or []
    if not isinstance(contributors, list):
        contributors = []
    publisher = next((str(c.get("title")) for c in contributors
                      if isinstance(c, dict) and c.get("title")), f"HSDS package “{name}”")
    licences: list[Any] = d.get("licenses") or []
    if not isinstance(licences, list):
        licences = []
    licence = next((str(lic.get("title") or lic.get("name")) for lic in licences
                    if isinstance(lic, dict)), "")
    homepage = d.get("homepage")
    source = Source(
        key=key, title=str(d.get("title") or name)[:300], publisher=publisher[:300],
        url=homepage[:500] if isinstance(homepage, str) and homepage.startswith(
            ("https://", "http://")) else None,
        as_of=as_of, as_of_note="The date the Open Referral HSDS package gives for itself.",
        licence=licence[:300],
        caveats="Imported from an Open Referral HSDS datapackage: every fact carries the "
                "package's date, not the date each fact was first published.",
    )
    session.add(source)
    report.changed("source", "inserted")
    return source


def _attributes_by_link(package: Package) -> dict[str, list[tuple[Term, str | None]]]:
    out: dict[str, list[tuple[Term, str | None]]] = defaultdict(list)
    for row in package.tables.get("attribute", []):
        term = TERM_BY_ID.get(row.get("taxonomy_term_id", ""))
        if term is not None:
            out[row["link_id"]].append((term, row.get("value") or None))
    return out


def _label_code(text: str, labels: dict[str, str]) -> str | None:
    key = text.strip().lower()
    for code, label in labels.items():
        if key in (code, label.lower()):
            return code
    return None


def _plan(package: Package, report: HsdsReport) -> list[_Listing]:
    """Turn a valid package into the listings it describes; skipped rows become notes."""
    t = package.tables
    attrs = _attributes_by_link(package)
    orgs = {row["id"]: row for row in t["organization"]}
    addresses: dict[str, dict[str, str]] = {}
    for row in t.get("address", []):
        if row.get("location_id") and (row.get("address_type") == "physical" or
                                       row["location_id"] not in addresses):
            addresses[row["location_id"]] = row
    phones: dict[str, str] = {}
    for row in t.get("phone", []):
        if row.get("location_id"):
            phones.setdefault(row["location_id"], row["number"][:40])
    services = {row["id"]: row for row in t["service"]}
    service_codes: dict[str, str] = {}
    for sid, row in services.items():
        codes = [term.code.split(":", 1)[1] for term, _v in attrs.get(sid, [])
                 if term.code.startswith("service:")]
        code = codes[0] if codes else _label_code(row["name"], SERVICES)
        if code is None:
            report.notes.append(f"service {sid} “{row['name'][:60]}”: not one of our "
                                "services (see docs/hsds-profile.md); left out")
        elif row.get("status") not in (None, "", "active"):
            report.notes.append(f"service {sid}: status {row['status']}; left out")
        else:
            service_codes[sid] = code
    listings: dict[str, _Listing] = {}
    for row in t["location"]:
        listing = _listing(row, orgs, addresses.get(row["id"]), phones.get(row["id"]),
                           attrs.get(row["id"], []), report)
        if listing is not None:
            listings[row["id"]] = listing
    sal_facts: dict[str, _Facts] = {}
    sals_of_service: dict[str, list[str]] = defaultdict(list)
    sals_of_location: dict[str, list[str]] = defaultdict(list)
    for row in t["service_at_location"]:
        listing = listings.get(row["location_id"])
        code = service_codes.get(row["service_id"])
        if listing is None or code is None:
            continue
        facts = listing.services.setdefault(code, _Facts())
        facts.note = facts.note or (row.get("description") or None)
        for term, value in attrs.get(row["service_id"], []):
            if term.code in ("walk_in", "telehealth"):
                setattr(facts, term.code, value == YES)
            elif term.code == "closed_day" and value:
                facts.schedules.setdefault((value, 0, 0), None)
        sal_facts[row["id"]] = facts
        sals_of_service[row["service_id"]].append(row["id"])
        sals_of_location[row["location_id"]].append(row["id"])
    _plan_facts(package, attrs, sal_facts, sals_of_service, sals_of_location, report)
    offered = {row["location_id"] for row in t["service_at_location"]}
    kept = []
    for lid, listing in listings.items():
        # A place whose services are all outside our list is not one for this directory;
        # a bare listing (an address, no services yet) is kept, as the seed data has some.
        if lid in offered and not listing.services:
            report.notes.append(f"location {lid}: none of our services; left out")
        else:
            kept.append(listing)
    return kept


def _listing(row: dict[str, str], orgs: dict[str, dict[str, str]],
             address: dict[str, str] | None, phone: str | None,
             attributes: list[tuple[Term, str | None]], report: HsdsReport) -> _Listing | None:
    """One location as a listing, or None (with a note) when we cannot list it."""
    lid = row["id"]
    if row["location_type"] != "physical":
        report.notes.append(f"location {lid}: {row['location_type']}, not a place to walk "
                            "into; left out")
        return None
    if address is None:
        report.notes.append(f"location {lid}: no address; left out")
        return None
    org = orgs.get(row.get("organization_id") or "")
    if org is None:
        report.notes.append(f"location {lid}: no organization; left out")
        return None
    values = {term.code: value for term, value in attributes}
    zip_info = nyc_zip(address["postal_code"])
    precision = values.get("coordinates_precision") or "site"
    if row.get("latitude") and row.get("longitude"):
        latitude, longitude = float(row["latitude"]), float(row["longitude"])
    elif zip_info is not None:
        # Only the ZIP's centre is known: said so on the listing, never passed off as exact.
        latitude, longitude, precision = zip_info.latitude, zip_info.longitude, "zip"
        report.notes.append(f"location {lid}: no coordinates; placed at its ZIP's centre")
    else:
        report.notes.append(f"location {lid}: no coordinates and no NYC ZIP code; left out")
        return None
    if zip_info is None:
        report.notes.append(f"location {lid}: ZIP {address['postal_code'][:10]} is not in "
                            "New York City; left out")
        return None
    fields: dict[str, Any] = {
        "name": (row.get("name") or org["name"])[:300],
        "address_1": address["address_1"][:300],
        "address_2": (address.get("address_2") or None),
        "city": address["city"][:100],
        "state": (address["state_province"] or "NY")[:2],
        "postal_code": address["postal_code"][:10],
        "borough": (address.get("region") or zip_info.borough)[:40],
        "latitude": latitude, "longitude": longitude,
        "coordinates_precision": precision,
        "phone": phone,
        "website": (values.get("website") or None),
        "transit": row.get("transportation") or None,
        "category": (row.get("description") or None),
        "status": ACTIVE,
    }
    if fields["category"]:
        fields["category"] = fields["category"][:100]
    return _Listing(lid, org["name"][:300], org.get("website") or None, fields, {})


def _plan_facts(package: Package, attrs: dict[str, list[tuple[Term, str | None]]],
                sal_facts: dict[str, _Facts], sals_of_service: dict[str, list[str]],
                sals_of_location: dict[str, list[str]], report: HsdsReport) -> None:
    """Hours, languages, costs and documents, each onto the services-at-location it names."""
    t = package.tables

    def targets(row: dict[str, str]) -> list[_Facts]:
        if row.get("service_at_location_id"):
            found = [row["service_at_location_id"]]
        elif row.get("service_id"):
            found = sals_of_service.get(row["service_id"], [])
            if row.get("location_id"):
                found = [s for s in found if s in sals_of_location.get(row["location_id"], [])]
        else:
            found = sals_of_location.get(row.get("location_id") or "", [])
        return [sal_facts[s] for s in found if s in sal_facts]

    for row in t.get("schedule", []):
        if not (row.get("opens_at") and row.get("closes_at")):
            continue
        opens, closes = interval_from(row["opens_at"], row["closes_at"])
        for facts in targets(row):
            for day in (d.strip() for d in row["byday"].split(",")):
                facts.schedules[(day, opens, closes)] = (row.get("description") or None)
    for row in t.get("language", []):
        given = (row.get("code") or "").lower()
        code = given if given in LANGUAGES else language_code(row.get("name") or "")
        if code is None:
            report.notes.append(f"language {row['id']} “{(row.get('name') or '')[:40]}”: not "
                                "one we list; left out")
            continue
        for facts in targets(row):
            facts.languages[code] = LANGUAGES[code]
    for row in t.get("cost_option", []):
        states = [(term.code.split(":", 1)[1], value) for term, value in attrs.get(row["id"], [])
                  if term.code.startswith("cost:")]
        if states:
            option, value = states[0]
            available = None if value == UNCLEAR else value == YES
        else:
            found = _label_code(row.get("option") or "", COST_OPTIONS)
            if found is None:
                report.notes.append(f"cost option {row['id']} “{(row.get('option') or '')[:40]}"
                                    "”: not one we list; left out")
                continue
            option, available = found, True
        for facts in targets(row):
            facts.costs[option] = (available, row.get("amount_description") or None)
    for row in t.get("required_document", []):
        states = [(term.code.split(":", 1)[1], value) for term, value in attrs.get(row["id"], [])
                  if term.code.startswith("document:")]
        if states:
            document, value = states[0]
            required = {REQUIRED: True, NOT_REQUIRED: False}.get(value or "")
        else:
            found = _label_code(row.get("document") or "", DOCUMENTS)
            if found is None:
                report.notes.append(f"document {row['id']} “{(row.get('document') or '')[:40]}"
                                    "”: not one we list; left out")
                continue
            document, required = found, True
        for facts in targets(row):
            facts.documents[document] = (required, row.get("document") or None)


def run_hsds_import(path: Path, session: Session, as_of: date | None = None) -> HsdsReport:
    """Import an HSDS datapackage into the session; does not commit.

    Raises HsdsRejected, before writing anything, listing every problem found.
    """
    package = read_package(path)
    problems = validate(package)
    if problems:
        raise HsdsRejected(problems)
    report = HsdsReport(rows={name: len(rows) for name, rows in package.tables.items()})
    when = _package_date(package, as_of)
    listings = _plan(package, report)
    with session.no_autoflush:
        source = _source_for(session, package, when, report.changes)
        session.flush()
        report.source_key = source.key
        _apply_listings(session, listings, source, report)
    session.flush()
    report.locations = len(listings)
    return report


def _apply_listings(session: Session, listings: list[_Listing], source: Source,
                    report: HsdsReport) -> None:
    """Make the database hold exactly these listings, each fact from this source."""
    changes = report.changes
    as_of = source.as_of
    by_key: dict[str, Location] = {}
    for stored in session.execute(select(Location)).scalars():
        by_key[location_uuid(stored.import_key)] = stored
    orgs: dict[str, Organization] = {}
    for named in session.execute(select(Organization).order_by(Organization.id)).scalars():
        orgs.setdefault(named.name, named)
    slugs = set(session.execute(select(Location.slug)).scalars())
    touched: set[int] = set()
    kept: list[tuple[_Listing, Location]] = []
    for listing in listings:
        loc = by_key.get(listing.hsds_id)
        if loc is not None and loc.moderator_checked:
            report.notes.append(f"location {listing.hsds_id}: checked by a CareMap moderator; "
                                "the package does not overwrite it")
            continue
        org = orgs.get(listing.org_name)
        if org is None:
            org = orgs[listing.org_name] = Organization(name=listing.org_name,
                                                        website=listing.org_website)
            session.add(org)
            changes.changed("organization", "inserted")
        elif listing.org_website and org.website != listing.org_website:
            org.website = listing.org_website
            changes.changed("organization", "updated")
        session.flush()
        values = {**listing.fields, "organization_id": org.id}
        if loc is None:
            slug = _unique_slug(values["name"], slugs)
            loc = Location(import_key=HSDS_KEY_PREFIX + listing.hsds_id, slug=slug,
                           moderator_checked=False, **values)
            session.add(loc)
            changes.changed("location", "inserted")
        else:
            # A stored slug is kept while it still fits the name (links stay valid).
            if not re.fullmatch(re.escape(slugify(values["name"])) + r"(-\d+)?", loc.slug):
                slugs.discard(loc.slug)
                values["slug"] = _unique_slug(values["name"], slugs)
            if any(getattr(loc, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(loc, k, v)
                changes.changed("location", "updated")
                touched.add(loc.id)
        kept.append((listing, loc))
    session.flush()
    for listing, loc in kept:
        _apply_location_facts(session, listing, loc, source, as_of, changes, touched)
    session.flush()
    mark_modified(session, touched)


def _unique_slug(name: str, taken: set[str]) -> str:
    base = slugify(name)
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    taken.add(slug)
    return slug


PROVENANCE_FIELDS = {
    "name": ("name",), "address": ("address_1",), "coordinates": ("latitude",),
    "phone": ("phone",), "website": ("website",), "category": ("category",),
    "status": ("status",),
}


def _apply_location_facts(session: Session, listing: _Listing, loc: Location, source: Source,
                          as_of: date, changes: ImportReport, touched: set[int]) -> None:
    """Provenance, services at the location and their facts, synced to the listing."""

    def touch(_row: Any) -> None:
        touched.add(loc.id)

    _sync_rows(session, changes, "provenance",
               {p.field: p for p in session.execute(
                   select(Provenance).where(Provenance.location_id == loc.id)).scalars()},
               {name: {"location_id": loc.id, "field": name, "source_id": source.id,
                       "verified_on": as_of, "note": None}
                for name, columns in PROVENANCE_FIELDS.items()
                if listing.fields.get(columns[0]) is not None},
               lambda k, v: Provenance(**v), touch=touch)
    services: dict[str, Service] = {}
    for code in listing.services:
        service = session.execute(select(Service).where(
            Service.organization_id == loc.organization_id, Service.code == code)
        ).scalar_one_or_none()
        if service is None:
            service = Service(organization_id=loc.organization_id, code=code,
                              name=SERVICES[code])
            session.add(service)
            changes.changed("service", "inserted")
        services[code] = service
    session.flush()
    stored = {sal.service_id: sal for sal in session.execute(
        select(ServiceAtLocation).where(ServiceAtLocation.location_id == loc.id)).scalars()}
    desired = {services[code].id: {
        "service_id": services[code].id, "location_id": loc.id, "source_id": source.id,
        "verified_on": as_of, "note": facts.note, "walk_in": facts.walk_in,
        "telehealth": facts.telehealth} for code, facts in listing.services.items()}
    sals = _sync_rows(session, changes, "service_at_location", stored, desired,
                      lambda k, v: ServiceAtLocation(**v), touch=touch)
    session.flush()
    fact = {"source_id": source.id, "verified_on": as_of}
    for code, facts in listing.services.items():
        sal = sals[services[code].id]
        base = {**fact, "service_at_location_id": sal.id}
        specs: Iterable[tuple[str, Any, dict[Any, dict[str, Any]], Callable[[Any], Any]]] = (
            ("schedule", Schedule, {k: {**base, "byday": k[0], "opens_minute": k[1],
                                        "closes_minute": k[2], "description": d}
                                    for k, d in facts.schedules.items()},
             lambda r: (r.byday, r.opens_minute, r.closes_minute)),
            ("language", Language, {k: {**base, "code": k, "name": name}
                                    for k, name in facts.languages.items()},
             lambda r: r.code),
            ("cost_option", CostOption, {k: {**base, "option": k, "available": a,
                                             "description": d}
                                         for k, (a, d) in facts.costs.items()},
             lambda r: r.option),
            ("required_document", RequiredDocument, {
                k: {**base, "document": k, "required": r, "description": d}
                for k, (r, d) in facts.documents.items()}, lambda r: r.document),
        )
        for table, model, wanted, key_of in specs:
            existing = {key_of(row): row for row in session.execute(
                select(model).where(model.service_at_location_id == sal.id)).scalars()}
            _sync_rows(session, changes, table, existing, wanted, _maker(model), touch=touch)
    # Organizations' services that no location offers any more are left: the seed
    # importer tidies those, and removing them here could pull one from under it.

