"""Cross-site request forgery, tried on every route that can change anything.

The routes come from the app's own url_map: a state-changing route added later, and not
listed here, fails `test_every_state_changing_route_is_covered` until it is. Each form is
sent with real, otherwise-valid data, so that when it is refused, the missing or foreign
CSRF token is the only reason; the same data with the client's own token then goes
through, which proves it. "Nothing changed" means every row of every table, audit log
included, is the same before and after.

Every clinic, review, suggestion and account here is synthetic, made only in the test
database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask import Flask, g, url_for
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from directory.config import Settings
from directory.extensions import db
from directory.models import Location, Moderator, Review, Suggestion
from directory.reviews import new_review
from directory.suggestions import new_suggestion
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import (
    LOGIN,
    PASSWORD,
    cheap_hashing,
    code_for,
    csrf_from,
    make_admin,
    make_moderator,
    sign_in,
    token,
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REVIEW_TEXT = "Synthetic review: the nurse at the desk was kind and quick"
NEW_PASSWORD = "another-synthetic-password-2"
# A page any visitor can open that carries a form: where the attacker mints a token of
# their own, in their own session, to plant in a forged form.
ATTACKER_PAGE = "/reviews/withdraw"

# The read-only API: every method is routed to its views, which answer writes with 405.
API_ENDPOINTS = frozenset({
    "api.index", "api.clinics", "api.clinic", "api.services", "api.languages",
    "api.neighbourhoods", "api.openapi_document", "api.docs", "api.hsds_zip",
    "api.hsds_json", "api.unknown_path",
})


@dataclass
class World:
    """The synthetic data every form acts on."""

    clinic: Location
    review: Review
    withdrawal_code: str
    suggestion: Suggestion
    moderator: Moderator
    admin: Moderator
    other: Moderator

    def user(self, role: str) -> Moderator | None:
        """The account a role signs in as (None: an anonymous visitor)."""
        return {"moderator": self.moderator, "admin": self.admin}.get(role)


@dataclass(frozen=True)
class FormCase:
    """How a person really uses one form: who, where the form is, what they send."""

    role: str  # "anonymous", "moderator" or "admin"
    page: Callable[[World], str]  # the page the form is on (its tokens come from there)
    url: Callable[[World], str]
    data: Callable[[World], dict[str, object]]


def _moderation_page(world: World) -> str:
    return "/moderation/"


def _admin_page(world: World) -> str:
    return "/moderation/moderators"


def _review_url(action: str) -> Callable[[World], str]:
    return lambda w: f"/moderation/reviews/{w.review.id}/{action}"


def _suggestion_url(action: str) -> Callable[[World], str]:
    return lambda w: f"/moderation/suggestions/{w.suggestion.id}/{action}"


def _other_url(action: str) -> Callable[[World], str]:
    return lambda w: f"/moderation/moderators/{w.other.id}/{action}"


def _nothing(world: World) -> dict[str, object]:
    return {}


# Every HTML form route that changes state, by endpoint.
FORM_CASES: dict[str, FormCase] = {
    "community.suggest_send": FormCase(
        "anonymous", lambda w: "/suggest", lambda w: "/suggest",
        lambda w: {"name": "Synthetic Suggested Clinic", "address_1": "1 Test Street",
                   "postal_code": "10011", "services": ["hiv_testing"],
                   "how_known": "visited"}),
    "community.correct_send": FormCase(
        "anonymous", lambda w: f"/clinics/{w.clinic.slug}/correct",
        lambda w: f"/clinics/{w.clinic.slug}/correct",
        lambda w: {"kind": "correction", "phone": "(212) 555-0142", "how_known": "visited"}),
    "reviews.send_review": FormCase(
        "anonymous", lambda w: f"/clinics/{w.clinic.slug}/review",
        lambda w: f"/clinics/{w.clinic.slug}/review",
        lambda w: {"respect": "5", "asked_for_id": "no", "would_recommend": "4",
                   "text": REVIEW_TEXT}),
    "reviews.withdraw_send": FormCase(
        "anonymous", lambda w: "/reviews/withdraw", lambda w: "/reviews/withdraw",
        lambda w: {"code": w.withdrawal_code}),
    "moderation.login": FormCase(
        "anonymous", lambda w: LOGIN, lambda w: LOGIN,
        lambda w: {"username": w.moderator.username, "password": PASSWORD,
                   "code": code_for(w.moderator)}),
    "moderation.logout": FormCase(
        "moderator", _moderation_page, lambda w: "/moderation/logout", _nothing),
    "moderation.logout_everywhere": FormCase(
        "moderator", lambda w: "/moderation/account", lambda w: "/moderation/logout-everywhere",
        _nothing),
    "moderation.change_password": FormCase(
        "moderator", lambda w: "/moderation/account", lambda w: "/moderation/account/password",
        lambda w: {"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD}),
    "moderation.approve_review": FormCase(
        "moderator", _moderation_page, _review_url("approve"), _nothing),
    "moderation.reject_review": FormCase(
        "moderator", _moderation_page, _review_url("reject"), lambda w: {"reason": "spam"}),
    "moderation.redact_review": FormCase(
        "moderator", lambda w: f"/moderation/reviews/{w.review.id}", _review_url("redact"),
        lambda w: {"text": REVIEW_TEXT.replace("at the desk", "[removed]")}),
    "moderation.approve_suggestion": FormCase(
        "moderator", lambda w: f"/moderation/suggestions/{w.suggestion.id}",
        _suggestion_url("approve"), _nothing),
    "moderation.reject_suggestion": FormCase(
        "moderator", lambda w: "/moderation/suggestions", _suggestion_url("reject"),
        lambda w: {"reason": "not_confirmed"}),
    "moderation.still_correct": FormCase(
        "moderator", lambda w: "/moderation/reverify",
        lambda w: f"/moderation/reverify/{w.clinic.id}/still-correct", _nothing),
    "moderation.new_moderator": FormCase(
        "admin", lambda w: "/moderation/moderators/new", lambda w: "/moderation/moderators/new",
        lambda w: {"username": "synthetic-newcomer", "role": "moderator"}),
    "moderation.disable_moderator": FormCase(
        "admin", _admin_page, _other_url("disable"), _nothing),
    "moderation.unlock_moderator": FormCase(
        "admin", _admin_page, _other_url("unlock"), _nothing),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


@pytest.fixture(autouse=True)
def no_wait(app: Flask) -> None:
    """People take more than 3 seconds to fill a form in; tests do not wait for it."""
    app.config["REVIEW_MIN_SECONDS"] = 0


@pytest.fixture
def world(app: Flask) -> World:
    """A clinic with a pending review, a withdrawable review, a suggestion, and accounts."""
    clinic = make_clinic("Synthetic Forgery Clinic")
    review = make_review(clinic, text=REVIEW_TEXT, respect=4)
    _, code = new_review(clinic.id, {"respect": 3, "text": "Synthetic review to withdraw"})
    suggestion = new_suggestion("correction", clinic.id, {"phone": "(212) 555-0199"}, None,
                                None)
    other = make_moderator()
    other.failed_logins = 99  # locked, so that unlocking it changes something
    world = World(clinic, review, code, suggestion, make_moderator(), make_admin(), other)
    db.session.commit()
    return world


def snapshot() -> dict[str, list[str]]:
    """Every row of every table, in a stable order: what "nothing changed" compares."""
    db.session.expire_all()
    return {
        table.name: sorted(repr(tuple(row)) for row in db.session.execute(sa.select(table)))
        for table in db.metadata.sorted_tables
    }


def hidden_fields(client: FlaskClient, page: str) -> dict[str, str]:
    """The hidden fields a browser would send back from a page: CSRF and form tokens."""
    g.pop("csrf_token", None)  # as a fresh request would; see moderation_helpers.token
    response = client.get(page)
    assert response.status_code == 200, page
    html = response.get_data(as_text=True)
    fields = {"csrf_token": csrf_from(html)}
    form_token = re.search(r'name="form_token" value="([^"]+)"', html)
    if form_token:
        fields["form_token"] = form_token.group(1)
    return fields


def send(client: FlaskClient, url: str, data: dict[str, object]) -> TestResponse:
    """POST a form as a fresh request would (no token cached from an earlier one)."""
    g.pop("csrf_token", None)
    return client.post(url, data=data)


def assert_friendly_refusal(response: TestResponse, why: str) -> None:
    """A 4xx page in the site's own layout, with no technical words."""
    html = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (why, response.status_code, html[:500])
    assert response.mimetype == "text/html", why
    assert 'id="quick-exit"' in html, why  # the site's layout, quick exit included
    assert 'class="brand"' in html, why
    for technical in ("Traceback", "CSRF", "Bad Request", "werkzeug"):
        assert technical not in html, (why, technical)


def _rule_values(world: World) -> dict[str, object]:
    """Values for every kind of URL argument the app's rules take."""
    return {"ref": world.clinic.id, "path": "v1/reviews", "slug": world.clinic.slug}


# --- the route list comes from the app ------------------------------------------------


def test_every_state_changing_route_is_covered(app: Flask) -> None:
    """A new route taking POST, PUT, PATCH or DELETE fails here until a case covers it."""
    found = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) & WRITE_METHODS
    }
    covered = {(endpoint, "POST") for endpoint in FORM_CASES}
    covered |= {(endpoint, method) for endpoint in API_ENDPOINTS for method in WRITE_METHODS}
    assert found == covered


# --- HTML forms -----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(FORM_CASES))
def test_a_form_without_its_own_csrf_token_changes_nothing(
    app: Flask, client: FlaskClient, world: World, endpoint: str
) -> None:
    case = FORM_CASES[endpoint]
    url, fields = case.url(world), case.data(world)
    tokens: dict[str, str | None] = {"missing": None}
    tokens["foreign"] = token(app.test_client(), ATTACKER_PAGE)
    user = world.user(case.role)
    if user is not None:
        # A token this browser held before signing in: the new session must not honour it.
        tokens["before sign-in"] = hidden_fields(client, LOGIN)["csrf_token"]
        assert sign_in(client, user).status_code == 302
    own = hidden_fields(client, case.page(world))
    assert own["csrf_token"] not in tokens.values()
    before = snapshot()
    for why, csrf in tokens.items():
        data = {**fields, **own}
        data.pop("csrf_token")
        if csrf is not None:
            data["csrf_token"] = csrf
        assert_friendly_refusal(send(client, url, data), f"{endpoint}: {why} token")
        assert snapshot() == before, f"{endpoint}: {why} token changed the database"
    # The very same data with this browser's own token goes through: CSRF alone refused it.
    response = send(client, url, {**fields, **own})
    assert response.status_code in (200, 302, 303), response.get_data(as_text=True)[:800]
    assert snapshot() != before, f"{endpoint}: the accepted form changed nothing"


def test_a_token_copied_before_sign_out_is_dead_after_it(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """Signing out clears the session's token: a copy of it cannot act for the next
    person to sign in on the same browser."""
    sign_in(client, world.moderator)
    old = hidden_fields(client, "/moderation/")["csrf_token"]
    assert send(client, "/moderation/logout", {"csrf_token": old}).status_code == 302
    sign_in(client, world.admin)
    before = snapshot()
    response = send(client, f"/moderation/reviews/{world.review.id}/approve",
                    {"csrf_token": old})
    assert_friendly_refusal(response, "token from before sign-out")
    assert snapshot() == before


def test_other_write_methods_on_pages_are_refused_without_change(
    app: Flask, client: FlaskClient, world: World
) -> None:
    """PUT, PATCH and DELETE on any HTML route: a friendly 405, nothing changed."""
    sign_in(client, world.admin)
    values = {**_rule_values(world), "review_id": world.review.id,
              "suggestion_id": world.suggestion.id, "location_id": world.clinic.id,
              "moderator_id": world.other.id, "code": "es", "filename": "css/site.css"}
    # One path may have several rules (the form's GET and its POST): a method is
    # refused when no rule of that path takes it.
    allowed: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            with app.test_request_context():
                url = url_for(rule.endpoint, **{arg: values[arg] for arg in rule.arguments})
            allowed.setdefault(url, set()).update(rule.methods or set())
    before = snapshot()
    tried = 0
    for url, methods in sorted(allowed.items()):
        for method in sorted(WRITE_METHODS - methods):
            response = client.open(url, method=method, data={"reason": "spam"})
            assert response.status_code == 405, (method, url, response.status_code)
            assert_friendly_refusal(response, f"{method} {url}")
            tried += 1
    assert snapshot() == before
    assert tried >= 3 * len(FORM_CASES)


# --- the read-only API ----------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(WRITE_METHODS))
def test_the_api_refuses_every_write(
    app: Flask, client: FlaskClient, world: World, method: str
) -> None:
    """Exempt from CSRF because it writes nothing: so every write must be refused."""
    sign_in(client, world.admin)  # even with a moderator's cookie in the browser
    before = snapshot()
    for rule in app.url_map.iter_rules():
        if rule.endpoint not in API_ENDPOINTS:
            continue
        with app.test_request_context():
            url = url_for(rule.endpoint,
                          **{arg: _rule_values(world)[arg] for arg in rule.arguments})
        response = client.open(url, method=method, json={"name": "Synthetic Hijack",
                                                          "status": "closed"},
                               headers={"Origin": "https://attacker.example"})
        assert not 200 <= response.status_code < 300, (method, url)
        expected = 404 if rule.endpoint == "api.unknown_path" else 405
        assert response.status_code == expected, (method, url, response.status_code)
        assert response.mimetype == "application/problem+json", (method, url)
        if expected == 405:
            assert set(response.headers["Allow"].replace(" ", "").split(",")) <= {
                "GET", "HEAD", "OPTIONS"}
        assert response.headers.get("Access-Control-Allow-Credentials") is None
    assert snapshot() == before
