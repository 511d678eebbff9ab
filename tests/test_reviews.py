"""Journeys through sharing an experience: leaving a review, moderation (by status flip),
the public page, withdrawing with the code, and every kind of bad input.

Every clinic and review here is synthetic (tests.factories), made only in the test
database. The moderation UI belongs to the moderation blueprint; here a moderator's
decision is the status change plus scores.on_review_status_change, as that UI calls it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import time
from dataclasses import replace
from datetime import date

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from directory import create_app
from directory.config import Settings
from directory.extensions import db, limiter
from directory.models import CLOSED, PENDING, PUBLISHED, REJECTED, WITHDRAWN, Review
from directory.privacy import ephemeral_store
from directory.reviews import current_month, issue_form_token, months_before
from directory.scores import on_review_status_change
from directory.withdrawal import code_hash
from tests.factories import make_clinic, make_review
from tests.test_public_pages import Page

ADDRESS = "203.0.113.9"  # TEST-NET-3: documentation only, never a real person
ENV = {"REMOTE_ADDR": ADDRESS}
HOSTILE = "<script>alert(1)</script> <img src=x onerror=alert(2)> ${alert(3)} `tick`"
GOOD = {"respect": "5", "open_about_work": "4", "asked_for_id": "no",
        "cost_affordable": "3", "privacy": "5", "gender_respected": "5",
        "would_recommend": "5"}


@pytest.fixture(autouse=True)
def no_wait(app: Flask) -> None:
    """People take more than 3 seconds to fill a form in; tests do not wait for it."""
    app.config["REVIEW_MIN_SECONDS"] = 0


def open_form(client: FlaskClient, slug: str) -> dict[str, str]:
    """GET the review form; return the hidden fields a browser would send back."""
    response = client.get(f"/clinics/{slug}/review", environ_base=ENV)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    html = response.get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    token = re.search(r'name="form_token" value="([^"]+)"', html)
    assert csrf
    assert token
    return {"csrf_token": csrf.group(1), "form_token": token.group(1)}


def send(client: FlaskClient, slug: str, status: int = 200, hidden: dict[str, str] | None = None,
         **fields: str) -> tuple[Page, str]:
    """Fill in and send the review form; return the answer page and its HTML."""
    data = {**(hidden or open_form(client, slug)), **fields}
    response = client.post(f"/clinics/{slug}/review", data=data, environ_base=ENV)
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[:1500]
    return Page(html), html


def code_on(html: str) -> str:
    """The withdrawal code shown on a thanks page."""
    words = re.findall(r'class="code-word">([^<]+)<', html)
    assert len(words) == 6, html
    return " ".join(words)


def approve(review: Review) -> None:
    """What a moderator's approval does: the status, then the score."""
    old = review.status
    review.status = PUBLISHED
    on_review_status_change(review, old)
    db.session.commit()


def only_review() -> Review:
    return db.session.execute(sa.select(Review)).scalar_one()


def reviews() -> list[Review]:
    db.session.expire_all()
    return list(db.session.execute(sa.select(Review).order_by(Review.id)).scalars())


def clinic_page(client: FlaskClient, slug: str) -> tuple[Page, str]:
    response = client.get(f"/clinics/{slug}", environ_base=ENV)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    return Page(html), html


def month_words(day: date) -> str:
    return day.strftime("%B %Y")


# --- The whole journey ----------------------------------------------------------------


def test_a_review_is_private_until_approved_scored_from_three_and_withdrawn_with_its_code(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic("Kind Clinic", services=("hiv_testing", "prep")).slug
    db.session.commit()

    # The clinic page offers a clear way to share an experience.
    page, _ = clinic_page(client, slug)
    share = [a for a in page.all("a") if a.get("href") == f"/clinics/{slug}/review"]
    assert share
    assert "Share how you were treated" in page.text
    assert "Not reviewed yet" in page.text

    this_month = current_month()
    thanks, html = send(client, slug, **GOOD, service="prep", text="They never lectured me.",
                        visit_month=str(this_month.month), visit_year=str(this_month.year))
    code = code_on(html)
    assert "Write them down" in thanks.text
    # The code is in the page only: not in a header, a cookie or a URL.
    assert code not in str(client.get_cookie("session"))

    stored = only_review()
    assert stored.status == PENDING
    assert stored.received_month == this_month
    assert stored.visit_month == this_month
    assert stored.service_code == "prep"
    assert (stored.respect, stored.asked_for_id, stored.would_recommend) == (5, False, 5)
    assert stored.withdrawal_hash == code_hash(code, app.config["SECRET_KEY"])
    assert code not in stored.withdrawal_hash

    # Pending: nothing public.
    page, html = clinic_page(client, slug)
    assert "They never lectured me." not in html
    assert "Not reviewed yet" in page.text

    approve(stored)
    page, html = clinic_page(client, slug)
    assert "They never lectured me." in page.text
    assert f"shared {month_words(this_month)}" in page.text
    assert "Too few reviews yet" in page.text
    assert "Respect score" not in page.text

    send(client, slug, respect="4", privacy="4", text="Fine.")
    send(client, slug, respect="5", gender_respected="4")
    for review in reviews()[1:]:
        assert review.status == PENDING
        approve(review)
    page, html = clinic_page(client, slug)
    assert re.search(r"Respect score \d\.\d of 5 from 3 reviews", page.text), page.text
    assert "Treated with respect, no lectures: 4.7 of 5 (3 answers)" in page.text
    assert "Asked for ID, insurance or proof of income: 0% said yes (1 answer)" in page.text

    # The search list and its map show the score too.
    results = client.get("/clinics?near=10011").get_data(as_text=True)
    assert "Respect score" in results

    # Withdraw, however the code was written down.
    messy = "  " + code.upper().replace(" ", " - ", 2) + " "
    response = client.post("/reviews/withdraw", data={"csrf_token": open_form(client, slug)[
        "csrf_token"], "code": messy}, environ_base=ENV)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/reviews/withdrawn")
    assert "withdrawn" in client.get("/reviews/withdrawn").get_data(as_text=True)

    gone = db.session.get(Review, stored.id)
    db.session.refresh(gone)
    assert gone.status == WITHDRAWN
    assert gone.text is None
    assert gone.withdrawal_hash is None
    assert all(getattr(gone, key) is None for key in GOOD)
    page, html = clinic_page(client, slug)
    assert "They never lectured me." not in html
    assert "Too few reviews yet" in page.text

    # The code works once.
    again = client.post("/reviews/withdraw", data={"csrf_token": open_form(client, slug)[
        "csrf_token"], "code": code}, environ_base=ENV)
    assert again.status_code == 404
    assert "could not find a review with that code" in again.get_data(as_text=True)


def test_the_form_asks_the_missions_questions_in_words_each_skippable(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic("Asked Clinic", services=("prep", "trans_care")).slug
    db.session.commit()
    page = Page(client.get(f"/clinics/{slug}/review").get_data(as_text=True))
    legends = page.text
    for question in ("Did staff treat you with respect, without lectures or judgment?",
                     "Could you be open about your work without it being held against you?",
                     "Were you asked for ID, insurance or proof of income?",
                     "Did you feel your privacy was protected?",
                     "Were your gender and name respected?", "Would you send a friend here?"):
        assert question in legends
    assert "Not at all" in legends
    assert "Completely" in legends
    # Every question starts on "skip", so nothing is answered unless chosen.
    for name in GOOD:
        skip = page.all("input", name=name, value="")
        assert skip
        assert "checked" in skip[0]
        assert page.all("input", name=name, type="radio")
    assert [a["value"] for a in page.all("input", name="asked_for_id")] == ["yes", "no", ""]
    options = re.findall(r'<option value="([^"]*)"', client.get(
        f"/clinics/{slug}/review").get_data(as_text=True))
    assert {"prep", "trans_care", "other"} <= set(options)
    years = [int(y) for y in options if y.isdigit() and len(y) == 4]
    assert max(years) == current_month().year
    assert min(years) == months_before(current_month(), 36).year
    honeypot = page.all("input", name="confirm_site")[0]
    assert honeypot["tabindex"] == "-1"
    assert "Leave this empty" in page.text


def test_a_closed_clinic_takes_no_reviews(client: FlaskClient, app: Flask) -> None:
    slug = make_clinic("Closed Place", status=CLOSED).slug
    db.session.commit()
    assert client.get(f"/clinics/{slug}/review").status_code == 404
    assert "Share how you were treated" not in client.get(f"/clinics/{slug}").get_data(
        as_text=True)


# --- Bad input ------------------------------------------------------------------------


def test_oversized_text_gets_a_friendly_error_keeping_everything_typed(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    long_text = "é" * 1001
    page, html = send(client, slug, 400, **GOOD, service="other", text=long_text)
    assert "1,001 characters long; the limit is 1,000" in page.text
    assert long_text in page.text
    assert "checked" in page.all("input", name="respect", value="5")[0]
    assert "checked" in page.all("input", name="asked_for_id", value="no")[0]
    assert "selected" in page.all("option", value="other")[0]
    assert not reviews()
    # 1,000 characters, with browser line ends, fit.
    send(client, slug, text=("a" * 98 + "\r\n") * 10)
    assert len(only_review().text or "") <= 1000


def test_an_empty_form_asks_for_at_least_one_answer(client: FlaskClient, app: Flask) -> None:
    slug = make_clinic().slug
    db.session.commit()
    page, _ = send(client, slug, 400, text="   ")
    assert "Answer at least one question or write a few words" in page.text
    assert not reviews()


@pytest.mark.parametrize(("fields", "message"), [
    ({"respect": "9"}, "Choose one of the answers"),
    ({"respect": "abc"}, "Choose one of the answers"),
    ({"asked_for_id": "maybe"}, "Choose one of the answers"),
    ({"service": "<script>"}, "Choose a service from the list"),
    ({"visit_month": "13", "visit_year": "2026"}, "Choose from the lists"),
    ({"visit_month": "3"}, "Choose both the month and the year"),
    ({"visit_year": str(date.today().year)}, "Choose both the month and the year"),
])
def test_bad_answers_get_friendly_sentences_never_a_500(
    client: FlaskClient, app: Flask, fields: dict[str, str], message: str
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    page, _ = send(client, slug, 400, text="kept words", **fields)
    assert message in page.text
    assert "kept words" in page.text
    assert not reviews()


def test_a_visit_month_cannot_be_in_the_future_or_over_three_years_ago(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    this_month = current_month()
    future = months_before(this_month, -1)
    if future.year == this_month.year:  # next month is only choosable within this year
        page, _ = send(client, slug, 400, respect="4", visit_month=str(future.month),
                       visit_year=str(future.year))
        assert "cannot be in the future" in page.text
    old = months_before(this_month, 37)
    if old.year >= months_before(this_month, 36).year:
        page, _ = send(client, slug, 400, respect="4", visit_month=str(old.month),
                       visit_year=str(old.year))
        assert "last three years" in page.text
    oldest = months_before(this_month, 36)
    send(client, slug, respect="4", visit_month=str(oldest.month), visit_year=str(oldest.year))
    assert only_review().visit_month == oldest


@pytest.mark.parametrize("token", [None, "", "forged-token-value"])
def test_a_missing_or_forged_csrf_token_is_a_friendly_400_that_keeps_the_text(
    client: FlaskClient, app: Flask, token: str | None
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    hidden = open_form(client, slug)
    if token is None:
        del hidden["csrf_token"]
    else:
        hidden["csrf_token"] = token
    page, html = send(client, slug, 400, hidden=hidden, respect="2", text="words to keep")
    assert "nothing was sent" in page.text
    # Not the writer's mistake: the heading does not ask them to check their answers.
    assert "Not sent yet" in page.text
    assert "Please check" not in page.text
    assert "words to keep" in page.text
    assert "checked" in page.all("input", name="respect", value="2")[0]
    assert page.all("a", id="quick-exit")
    assert not reviews()
    # Withdrawing without a token is refused the same friendly way.
    response = client.post("/reviews/withdraw", data={"code": "a b c d e f"})
    assert response.status_code == 400
    assert "nothing was sent" in response.get_data(as_text=True)


def test_a_replayed_form_adds_nothing(client: FlaskClient, app: Flask) -> None:
    slug = make_clinic().slug
    db.session.commit()
    hidden = open_form(client, slug)
    send(client, slug, hidden=hidden, respect="1", text="once")
    page, _ = send(client, slug, 409, hidden=hidden, respect="1", text="once")
    assert "already sent" in page.text
    page, _ = send(client, slug, 409, hidden=hidden, respect="5", text="changed")
    assert len(reviews()) == 1


def test_form_tokens_from_elsewhere_too_fast_or_too_old_are_refused_kindly(
    client: FlaskClient, app: Flask
) -> None:
    first = make_clinic()
    other = make_clinic()
    db.session.commit()
    hidden = open_form(client, first.slug)
    cases = [
        (issue_form_token(other.id, time.time() - 60), "could not be checked"),
        (issue_form_token(first.id, time.time() - 2 * 3600 - 5), "more than two hours"),
        (hidden["form_token"][:-3] + "abc", "could not be checked"),
        ("", "could not be checked"),
    ]
    for token, message in cases:
        page, _ = send(client, first.slug, 400, hidden={**hidden, "form_token": token},
                       respect="3", text="still here")
        assert message in page.text
        assert "still here" in page.text
    app.config["REVIEW_MIN_SECONDS"] = 3
    page, html = send(client, first.slug, 400, hidden=open_form(client, first.slug),
                      respect="3")
    assert "sent very fast" in page.text
    assert not reviews()


def test_the_honeypot_pretends_success_and_stores_nothing(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    page, html = send(client, slug, **GOOD, confirm_site="http://spam.example/")
    assert "your review was received" in page.text
    code_on(html)
    assert not reviews()


def test_html_and_script_in_the_text_are_shown_escaped_never_run(
    client: FlaskClient, app: Flask
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    # Escaped when the form comes back with an error…
    _page, html = send(client, slug, 400, text=HOSTILE, respect="9")
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # …and on the public pages once approved.
    send(client, slug, text=HOSTILE + "\x00\x07 end", respect="3")
    review = only_review()
    assert "\x00" not in (review.text or "")
    approve(review)
    for url in (f"/clinics/{slug}", f"/clinics/{slug}/reviews"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert(1)" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert HOSTILE in Page(html).text


# --- Withdrawal -----------------------------------------------------------------------


def test_a_wrong_code_says_so_and_reveals_nothing_about_which_reviews_exist(
    client: FlaskClient, app: Flask
) -> None:
    location = make_clinic()
    db.session.commit()
    csrf = open_form(client, location.slug)["csrf_token"]

    def attempt(code: str) -> tuple[int, str]:
        response = client.post("/reviews/withdraw", data={"csrf_token": csrf, "code": code})
        html = response.get_data(as_text=True).replace(code, "CODE")
        html = re.sub(r'value="[^"]*" name="csrf_token"|name="csrf_token" type="hidden" '
                      r'value="[^"]*"', "CSRF", html)
        html = re.sub(r"nonce-[^'\"]+|nonce=\"[^\"]+\"", "NONCE", html)
        return response.status_code, html

    before = attempt("abacus abdomen abide abiding ability ablaze")
    for word in ("one", "two", "three", "four", "five"):
        review = make_review(location, status=PENDING, text="x")
        review.withdrawal_hash = code_hash(f"real code {word}", app.config["SECRET_KEY"])
        if word != "one":
            approve(review)
    db.session.commit()
    withdrawn = attempt("real code two")
    assert withdrawn[0] == 303
    after = [attempt(c) for c in ("abacus abdomen abide abiding ability ablaze",
                                  "real code two", "zzz", "real code nine")]
    assert before[0] == 404
    assert all(a == before for a in after), "every wrong code gets the same page"
    assert "could not find a review with that code" in before[1]
    empty = client.post("/reviews/withdraw", data={"csrf_token": csrf, "code": " - "})
    assert empty.status_code == 400
    assert "Type the six words" in empty.get_data(as_text=True)


# --- What is stored, and what is not -------------------------------------------------


def _plain_forms(address: str) -> list[str]:
    """The address as text, as a number, in hex, reversed, and under common plain hashes."""
    packed = ipaddress.ip_address(address).packed
    forms = [address, str(int(ipaddress.ip_address(address))), packed.hex(),
             ".".join(reversed(address.split("."))), address.replace(".", "-"),
             address.replace(".", "_")]
    for name in ("md5", "sha1", "sha256"):
        for value in (address.encode(), packed):
            forms.append(hashlib.new(name, value).hexdigest())
            forms.append(hashlib.new(name, value).hexdigest()[:32])
    return forms


def test_after_the_journey_no_trace_of_the_address_and_no_day_or_time_on_reviews(
    settings: Settings, app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    limited = create_app(replace(settings, extra={
        **settings.extra, "RATELIMIT_ENABLED": True, "REVIEW_MIN_SECONDS": 0}))
    client = limited.test_client()
    location = make_clinic("Trace Clinic")
    db.session.commit()
    slug = location.slug
    client.get("/clinics?near=10011", environ_base=ENV)
    codes = []
    for i in range(3):
        _page, html = send(client, slug, **GOOD, text=f"visit {i}", visit_month="1",
                           visit_year=str(current_month().year))
        codes.append(code_on(html))
    for review in reviews():
        approve(review)
    csrf = open_form(client, slug)["csrf_token"]
    client.post("/reviews/withdraw", data={"csrf_token": csrf, "code": codes[0]},
                environ_base=ENV)
    client.post("/reviews/withdraw", data={"csrf_token": csrf, "code": "wrong"},
                environ_base=ENV)
    client.get(f"/clinics/{slug}", environ_base=ENV)
    with limited.app_context():
        rejected = make_review(db.session.get(type(location), location.id), status=REJECTED)
        db.session.commit()
        assert rejected.id

    # Every table, every row.
    dump = []
    for table in db.metadata.sorted_tables:
        dump += [repr(tuple(row)) for row in db.session.execute(table.select())]
    text = "\n".join(dump)
    log_text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    kept = getattr(limiter.storage, "storage", {})
    # The limiter did count these requests, under keys that are hashes, not addresses.
    assert kept
    assert all(re.search(r"[0-9a-f]{32}", key) for key in kept)
    stores = repr(kept) + repr(getattr(limiter.storage, "expirations", ""))
    with limited.app_context():
        stores += repr(ephemeral_store().__dict__)
    for form in _plain_forms(ADDRESS):
        assert form not in text, f"database holds {form!r}"
        assert form not in log_text, f"logs hold {form!r}"
        assert form not in stores, f"limiter storage holds {form!r}"

    # Reviews carry months only: no time columns, and every date is a first of the month.
    columns = Review.__table__.columns
    assert not [c.name for c in columns if isinstance(c.type, sa.DateTime)]
    date_columns = [c.name for c in columns if isinstance(c.type, sa.Date)]
    assert set(date_columns) == {"received_month", "visit_month"}
    rows = db.session.execute(sa.select(*[columns[n] for n in date_columns])).all()
    assert rows
    for row in rows:
        for value in row:
            assert value is None or (type(value) is date and value.day == 1), value
    # Nothing else identifying: the review table's columns are exactly these.
    assert {c.name for c in columns} == {
        "id", "location_id", "status", "received_month", "visit_month", "service_code",
        "respect", "open_about_work", "asked_for_id", "cost_affordable", "privacy",
        "gender_respected", "would_recommend", "text", "withdrawal_hash", "reject_reason"}


def test_the_clinic_page_shows_the_newest_months_first_and_pages_the_rest(
    client: FlaskClient, app: Flask
) -> None:
    location = make_clinic()
    for i in range(14):
        approve(make_review(location, received_month=date(2025, 1 + i % 12, 1),
                            text=f"review number {i}", respect=4))
    make_review(location, status=PENDING, text="pending words")
    make_review(location, status=REJECTED, text="rejected words")
    db.session.commit()
    page, html = clinic_page(client, location.slug)
    months = re.findall(r"shared (\w+ \d{4})", page.text)
    assert len(months) == 10
    parsed = [time.strptime(m, "%B %Y") for m in months]
    assert parsed == sorted(parsed, reverse=True)
    assert "pending words" not in html
    assert "rejected words" not in html
    assert f"/clinics/{location.slug}/reviews" in html
    listing = Page(client.get(f"/clinics/{location.slug}/reviews").get_data(as_text=True))
    assert len(re.findall(r"review number \d+", listing.text)) == 14
    assert client.get(f"/clinics/{location.slug}/reviews?page=9").status_code == 404
    assert client.get(f"/clinics/{location.slug}/reviews?page=x").status_code == 404


def test_review_pages_allow_zoom_have_quick_exit_and_run_only_nonced_scripts(
    client: FlaskClient, app: Flask
) -> None:
    location = make_clinic()
    db.session.commit()
    _page, thanks = send(client, location.slug, respect="4")
    pages = [client.get(f"/clinics/{location.slug}/review"), client.get("/reviews/withdraw"),
             client.get("/reviews/withdrawn"), client.get(f"/clinics/{location.slug}/reviews")]
    for response in pages:
        html = response.get_data(as_text=True)
        page = Page(html)
        assert response.status_code == 200
        assert not re.search(r"\son[a-z]+\s*=", html)
        nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])
        assert nonce
        for attrs, _code in page.scripts:
            assert attrs.get("nonce") == nonce.group(1)
        assert page.all("a", id="quick-exit")
        assert "user-scalable" not in html
        # A discreet title: nothing about reviews of sex workers' clinics in a tab.
        assert "sex" not in page.title.lower()
        assert response.headers["Cache-Control"] == "no-store"
    assert not re.search(r"\son[a-z]+\s*=", thanks)
