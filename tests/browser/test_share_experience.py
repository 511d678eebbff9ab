"""Sharing an experience on a phone, in Chromium: review, moderation, publication, withdrawal.

A person taps through the review form on a phone-sized screen and keeps the code; a
moderator in a second browser signs in with password and TOTP, blanks out the name and
phone number the helper flags, and approves; the person sees the review public with its
month only, then withdraws it with the code. Every page of both browsers is watched for
console errors, CSP violations, script errors, dialogs and requests leaving 127.0.0.1.

The clinic, the review and the moderator are synthetic, made only in this test's own
SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from directory import create_app
from directory.config import Settings
from directory.extensions import db
from directory.hours import NEW_YORK
from directory.models import PENDING, PUBLISHED, WITHDRAWN, Review
from directory.reviews import current_month
from tests.browser.conftest import Phone, serve
from tests.factories import make_clinic
from tests.moderation_helpers import CHEAP_ARGON2, PASSWORD, make_moderator

pytestmark = pytest.mark.browser

CLINIC = "Synthetic Phone Journey Clinic"
MODERATOR = "synthetic-phone-mod"
ANSWERS = {"respect": "5", "open_about_work": "4", "asked_for_id": "no",
           "cost_affordable": "4", "privacy": "5", "gender_respected": "5",
           "would_recommend": "4"}
NAME, PHONE = "Dana Whitfield", "212-555-0199"
# Markup that would run (and so raise a dialog or a CSP violation) if shown unescaped.
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)>"
TEXT = f"Kind staff, no lectures. Ask the nurse {NAME}, or call {PHONE}. {MARKUP}"
REDACTED = TEXT.replace(NAME, "[removed]").replace(PHONE, "[removed]")


@dataclass(frozen=True)
class Site:
    """The live site, its one clinic and its moderator's TOTP secret."""

    url: str
    slug: str
    totp_secret: str
    app: Flask

    @property
    def clinic(self) -> str:
        return f"{self.url}/clinics/{self.slug}"


@pytest.fixture
def site(tmp_path: Path, neutral_site: str) -> Iterator[Site]:
    """A clinic and a moderator served on 127.0.0.1, with the form's minimum time off.

    REVIEW_MIN_SECONDS is the config key the review form offers tests: a tapping robot
    is faster than the three seconds a person needs, and the test should not sleep.
    """
    app = create_app(Settings(
        env="testing",
        secret_key="browser-journey-secret-not-for-production",
        database_url=f"sqlite:///{tmp_path / 'share-experience.db'}",
        map_tiles_url="",
        quick_exit_url=f"{neutral_site}/",
        testing=True,
        extra={"RATELIMIT_ENABLED": False, "REVIEW_MIN_SECONDS": 0, **CHEAP_ARGON2},
    ))
    with app.app_context():
        db.create_all()
        slug = make_clinic(CLINIC, services=("hiv_testing", "prep")).slug
        secret = make_moderator(MODERATOR).totp_secret
        db.session.commit()
        db.session.remove()
    try:
        with serve(app) as url:
            yield Site(url, slug, secret, app)
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


def stored_review(site: Site) -> Review:
    """The one review in the database, as it is now."""
    with site.app.app_context():
        review = db.session.execute(sa.select(Review)).scalar_one()
        db.session.expunge(review)
        return review


def test_a_review_left_on_a_phone_is_moderated_published_by_month_and_withdrawn(
    site: Site, open_phone: Callable[..., Phone]
) -> None:
    person = open_phone()
    page = person.page
    assert page.viewport_size == {"width": 390, "height": 844}

    # The person taps from the clinic page into the form and through every question.
    page.goto(site.clinic)
    page.locator(f'a[href="/clinics/{site.slug}/review"]').first.tap()
    expect(page).to_have_url(f"{site.clinic}/review")
    for question, value in ANSWERS.items():
        option = page.locator(f'input[type="radio"][name="{question}"][value="{value}"]')
        page.locator("label", has=option).tap()
        expect(option).to_be_checked()
    page.locator("#service").select_option("prep")
    page.locator("#text").tap()
    page.locator("#text").fill(TEXT)
    page.locator('#review-form button[type="submit"]').tap()

    # The code is shown once, in the page only: not in the address bar, not in a cookie.
    words = page.locator(".code-word")
    expect(words).to_have_count(6)
    code = " ".join(words.all_inner_texts())
    assert all(word not in page.url for word in code.split())
    cookies = " ".join(c["value"] for c in page.context.cookies())
    assert all(word not in cookies for word in code.split())
    assert stored_review(site).status == PENDING

    # Not public yet.
    page.goto(site.clinic)
    expect(page.locator("body")).not_to_contain_text("Kind staff")
    expect(page.locator("li.review")).to_have_count(0)

    # A moderator, in a browser of their own, signs in with password and TOTP...
    moderator = open_phone()
    desk = moderator.page
    desk.goto(f"{site.url}/moderation/login")
    desk.locator("#username").fill(MODERATOR)
    desk.locator("#password").fill(PASSWORD)
    desk.locator("#code").fill(pyotp.TOTP(site.totp_secret).now())
    desk.locator('form[action="/moderation/login"] button[type="submit"]').tap()
    expect(desk).to_have_url(f"{site.url}/moderation/")

    # ...finds the review with the name and phone number flagged, blanks them, approves.
    card = desk.locator('li[id^="review-"]', has_text="Kind staff")
    expect(card.locator("mark", has_text=NAME)).to_be_visible()
    expect(card.locator("mark", has_text=PHONE)).to_be_visible()
    expect(card).to_contain_text(MARKUP)
    card.locator('a[href^="/moderation/reviews/"]').tap()
    for flagged in (NAME, PHONE):
        label = desk.locator("label", has=desk.locator('input[type="checkbox"]'),
                             has_text=flagged)
        label.tap()
        expect(label.locator('input[type="checkbox"]')).to_be_checked()
    desk.locator('form:has(input[name="remove"]) button[type="submit"]').tap()
    expect(desk).to_have_url(f"{site.url}/moderation/")
    expect(desk.locator('li[id^="review-"]')).to_have_count(0)
    published = stored_review(site)
    assert published.status == PUBLISHED
    assert published.text == REDACTED

    # The person sees it public: redacted, markup as text, the month and never the day.
    page.goto(site.clinic)
    review = page.locator("li.review")
    expect(review).to_have_count(1)
    expect(review).to_contain_text(REDACTED)
    month = current_month()
    expect(review).to_contain_text(f"{month:%B %Y}")
    html = page.content()
    assert NAME not in html
    assert PHONE not in html
    today = datetime.now(NEW_YORK).date()
    if today.day != 1:
        for day_precise in (today.isoformat(), f"{today:%B} {today.day},",
                            f"{today:%B} {today.day} ", f"{today.day} {today:%B}",
                            f"{today:%m/%d/%Y}"):
            assert day_precise not in html

    # With the code, the person takes it back; it is gone.
    page.locator('a[href="/reviews/withdraw"]').first.tap()
    expect(page).to_have_url(f"{site.url}/reviews/withdraw")
    page.locator("#code").tap()
    page.locator("#code").fill(code)
    page.locator('form[action="/reviews/withdraw"] button[type="submit"]').tap()
    expect(page).to_have_url(f"{site.url}/reviews/withdrawn")
    page.goto(site.clinic)
    expect(page.locator("li.review")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("Kind staff")
    gone = stored_review(site)
    assert gone.status == WITHDRAWN
    assert gone.text is None

    # Nothing went wrong behind the scenes in either browser: no errors, no dialogs.
    person.assert_quiet()
    moderator.assert_quiet()
