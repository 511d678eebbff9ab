"""Partner data: the read-only JSON API, versioned under /api/v1, and the HSDS downloads.

Outreach workers, other directories and 211 lines read the vetted listings here. The API
takes the same search parameters as the web search, parsed and checked by the same form
(plus paging size and `modified_after` for incremental sync), and runs the same search.
It answers JSON only: errors are RFC 9457 problem details, lists carry an ETag. It never
says anything about reviewers or moderation, and like the site it keeps no record of
who asked: the access log has no query string, rate limits use keyed hashes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask.cli import with_appcontext
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from wtforms import BooleanField, IntegerField, StringField
from wtforms.validators import NumberRange, Optional, ValidationError

from directory import hsds, scores
from directory.errors import (
    DATABASE_ERRORS,
    RETRY_AFTER_SECONDS,
    forget_failed_transaction,
    log_database_error,
)
from directory.extensions import csrf, db, limiter
from directory.forms import SearchForm
from directory.geo import PlaceNotFound
from directory.models import Location, Neighbourhood, Source
from directory.public import address_line, safe_website
from directory.search import (
    Fact,
    SearchQuery,
    cached_filter_options,
    clinic_facts,
    search,
)

bp = Blueprint("api", __name__)

READ_METHODS = ("GET", "HEAD", "OPTIONS")
# Every method is routed to the API's views, so a write gets a 405 problem from the
# blueprint's own handler instead of the site's HTML error page.
ALL_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 20
PROBLEM_TYPES = "/api/v1/docs#problems"
# Search parameters that are free text, where an empty value simply means "none given".
FREE_TEXT = ("near",)

# Nothing the API accepts changes anything, and nothing it answers is a secret, so no
# CSRF token is needed (and none could be sent by another site's script anyway).
csrf.exempt(bp)


def _rate_limit() -> str:
    return str(current_app.config["SEARCH_RATE_LIMIT"])


def _download_rate_limit() -> str:
    # A whole-directory export is heavy: far fewer per client than searches.
    return str(current_app.config.get("HSDS_RATE_LIMIT", "10 per hour"))


# --- Parameters ---------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_datetime(text: str) -> datetime:
    """An RFC 3339 date-time (with its offset) as an aware UTC datetime; ValueError if not."""
    found = _RFC3339.match(text.strip())
    if not found:
        raise ValueError("not an RFC 3339 date-time such as 2026-01-31T09:00:00Z")
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    # RFC 3339 allows a leap second (:60); Python does not, and a second either way
    # changes no sync.
    micro = int((fraction or ".0")[1:7].ljust(6, "0"))
    zone = "+00:00" if offset in ("Z", "z") else offset
    if int(year) < 1:
        return datetime.min.replace(tzinfo=UTC)
    value = datetime.fromisoformat(
        f"{year}-{month}-{day}T{hour}:{minute}:{min(int(second), 59):02d}.{micro:06d}{zone}")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if int(year) < 2 else datetime.max.replace(
            tzinfo=UTC)


def _rfc3339(form: Any, field: StringField) -> None:
    if field.data:
        try:
            parse_datetime(field.data)
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class ApiSearchForm(SearchForm):
    """The web search form, plus paging size and modified_after; minus the map setting."""

    tiles = None  # the map's images are a page matter, not data
    per_page = IntegerField(validators=[Optional(), NumberRange(1, MAX_PER_PAGE)])
    modified_after = StringField(validators=[Optional(), _rfc3339])

    def validate(self, extra_validators: Any = None) -> bool:
        """The form's own checks, then stricter ones for programs than for people.

        Booleans are true or false only; an empty value counts as a value (and is wrong)
        for every parameter except the free-text `near`, where a web form would send it.
        """
        valid = super().validate(extra_validators)
        for field in self:
            problem_text = ""
            if field.raw_data and "" in field.raw_data and field.name not in FREE_TEXT:
                problem_text = "must not be empty"
            elif isinstance(field, BooleanField) and field.raw_data and (
                    field.raw_data[0] not in ("true", "false")):
                problem_text = "must be true or false"
            if problem_text:
                field.errors = [*field.errors, problem_text]
                valid = False
        return bool(valid)

    def to_query(self) -> SearchQuery:
        """The validated search, with modified_after."""
        when = parse_datetime(self.modified_after.data) if self.modified_after.data else None
        return replace(super().to_query(), modified_after=when)

    @classmethod
    def parameter_names(cls) -> list[str]:
        """The query parameters this form reads, in order."""
        return [field.name for field in cls(formdata=None, meta={"csrf": False})]


# --- Problem details (RFC 9457) -----------------------------------------------------


def problem(status: int, title: str, detail: str, kind: str = "",
            errors: list[dict[str, str]] | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": f"{PROBLEM_TYPES}-{kind}" if kind else "about:blank",
        "title": title, "status": status, "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status=status,
                        mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_problem(error: HTTPException) -> Response:
    """Every HTTP error under /api as problem details, never the site's HTML page."""
    code = error.code or 500
    detail = {
        404: "There is nothing at this address. See /api/v1/docs.",
        405: "The API is read-only: use GET.",
        429: "Too many requests in a short time. Wait a minute, then try again.",
        500: "Something went wrong on our side.",
    }.get(code, error.description or "")
    headers = {k: v for k, v in error.get_headers() if k.lower() in ("allow", "retry-after")}
    return problem(code, error.name, detail, headers=headers)


# By code as well as by class: the site's own handlers are registered by code, and Flask
# prefers any handler for the code over a blueprint's handler for the class.
bp.register_error_handler(HTTPException, http_problem)
for _code in (400, 404, 405, 413, 414, 429, 431, 500):
    bp.register_error_handler(_code, http_problem)


def database_problem(error: Exception) -> Response:
    """The database is not answering: a 503 problem with Retry-After, not the HTML page."""
    forget_failed_transaction()
    log_database_error(error)
    return problem(503, "Service Unavailable",
                   "The database is not answering. Try again in a moment.",
                   headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


for _error in DATABASE_ERRORS:
    bp.register_error_handler(_error, database_problem)


def _bad_parameters(errors: list[dict[str, str]]) -> Response:
    return problem(400, "Invalid parameters",
                   "One or more query parameters are not valid; see errors.",
                   kind="invalid-parameters", errors=errors)


# --- Responses ----------------------------------------------------------------------


@bp.before_request
def only_reads() -> Response | None:
    """Refuse writes with 405; answer CORS preflight (OPTIONS) for reads."""
    if request.method == "OPTIONS":
        response = Response(status=204)
        response.headers["Allow"] = ", ".join(READ_METHODS)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(READ_METHODS)
        response.headers["Access-Control-Allow-Headers"] = "If-None-Match"
        response.headers["Access-Control-Max-Age"] = "86400"
        return response
    if request.method not in READ_METHODS and request.endpoint != "api.unknown_path":
        raise MethodNotAllowed(valid_methods=list(READ_METHODS))
    return None


@bp.after_request
def open_to_other_sites(response: Response) -> Response:
    """CORS: any site may read the data (it is public, and no cookie is ever involved)."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Access-Control-Expose-Headers"] = "ETag"
    return response


def json_response(data: Any, etag: bool = True) -> Response:
    """JSON, with an ETag over the body and a 304 when the client already has it."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    response = Response(body, mimetype="application/json")
    if etag:
        response.set_etag(hashlib.sha256(body).hexdigest()[:32])
        response.make_conditional(request)
    return response


def _check_unknown(allowed: list[str]) -> list[dict[str, str]]:
    return [{"parameter": name, "detail": "not a parameter of this operation"}
            for name in request.args if name not in allowed]


def _iso_utc(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _score(location_id: int, rating: Any = None) -> dict[str, Any] | None:
    """The shown "no stink-eye" score and how many reviews it rests on, if there is one."""
    if rating is None:
        rating = scores.ratings_for([location_id]).get(location_id)
    if rating is None or rating.score is None:
        return None
    return {"score": round(float(rating.score), 2), "review_count": int(rating.review_count)}


def clinic_summary(location: Location, distance: float | None = None,
                   open_now: bool | None = None, rating: Any = None) -> dict[str, Any]:
    """What a list shows of one clinic: plain data, the client escapes it."""
    known_hours = any(sal.schedules for sal in location.services)
    return {
        "id": location.id,
        "slug": location.slug,
        "hsds_id": hsds.location_uuid(location.import_key),
        "name": location.name,
        "status": location.status,
        "category": location.category,
        "address": {
            "address_1": location.address_1, "address_2": location.address_2,
            "city": location.city, "state": location.state,
            "postal_code": location.postal_code, "borough": location.borough,
            "text": address_line(location),
        },
        "latitude": location.latitude,
        "longitude": location.longitude,
        "coordinates_precision": location.coordinates_precision,
        "phone": location.phone,
        "website": safe_website(location.website) or None,
        "services": sorted({sal.service.code for sal in location.services}),
        "open_now": open_now if known_hours else None,
        "distance_miles": None if distance is None else round(distance, 2),
        "moderator_checked": location.moderator_checked,
        "modified_at": _iso_utc(location.modified_at),
        "score": _score(location.id, rating),
        "url": url_for("public.clinic", slug=location.slug),
        "api_url": url_for("api.clinic", ref=str(location.id)),
    }


def _fact(fact: Fact) -> dict[str, Any]:
    return {"label": fact.label, "value": fact.value, "context": fact.context or None,
            "detail": fact.detail or None,
            "source": fact.source.key if fact.source else None,
            "verified_on": fact.verified_on.isoformat() if fact.verified_on else None}


def _source(source: Source) -> dict[str, Any]:
    return {"title": source.title, "publisher": source.publisher,
            "url": source.url if (source.url or "").startswith(("https://", "http://")) else None,
            "as_of": source.as_of.isoformat(), "licence": source.licence or None}


def clinic_detail(location: Location, now: datetime) -> dict[str, Any]:
    """Every fact of one clinic with its source and the date that source verified it."""
    facts = clinic_facts(location, now)
    groups = {
        "services": facts.services, "costs": facts.costs, "documents": facts.documents,
        "walk_in": facts.walk_in, "telehealth": facts.telehealth,
        "languages": facts.languages,
    }
    used: dict[str, Source] = {}
    for group in groups.values():
        for fact in group:
            if fact.source is not None:
                used[fact.source.key] = fact.source
    if facts.hours_fact and facts.hours_fact.source:
        used[facts.hours_fact.source.key] = facts.hours_fact.source
    for row in facts.provenance.values():
        used[row.source.key] = row.source
    detail = clinic_summary(location, open_now=facts.open_now)
    detail.update({
        "website": safe_website(location.website or location.organization.website) or None,
        "organization": location.organization.name,
        "transit": location.transit,
        "languages": sorted({lang.code for sal in location.services for lang in sal.languages}),
        "facts": {name: [_fact(f) for f in group] for name, group in groups.items()},
        "hours": {
            "week": [{"day": d.day, "known": d.known, "intervals": d.intervals}
                     for d in facts.hours],
            "fact": _fact(facts.hours_fact) if facts.hours_fact else None,
        },
        "contact_sources": {
            name: {"source": row.source.key, "verified_on": row.verified_on.isoformat(),
                   "note": row.note}
            for name, row in sorted(facts.provenance.items())
        },
        "oldest_verified": facts.oldest_verified.isoformat() if facts.oldest_verified else None,
        "sources": {key: _source(source) for key, source in sorted(used.items())},
    })
    return detail


# --- Routes -------------------------------------------------------------------------


@bp.route("/", methods=ALL_METHODS)
@limiter.limit(_rate_limit)
def index() -> Response:
    """Where everything is."""
    return json_response({
        "name": "CareMap NYC API", "version": "1",
        "openapi": url_for("api.openapi_document"), "docs": url_for("api.docs"),
        "clinics": url_for("api.clinics"), "services": url_for("api.services"),
        "languages": url_for("api.languages"),
        "neighbourhoods": url_for("api.neighbourhoods"),
        "hsds": {"datapackage": url_for("api.hsds_zip"), "json": url_for("api.hsds_json")},
    })


@bp.route("/clinics", methods=ALL_METHODS)
@limiter.limit(_rate_limit)
def clinics() -> Response:
    """Search: the web search's parameters and filters, as JSON, nearest first."""
    unknown = _check_unknown(ApiSearchForm.parameter_names())
    form = ApiSearchForm(request.args, meta={"csrf": False})
    valid = form.validate()
    errors = unknown + [{"parameter": name, "detail": "; ".join(str(m) for m in messages)}
                        for name, messages in form.errors.items()]
    if errors or not valid:
        return _bad_parameters(errors)
    query = form.to_query()
    per_page = form.per_page.data or DEFAULT_PER_PAGE
    try:
        found = search(query, now=datetime.now(UTC), per_page=per_page)
    except PlaceNotFound as exc:
        # Well-formed, but no place we know: a different problem from a malformed value.
        parameter = "near" if query.near and query.lat is None and query.lng is None else "lat"
        return problem(422, "Place not found", str(exc), kind="place-not-found",
                       errors=[{"parameter": parameter, "detail": str(exc)}])
    args = request.args.to_dict(flat=False)

    def page_url(page: int) -> str:
        return url_for("api.clinics") + "?" + urlencode({**args, "page": [str(page)]},
                                                        doseq=True)

    place = found.place
    return json_response({
        "page": found.page,
        "per_page": found.per_page,
        "total": found.total,
        "has_prev": found.has_prev,
        "has_next": found.has_next,
        "radius_miles": found.radius_miles,
        "place": None if place is None else {
            "label": place.label, "latitude": place.latitude, "longitude": place.longitude,
            "kind": place.kind},
        "links": {"prev": page_url(found.page - 1) if found.has_prev else None,
                  "next": page_url(found.page + 1) if found.has_next else None},
        "clinics": [clinic_summary(hit.location, hit.distance_miles, hit.open_now,
                                   getattr(hit, "rating", None)) for hit in found.hits],
    })


def _find(ref: str) -> Location | None:
    """A clinic by its number or its slug."""
    ref = ref[:200]
    if ref.isascii() and ref.isdigit() and len(ref) < 12:
        return db.session.get(Location, int(ref))
    return db.session.execute(select(Location).where(Location.slug == ref)).scalar_one_or_none()


@bp.route("/clinics/<ref>", methods=ALL_METHODS)
@limiter.limit(_rate_limit)
def clinic(ref: str) -> Response:
    """One clinic, by number or slug, with every fact, its source and verified date."""
    unknown = _check_unknown([])
    if unknown:
        return _bad_parameters(unknown)
    location = _find(ref)
    if location is None:
        raise NotFound()
    now = datetime.now(UTC)
    return json_response(clinic_detail(location, now))


@bp.route("/services", methods=ALL_METHODS)
@limiter.limit(_rate_limit)
def services() -> Response:
    """Our service codes, with how many open clinics offer each."""
    unknown = _check_unknown([])
    if unknown:
        return _bad_parameters(unknown)
    options = cached_filter_options(current_app.config["FILTER_OPTIONS_TTL"])
    return json_response({"services": [{"code": code, "label": label, "clinics": count}
                                       for code, label, count in options.services]})


@bp.route("/languages", methods=ALL_METHODS)
@limiter.limit(_rate_limit)
def languages() -> Response:
    """Languages spoken at listed clinics, with how many open clinics speak each."""
    unknown = _check_unknown([])
    if unknown:
        return _bad_parameters(unknown)
    options = cached_filter_options(current_app.config["FILTER_OPTIONS_TTL"])
    return json_response({"languages": [{"code": code, "label": label, "clinics": count}
                                        for code, label, count in options.languages]})


@bp.route("/neighbourhoods", methods=ALL_METHODS)
@limiter.limit(_rate_limit)
def neighbourhoods() -> Response:
    """The neighbourhood names `near` understands, with the centre a search starts from."""
    unknown = _check_unknown([])
    if unknown:
        return _bad_parameters(unknown)
    rows = db.session.execute(
        select(Neighbourhood).order_by(Neighbourhood.borough, Neighbourhood.name)).scalars()
    return json_response({"neighbourhoods": [
        {"code": n.code, "name": n.name, "borough": n.borough, "latitude": n.latitude,
         "longitude": n.longitude} for n in rows]})


@bp.route("/openapi.json", methods=ALL_METHODS)
def openapi_document() -> Response:
    """The OpenAPI 3.1 description of this API, built from the code."""
    from directory.openapi import build_spec

    return json_response(build_spec())


@bp.route("/docs", methods=ALL_METHODS)
def docs() -> str:
    """The API described for people, from the same OpenAPI document, on our own origin."""
    from directory.openapi import build_spec, operations

    spec = build_spec()
    return render_template("api/docs.html", spec=spec, operations=operations(spec))


def _download(chunks: Iterator[bytes], mimetype: str, filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.route("/hsds.zip", methods=ALL_METHODS)
@limiter.limit(_download_rate_limit)
def hsds_zip() -> Response:
    """The whole directory as an HSDS 3.0 tabular datapackage (CSV files in a zip)."""
    unknown = _check_unknown([])
    if unknown:
        return _bad_parameters(unknown)
    return _download(hsds.iter_zip(datetime.now(UTC)), "application/zip",
                     f"caremap-nyc-hsds-{date.today().isoformat()}.zip")


@bp.route("/hsds.json", methods=ALL_METHODS)
@limiter.limit(_download_rate_limit)
def hsds_json() -> Response:
    """The whole directory as HSDS 3.0 JSON: every service, dereferenced, in one Page."""
    unknown = _check_unknown([])
    if unknown:
        return _bad_parameters(unknown)
    return _download(hsds.iter_json(datetime.now(UTC)), "application/json",
                     f"caremap-nyc-hsds-{date.today().isoformat()}.json")


def unknown_path(path: str) -> Response:
    """Anything else under /api: a 404 problem (or 405 for a write), not an HTML page."""
    raise NotFound()


@bp.record_once
def _catch_all(state: Any) -> None:
    # Registered on the app, named in this blueprint, so this blueprint's handlers answer.
    state.app.add_url_rule("/api/<path:path>", endpoint="api.unknown_path",
                           view_func=unknown_path, methods=ALL_METHODS)


# --- Commands -----------------------------------------------------------------------


def register_commands(app: Flask) -> None:
    """Add this audience's command-line tools to `flask`."""
    app.cli.add_command(export_hsds)
    app.cli.add_command(import_hsds)


@click.command("export-hsds")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export_hsds(out: Path) -> None:
    """Export the directory as HSDS 3.0: OUT.zip (tabular datapackage) or OUT.json."""
    if out.suffix not in (".zip", ".json"):
        raise click.BadParameter("must end in .zip (datapackage) or .json", param_hint="OUT")
    written = hsds.export_to(out)
    db.session.rollback()
    click.echo(f"wrote {out} ({written} bytes)")


@click.command("import-hsds")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="The date the package's facts are from, when datapackage.json has no "
                   "'created' date.")
@click.option("--dry-run", is_flag=True, help="Check and compare, then roll back.")
@with_appcontext
def import_hsds(path: Path, as_of: datetime | None, dry_run: bool) -> None:
    """Import an HSDS 3.0 datapackage (.zip or folder) in one transaction, or not at all."""
    try:
        report = hsds.run_hsds_import(path, db.session(),
                                      as_of=as_of.date() if as_of else None)
    except hsds.HsdsRejected as exc:
        db.session.rollback()
        for line in exc.problems:
            click.echo(f"problem: {line}", err=True)
        raise click.ClickException(
            f"{len(exc.problems)} problem(s): the package was rejected, nothing was "
            "changed") from exc
    except BaseException:
        db.session.rollback()
        raise
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    for line in report.lines():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was saved")
