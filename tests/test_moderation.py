"""Moderation journeys: who may see what, the queue, approve, reject, redact, admin pages.

Every clinic, review and account here is synthetic, made only in the test database.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from directory import audit, moderation
from directory.config import Settings
from directory.extensions import db
from directory.models import PENDING, PUBLISHED, REJECTED, WITHDRAWN, AuditEntry, Moderator, Review
from directory.redaction import NotARedaction
from directory.suggestions import new_suggestion
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import (
    cheap_hashing,
    csrf_from,
    is_login_redirect,
    make_admin,
    make_moderator,
    post,
    sign_in,
    token,
)

SECRET_TEXT = "Synthetic review text that only signed-in moderators may read"
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> call 212-555-0100 <b>now</b>'

# Every moderation route: method, path template, who may use it.
ROUTES = [
    ("GET", "/moderation/", "moderator"),
    ("GET", "/moderation/reviews/{review}", "moderator"),
    ("POST", "/moderation/reviews/{review}/approve", "moderator"),
    ("POST", "/moderation/reviews/{review}/reject", "moderator"),
    ("POST", "/moderation/reviews/{review}/redact", "moderator"),
    ("GET", "/moderation/audit", "moderator"),
    ("GET", "/moderation/account", "moderator"),
    ("POST", "/moderation/account/password", "moderator"),
    ("POST", "/moderation/logout-everywhere", "moderator"),
    ("GET", "/moderation/suggestions", "moderator"),
    ("GET", "/moderation/suggestions/{suggestion}", "moderator"),
    ("POST", "/moderation/suggestions/{suggestion}/approve", "moderator"),
    ("POST", "/moderation/suggestions/{suggestion}/reject", "moderator"),
    ("GET", "/moderation/clinics/{clinic}/history", "moderator"),
    ("GET", "/moderation/reverify", "moderator"),
    ("POST", "/moderation/reverify/{clinic}/still-correct", "moderator"),
    ("GET", "/moderation/moderators", "admin"),
    ("GET", "/moderation/moderators/new", "admin"),
    ("POST", "/moderation/moderators/new", "admin"),
    ("POST", "/moderation/moderators/{other}/disable", "admin"),
    ("POST", "/moderation/moderators/{other}/unlock", "admin"),
]
PUBLIC_POSTS = ["/moderation/login", "/moderation/logout"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


@pytest.fixture
def world(app: Flask) -> dict[str, object]:
    """A clinic with one pending review, a moderator, an admin and another account."""
    clinic = make_clinic("Synthetic Respect Clinic")
    review = make_review(clinic, text=SECRET_TEXT, respect=5, asked_for_id=False)
    moderator = make_moderator()
    admin = make_admin()
    other = make_moderator()
    suggestion = new_suggestion("correction", clinic.id, {"phone": "(212) 555-0199"}, None,
                                None)
    db.session.commit()
    return {"clinic": clinic, "review": review, "moderator": moderator, "admin": admin,
            "other": other, "suggestion": suggestion}


def url_of(template: str, world: dict[str, object]) -> str:
    """A route's path with the world's ids filled in."""
    review = world["review"]
    other = world["other"]
    assert isinstance(review, Review)
    assert isinstance(other, Moderator)
    return template.format(review=review.id, other=other.id,
                           clinic=world["clinic"].id,  # type: ignore[attr-defined]
                           suggestion=world["suggestion"].id)  # type: ignore[attr-defined]


def test_every_moderation_route_is_in_the_matrix(app: Flask) -> None:
    """A new route must be added to ROUTES, so the access matrix covers it."""
    listed = {(method, re.sub(r"\{\w+\}", "<x>", path)) for method, path, _ in ROUTES}
    listed |= {("POST", path) for path in PUBLIC_POSTS} | {("GET", "/moderation/login")}
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("moderation."):
            path = re.sub(r"<[^>]+>", "<x>", rule.rule)
            found |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert found == listed


@pytest.mark.parametrize(("method", "path", "needs"), ROUTES)
def test_anonymous_visitors_are_sent_to_sign_in(
    client: FlaskClient, world: dict[str, object], method: str, path: str, needs: str
) -> None:
    url = url_of(path, world)
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data={"csrf_token": token(client), "reason": "spam",
                                          "text": "[removed]", "username": "newbie"})
    assert is_login_redirect(response)
    assert SECRET_TEXT not in response.get_data(as_text=True)
    db.session.expire_all()
    review = world["review"]
    assert isinstance(review, Review)
    assert review.status == PENDING


@pytest.mark.parametrize(("method", "path", "needs"), ROUTES)
@pytest.mark.parametrize("role", ["moderator", "admin"])
def test_roles_reach_their_routes_only(
    app: Flask, client: FlaskClient, world: dict[str, object],
    method: str, path: str, needs: str, role: str,
) -> None:
    user = world[role]
    assert isinstance(user, Moderator)
    sign_in(client, user)
    url = url_of(path, world)
    response = client.get(url) if method == "GET" else post(client, url, {"reason": "spam"})
    if needs == "admin" and role == "moderator":
        assert response.status_code == 403
        assert SECRET_TEXT not in response.get_data(as_text=True)
    else:
        assert response.status_code in (200, 302, 422), response.status_code
        assert not is_login_redirect(response) or "logout" in path


@pytest.mark.parametrize(
    "path", [p for m, p, _ in ROUTES if m == "POST"] + PUBLIC_POSTS
)
@pytest.mark.parametrize("csrf", ["missing", "forged"])
def test_every_post_needs_a_real_csrf_token(
    client: FlaskClient, world: dict[str, object], path: str, csrf: str
) -> None:
    admin = world["admin"]
    assert isinstance(admin, Moderator)
    sign_in(client, admin)
    data: dict[str, str] = {"reason": "spam", "text": "[removed]", "username": "newbie"}
    if csrf == "forged":
        data["csrf_token"] = "IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAi.forged"
    response = client.post(url_of(path, world), data=data)
    assert response.status_code == 400
    db.session.expire_all()
    review = world["review"]
    assert isinstance(review, Review)
    assert review.status == PENDING


def test_moderation_pages_are_kept_out_of_indexes_and_caches(
    client: FlaskClient, world: dict[str, object]
) -> None:
    for response in (client.get("/moderation/login"), client.get("/moderation/")):
        assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
        assert response.headers["Cache-Control"] == "no-store"
    page = client.get("/moderation/login").get_data(as_text=True)
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert 'id="quick-exit"' in page


# --- the queue -------------------------------------------------------------------------


def test_the_queue_lists_pending_reviews_oldest_first(
    client: FlaskClient, app: Flask
) -> None:
    clinic = make_clinic()
    newer = make_review(clinic, received_month=date(2026, 11, 1), text="newer review")
    oldest = make_review(clinic, received_month=date(2026, 9, 1), text="oldest review")
    middle_a = make_review(clinic, received_month=date(2026, 10, 1), text="middle review a")
    middle_b = make_review(clinic, received_month=date(2026, 10, 1), text="middle review b")
    make_review(clinic, status=PUBLISHED, text="already public")
    make_review(clinic, status=REJECTED, text="already rejected")
    make_review(clinic, status=WITHDRAWN, text="already withdrawn")
    moderator = make_moderator()
    db.session.commit()
    assert [r.id for r in moderation.pending_reviews()] == [
        oldest.id, middle_a.id, middle_b.id, newer.id]
    sign_in(client, moderator)
    html = client.get("/moderation/").get_data(as_text=True)
    positions = [html.index(text) for text in
                 ("oldest review", "middle review a", "middle review b", "newer review")]
    assert positions == sorted(positions)
    assert "already public" not in html
    assert "already rejected" not in html
    assert "already withdrawn" not in html
    assert "4 reviews waiting" in html


def test_the_queue_shows_clinic_answers_and_flagged_parts(
    client: FlaskClient, app: Flask
) -> None:
    clinic = make_clinic("Synthetic Flag Clinic")
    make_review(clinic, respect=4, asked_for_id=True,
                text="The nurse Maria gave me her cell 212-555-0100.")
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    html = client.get("/moderation/").get_data(as_text=True)
    assert "Synthetic Flag Clinic" in html
    assert "4 of 5" in html
    assert "Asked for ID, insurance or proof of income" in html
    assert '<mark class="flag flag-name" title="name">Maria</mark>' in html
    assert '<mark class="flag flag-phone" title="phone number">212-555-0100</mark>' in html


def test_html_and_script_in_a_review_are_shown_escaped(
    client: FlaskClient, app: Flask
) -> None:
    clinic = make_clinic()
    review = make_review(clinic, text=HOSTILE)
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    for url in ("/moderation/", f"/moderation/reviews/{review.id}"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)" not in html
        assert "<img src=x" not in html
        assert "<b>now</b>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "&lt;b&gt;now&lt;/b&gt;" in html
        # The flagged number inside hostile text is marked, and everything around it escaped.
        assert ">212-555-0100</mark>" in html


# --- decisions -------------------------------------------------------------------------


def _entries(review: Review) -> list[tuple[str, str | None, str | None]]:
    return [(e.action, e.decision, e.reason) for e in db.session.execute(
        select(AuditEntry).where(AuditEntry.item_type == "review",
                                 AuditEntry.item_id == review.id).order_by(AuditEntry.id)
    ).scalars()]


@pytest.fixture
def score_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str, str]]:
    """Calls to the score hook: (review id, old status, new status)."""
    calls: list[tuple[int, str, str]] = []

    def hook(review: Review, old_status: str) -> None:
        calls.append((review.id, old_status, review.status))

    monkeypatch.setattr("directory.scores.on_review_status_change", hook)
    return calls


def test_approve(client: FlaskClient, world: dict[str, object],
                 score_calls: list[tuple[int, str, str]]) -> None:
    review, moderator = world["review"], world["moderator"]
    assert isinstance(review, Review)
    assert isinstance(moderator, Moderator)
    sign_in(client, moderator)
    response = post(client, f"/moderation/reviews/{review.id}/approve")
    assert response.status_code == 302
    assert response.location.endswith("/moderation/")
    db.session.refresh(review)
    assert review.status == PUBLISHED
    assert review.text == SECRET_TEXT
    assert _entries(review) == [(audit.APPROVE, PUBLISHED, None)]
    assert score_calls == [(review.id, PENDING, PUBLISHED)]
    assert "Review approved" in client.get("/moderation/").get_data(as_text=True)


def test_reject_with_a_reason(client: FlaskClient, world: dict[str, object],
                              score_calls: list[tuple[int, str, str]]) -> None:
    review, moderator = world["review"], world["moderator"]
    assert isinstance(review, Review)
    assert isinstance(moderator, Moderator)
    sign_in(client, moderator)
    assert post(client, f"/moderation/reviews/{review.id}/reject",
                {"reason": "not-a-reason"}).status_code == 400
    response = post(client, f"/moderation/reviews/{review.id}/reject",
                    {"reason": "identifies_person"})
    assert response.status_code == 302
    db.session.refresh(review)
    assert review.status == REJECTED
    assert review.reject_reason == "identifies_person"
    assert review.text is None  # never shown, so not kept
    assert _entries(review) == [(audit.REJECT, REJECTED, "Identifies a person")]
    assert score_calls == [(review.id, PENDING, REJECTED)]


def test_redact_by_ticking_flagged_parts(client: FlaskClient, app: Flask,
                                         score_calls: list[tuple[int, str, str]]) -> None:
    clinic = make_clinic("Synthetic Redaction Clinic")
    text = "Ask for Dr. Smith, or text me at 212-555-0100. Great staff at Synthetic Redaction."
    review = make_review(clinic, text=text)
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    page = client.get(f"/moderation/reviews/{review.id}").get_data(as_text=True)
    values = re.findall(r'name="remove" value="(\d+:\d+)"', page)
    assert len(values) == 2  # the doctor and the number; the clinic's own name is not flagged
    response = post(client, f"/moderation/reviews/{review.id}/redact", {"remove": values},
                    page=f"/moderation/reviews/{review.id}")
    assert response.status_code == 302
    db.session.refresh(review)
    assert review.status == PUBLISHED
    assert review.text == ("Ask for [removed], or text me at [removed]. Great staff at "
                           "Synthetic Redaction.")
    assert _entries(review) == [
        (audit.REDACT, "redacted", "2 parts removed (name, phone number)"),
        (audit.APPROVE, PUBLISHED, None),
    ]
    assert score_calls == [(review.id, PENDING, PUBLISHED)]
    # The audit log never holds the removed words.
    log = client.get("/moderation/audit").get_data(as_text=True)
    assert "Smith" not in log
    assert "555-0100" not in log


def test_redact_by_editing_the_text(client: FlaskClient, world: dict[str, object]) -> None:
    review, moderator = world["review"], world["moderator"]
    assert isinstance(review, Review)
    assert isinstance(moderator, Moderator)
    sign_in(client, moderator)
    url = f"/moderation/reviews/{review.id}/redact"
    page = f"/moderation/reviews/{review.id}"
    # Adding words is refused, and what was typed is kept on the page.
    changed = SECRET_TEXT.replace("Synthetic", "Invented")
    response = post(client, url, {"text": changed}, page=page)
    assert response.status_code == 422
    assert "Invented review text" in response.get_data(as_text=True)
    # Nothing removed: use Approve instead.
    assert post(client, url, {"text": SECRET_TEXT}, page=page).status_code == 422
    db.session.refresh(review)
    assert review.status == PENDING
    assert _entries(review) == []
    # Replacing words with [removed] works, with browser line endings.
    edited = SECRET_TEXT.replace("only signed-in", "[removed]") + "\r\n"
    assert post(client, url, {"text": edited}, page=page).status_code == 302
    db.session.refresh(review)
    assert review.status == PUBLISHED
    assert review.text == "Synthetic review text that [removed] moderators may read"
    assert _entries(review)[0] == (audit.REDACT, "redacted", "1 part removed")


def test_ticking_nothing_or_an_unknown_part_changes_nothing(
    client: FlaskClient, world: dict[str, object]
) -> None:
    review, moderator = world["review"], world["moderator"]
    assert isinstance(review, Review)
    assert isinstance(moderator, Moderator)
    sign_in(client, moderator)
    url = f"/moderation/reviews/{review.id}/redact"
    assert post(client, url, {}).status_code == 422
    assert post(client, url, {"remove": ["0:9"]}).status_code == 422
    db.session.refresh(review)
    assert review.status == PENDING
    assert review.text == SECRET_TEXT


def test_a_decided_review_cannot_be_decided_again(
    client: FlaskClient, world: dict[str, object]
) -> None:
    review, moderator = world["review"], world["moderator"]
    assert isinstance(review, Review)
    assert isinstance(moderator, Moderator)
    sign_in(client, moderator)
    post(client, f"/moderation/reviews/{review.id}/approve")
    response = post(client, f"/moderation/reviews/{review.id}/reject", {"reason": "spam"})
    assert response.status_code == 302
    db.session.refresh(review)
    assert review.status == PUBLISHED
    assert [a for a, _, _ in _entries(review)] == [audit.APPROVE]
    assert client.get(f"/moderation/reviews/{review.id}").status_code == 302
    assert client.get("/moderation/reviews/999999").status_code == 404


def test_decisions_as_plain_functions(app: Flask) -> None:
    clinic = make_clinic()
    moderator = make_moderator()
    review = make_review(clinic, text="Call 212-555-0100")
    with pytest.raises(NotARedaction):
        moderation.redact_and_approve(review, moderator, "Call 212-555-0199")
    with pytest.raises(ValueError, match="unknown reason"):
        moderation.reject(review, moderator, "because")
    moderation.redact_and_approve(review, moderator, "Call [removed]")
    assert (review.status, review.text) == (PUBLISHED, "Call [removed]")
    with pytest.raises(moderation.AlreadyDecided):
        moderation.review_for_decision(review.id)


# --- admin pages -----------------------------------------------------------------------


def test_an_admin_creates_a_moderator_who_can_then_sign_in(
    app: Flask, client: FlaskClient, world: dict[str, object]
) -> None:
    admin = world["admin"]
    assert isinstance(admin, Moderator)
    sign_in(client, admin)
    response = post(client, "/moderation/moderators/new",
                    {"username": "Newbie", "role": "moderator"},
                    page="/moderation/moderators/new")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    created = db.session.execute(
        select(Moderator).where(Moderator.username == "newbie")).scalar_one()
    assert created.totp_secret in html
    assert "otpauth://totp/" in html
    assert 'src="data:image/svg+xml;base64,' in html
    password = re.search(r"<dt>Password</dt><dd><code>([^<]+)</code>", html)
    assert password
    # The secret is shown once: the list page does not show it.
    assert created.totp_secret not in client.get("/moderation/moderators").get_data(as_text=True)
    # A resend fails: the username is taken.
    again = post(client, "/moderation/moderators/new", {"username": "newbie", "role": "admin"},
                 page="/moderation/moderators/new")
    assert again.status_code == 422
    assert "taken" in again.get_data(as_text=True)
    [entry] = db.session.execute(select(AuditEntry).where(
        AuditEntry.action == audit.CREATE_MODERATOR)).scalars()
    assert (entry.moderator_id, entry.item_id, entry.decision) == (
        admin.id, created.id, "moderator")
    # The new moderator signs in with what the page showed.
    newbie = app.test_client()
    assert sign_in(newbie, created, password=password.group(1)).status_code == 302


def test_an_admin_disables_a_moderator_and_their_session_ends(
    app: Flask, client: FlaskClient, world: dict[str, object]
) -> None:
    admin, moderator = world["admin"], world["moderator"]
    assert isinstance(admin, Moderator)
    assert isinstance(moderator, Moderator)
    theirs = app.test_client()
    sign_in(theirs, moderator)
    assert theirs.get("/moderation/").status_code == 200
    sign_in(client, admin)
    response = post(client, f"/moderation/moderators/{moderator.id}/disable",
                    page="/moderation/moderators")
    assert response.status_code == 302
    assert is_login_redirect(theirs.get("/moderation/"))
    db.session.refresh(moderator)
    assert moderator.active is False
    # An admin cannot disable themselves (and so lock everyone out).
    post(client, f"/moderation/moderators/{admin.id}/disable", page="/moderation/moderators")
    db.session.refresh(admin)
    assert admin.active is True
    actions = [(e.action, e.item_id) for e in db.session.execute(
        select(AuditEntry).where(AuditEntry.action == audit.DISABLE_MODERATOR)).scalars()]
    assert actions == [(audit.DISABLE_MODERATOR, moderator.id)]


def test_admin_form_errors_are_friendly(client: FlaskClient, world: dict[str, object]) -> None:
    admin = world["admin"]
    assert isinstance(admin, Moderator)
    sign_in(client, admin)
    response = post(client, "/moderation/moderators/new",
                    {"username": "<script>x</script>", "role": "moderator"},
                    page="/moderation/moderators/new")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "lower-case letters" in html
    assert "<script>x" not in html


def test_csrf_token_reader_works() -> None:
    assert csrf_from('<input id="csrf_token" name="csrf_token" type="hidden" value="abc">') == "abc"
