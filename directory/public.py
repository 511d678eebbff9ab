"""Pages for a person looking for care: search, results, clinic pages, about, safety."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext
from sqlalchemy import func, select

from directory import i18n, scores, suggestions
from directory.assets import versioned
from directory.extensions import db, limiter
from directory.forms import SearchForm
from directory.geo import PlaceNotFound, neighbourhood_names
from directory.i18n import N_
from directory.maps import MapParts, Pin, render_map
from directory.models import ACTIVE, CLOSED, Location, Provenance, Source
from directory.reviews import CLINIC_PAGE_REVIEWS, public_reviews
from directory.search import (
    Fact,
    FilterOptions,
    SearchQuery,
    cached_filter_options,
    clinic_facts,
    search,
)
from directory.taxonomy import COST_FILTERS, DOCUMENTS, HOURS_FILTERS, LANGUAGES

bp = Blueprint("public", __name__)


@dataclass(frozen=True)
class Card:
    """What the results list shows for one clinic: plain data, escaped by the template."""

    name: str
    url: str
    address: str
    distance: str
    open_now: bool | None  # None when no hours are known
    badges: list[str]
    rating: scores.Rating = scores.NO_REVIEWS
    blocks: str = ""  # "about 8 blocks" for short distances, else ""


@dataclass(frozen=True)
class ContactSource:
    """Which of a clinic's own details (address, phone…) one source gives, and when."""

    source: Source
    verified_on: date
    fields: list[str]


# Words for Provenance.field, in the order the page names them.
CONTACT_FIELDS = {
    "name": N_("name"),
    "address": N_("address"),
    "coordinates": N_("map position"),
    "phone": N_("phone"),
    "website": N_("website"),
    "category": N_("kind of place"),
    "status": N_("open or closed status"),
}


@dataclass(frozen=True)
class SourceGroup:
    """Facts that share one source and verification date, shown with one source line."""

    source: Source | None
    verified_on: date | None
    facts: list[Fact]


def format_distance(miles: float | None) -> str:
    """A distance as people read it: "0.4 mi"; "" when there is no place to measure from."""
    return i18n.format_distance(miles)


@bp.context_processor
def taxonomy_labels() -> dict[str, object]:
    """The filter labels every search form shows."""
    return {"cost_filters": COST_FILTERS, "hours_filters": HOURS_FILTERS, "languages": LANGUAGES,
            "search_url": search_url}


def search_url(query: SearchQuery, tiles_off: bool = False, **changes: Any) -> str:
    """The results URL repeating the whole search (and the map-images choice), changed."""
    args: dict[str, Any] = {**query.url_args(**changes), **_tile_args(tiles_off)}
    return url_for("public.results", **args)


@bp.app_template_filter("month")
def format_month(day: date | None) -> str:
    """A date shown only to the month ("November 2018"): enough to judge how fresh it is."""
    return i18n.format_month(day)


def stale_after(config: dict[str, object]) -> timedelta:
    """How old a fact may be before its page says "call before you go" (REVERIFY_AFTER_DAYS).

    The same age that puts a listing in the moderators' re-verify queue, so the warning
    and the re-check start on the same day.
    """
    return timedelta(days=suggestions.reverify_days(config))


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from `earlier` to `later`; 0 if `later` is not later."""
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    if later.day < earlier.day:
        months -= 1
    return max(months, 0)


def address_line(location: Location) -> str:
    """One line of address: street, suite, city, ZIP."""
    street = ", ".join(part for part in (location.address_1, location.address_2) if part)
    return f"{street}, {location.city}, {location.state} {location.postal_code}"


def hours_known(location: Location) -> bool:
    """Whether any source gives this clinic's opening hours."""
    return any(sal.schedules for sal in location.services)


def badges(location: Location) -> list[str]:
    """Key facts for the list, shown only when a source says yes: unknown is not "no"."""
    found: list[str] = []
    sals = location.services
    if any(c.option == "free" and c.available is True for s in sals for c in s.cost_options):
        found.append(gettext("Free"))
    if any(s.walk_in is True for s in sals):
        found.append(gettext("Walk-in"))
    if any(d.document == "id" and d.required is False
           for s in sals for d in s.required_documents):
        found.append(gettext("No ID needed"))
    return found


def group_by_source(facts: Iterable[Fact]) -> list[SourceGroup]:
    """Consecutive facts with the same source and date, grouped to name the source once."""
    groups: list[SourceGroup] = []
    for fact in facts:
        last = groups[-1] if groups else None
        if last and last.source is fact.source and last.verified_on == fact.verified_on:
            last.facts.append(fact)
        else:
            groups.append(SourceGroup(fact.source, fact.verified_on, [fact]))
    return groups


def contact_sources(provenance: dict[str, Provenance]) -> list[ContactSource]:
    """The clinic's own details grouped by source and date, to name each source once."""
    groups: dict[tuple[int, date], ContactSource] = {}
    for field, words in CONTACT_FIELDS.items():
        row = provenance.get(field)
        if row is None:
            continue
        key = (row.source_id, row.verified_on)
        if key not in groups:
            groups[key] = ContactSource(row.source, row.verified_on, [])
        groups[key].fields.append(words)
    return list(groups.values())


def safe_website(url: str | None) -> str:
    """A clinic's website only when it is a plain http(s) link: never javascript: or data:."""
    url = (url or "").strip()
    if not url:
        return ""
    if "://" not in url and "." in url and " " not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return url


def _tile_args(tiles_off: bool) -> dict[str, Any]:
    """URL arguments that carry the "hide map images" choice to the next page."""
    return {"tiles": "off"} if tiles_off else {}


def _tiles_url(tiles_off: bool) -> str:
    """The tile server to use, or "" for a map with no images and no tile requests."""
    return "" if tiles_off else str(current_app.config.get("MAP_TILES_URL") or "")


def _map(pins: list[Pin], tiles_off: bool, **options: object) -> MapParts:
    parts = render_map(
        pins,
        tiles_url=_tiles_url(tiles_off),
        attribution=str(current_app.config.get("MAP_TILES_ATTRIBUTION") or ""),
        static=url_for("static", filename=""),
        words={"open": gettext("Open now"), "closed": gettext("Closed now"),
               "unknown": gettext("Hours not known yet")},
        **options,  # type: ignore[arg-type]
    )
    # Hashed URLs, so phones keep Leaflet for a year instead of asking again each page.
    return replace(parts, css=[versioned(u) for u in parts.css],
                   js=[versioned(u) for u in parts.js])


def _filter_options() -> FilterOptions:
    return cached_filter_options(current_app.config["FILTER_OPTIONS_TTL"])


def _search_page(form: SearchForm, errors: list[str], status: int) -> tuple[str, int]:
    """The search page again, with what was typed and a friendly message."""
    return render_template(
        "index.html", form=form, errors=errors, options=_filter_options(),
        neighbourhoods=neighbourhood_names(), tiles_off=form.tiles_off,
    ), status


@bp.get("/")
def index() -> str:
    """The search page."""
    form = SearchForm(formdata=None)
    return render_template(
        "index.html", form=form, errors=[], options=_filter_options(),
        neighbourhoods=neighbourhood_names(), tiles_off=False,
    )


@bp.get("/clinics")
@limiter.limit(lambda: current_app.config["SEARCH_RATE_LIMIT"])
def results() -> tuple[str, int]:
    """Clinics matching the search, nearest first, as a list and then a map.

    "Hide map images" is the `tiles=off` URL argument rather than a cookie: a cookie
    would stay on a shared phone as a trace of the visit; the argument lives only in
    this search's links.
    """
    form = SearchForm(request.args)
    if not form.validate():
        return _search_page(form, form.friendly_errors(), 400)
    query = form.to_query()
    try:
        found = search(query, now=datetime.now(UTC), per_page=current_app.config["PER_PAGE"])
    except PlaceNotFound as exc:
        return _search_page(form, [str(exc)], 404)
    tiles_off = form.tiles_off
    cards = []
    pins = []
    for hit in found.hits:
        location = hit.location
        url = url_for("public.clinic", slug=location.slug, **_tile_args(tiles_off))
        open_now = hit.open_now if hours_known(location) else None
        card = Card(location.name, url, address_line(location),
                    format_distance(hit.distance_miles), open_now, badges(location), hit.rating,
                    blocks=i18n.format_blocks(hit.distance_miles))
        cards.append(card)
        pins.append(Pin(location.name, location.latitude, location.longitude, url,
                        card.address, card.distance, open_now, hit.rating.label))
    return render_template(
        "results.html", form=form, page=found, cards=cards, options=_filter_options(),
        neighbourhoods=neighbourhood_names(), tiles_off=tiles_off,
        tiles_configured=bool(current_app.config.get("MAP_TILES_URL")),
        map=_map(pins, tiles_off, centre=found.place) if pins else None,
    ), 200


@bp.app_url_value_preprocessor
def no_nul_in_slug(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A slug with a NUL byte names no clinic, and PostgreSQL would refuse it in the
    query (a 500): every /clinics/<slug>/... page answers 404 instead."""
    if values and "\x00" in str(values.get("slug", "")):
        abort(404)


@bp.get("/clinics/<slug>")
def clinic(slug: str) -> str:
    """One clinic's page: every fact with its source and when it was last verified."""
    location = db.session.execute(
        select(Location).where(Location.slug == slug[:200])
    ).scalar_one_or_none()
    if location is None:
        abort(404)
    now = datetime.now(UTC)
    facts = clinic_facts(location, now)
    tiles_off = request.args.get("tiles") == "off"
    stale_before = now.date() - stale_after(current_app.config)
    ids = [f for f in facts.documents if f.label == DOCUMENTS["id"]]
    insurance = [f for f in facts.documents if f.label == DOCUMENTS["insurance"]]
    other_documents = [f for f in facts.documents if f not in ids and f not in insurance]
    rating = scores.rating_for(location.id)
    pin = Pin(location.name, location.latitude, location.longitude,
              url_for("public.clinic", slug=location.slug, **_tile_args(tiles_off)),
              address_line(location), score=rating.label)
    return render_template(
        "clinic.html", location=location, facts=facts, closed=location.status == CLOSED,
        address=address_line(location), stale_before=stale_before, today=now.date(),
        months_between=months_between,
        stale=bool(facts.oldest_verified and facts.oldest_verified < stale_before),
        groups={
            "services": group_by_source(facts.services),
            "costs": group_by_source(facts.costs),
            "walk_in": group_by_source(facts.walk_in),
            "id": group_by_source(ids),
            "insurance": group_by_source(insurance),
            "other_documents": group_by_source(other_documents),
            "telehealth": group_by_source(facts.telehealth),
            "languages": group_by_source(facts.languages),
        },
        tel=_tel(location.phone),
        website=safe_website(location.website or location.organization.website),
        contact_sources=contact_sources(facts.provenance),
        tiles_off=tiles_off,
        tiles_configured=bool(current_app.config.get("MAP_TILES_URL")),
        map=_map([pin], tiles_off, cluster=False, zoom=16),
        rating=rating, min_reviews=scores.MIN_REVIEWS,
        reviews=public_reviews(location.id, CLINIC_PAGE_REVIEWS),
    )


@bp.get("/clinics/<slug>/card")
def clinic_card(slug: str) -> str:
    """A one-page card to print or save: address, hours, what to bring, transit, phone.

    For people who would rather not keep the site in their history: no map, no script,
    a discreet title, and nothing on it that says what the directory is about.
    """
    location = db.session.execute(
        select(Location).where(Location.slug == slug[:200])
    ).scalar_one_or_none()
    if location is None:
        abort(404)
    facts = clinic_facts(location, datetime.now(UTC))
    return render_template(
        "card.html", location=location, facts=facts, address=address_line(location),
        closed=location.status == CLOSED, walk_in=_first_answer(facts.walk_in),
    )


def _first_answer(facts: list[Fact]) -> bool | None:
    """Yes if any source says yes, no if one says no, None when none says anything."""
    values = [fact.value for fact in facts if fact.value is not None]
    if any(values):
        return True
    return False if values else None


def _tel(phone: str | None) -> str:
    """A tel: URL for a phone number, digits only (plus an extension), or "" if none."""
    if not phone:
        return ""
    main, _, extension = phone.lower().partition("x")
    digits = "".join(ch for ch in main if ch.isdigit())
    if len(digits) == 10:
        digits = "1" + digits
    if len(digits) < 7:
        return ""
    ext_digits = "".join(ch for ch in extension if ch.isdigit())
    return f"tel:+{digits}" + (f";ext={ext_digits}" if ext_digits else "")


@bp.get("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    """A trivial page for health checks and as the benchmarks' baseline."""
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.get("/about")
def about() -> str:
    """What the directory is, where its data comes from, and how listings are vetted."""
    sources = db.session.execute(
        select(Source).order_by(Source.as_of.desc(), Source.title)
    ).scalars().all()
    listed = db.session.execute(
        select(func.count(Location.id)).where(Location.status == ACTIVE)
    ).scalar_one()
    return render_template("about.html", sources=sources, listed=listed)


@bp.get("/safety")
def safety() -> str:
    """Staying safe: what quick exit does and cannot do, and how to browse privately."""
    return render_template("safety.html")

