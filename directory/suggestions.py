"""Community suggestions: new clinics, corrections and closure reports, and their moderation.

Nothing a member of the public sends changes the directory by itself: a suggestion waits
until a moderator approves it (as sent, or after editing it) or rejects it with a reason.
Approving keeps the listing's previous facts as a ListingRevision, writes the new values
with the moderators' source and today's date, and records the decision in the audit log.
Every function here adds to the session and never commits: the view commits once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directory import audit
from directory.extensions import db
from directory.geo import zip_centroid
from directory.hours import DAYS, NEW_YORK, HoursNotUnderstood, Interval, parse_day
from directory.models import (
    ACTIVE,
    APPROVED,
    CLOSED,
    CLOSURE,
    CORRECTION,
    NEW_CLINIC,
    PENDING,
    PUBLISHED,
    REJECTED,
    CostOption,
    Language,
    ListingRevision,
    Location,
    Moderator,
    Organization,
    Provenance,
    RequiredDocument,
    Review,
    Schedule,
    Service,
    ServiceAtLocation,
    Source,
    Suggestion,
)

# Suggestions keep the same month-only time as reviews, from the one helper that makes it.
from directory.reviews import current_month
from directory.taxonomy import COST_OPTIONS, LANGUAGES, SERVICES, language_code

MODERATORS_SOURCE = "caremap-moderators"
DEFAULT_REVERIFY_DAYS = 180
CLOSURE_REPORTS_TO_RISE = 2  # closure reports that move a listing to the top of re-checks

# How the person knows, as the forms offer it.
HOW_KNOWN: dict[str, str] = {
    "visited": "I went there",
    "works_there": "I work there",
    "saw_posted": "I saw it posted (sign, website, flyer)",
    "other": "Another way",
}
REJECT_REASONS: dict[str, str] = {
    "not_confirmed": "Could not confirm it",
    "duplicate": "Already listed or already reported",
    "not_nyc": "Not in New York City",
    "not_care": "Not a place that gives care",
    "spam": "Spam or abusive",
}
# The facts a correction can change, in the order the forms and the diff show them.
FIELDS: dict[str, str] = {
    "name": "Name",
    "address_1": "Street address",
    "postal_code": "ZIP code",
    "phone": "Phone",
    "services": "Services",
    "hours": "Opening hours (as written)",
    "walk_in": "Walk-in without an appointment",
    "id_required": "ID asked for",
    "insurance_required": "Insurance asked for",
    "cost": "Ways to pay",
    "languages": "Languages spoken",
    "moved_to": "New address (if moved)",
}
# Facts written to the listing when approved; the rest the moderator reads and applies by hand.
APPLIED = ("phone", "services", "hours", "walk_in", "id_required", "insurance_required", "cost",
           "languages")
YES_NO = {"yes": True, "no": False}
_PHONE = re.compile(r"^[0-9()+.\- ]{7,25}( ?(x|ext\.?) ?\d{1,6})?$")


class InvalidSuggestion(ValueError):
    """A value a moderator typed that cannot be written to the listing."""


def today() -> date:
    """Today in New York: the date facts are verified on."""
    return datetime.now(NEW_YORK).date()


# --- Storing what the public sends ------------------------------------------------------


def new_suggestion(kind: str, location_id: int | None, values: dict[str, object],
                   how_known: str | None, notes: str | None) -> Suggestion:
    """A pending suggestion (empty values dropped); flushed, never committed."""
    kept = {key: value for key, value in values.items() if key in FIELDS and value}
    suggestion = Suggestion(kind=kind, location_id=location_id, payload=json.dumps(kept),
                            how_known=how_known if how_known in HOW_KNOWN else None,
                            notes=notes or None,
                            received_month=current_month(), status=PENDING)
    db.session.add(suggestion)
    db.session.flush()
    return suggestion


def payload(suggestion: Suggestion) -> dict[str, object]:
    """The proposed values of a suggestion."""
    try:
        found = json.loads(suggestion.payload or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def check_phone(value: str) -> str:
    """A phone number as typed, if it looks like one; else InvalidSuggestion."""
    value = value.strip()
    if value and not _PHONE.match(value):
        raise InvalidSuggestion("That does not look like a phone number.")
    return value


def check_languages(value: str) -> list[str]:
    """The language codes named in a comma-separated list; unknown names refused."""
    codes: list[str] = []
    for name in (part.strip() for part in value.split(",")):
        if not name:
            continue
        code = language_code(name)
        if code is None:
            raise InvalidSuggestion(f"We do not know the language “{name}”. Check the "
                                    "spelling, or write it in the notes.")
        codes.append(code)
    return list(dict.fromkeys(codes))


_DAY_WORD = (r"(?:monday|mon|tuesday|tues|tue|wednesday|weds|wed|thursday|thurs|thur|thu|"
             r"friday|fri|saturday|sat|sunday|sun|weekdays|weekends?|daily|every ?day)\.?")
_DAY_HEAD = re.compile(rf"\b{_DAY_WORD}(?:\s*(?:-|–|to|,|&|and|/)\s*{_DAY_WORD})*", re.I)
_DAY_TOKEN = re.compile(rf"({_DAY_WORD})|(-|–|\bto\b)", re.I)
_DAY_GROUPS: dict[str, tuple[str, ...]] = {
    "weekdays": DAYS[:5], "weekend": DAYS[5:], "weekends": DAYS[5:], "daily": DAYS,
    "everyday": DAYS, "every day": DAYS}
_MERIDIEM = re.compile(r"[ap]\.?m\b|noon|24", re.I)
_NO_LONGER = re.compile(r"^\s*(no longer( offered)?:?|not|no)\s+|\s+(no longer offered|"
                        r"not offered)\s*$", re.I)


def _day_codes(head: str) -> list[str]:
    """The day codes a phrase like "Mon-Fri", "Sat & Sun" or "weekdays" names, in order."""
    codes: list[str] = []
    range_from: str | None = None
    for word, dash in _DAY_TOKEN.findall(head):
        if dash:
            range_from = codes[-1] if codes else None
            continue
        key = " ".join(word.lower().rstrip(".").split())
        group = _DAY_GROUPS.get(key)
        if group:
            codes.extend(group)
        else:
            day = key[:2].upper()
            if range_from:
                start, end = DAYS.index(range_from), DAYS.index(day)
                span = DAYS[start:end + 1] if start <= end else DAYS[start:] + DAYS[:end + 1]
                codes.extend(span[1:])
            else:
                codes.append(day)
        range_from = None
    return list(dict.fromkeys(codes))


def check_hours(value: str) -> dict[str, tuple[str, list[Interval]]]:
    """Each named day's intervals ([] = closed) and its text, from "Mon-Fri 9am-5pm; Sat closed".

    Days the text does not name stay unknown. Anything we cannot read is refused
    (InvalidSuggestion), never guessed: a wrong opening hour sends someone to a locked door.
    """
    value = value.strip()
    heads = list(_DAY_HEAD.finditer(value))
    refused = InvalidSuggestion(
        "We could not read those opening hours. Write each day or range of days, then its "
        "hours, for example “Mon-Fri 9am-5pm; Sat 10am-2pm; Sun closed”.")
    if not value:
        return {}
    if not heads or value[:heads[0].start()].strip(" ,;.\n"):
        raise refused
    week: dict[str, tuple[str, list[Interval]]] = {}
    for n, head in enumerate(heads):
        end = heads[n + 1].start() if n + 1 < len(heads) else len(value)
        text = value[head.end():end].strip(" ,;:.\n")
        try:
            intervals = parse_day(text)
        except HoursNotUnderstood:
            raise refused from None
        if intervals is None:
            raise refused
        # "9-5" with no am/pm reads as 9 am to 5 am: ask rather than guess.
        if any(i.closes < i.opens for i in intervals) and not _MERIDIEM.search(text):
            raise InvalidSuggestion("Those opening hours need am or pm, for example "
                                    "“Mon-Fri 9am-5pm”.")
        written = f"{head.group(0).strip()} {text}"[:200]
        for day in _day_codes(head.group(0)):
            _, earlier = week.get(day, ("", []))
            week[day] = (written, earlier + intervals)
    return week


def check_services(value: object) -> tuple[list[str], list[str]]:
    """Service codes offered and no longer offered, from codes or names ("PrEP, no PEP").

    A name we do not know is refused so the moderator can rewrite it; "no", "not" or
    "no longer offered" before or after a name says the clinic stopped offering it.
    """
    parts = ([str(v) for v in value] if isinstance(value, list)
             else re.split(r"[,;\n]|\band\b", str(value or "")))
    offered: list[str] = []
    stopped: list[str] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name = _NO_LONGER.sub("", part).strip()
        bucket = stopped if name != part else offered
        code = _service_code(name)
        if code is None:
            raise InvalidSuggestion(f"We do not know the service “{name}”. Use the names "
                                    "the clinic pages use, for example “STI testing, PrEP”.")
        bucket.append(code)
    return list(dict.fromkeys(offered)), list(dict.fromkeys(stopped))


def _service_code(name: str) -> str | None:
    """The taxonomy code for a service named by its code, its label, or its label's start."""
    key = name.lower().strip()
    for code, label in SERVICES.items():
        short = label.split("(")[0].strip().lower()
        if key in (code, code.replace("_", " "), label.lower(), short):
            return code
    return None


def nyc_zip(code: str) -> tuple[float, float, str]:
    """The ZIP centroid of an NYC ZIP code (from shipped data, never a geocoder)."""
    found = zip_centroid(code or "")
    if found is None:
        raise InvalidSuggestion("Give a ZIP code in the five boroughs of New York City.")
    return found


# --- What moderators see ------------------------------------------------------------------


def pending(kind: str | None = None, limit: int = 50) -> list[Suggestion]:
    """Pending suggestions, oldest first, of one kind or all."""
    query = select(Suggestion).where(Suggestion.status == PENDING)
    if kind:
        query = query.where(Suggestion.kind == kind)
    query = query.order_by(Suggestion.received_month, Suggestion.id).limit(limit)
    return list(db.session.execute(query).scalars())


def pending_counts() -> dict[str, int]:
    """How many suggestions of each kind wait."""
    rows = db.session.execute(
        select(Suggestion.kind, func.count()).where(Suggestion.status == PENDING)
        .group_by(Suggestion.kind)
    ).all()
    counts = {kind: 0 for kind in (NEW_CLINIC, CORRECTION, CLOSURE)}
    counts.update({kind: int(n) for kind, n in rows})
    return counts


def _first_value(location: Location, getter: str) -> object:
    """A service-level fact as one value for the listing (the first service that says)."""
    for sal in location.services:
        if getter == "walk_in" and sal.walk_in is not None:
            return sal.walk_in
        for doc in sal.required_documents:
            if getter == f"{doc.document}_required" and doc.required is not None:
                return doc.required
    return None


def current_values(location: Location | None) -> dict[str, str]:
    """A listing's facts in the words the diff compares against."""
    if location is None:
        return {}

    def words(value: object) -> str:
        if value is None:
            return "not known"
        return "yes" if value else "no"

    costs = sorted({c.option for sal in location.services for c in sal.cost_options
                    if c.available})
    languages = sorted({lang.name for sal in location.services for lang in sal.languages})
    hours = sorted({s.description or "" for sal in location.services for s in sal.schedules
                    if s.description})
    return {
        "name": location.name,
        "address_1": location.address_1,
        "postal_code": location.postal_code,
        "phone": location.phone or "not known",
        "services": ", ".join(SERVICES.get(sal.service.code, sal.service.code)
                              for sal in location.services) or "not known",
        "hours": "; ".join(hours) or "not known",
        "walk_in": words(_first_value(location, "walk_in")),
        "id_required": words(_first_value(location, "id_required")),
        "insurance_required": words(_first_value(location, "insurance_required")),
        "cost": ", ".join(COST_OPTIONS.get(c, c) for c in costs) or "not known",
        "languages": ", ".join(languages) or "not known",
        "moved_to": "",
    }


def shown_value(key: str, value: object) -> str:
    """A proposed value in words."""
    if key == "cost" and isinstance(value, list):
        return ", ".join(COST_OPTIONS.get(str(v), str(v)) for v in value)
    if key == "services" and isinstance(value, list):
        return ", ".join(SERVICES.get(str(v), str(v)) for v in value)
    return str(value)


@dataclass(frozen=True)
class DiffLine:
    """One fact: its label, the listing's value, the suggested value, and whether applied."""

    key: str
    label: str
    current: str
    suggested: str
    applied: bool


def diff(suggestion: Suggestion) -> list[DiffLine]:
    """Each suggested fact next to the listing's current value."""
    now = current_values(suggestion.location)
    proposed = payload(suggestion)
    return [DiffLine(key, label, now.get(key, ""), shown_value(key, proposed[key]),
                     key in APPLIED or suggestion.kind == NEW_CLINIC)
            for key, label in FIELDS.items() if proposed.get(key)]


def closure_reports(location_id: int) -> int:
    """How many closure reports about a listing are pending."""
    return int(db.session.execute(
        select(func.count()).select_from(Suggestion).where(
            Suggestion.location_id == location_id, Suggestion.kind == CLOSURE,
            Suggestion.status == PENDING)
    ).scalar_one())


# --- Deciding --------------------------------------------------------------------------------


class AlreadyDecided(Exception):
    """The suggestion is no longer pending: another moderator decided first."""


def for_decision(suggestion_id: int) -> Suggestion | None:
    """The suggestion, locked for this transaction (on PostgreSQL); AlreadyDecided if done."""
    found = db.session.execute(
        select(Suggestion).where(Suggestion.id == suggestion_id).with_for_update()
    ).scalar_one_or_none()
    if found is not None and found.status != PENDING:
        raise AlreadyDecided(suggestion_id)
    return found


def moderators_source(on: date | None = None) -> Source:
    """The Source of facts a moderator checked, dated today (created the first time)."""
    on = on or today()
    source = db.session.execute(
        select(Source).where(Source.key == MODERATORS_SOURCE)
    ).scalar_one_or_none()
    if source is None:
        source = Source(key=MODERATORS_SOURCE, title="Community report, moderator-checked",
                        publisher="CareMap NYC moderators", url=None, as_of=on,
                        as_of_note="the day a moderator last checked a fact",
                        licence="", caveats="Reported by members of the public and "
                        "checked by a CareMap moderator before it was published.")
        db.session.add(source)
        db.session.flush()
    elif source.as_of < on:
        source.as_of = on
    return source


def snapshot(location: Location) -> dict[str, object]:
    """A listing's facts as plain data, to keep as a revision before a change."""
    return {
        "name": location.name, "address_1": location.address_1,
        "postal_code": location.postal_code, "phone": location.phone,
        "status": location.status, "moderator_checked": location.moderator_checked,
        "provenance": {p.field: {"source": p.source.key if p.source else None,
                                 "verified_on": p.verified_on.isoformat()}
                       for p in location.provenance},
        "services": [{
            "code": sal.service.code, "walk_in": sal.walk_in,
            "verified_on": sal.verified_on.isoformat(),
            "documents": {d.document: d.required for d in sal.required_documents},
            "cost": {c.option: c.available for c in sal.cost_options},
            "languages": [lang.code for lang in sal.languages],
            "hours": [[s.byday, s.opens_minute, s.closes_minute] for s in sal.schedules],
        } for sal in location.services],
    }


def add_revision(location: Location, moderator: Moderator | None, summary: str,
                 before: dict[str, object] | None = None) -> None:
    """Keep the listing's facts as they were (`before`, else now) as its next revision."""
    last = db.session.execute(
        select(func.max(ListingRevision.number)).where(
            ListingRevision.location_id == location.id)
    ).scalar_one()
    db.session.add(ListingRevision(
        location_id=location.id, number=int(last or 0) + 1,
        snapshot=json.dumps(before or snapshot(location), sort_keys=True),
        moderator_id=moderator.id if moderator else None, summary=summary))


def revisions(location_id: int) -> list[ListingRevision]:
    """A listing's revisions, newest first."""
    return list(db.session.execute(
        select(ListingRevision).where(ListingRevision.location_id == location_id)
        .order_by(ListingRevision.number.desc())
    ).scalars())


def _provenance(location: Location, field: str, source: Source, on: date) -> None:
    """Say that one of the listing's own fields now comes from `source`, checked `on`."""
    for row in location.provenance:
        if row.field == field:
            row.source, row.verified_on, row.note = source, on, None
            return
    location.provenance.append(Provenance(field=field, source=source, verified_on=on))


def _mark(fact: object, source: Source, on: date) -> None:
    fact.source_id = source.id  # type: ignore[attr-defined]
    fact.verified_on = on  # type: ignore[attr-defined]


def apply_values(location: Location, values: dict[str, object], source: Source,
                 on: date) -> list[str]:
    """Write the approved facts to the listing; the labels of what changed."""
    changed: list[str] = []
    phone = str(values.get("phone") or "").strip()
    if phone:
        location.phone = check_phone(phone)
        _provenance(location, "phone", source, on)
        changed.append("phone")
    # Services first: the facts below then reach a service this adds, and marking a
    # service as moderator-checked (walk-in) before this ran made it look moderator-added,
    # so a correction naming one new service removed all the others.
    if values.get("services"):
        changed.extend(_apply_services(location, values["services"], source, on))
    walk_in = YES_NO.get(str(values.get("walk_in") or ""))
    if walk_in is not None:
        for sal in location.services:
            sal.walk_in = walk_in
            _mark(sal, source, on)
        changed.append("walk-in")
    for key, document in (("id_required", "id"), ("insurance_required", "insurance")):
        required = YES_NO.get(str(values.get(key) or ""))
        if required is None:
            continue
        for sal in location.services:
            row = next((d for d in sal.required_documents if d.document == document), None)
            if row is None:
                row = RequiredDocument(document=document, source_id=source.id,
                                       verified_on=on)
                sal.required_documents.append(row)
            row.required, row.description = required, None
            _mark(row, source, on)
        changed.append(f"{document} policy")
    costs = [str(c) for c in values.get("cost") or [] if str(c) in COST_OPTIONS]  # type: ignore[attr-defined]
    if costs:
        for sal in location.services:
            for option in costs:
                cost = next((c for c in sal.cost_options if c.option == option), None)
                if cost is None:
                    cost = CostOption(option=option, source_id=source.id, verified_on=on)
                    sal.cost_options.append(cost)
                cost.available, cost.description = True, None
                _mark(cost, source, on)
        changed.append("cost")
    week = check_hours(str(values.get("hours") or ""))
    if week and location.services:
        holder = next((sal for sal in location.services if sal.schedules), location.services[0])
        holder.schedules[:] = [
            Schedule(byday=day, opens_minute=i.opens, closes_minute=i.closes,
                     description=written, source_id=source.id, verified_on=on)
            for day in DAYS if day in week
            for written, intervals in (week[day],)
            for i in (intervals or [Interval(0, 0)])]  # (0, 0): the day is closed
        changed.append("hours")
    languages = check_languages(str(values.get("languages") or ""))
    if languages:
        for sal in location.services:
            sal.languages[:] = [Language(code=code, name=LANGUAGES[code], source_id=source.id,
                                         verified_on=on) for code in languages]
        changed.append("languages")
    if changed:
        location.moderator_checked = True
        location.modified_at = datetime.now(UTC)
    return changed


def _apply_services(location: Location, value: object, source: Source,
                    on: date) -> list[str]:
    """Add the services a correction names; remove the ones it says stopped.

    The text lists what the clinic offers now, so a service it leaves out is removed only
    when a moderator added it; a public source's service goes only when the correction says
    "no longer offered" (or "no ...") about it, as a moderator then checked that claim.
    """
    offered, stopped = check_services(value)
    organization = location.organization
    have = {sal.service.code for sal in location.services}
    for code in offered:
        if code in have:
            continue
        service = next((s for s in organization.services if s.code == code), None)
        if service is None:  # one Service per organization and code (unique constraint)
            service = Service(organization=organization, code=code, name=SERVICES[code])
        location.services.append(ServiceAtLocation(service=service, source_id=source.id,
                                                   verified_on=on))
    for sal in list(location.services):
        code = sal.service.code
        if code in stopped or (offered and code not in offered
                               and sal.source_id == source.id):
            location.services.remove(sal)
    return ["services"] if offered or stopped else []


def approve(suggestion: Suggestion, moderator: Moderator,
            edited: dict[str, object] | None = None) -> Location | None:
    """Approve a suggestion (with the moderator's edits, if any); never commits.

    Raises InvalidSuggestion, before anything is written, when a value cannot be used.
    """
    values = {**payload(suggestion), **(edited or {})}
    on = today()
    source = moderators_source(on)
    location = suggestion.location
    if suggestion.kind == NEW_CLINIC:
        location = create_clinic(values, source, on)
        summary = "new listing from a community suggestion"
    elif location is None:
        raise InvalidSuggestion("The listing this was about no longer exists.")
    elif suggestion.kind == CLOSURE:
        add_revision(location, moderator, "reported closed; confirmed by a moderator")
        location.status = CLOSED
        _provenance(location, "status", source, on)
        location.moderator_checked = True
        location.modified_at = datetime.now(UTC)
        summary = "closed"
    else:
        check_phone(str(values.get("phone") or ""))
        check_languages(str(values.get("languages") or ""))
        check_hours(str(values.get("hours") or ""))
        check_services(values.get("services") or "")
        before = snapshot(location)
        changed = apply_values(location, values, source, on)
        summary = ", ".join(changed) or "nothing applied automatically"
        add_revision(location, moderator, f"before correcting {summary}", before)
    suggestion.status = APPROVED
    if edited:
        suggestion.payload = json.dumps({k: v for k, v in values.items() if v})
    db.session.flush()
    audit.record(moderator, audit.APPROVE, "suggestion", suggestion.id, decision=APPROVED,
                 reason=f"{suggestion.kind}: {summary}" + (" (edited)" if edited else ""))
    return location


def reject(suggestion: Suggestion, moderator: Moderator, reason: str) -> None:
    """Reject a suggestion for one of REJECT_REASONS; never commits."""
    if reason not in REJECT_REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    suggestion.status = REJECTED
    suggestion.reject_reason = reason
    # A rejected note is never shown and may name someone: keeping it only adds risk.
    suggestion.notes = None
    audit.record(moderator, audit.REJECT, "suggestion", suggestion.id, decision=REJECTED,
                 reason=REJECT_REASONS[reason])


def _slug(name: str) -> str:
    """A URL slug for a new listing's name, unique among listings."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "clinic"
    slug, n = base, 1
    while db.session.execute(select(Location.id).where(Location.slug == slug)).first():
        n += 1
        slug = f"{base}-{n}"
    return slug


def create_clinic(values: dict[str, object], source: Source, on: date) -> Location:
    """A new listing from an approved suggestion, placed at its ZIP code's centroid."""
    name = str(values.get("name") or "").strip()
    address = str(values.get("address_1") or "").strip()
    if not name or not address:
        raise InvalidSuggestion("A new clinic needs a name and a street address.")
    postal_code = str(values.get("postal_code") or "").strip()[:5]
    latitude, longitude, borough = nyc_zip(postal_code)
    phone = check_phone(str(values.get("phone") or ""))
    check_languages(str(values.get("languages") or ""))
    check_hours(str(values.get("hours") or ""))
    # Once each: a service ticked twice (the public form allows it) broke a unique key.
    codes = list(dict.fromkeys(str(c) for c in values.get("services") or []  # type: ignore[attr-defined]
                               if str(c) in SERVICES))
    if not codes:
        raise InvalidSuggestion("Choose at least one service the clinic offers.")
    import_key = f"community|{address.lower()}|{postal_code}"[:300]
    # The key is unique: approving a second suggestion of the same place failed in the
    # database (a 500) instead of telling the moderator.
    if db.session.execute(select(Location.id).where(Location.import_key == import_key)).first():
        raise InvalidSuggestion("A clinic at this street address and ZIP code is already "
                                "listed: reject this one as a duplicate, or correct the address.")
    organization = Organization(name=name)
    location = Location(
        organization=organization, slug=_slug(name), import_key=import_key, name=name,
        address_1=address, city=borough if borough != "Manhattan" else "New York",
        postal_code=postal_code, borough=borough, latitude=latitude, longitude=longitude,
        coordinates_precision="zip", phone=phone or None, status=ACTIVE,
        moderator_checked=True, modified_at=datetime.now(UTC))
    db.session.add(location)
    for field in ("name", "address", "coordinates", "status") + (("phone",) if phone else ()):
        location.provenance.append(Provenance(field=field, source=source, verified_on=on))
    for code in codes:
        service = Service(organization=organization, code=code, name=SERVICES[code])
        db.session.add(ServiceAtLocation(service=service, location=location,
                                         source_id=source.id, verified_on=on))
    db.session.flush()
    db.session.refresh(location)
    apply_values(location, {k: v for k, v in values.items() if k != "phone"}, source, on)
    return location


# --- "People report": reviewers' answers, never verified facts ---------------------------


@dataclass(frozen=True)
class PeopleReport:
    """How many published reviewers said they were, or were not, asked for ID."""

    not_asked_for_id: int
    asked_for_id: int


def people_report(location_id: int) -> PeopleReport:
    """Sums of reviewers' yes/no answers about ID, from published reviews only."""
    rows = db.session.execute(
        select(Review.asked_for_id, func.count()).where(
            Review.location_id == location_id, Review.status == PUBLISHED,
            Review.asked_for_id.is_not(None))
        .group_by(Review.asked_for_id)
    ).all()
    counts = {bool(answer): int(n) for answer, n in rows}
    return PeopleReport(not_asked_for_id=counts.get(False, 0),
                        asked_for_id=counts.get(True, 0))


# --- Re-verification: listings whose facts have not been checked for a while -------------


@dataclass(frozen=True)
class StaleListing:
    """A listing due for a check: its oldest fact's date and pending closure reports."""

    location: Location
    oldest: date
    closure_reports: int


def reverify_days(config: dict[str, object]) -> int:
    """Days after which a fact is due for a check (config REVERIFY_AFTER_DAYS)."""
    return int(str(config.get("REVERIFY_AFTER_DAYS") or DEFAULT_REVERIFY_DAYS))


def _fact_rows(location: Location) -> list[object]:
    """Every dated fact of a listing: its own fields' provenance and its services' facts."""
    rows: list[object] = list(location.provenance)
    for sal in location.services:
        rows.append(sal)
        rows.extend([*sal.schedules, *sal.languages, *sal.cost_options,
                     *sal.required_documents])
    return rows


def oldest_verified(location: Location) -> date | None:
    """The date of the listing's least recently verified fact."""
    dates = [row.verified_on for row in _fact_rows(location)]  # type: ignore[attr-defined]
    return min(dates) if dates else None


def stale_listings(on: date, days: int, limit: int = 100) -> list[StaleListing]:
    """Open listings with a fact verified more than `days` before `on`, or reported closed
    by several people: those with ≥2 closure reports first, then the oldest first."""
    reports = dict(db.session.execute(
        select(Suggestion.location_id, func.count()).where(
            Suggestion.kind == CLOSURE, Suggestion.status == PENDING)
        .group_by(Suggestion.location_id)
    ).all())
    cutoff = date.fromordinal(on.toordinal() - days)
    found: list[StaleListing] = []
    locations = db.session.execute(
        select(Location).where(Location.status == ACTIVE).order_by(Location.id)
    ).scalars()
    for location in locations:
        oldest = oldest_verified(location)
        closures = int(reports.get(location.id, 0))
        if closures >= CLOSURE_REPORTS_TO_RISE or (oldest is not None and oldest < cutoff):
            found.append(StaleListing(location, oldest or on, closures))
    found.sort(key=lambda s: (s.closure_reports < CLOSURE_REPORTS_TO_RISE, s.oldest,
                              s.location.id))
    return found[:limit]


def still_correct(location: Location, moderator: Moderator, on: date | None = None) -> int:
    """A moderator checked the listing and it is right: renew every fact's date; never
    commits. Returns how many facts were renewed."""
    on = on or today()
    source = moderators_source(on)
    add_revision(location, moderator, "before a re-check: still correct")
    rows = _fact_rows(location)
    for row in rows:
        if isinstance(row, Provenance):
            row.source, row.verified_on = source, on
        else:
            _mark(row, source, on)
    location.moderator_checked = True
    location.modified_at = datetime.now(UTC)
    audit.record(moderator, audit.APPROVE, "listing", location.id, decision="still correct",
                 reason=f"{len(rows)} facts renewed")
    return len(rows)


# --- Re-import: public data that disagrees with a moderator's correction ------------------

PUBLIC_DATA_CHANGED = "public data changed"
# A listing's own fields (as Provenance names them) and the columns each covers.
PROVENANCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "address": ("address_1", "address_2", "city", "postal_code", "borough"),
    "coordinates": ("latitude", "longitude", "coordinates_precision"),
    "phone": ("phone",),
    "website": ("website",),
    "category": ("category",),
    "status": ("status",),
}


def public_data_conflict(session: Session, location: Location,
                         public: dict[str, object]) -> Suggestion | None:
    """A pending correction (or closure report) when newer public data disagrees with
    moderator-held columns of a listing; None when it says nothing new.

    Public data that still says what the listing said before a moderator changed it (any
    earlier revision) is old news, not a change; and the same proposal is never filed
    twice, so importing the same files again adds nothing.
    """
    earlier: dict[str, set[object]] = {}
    for (snapshot_text,) in session.execute(
            select(ListingRevision.snapshot).where(ListingRevision.location_id == location.id)):
        for key, value in json.loads(snapshot_text).items():
            if isinstance(value, (str, int, float)) or value is None:
                earlier.setdefault(key, set()).add(value)
    changed = {column: value for column, value in public.items()
               if column in FIELDS or column == "status"
               if value != getattr(location, column) and value not in earlier.get(column, ())}
    if not changed:
        return None
    kind = CLOSURE if changed.get("status") == CLOSED else CORRECTION
    proposal = json.dumps({k: v for k, v in changed.items() if k in FIELDS and v})
    if kind == CORRECTION and proposal == "{}":
        return None
    if session.execute(select(Suggestion.id).where(
            Suggestion.location_id == location.id, Suggestion.kind == kind,
            Suggestion.notes == PUBLIC_DATA_CHANGED, Suggestion.payload == proposal)).first():
        return None
    suggestion = Suggestion(kind=kind, location_id=location.id, payload=proposal,
                            how_known=None, notes=PUBLIC_DATA_CHANGED,
                            received_month=current_month(), status=PENDING)
    session.add(suggestion)
    return suggestion
