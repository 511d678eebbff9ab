"""Finding clinics: filters, distance order, pages, and the facts a clinic page shows.

Near searches read the (latitude, longitude) index through a bounding box that grows in
steps until it holds enough matches for the requested page, then order by an
equirectangular distance computed in SQL (plain arithmetic, so SQLite and PostgreSQL
agree). Within a few miles that order equals great-circle order; shown distances come
from geopy. Only the page's clinics are loaded as objects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from flask_babel import gettext, ngettext
from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import selectinload
from sqlalchemy.sql.elements import ColumnElement

from directory import hours, scores
from directory.extensions import db
from directory.geo import Place, distance_miles, resolve_place
from directory.models import (
    ACTIVE,
    ClinicScore,
    CostOption,
    Language,
    Location,
    Provenance,
    RequiredDocument,
    Schedule,
    Service,
    ServiceAtLocation,
    Source,
)
from directory.taxonomy import (
    COST_FILTERS,
    COST_OPTIONS,
    DOCUMENTS,
    HOURS_FILTERS,
    LANGUAGES,
    SERVICES,
)

MILES_PER_DEGREE_LAT = 69.05
# Radii tried in turn; the last one covers the whole city from anywhere in it.
RADIUS_STEPS_MILES = (1.0, 2.5, 5.0, 10.0, 60.0)
MAX_PAGE = 500
# Orders a search can ask for (`sort=` in the URL); distance (or name) is the default.
SORTS = ("distance", "score")


@dataclass(frozen=True)
class SearchQuery:
    """Everything a search can ask, as it appears in the URL."""

    near: str = ""
    lat: float | None = None
    lng: float | None = None
    cost: tuple[str, ...] = ()
    lang: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    hours: tuple[str, ...] = ()
    walk_in: bool = False
    no_id: bool = False
    rated: bool = False  # only clinics with a shown score of at least scores.WELL_RATED
    sort: str = "distance"
    page: int = 1
    # Partners' incremental sync (API only): listings changed after this instant, in UTC.
    modified_after: datetime | None = None

    def url_args(self, **changes: Any) -> dict[str, object]:
        """URL arguments that repeat this whole search, with some values changed."""
        query = replace(self, **changes)
        args: dict[str, object] = {}
        if query.lat is not None and query.lng is not None:
            args["lat"], args["lng"] = query.lat, query.lng
        elif query.near:
            args["near"] = query.near
        for name in ("cost", "lang", "service", "hours"):
            values = getattr(query, name)
            if values:
                args[name] = list(values)
        if query.walk_in:
            args["walk_in"] = 1
        if query.no_id:
            args["no_id"] = 1
        if query.rated:
            args["rated"] = 1
        if query.sort != "distance":
            args["sort"] = query.sort
        if query.page != 1:
            args["page"] = query.page
        return args

    def filters_in_use(self) -> list[tuple[str, str, str]]:
        """(filter name, value, label) for every filter in use; languages count as one."""
        # Labels in the page's language (English outside a request).
        used: list[tuple[str, str, str]] = []
        used += [("cost", c, gettext(COST_FILTERS[c])) for c in self.cost]
        if self.lang:
            names = ", ".join(gettext(LANGUAGES[code]) if code in LANGUAGES else code
                              for code in self.lang)
            used.append(("lang", "", gettext("Language: %(names)s", names=names)))
        used += [("service", s, gettext(SERVICES[s])) for s in self.service]
        used += [("hours", h, gettext(HOURS_FILTERS[h])) for h in self.hours]
        if self.walk_in:
            used.append(("walk_in", "", gettext("Walk-in")))
        if self.no_id:
            used.append(("no_id", "", gettext("No ID needed")))
        if self.rated:
            used.append(("rated", "", gettext("Well rated")))
        return used

    def filter_labels(self) -> list[tuple[str, str]]:
        """(filter name, label) for every filter in use, for the page to show."""
        return [(name, label) for name, _value, label in self.filters_in_use()]

    def without(self, name: str, value: str) -> SearchQuery:
        """The same search with one filter (or all languages) taken off."""
        changes: dict[str, Any] = {}
        if name in ("cost", "service", "hours"):
            changes[name] = tuple(v for v in getattr(self, name) if v != value)
        else:
            changes[name] = () if name == "lang" else False
        return replace(self, page=1, **changes)


@dataclass
class Hit:
    """One clinic in the results."""

    location: Location
    distance_miles: float | None
    open_now: bool
    rating: scores.Rating = scores.NO_REVIEWS


@dataclass
class SearchPage:
    """One page of results and what the page needs to describe them."""

    query: SearchQuery
    place: Place | None
    hits: list[Hit]
    page: int
    per_page: int
    has_prev: bool
    has_next: bool
    total: int
    radius_miles: float | None
    loosen: list[str] = field(default_factory=list)


def _sal_exists(*conditions: ColumnElement[bool], join: Any = None) -> ColumnElement[bool]:
    """EXISTS a service-at-location of the current location matching the conditions."""
    inner = select(ServiceAtLocation.id)
    if join is not None:
        inner = inner.join(join, join.service_at_location_id == ServiceAtLocation.id)
    return exists(inner.where(ServiceAtLocation.location_id == Location.id, *conditions))


def _cost_condition(value: str) -> ColumnElement[bool]:
    if value == "no_insurance":
        return _sal_exists(RequiredDocument.document == "insurance",
                           RequiredDocument.required.is_(False), join=RequiredDocument)
    option = {"free": "free", "sliding": "sliding_fee", "medicaid": "medicaid"}[value]
    return _sal_exists(CostOption.option == option, CostOption.available.is_(True),
                       join=CostOption)


def _hours_condition(value: str, now: datetime) -> ColumnElement[bool]:
    clause = {
        "open_now": lambda: hours.open_at_clause(now),
        "evening": hours.evening_clause,
        "weekend": hours.weekend_clause,
    }[value]()
    return _sal_exists(clause, join=Schedule)


def filter_conditions(
    query: SearchQuery, now: datetime, means: dict[str, float] | None = None
) -> list[ColumnElement[bool]]:
    """SQL conditions on Location for every filter: filters combine with AND.

    Several services must all be offered; several languages mean any of them will do.
    `means` are the city-wide means the "well rated" filter needs (read if not given).
    With modified_after, closed listings count too: a partner syncing changes must learn
    that a clinic closed.
    """
    conditions: list[ColumnElement[bool]] = (
        [Location.status == ACTIVE] if query.modified_after is None
        else [Location.modified_at > query.modified_after]
    )
    for code in query.service:
        conditions.append(exists(
            select(ServiceAtLocation.id)
            .join(Service, Service.id == ServiceAtLocation.service_id)
            .where(ServiceAtLocation.location_id == Location.id, Service.code == code)
        ))
    if query.lang:
        conditions.append(_sal_exists(Language.code.in_(query.lang), join=Language))
    conditions += [_cost_condition(value) for value in query.cost]
    conditions += [_hours_condition(value, now) for value in query.hours]
    if query.walk_in:
        conditions.append(_sal_exists(ServiceAtLocation.walk_in.is_(True)))
    if query.no_id:
        conditions.append(_sal_exists(RequiredDocument.document == "id",
                                      RequiredDocument.required.is_(False),
                                      join=RequiredDocument))
    if query.rated:
        conditions.append(scores.well_rated_condition(
            means if means is not None else scores.city_means()))
    return conditions


def _within(place: Place, radius: float) -> tuple[list[ColumnElement[bool]], Any]:
    """Bounding-box and circle conditions for a radius, and the squared-distance order."""
    scale = math.cos(math.radians(place.latitude))
    dlat = radius / MILES_PER_DEGREE_LAT
    dlng = dlat / scale
    d2 = (Location.latitude - place.latitude) * (Location.latitude - place.latitude) + (
        (Location.longitude - place.longitude) * scale
    ) * ((Location.longitude - place.longitude) * scale)
    box = [
        Location.latitude.between(place.latitude - dlat, place.latitude + dlat),
        Location.longitude.between(place.longitude - dlng, place.longitude + dlng),
        d2 <= dlat * dlat,
    ]
    return box, d2


def _count(conditions: Iterable[ColumnElement[bool]]) -> int:
    return int(db.session.execute(
        select(func.count(Location.id)).where(*conditions)
    ).scalar_one())


def _load(ids: list[int]) -> dict[int, Location]:
    """Load the page's clinics with what list and map show, in a fixed number of queries."""
    rows = db.session.execute(
        select(Location).where(Location.id.in_(ids)).options(
            selectinload(Location.services).selectinload(ServiceAtLocation.schedules),
            selectinload(Location.services).selectinload(ServiceAtLocation.cost_options),
            selectinload(Location.services).selectinload(ServiceAtLocation.required_documents),
            selectinload(Location.services).selectinload(ServiceAtLocation.service),
        )
    ).scalars().all()
    return {row.id: row for row in rows}


def location_open_now(location: Location, now: datetime) -> bool:
    """Whether any known hours of the clinic are open at `now`."""
    return hours.is_open(
        ((s.byday, s.opens_minute, s.closes_minute)
         for sal in location.services for s in sal.schedules),
        now,
    )


def search(query: SearchQuery, now: datetime, per_page: int = 20) -> SearchPage:
    """Run a search: the page of clinics matching every filter, nearest first.

    With sort="score", clinics with a shown score come first, best first, then the rest
    by distance (or name). Near a place, the radius is then chosen for the first page
    whatever page is asked, so every page orders the same set of clinics.
    """
    place = resolve_place(query.near, query.lat, query.lng)
    page = min(max(query.page, 1), MAX_PAGE)
    by_score = query.sort == "score"
    needed = (per_page if by_score else page * per_page) + 1
    means = scores.city_means() if (by_score or query.rated) else None
    conditions = filter_conditions(query, now, means)
    radius: float | None = None
    statement: Select[Any]
    if place is None:
        total = _count(conditions)
        statement = select(Location.id).where(*conditions)
        order: list[Any] = [Location.name, Location.id]
    else:
        for radius in RADIUS_STEPS_MILES:
            box, d2 = _within(place, radius)
            total = _count([*conditions, *box])
            if total >= needed:
                break
        statement = select(Location.id).where(*conditions, *box)
        order = [d2, Location.id]
    if by_score and means is not None:
        score = scores.shown_score_expression(means)
        statement = statement.outerjoin(ClinicScore, ClinicScore.location_id == Location.id)
        order = [score.is_(None), score.desc(), *order]
    ids = list(db.session.execute(
        statement.order_by(*order).offset((page - 1) * per_page).limit(per_page)
    ).scalars())
    by_id = _load(ids)
    ratings = scores.ratings_for(ids, means)
    hits = []
    for location_id in ids:
        location = by_id[location_id]
        distance = None if place is None else distance_miles(
            place.latitude, place.longitude, location.latitude, location.longitude)
        hits.append(Hit(location, distance, location_open_now(location, now),
                        ratings[location_id]))
    result = SearchPage(
        query=query, place=place, hits=hits, page=page, per_page=per_page,
        has_prev=page > 1, has_next=total > page * per_page, total=total,
        radius_miles=None if radius == RADIUS_STEPS_MILES[-1] else radius,
    )
    if not hits and page == 1:
        result.loosen = loosen_hints(query, now)
    return result


def loosen_hints(query: SearchQuery, now: datetime) -> list[str]:
    """For an empty result, say which single filter to drop and how many clinics it frees."""
    hints = []
    means = scores.city_means() if query.rated else None
    for name, value, label in query.filters_in_use():
        count = _count(filter_conditions(query.without(name, value), now, means))
        if count:
            hints.append(ngettext("Remove “%(label)s” to see %(num)d clinic in the city.",
                                  "Remove “%(label)s” to see %(num)d clinics in the city.",
                                  count, label=label))
    if not hints and query.filters_in_use():
        hints.append(gettext("Try removing some filters: no clinic in our list matches all "
                             "of them."))
    return hints


@dataclass
class FilterOptions:
    """Choices for the filter panel, from the data, with how many open clinics have each."""

    languages: list[tuple[str, str, int]]
    services: list[tuple[str, str, int]]


_options_cache: dict[str, tuple[float, FilterOptions]] = {}


def cached_filter_options(ttl_seconds: float) -> FilterOptions:
    """filter_options(), kept for a while per database: it scans the whole directory,
    and its counts change only when listings do."""
    key = str(db.engine.url)
    now = time.monotonic()
    cached = _options_cache.get(key)
    if cached is None or now - cached[0] >= ttl_seconds:
        cached = (now, filter_options())
        _options_cache[key] = cached
    return cached[1]


def filter_options() -> FilterOptions:
    """Languages and services present in the directory, with counts of active clinics."""
    lang_counts = dict(db.session.execute(
        select(Language.code, func.count(func.distinct(ServiceAtLocation.location_id)))
        .join(ServiceAtLocation, ServiceAtLocation.id == Language.service_at_location_id)
        .join(Location, Location.id == ServiceAtLocation.location_id)
        .where(Location.status == ACTIVE)
        .group_by(Language.code)
    ).all())
    service_counts = dict(db.session.execute(
        select(Service.code, func.count(func.distinct(ServiceAtLocation.location_id)))
        .join(ServiceAtLocation, ServiceAtLocation.service_id == Service.id)
        .join(Location, Location.id == ServiceAtLocation.location_id)
        .where(Location.status == ACTIVE)
        .group_by(Service.code)
    ).all())
    languages = sorted(
        ((code, LANGUAGES.get(code, code), count) for code, count in lang_counts.items()),
        key=lambda item: (-item[2], item[1]),
    )
    services = [(code, label, service_counts.get(code, 0)) for code, label in SERVICES.items()]
    return FilterOptions(languages=languages, services=services)


# --- The clinic page -----------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One fact shown on a clinic page, with where it comes from.

    value is True (yes), False (no) or None (not known yet); source is None only for a
    "not known yet" line that no source speaks to.
    """

    label: str
    value: bool | None
    source: Source | None
    verified_on: date | None
    context: str = ""
    detail: str = ""
    service: str = ""  # the service label `context` names, so pages can say it in any language


@dataclass
class DayHours:
    """One weekday's hours: intervals as text, or closed, or not known yet."""

    day: str
    intervals: list[str]
    known: bool
    # (opens, closes) in minutes after midnight, for pages to show in local time form.
    spans: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class ClinicFacts:
    """Everything a clinic page shows, grouped, each with its source."""

    services: list[Fact]
    hours: list[DayHours]
    hours_fact: Fact | None
    open_now: bool | None
    costs: list[Fact]
    documents: list[Fact]
    walk_in: list[Fact]
    telehealth: list[Fact]
    languages: list[Fact]
    provenance: dict[str, Provenance]
    oldest_verified: date | None


def _service_label(sal: ServiceAtLocation) -> str:
    return SERVICES.get(sal.service.code, sal.service.name)


def _hours_of(
    sals: list[ServiceAtLocation], sources: dict[int, Source]
) -> tuple[list[DayHours], Fact | None]:
    """The week's hours from the first service that has any (sources give one set)."""
    with_hours = [sal for sal in sals if sal.schedules]
    if not with_hours:
        return [DayHours(hours.DAY_NAMES[d], [], known=False) for d in hours.DAYS], None
    sal = with_hours[0]
    week = []
    for day in hours.DAYS:
        rows = sorted((s for s in sal.schedules if s.byday == day), key=lambda s: s.opens_minute)
        # A day with a zero-length row is a day the source says is closed.
        spans = [(s.opens_minute, s.closes_minute) for s in rows
                 if s.opens_minute != s.closes_minute]
        intervals = [hours.format_interval(opens, closes) for opens, closes in spans]
        week.append(DayHours(hours.DAY_NAMES[day], intervals, known=bool(rows), spans=spans))
    first = sal.schedules[0]
    fact = Fact("Hours", True, sources[first.source_id], first.verified_on,
                context=f"for {_service_label(sal)}", service=_service_label(sal))
    return week, fact


def clinic_facts(location: Location, now: datetime) -> ClinicFacts:
    """Group a clinic's facts for its page, keeping each fact's source and date."""
    sals = sorted(location.services, key=lambda sal: list(SERVICES).index(sal.service.code)
                  if sal.service.code in SERVICES else 99)
    sources = {s.id: s for s in db.session.execute(select(Source)).scalars()}
    services = [Fact(_service_label(sal), True, sal.source, sal.verified_on, detail=sal.note or "")
                for sal in sals]
    costs: list[Fact] = []
    documents: list[Fact] = []
    walk_in: list[Fact] = []
    telehealth: list[Fact] = []
    languages: list[Fact] = []
    for sal in sals:
        label = _service_label(sal)
        context = f"for {label}"
        for cost in sal.cost_options:
            costs.append(Fact(COST_OPTIONS.get(cost.option, cost.option), cost.available,
                              sources[cost.source_id], cost.verified_on, context,
                              cost.description or "", service=label))
        for doc in sal.required_documents:
            documents.append(Fact(DOCUMENTS.get(doc.document, doc.document), doc.required,
                                  sources[doc.source_id], doc.verified_on, context,
                                  doc.description or "", service=label))
        if sal.walk_in is not None:
            walk_in.append(Fact("Walk-in", sal.walk_in, sal.source, sal.verified_on, context,
                                service=label))
        if sal.telehealth is not None:
            telehealth.append(Fact("Telehealth", sal.telehealth, sal.source, sal.verified_on,
                                   context, service=label))
        for lang in sal.languages:
            languages.append(Fact(LANGUAGES.get(lang.code, lang.name), True,
                                  sources[lang.source_id], lang.verified_on, context,
                                  service=label))
    week, hours_fact = _hours_of(sals, sources)
    provenance = {p.field: p for p in location.provenance}
    dates = [f.verified_on for f in (*services, *costs, *documents, *walk_in, *languages)
             if f.verified_on] + [p.verified_on for p in provenance.values()]
    return ClinicFacts(
        services=services, hours=week, hours_fact=hours_fact,
        open_now=location_open_now(location, now) if hours_fact else None,
        costs=costs, documents=documents, walk_in=walk_in, telehealth=telehealth,
        languages=languages, provenance=provenance,
        oldest_verified=min(dates) if dates else None,
    )
