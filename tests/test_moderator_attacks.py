"""Attacks on moderator accounts, beyond what test_auth.py and test_moderation.py check.

Guessing spread over many addresses (the account still locks, and stays locked however
long one waits), one address spraying many accounts (held back by the hashed-address
limit, with rate limiting on), codes replayed from another browser, and dead sessions
(idle, too old, signed out everywhere, disabled, password changed) tried on every
moderation route from the url_map. Roles and anonymous visitors are checked the same way,
route by route, with the whole database compared before and after.

Every account, clinic, review and suggestion here is synthetic, made only in the test
database; addresses are from the documentation ranges (RFC 5737).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
import time_machine
from flask import Flask, g, url_for
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from directory import audit, auth, create_app
from directory.config import Settings
from directory.extensions import db
from directory.models import AuditEntry, Location, Moderator, Review, Suggestion
from directory.moderation import SIGN_IN_FAILED
from directory.suggestions import new_suggestion
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import (
    LOGIN,
    PASSWORD,
    cheap_hashing,
    code_for,
    is_login_redirect,
    make_admin,
    make_moderator,
    post,
    sign_in,
    token,
)
from tests.test_attack_csrf import snapshot

QUEUE = "/moderation/"
SECRET_TEXT = "Synthetic pending review that names nobody and only moderators read"
SECRET_PHONE = "(212) 555-0188"
SECRET_NOTE = "Synthetic note for moderators only"
SECRETS = (SECRET_TEXT, SECRET_PHONE, SECRET_NOTE)
NEW_PASSWORD = "another-synthetic-password-3"
MISSING_ID = 987_654
# Mid-way through a 30-second TOTP step, so a few seconds either way stay in the step.
START = datetime(2026, 11, 2, 15, 0, 10, tzinfo=UTC)
PUBLIC_ENDPOINTS = frozenset({"moderation.login", "moderation.logout"})
ADMIN_ENDPOINTS = frozenset({"moderation.moderators", "moderation.new_moderator",
                             "moderation.disable_moderator", "moderation.unlock_moderator"})
# Realistic form data for every moderation form, so a refusal is never about the data.
FORM_DATA: dict[str, object] = {
    "reason": "spam", "text": SECRET_TEXT.replace("names nobody", "[removed]"),
    "username": "synthetic-intruder", "role": "admin", "current": PASSWORD,
    "new": NEW_PASSWORD, "confirm": NEW_PASSWORD,
}
FORM_OVERRIDES: dict[str, dict[str, object]] = {
    "moderation.reject_suggestion": {"reason": "not_confirmed"},
}
_ADMIN_GUARD = auth.admin_required(lambda: None).__code__
_MODERATOR_GUARD = auth.moderator_required(lambda: None).__code__


@dataclass
class World:
    """A clinic with a pending review and suggestion, and four accounts."""

    clinic: Location
    review: Review
    suggestion: Suggestion
    admin: Moderator
    second_admin: Moderator
    moderator: Moderator
    other: Moderator


@dataclass(frozen=True)
class Call:
    """One request to one moderation route."""

    endpoint: str
    method: str
    url: str


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


def seed() -> World:
    """The synthetic data every attack aims at; committed."""
    clinic = make_clinic("Synthetic Attack Clinic")
    review = make_review(clinic, text=SECRET_TEXT, respect=2)
    suggestion = new_suggestion("correction", clinic.id, {"phone": SECRET_PHONE}, "visited",
                                SECRET_NOTE)
    other = make_moderator()
    other.failed_logins = 99  # locked
    world = World(clinic, review, suggestion, make_admin(), make_admin(), make_moderator(),
                  other)
    db.session.commit()
    return world


@pytest.fixture
def world(app: Flask) -> World:
    """The seeded data on the test's app."""
    return seed()


@contextmanager
def limited_app(settings: Settings, **extra: object) -> Iterator[Flask]:
    """The app as deployed behind one proxy, rate limits on (in memory), empty tables."""
    app = create_app(replace(cheap_hashing(settings, RATELIMIT_ENABLED=True, **extra),
                             trusted_proxies=1))
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def from_address(app: Flask, address: str) -> FlaskClient:
    """A browser whose requests reach the app through the proxy from this address."""
    client = app.test_client()
    client.environ_base.update({"HTTP_X_FORWARDED_FOR": address,
                                "HTTP_X_FORWARDED_PROTO": "https"})
    return client


def moderation_calls(app: Flask, world: World, moderator_id: int | None = None,
                     item_id: int | None = None) -> list[Call]:
    """Every method of every rule under /moderation, with real (or given) ids."""
    values = {"review_id": item_id or world.review.id,
              "suggestion_id": item_id or world.suggestion.id,
              "location_id": item_id or world.clinic.id,
              "moderator_id": moderator_id or world.other.id}
    calls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not rule.rule.startswith("/moderation"):
                continue
            url = url_for(rule.endpoint, **{arg: values[arg] for arg in rule.arguments})
            calls += [Call(rule.endpoint, method, url)
                      for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return calls


def send(client: FlaskClient, call: Call, csrf: str) -> TestResponse:
    """The request as a browser would send it, with a valid form token for its session."""
    g.pop("csrf_token", None)
    if call.method == "GET":
        return client.get(call.url)
    data = {**FORM_DATA, **FORM_OVERRIDES.get(call.endpoint, {}), "csrf_token": csrf}
    return client.open(call.url, method=call.method, data=data)


def shows_nothing(response: TestResponse) -> bool:
    """Whether the answer holds none of the seeded private text."""
    html = response.get_data(as_text=True)
    return not any(secret in html for secret in SECRETS)


def failed_page(response: TestResponse) -> bool:
    """The sign-in page again, with the one generic failure message."""
    return response.status_code == 200 and SIGN_IN_FAILED in response.get_data(as_text=True)


def last_failure_reason() -> str | None:
    """Why the latest refused sign-in was refused, as the audit log says."""
    entry = db.session.execute(
        db.select(AuditEntry).where(AuditEntry.action == audit.SIGN_IN_FAILED)
        .order_by(AuditEntry.id.desc()).limit(1)
    ).scalar_one_or_none()
    return entry.reason if entry else None


def guard(app: Flask, endpoint: str) -> str:
    """Which sign-in guard wraps a view: "admin", "moderator" or "none"."""
    code = app.view_functions[endpoint].__code__
    return {_ADMIN_GUARD: "admin", _MODERATOR_GUARD: "moderator"}.get(code, "none")


# --- guessing passwords ------------------------------------------------------------------


def test_guesses_from_many_addresses_still_lock_the_account_until_unlocked(
    settings: Settings,
) -> None:
    """The lock counts failures per account, whatever address they come from, counts
    wrong codes as well as wrong passwords, and does not wear off with time."""
    with limited_app(settings, MODERATOR_MAX_FAILED_LOGINS=3) as app, \
            time_machine.travel(START, tick=False) as clock:
        world = seed()
        target = world.moderator
        wrong_code = "".join(str((int(d) + 5) % 10) for d in code_for(target))
        guesses = [("not-the-password-at-all", None), (PASSWORD, wrong_code),
                   ("another-wrong-guess-here", None)]
        for n, (password, code) in enumerate(guesses, 1):
            attacker = from_address(app, f"198.51.100.{n}")
            assert failed_page(sign_in(attacker, target, password=password, code=code))
        db.session.refresh(target)
        assert auth.is_locked(target)
        # Locked: even the right password and code, from a fresh address, do not sign in.
        owner = from_address(app, "198.51.100.50")
        assert failed_page(sign_in(owner, target))
        assert last_failure_reason() == "locked"
        clock.shift(3 * 24 * 3600)
        assert failed_page(sign_in(owner, target))
        assert is_login_redirect(owner.get(QUEUE))
        # Other accounts are not caught by the lock.
        admin = from_address(app, "198.51.100.60")
        assert sign_in(admin, world.admin).status_code == 302
        assert post(admin, f"/moderation/moderators/{target.id}/unlock",
                    page="/moderation/moderators").status_code == 302
        clock.shift(30)  # the owner's next code
        assert sign_in(owner, target).status_code == 302
        assert owner.get(QUEUE).status_code == 200


def test_one_address_spraying_many_accounts_is_held_back(settings: Settings) -> None:
    """Ten tries from one address, each at a different account (so none locks): the next
    try is refused with 429, even with the right details, while another address is not."""
    with limited_app(settings) as app:
        world = seed()
        accounts = [world.moderator, world.admin, world.second_admin]
        attacker = from_address(app, "198.51.100.7")
        names = [a.username for a in accounts] + [f"guessed-name-{n}" for n in range(7)]
        for name in names:
            response = attacker.post(LOGIN, data={
                "csrf_token": token(attacker), "username": name,
                "password": "not-the-password-at-all", "code": "123456"})
            assert failed_page(response), name
        held = sign_in(attacker, world.moderator)
        assert held.status_code == 429
        html = held.get_data(as_text=True)
        assert 'id="quick-exit"' in html
        assert "slow down" in html
        # Claiming another address in a header of one's own does not help: the trusted
        # proxy appends the real one, and only that is read.
        spoofer = from_address(app, "203.0.113.99, 198.51.100.7")
        assert sign_in(spoofer, world.moderator).status_code == 429
        assert is_login_redirect(attacker.get(QUEUE))
        db.session.expire_all()
        assert all(not auth.is_locked(a) for a in accounts)
        assert all(a.failed_logins == 1 for a in accounts)  # the refused tries counted nothing
        elsewhere = from_address(app, "198.51.100.8")
        assert sign_in(elsewhere, world.moderator).status_code == 302
        assert elsewhere.get(QUEUE).status_code == 200


# --- replaying a code --------------------------------------------------------------------


def test_a_code_used_once_is_refused_in_any_other_browser(app: Flask, world: World) -> None:
    """A code read over a shoulder or caught by a phishing page is worth nothing once
    used: not the same code, nor an earlier step's code still inside the window."""
    target = world.moderator
    with time_machine.travel(START, tick=False) as clock:
        now = START.timestamp()
        owner = app.test_client()
        # The owner's phone runs a step ahead: its code for the next step is accepted.
        assert sign_in(owner, target, code=code_for(target, now + 30)).status_code == 302
        attacker = app.test_client()
        clock.shift(5)
        for code in (code_for(target, now + 30), code_for(target, now),
                     code_for(target, now - 30)):
            assert failed_page(sign_in(attacker, target, code=code))
            assert last_failure_reason() == "code already used"
            assert is_login_redirect(attacker.get(QUEUE))
        assert owner.get(QUEUE).status_code == 200
        clock.shift(60)  # two steps on: a fresh code works again
        assert sign_in(app.test_client(), target).status_code == 302


# --- dead sessions, on every route -------------------------------------------------------


def _idle(app: Flask, world: World, clock: time_machine.Coordinates) -> None:
    clock.shift(auth.idle_seconds() + 1)


def _signed_out_everywhere(app: Flask, world: World,
                           clock: time_machine.Coordinates) -> None:
    clock.shift(30)
    laptop = app.test_client()
    assert sign_in(laptop, world.admin).status_code == 302
    assert post(laptop, "/moderation/logout-everywhere").status_code == 302


def _disabled(app: Flask, world: World, clock: time_machine.Coordinates) -> None:
    colleague = app.test_client()
    assert sign_in(colleague, world.second_admin).status_code == 302
    assert post(colleague, f"/moderation/moderators/{world.admin.id}/disable",
                page="/moderation/moderators").status_code == 302


def _password_changed(app: Flask, world: World,
                      clock: time_machine.Coordinates) -> None:
    clock.shift(30)
    laptop = app.test_client()
    assert sign_in(laptop, world.admin).status_code == 302
    assert post(laptop, "/moderation/account/password",
                {"current": PASSWORD, "new": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                page="/moderation/account").status_code == 302


DEATHS: dict[str, Callable[[Flask, World, time_machine.Coordinates], None]] = {
    "idle too long": _idle,
    "signed out everywhere": _signed_out_everywhere,
    "account disabled": _disabled,
    "password changed elsewhere": _password_changed,
}


def assert_dead_on_every_route(app: Flask, world: World, victim: FlaskClient,
                               stale_cookie: str, csrf: str) -> None:
    """Replay the stale cookie, with a valid form token, on each route: each sends the
    browser to sign in, shows nothing, and changes nothing."""
    before = snapshot()
    calls = [c for c in moderation_calls(app, world) if c.endpoint != "moderation.login"]
    assert len(calls) >= 20
    for call in calls:
        victim.set_cookie("session", stale_cookie)
        response = send(victim, call, csrf)
        assert is_login_redirect(response), (call, response.status_code)
        assert shows_nothing(response), call
    assert snapshot() == before


def _signed_in_victim(app: Flask, world: World) -> tuple[FlaskClient, str]:
    victim = app.test_client()
    assert sign_in(victim, world.admin).status_code == 302
    return victim, token(victim, QUEUE)


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


@pytest.mark.parametrize("death", sorted(DEATHS))
def test_a_dead_session_opens_no_route(app: Flask, world: World, death: str) -> None:
    with time_machine.travel(START, tick=False) as clock:
        victim, csrf = _signed_in_victim(app, world)
        stale = _session_cookie(victim)
        # Still alive a moment before, with this very cookie and token.
        victim.set_cookie("session", stale)
        assert victim.get(QUEUE).status_code == 200
        victim.set_cookie("session", stale)
        DEATHS[death](app, world, clock)
        assert_dead_on_every_route(app, world, victim, stale, csrf)


def test_a_busy_session_still_dies_after_its_total_time(app: Flask, world: World) -> None:
    with time_machine.travel(START, tick=False) as clock:
        victim, _ = _signed_in_victim(app, world)
        step = auth.idle_seconds() - 60
        elapsed = 0
        while elapsed + step < auth.max_session_seconds() - 60:
            clock.shift(step)
            elapsed += step
            assert victim.get(QUEUE).status_code == 200, elapsed
        clock.shift(auth.max_session_seconds() - 60 - elapsed)
        csrf = token(victim, QUEUE)  # a fresh form token, a minute before the end
        stale = _session_cookie(victim)
        clock.shift(120)  # two minutes idle only, but past the total time
        assert_dead_on_every_route(app, world, victim, stale, csrf)


# --- roles and anonymous visitors, on every route ----------------------------------------


def test_every_moderation_route_is_guarded(app: Flask, world: World) -> None:
    """Each view is wrapped by a sign-in guard, unless it is sign-in or sign-out; the admin
    guard is on exactly the admin routes. A new unguarded route fails here."""
    guards = {c.endpoint: guard(app, c.endpoint) for c in moderation_calls(app, world)}
    assert {e for e, kind in guards.items() if kind == "none"} == PUBLIC_ENDPOINTS
    assert {e for e, kind in guards.items() if kind == "admin"} == ADMIN_ENDPOINTS


@pytest.mark.parametrize("target", ["admin", "locked moderator", "no such account"])
def test_a_moderator_can_use_no_admin_route(app: Flask, world: World, target: str) -> None:
    """Make oneself an admin, disable the admin, unlock a colleague, list accounts: 403
    on each, nothing changed, and no account named, whether the target exists or not."""
    moderator_id = {"admin": world.admin.id, "locked moderator": world.other.id,
                    "no such account": MISSING_ID}[target]
    client = app.test_client()
    assert sign_in(client, world.moderator).status_code == 302
    csrf = token(client, QUEUE)
    calls = [c for c in moderation_calls(app, world, moderator_id=moderator_id)
             if c.endpoint in ADMIN_ENDPOINTS]
    assert len(calls) == 5
    before = snapshot()
    for call in calls:
        response = send(client, call, csrf)
        html = response.get_data(as_text=True)
        assert response.status_code == 403, call
        assert 'id="quick-exit"' in html, call
        assert world.admin.username not in html, call
        assert world.other.username not in html, call
    assert snapshot() == before
    assert client.get(QUEUE).status_code == 200  # refused, but still signed in


def test_an_anonymous_visitor_reaches_nothing_under_moderation(
    app: Flask, world: World
) -> None:
    """Every route but sign-in: to the sign-in page (or 403/404), no private text, no
    change, and the same answer whether the id asked for exists or not."""
    visitor = app.test_client()
    real = moderation_calls(app, world, moderator_id=world.admin.id)
    missing = moderation_calls(app, world, moderator_id=MISSING_ID, item_id=MISSING_ID)
    before = snapshot()
    checked = 0
    for call, ghost in zip(real, missing, strict=True):
        if call.endpoint == "moderation.login":
            continue
        # A fresh token each time: sign-out clears the session, and its token with it.
        response = send(visitor, call, token(visitor, LOGIN))
        ghost_response = send(visitor, ghost, token(visitor, LOGIN))
        assert is_login_redirect(response) or response.status_code in (403, 404), call
        assert shows_nothing(response), call
        assert (response.status_code, response.location) == (
            ghost_response.status_code, ghost_response.location), call
        checked += 1
    assert snapshot() == before
    assert checked >= 20
