"""Hostile synthetic data for the XSS corpus test: every payload in every kind of text field.

The corpus (tests/fixtures/xss_payloads.txt) is spread so that each page carries many
payloads: every payload names one clinic (results list, map, API), fills one field of a
"rich" clinic (clinic page, card, API detail, about page), is the text of one published and
one pending review, one neighbourhood name and one value of a pending suggestion.

Every clinic, review, suggestion and account here is synthetic and lives only in a scratch
SQLite file that the test deletes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from directory import scores
from directory.extensions import db
from directory.models import (
    CLOSURE,
    CORRECTION,
    NEW_CLINIC,
    PENDING,
    PUBLISHED,
    Location,
    Neighbourhood,
    Suggestion,
)
from tests.factories import make_clinic, make_review, make_source
from tests.moderation_helpers import make_moderator

PAYLOAD_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "xss_payloads.txt"
CATEGORY = "# category: "
# What a payload that could run calls: the test's own sentinel or a dialog function.
SENTINEL = re.compile(r"__x|ert['`(;]|prompt|confirm|print|msgbox")
MODERATOR_NAME = "synthetic-xss-mod"
# Old enough to be stale, so every listing shows in the moderators' re-verify queue too.
AS_OF = date(2025, 1, 1)
HOURS = {day: [(9 * 60, 17 * 60)] for day in ("MO", "TU", "WE", "TH", "FR")}

# The text fields of a listing an import fills, in the order payloads are dealt to them.
RICH_FIELDS = (
    "name", "organization", "address_1", "address_2", "city", "borough", "phone",
    "transit", "service_note", "cost_description", "id_description",
    "insurance_description", "hours_description", "category", "provenance_note",
    "website", "source_title", "source_publisher", "source_as_of_note", "source_licence",
    "source_caveats", "source_url",
)


def load_payloads() -> list[str]:
    """The corpus: one payload a line, "#" lines are comments.

    split("\\n"), not splitlines(): a payload may hold U+2028, which splitlines breaks at.
    """
    lines = PAYLOAD_FILE.read_text(encoding="utf-8").split("\n")
    return [line for line in lines if line and not line.startswith("#")]


def payloads_by_category() -> dict[str, list[str]]:
    """The corpus grouped under its "# category:" comment lines."""
    groups: dict[str, list[str]] = {}
    current = ""
    for line in PAYLOAD_FILE.read_text(encoding="utf-8").split("\n"):
        if line.startswith(CATEGORY):
            current = line.removeprefix(CATEGORY)
        elif line and not line.startswith("#"):
            groups.setdefault(current, []).append(line)
    return groups


def can_run(payload: str) -> bool:
    """Whether a payload holds markup, a script URL or a breakout that could run code."""
    lowered = payload.lower()
    return any(sign in lowered for sign in ("<", "javascript", "vbscript", "data:", "${",
                                            "';", '";', "{{", "expression(", "\\u003c",
                                            "\\x3c", "%3c", "&lt;", "&#"))


@dataclass
class Seeded:
    """What the seed made: ids the test visits, and the moderator's TOTP secret."""

    rich: list[int]
    light: list[int]
    flash_clinic: int
    flash_suggestion: int
    echo_suggestions: list[int]
    totp_secret: str
    fields: dict[int, dict[str, str]] = field(default_factory=dict)


def deal(payloads: list[str], rich_count: int) -> list[dict[str, str]]:
    """Payloads dealt round the rich clinics' fields, so every payload lands at least once."""
    slots = rich_count * len(RICH_FIELDS)
    values = [payloads[i % len(payloads)] for i in range(slots)]
    return [dict(zip(RICH_FIELDS, values[c * len(RICH_FIELDS):(c + 1) * len(RICH_FIELDS)],
                     strict=True)) for c in range(rich_count)]


def _rich_clinic(c: int, values: dict[str, str]) -> Location:
    """A clinic whose every imported text field holds a payload, with its own source."""
    source = make_source(f"xss-source-{c}", as_of=AS_OF)
    source.title = values["source_title"]
    source.publisher = values["source_publisher"]
    source.as_of_note = values["source_as_of_note"]
    source.licence = values["source_licence"]
    source.caveats = values["source_caveats"]
    source.url = values["source_url"]
    location = make_clinic(values["name"], lat=40.7300 + c / 400, lng=-74.0000 + c / 500,
                           services=("hiv_testing", "prep"), languages=("es",),
                           cost={"free": True}, documents={"id": False, "insurance": True},
                           walk_in=True, hours=HOURS, phone=values["phone"], source=source)
    location.organization.name = values["organization"]
    location.address_1 = values["address_1"]
    location.address_2 = values["address_2"]
    location.city = values["city"]
    location.borough = values["borough"]
    location.transit = values["transit"]
    location.category = values["category"]
    location.website = values["website"]
    sal = location.services[0]
    sal.note = values["service_note"]
    sal.cost_options[0].description = values["cost_description"]
    for document in sal.required_documents:
        document.description = values[f"{document.document}_description"]
    for schedule in sal.schedules:
        schedule.description = values["hours_description"]
    location.provenance[0].note = values["provenance_note"]
    return location


def _suggestions(payloads: list[str], rich: list[Location], light: list[Location]) -> None:
    """Pending suggestions of each kind carrying the corpus in every field they show."""
    this_month = date(2026, 11, 1)
    i = 0
    n = 0
    while i < len(payloads):
        def take(count: int) -> list[str]:
            nonlocal i
            chunk = payloads[i:i + count]
            i += count
            return chunk + [payloads[0]] * (count - len(chunk))

        name, address, hours, notes = take(4)
        db.session.add(Suggestion(
            kind=NEW_CLINIC, payload=json.dumps({
                "name": name, "address_1": address, "postal_code": "10011",
                "hours": hours, "services": ["hiv_testing"]}),
            how_known="visited", notes=notes, received_month=this_month, status=PENDING))
        phone, hours, languages, services, notes = take(5)
        db.session.add(Suggestion(
            kind=CORRECTION, location=rich[n % len(rich)], payload=json.dumps({
                "phone": phone, "hours": hours, "languages": languages,
                "services": services}),
            how_known="works_there", notes=notes, received_month=this_month, status=PENDING))
        moved_to, notes = take(2)
        db.session.add(Suggestion(
            kind=CLOSURE, location=light[n % len(light)],
            payload=json.dumps({"moved_to": moved_to}), how_known="other", notes=notes,
            received_month=this_month, status=PENDING))
        n += 1


def seed(payloads: list[str], rich_count: int) -> Seeded:
    """The hostile directory; commits. Run inside the app's context."""
    dealt = deal(payloads, rich_count)
    rich = [_rich_clinic(c, values) for c, values in enumerate(dealt)]
    common = make_source("xss-light", as_of=AS_OF)
    light = [
        make_clinic(payload, lat=40.7000 + (i // 20) * 0.004, lng=-74.0200 + (i % 20) * 0.004,
                    source=common)
        for i, payload in enumerate(payloads)
    ]
    for i, payload in enumerate(payloads):
        make_review(rich[i % len(rich)], status=PUBLISHED, respect=5 - i % 3, privacy=4,
                    open_about_work=4, gender_respected=5, text=payload)
        make_review(light[i], status=PENDING, respect=3, text=payload)
    db.session.add_all(
        Neighbourhood(code=f"XSS{i:04d}", name=payload, borough="Manhattan",
                      latitude=40.74 + (i % 10) / 1000, longitude=-73.99 - (i % 10) / 1000)
        for i, payload in enumerate(payloads))
    _suggestions(payloads, rich, light)
    # A correction to approve (its clinic's name comes back in the confirmation message),
    # and corrections whose approval fails with a message that repeats what was typed.
    flash_clinic = make_clinic(payloads[0], lat=40.75, lng=-73.98, source=common)
    flash = Suggestion(kind=CORRECTION, location=flash_clinic,
                       payload=json.dumps({"walk_in": "yes"}), received_month=AS_OF,
                       status=PENDING)
    echoes = [Suggestion(kind=CORRECTION, location=rich[0],
                         payload=json.dumps({key: payload}), received_month=AS_OF,
                         status=PENDING)
              for key, payload in (("services", p) for p in payloads[::60])]
    db.session.add_all([flash, *echoes])
    moderator = make_moderator(MODERATOR_NAME)
    db.session.flush()
    scores.rebuild()
    db.session.commit()
    return Seeded(rich=[loc.id for loc in rich], light=[loc.id for loc in light],
                  flash_clinic=flash_clinic.id, flash_suggestion=flash.id,
                  echo_suggestions=[s.id for s in echoes], totp_secret=moderator.totp_secret,
                  fields={loc.id: values for loc, values in zip(rich, dealt, strict=True)})

