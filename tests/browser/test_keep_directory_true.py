"""Keeping the directory true, on a phone in Chromium: a correction, checked, then published.

A person taps "Something wrong?" on a clinic's page, gives the new phone number and a note
(with markup in it), and sends; the public page does not change. A moderator in a second
browser signs in with password and TOTP, sees the listing's phone next to the suggested one
(the note shown as text, never run), and approves; the public page shows the new phone from
the moderators' source, verified this month, and the listing's history keeps the old phone.
Every page of both browsers is watched for console errors, CSP violations, script errors,
dialogs and requests leaving 127.0.0.1.

The clinic, the correction and the moderator are synthetic, made only in this test's own
SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from directory import create_app
from directory.config import Settings
from directory.extensions import db
from directory.models import APPROVED, PENDING, Location, Suggestion
from directory.suggestions import current_month
from tests.browser.conftest import Phone, serve
from tests.factories import make_clinic
from tests.moderation_helpers import CHEAP_ARGON2, PASSWORD, make_moderator

pytestmark = pytest.mark.browser

CLINIC = "Synthetic Correction Journey Clinic"
MODERATOR = "synthetic-correction-mod"
OLD_PHONE, NEW_PHONE = "(212) 555-0100", "212-555-0142"
# Markup that would run (and so raise a dialog or a CSP violation) if shown unescaped.
HOSTILE = "<img src=x onerror=alert(1)>"
NOTES = f"They changed numbers last month. {HOSTILE}"


@dataclass(frozen=True)
class Site:
    """The live site, its one clinic and its moderator's TOTP secret."""

    url: str
    slug: str
    location_id: int
    totp_secret: str
    app: Flask

    @property
    def clinic(self) -> str:
        return f"{self.url}/clinics/{self.slug}"


@pytest.fixture
def site(tmp_path: Path, neutral_site: str) -> Iterator[Site]:
    """A clinic and a moderator served on 127.0.0.1, with the form's minimum time off.

    The community forms share the review form's token check, so REVIEW_MIN_SECONDS is
    the key that lets a tapping robot send faster than a person could.
    """
    app = create_app(Settings(
        env="testing",
        secret_key="browser-correction-secret-not-for-production",
        database_url=f"sqlite:///{tmp_path / 'keep-directory-true.db'}",
        map_tiles_url="",
        quick_exit_url=f"{neutral_site}/",
        testing=True,
        extra={"RATELIMIT_ENABLED": False, "REVIEW_MIN_SECONDS": 0, **CHEAP_ARGON2},
    ))
    with app.app_context():
        db.create_all()
        location = make_clinic(CLINIC, services=("hiv_testing",), phone=OLD_PHONE)
        slug, location_id = location.slug, location.id
        secret = make_moderator(MODERATOR).totp_secret
        db.session.commit()
        db.session.remove()
    try:
        with serve(app) as url:
            yield Site(url, slug, location_id, secret, app)
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


def stored(site: Site) -> tuple[str | None, str, str | None]:
    """The listing's phone, and the one suggestion's status and notes, as they are now."""
    with site.app.app_context():
        phone = db.session.get(Location, site.location_id).phone  # type: ignore[union-attr]
        suggestion = db.session.execute(sa.select(Suggestion)).scalar_one()
        return phone, suggestion.status, suggestion.notes


def sign_in(desk: Phone, site: Site) -> None:
    """The moderator signs in with password and a current TOTP code."""
    page = desk.page
    page.goto(f"{site.url}/moderation/login")
    page.locator("#username").fill(MODERATOR)
    page.locator("#password").fill(PASSWORD)
    page.locator("#code").fill(pyotp.TOTP(site.totp_secret).now())
    page.locator('form[action="/moderation/login"] button[type="submit"]').tap()
    expect(page).to_have_url(f"{site.url}/moderation/")


def test_a_phone_correction_is_checked_by_a_moderator_then_published_with_its_source(
    site: Site, open_phone: Callable[..., Phone]
) -> None:
    person = open_phone()
    page = person.page
    assert page.viewport_size == {"width": 390, "height": 844}

    # The person taps "Something wrong?" on the clinic page and gives the new number.
    page.goto(site.clinic)
    expect(page.locator("body")).to_contain_text(OLD_PHONE)
    page.locator(f'a[href="/clinics/{site.slug}/correct"]').first.tap()
    expect(page).to_have_url(f"{site.clinic}/correct")
    expect(page.locator("h1")).to_have_text("Something wrong?")
    page.locator("#phone").tap()
    page.locator("#phone").fill(NEW_PHONE)
    page.locator("#notes").tap()
    page.locator("#notes").fill(NOTES)
    page.locator('#community-form button[type="submit"]').tap()
    expect(page.locator(".form-problems")).to_have_count(0)
    assert stored(site) == (OLD_PHONE, PENDING, NOTES)

    # Nothing changes on the public page until a moderator approves.
    page.goto(site.clinic)
    expect(page.locator("body")).to_contain_text(OLD_PHONE)
    expect(page.locator("body")).not_to_contain_text(NEW_PHONE)

    # A moderator, in a browser of their own, opens the corrections queue.
    moderator = open_phone()
    desk = moderator.page
    sign_in(moderator, site)
    desk.goto(f"{site.url}/moderation/suggestions?kind=correction")
    card = desk.locator('li[id^="suggestion-"]')
    expect(card).to_have_count(1)
    phone_row = card.locator("table.diff tbody tr", has_text="Phone")
    expect(phone_row.locator("del")).to_have_text(OLD_PHONE)
    expect(phone_row.locator("ins")).to_have_text(NEW_PHONE)
    # The note's markup is shown as text: no <img> element, no dialog.
    expect(card.locator(".review-text")).to_have_text(NOTES)
    expect(card.locator(".review-text img")).to_have_count(0)
    history = card.locator('a[href$="/history"]').get_attribute("href")
    assert history == f"/moderation/clinics/{site.location_id}/history"
    card.locator('form[action$="/approve"] button[type="submit"]').tap()
    expect(desk).to_have_url(f"{site.url}/moderation/suggestions?kind=correction")
    expect(desk.locator('li[id^="suggestion-"]')).to_have_count(0)
    assert stored(site)[:2] == (NEW_PHONE, APPROVED)

    # The public page shows the new number, from the moderators' source, verified this month.
    page.goto(site.clinic)
    expect(page.locator("body")).to_contain_text(NEW_PHONE)
    expect(page.locator("body")).not_to_contain_text(OLD_PHONE)
    phone_source = page.locator("#contact-heading ~ p.source", has_text="Phone")
    expect(phone_source).to_contain_text("Community report, moderator-checked")
    expect(phone_source).to_contain_text(f"last verified {current_month():%B %Y}")
    expect(page.locator("body")).not_to_contain_text(HOSTILE)

    # The listing's history keeps the phone number as it was before.
    desk.goto(f"{site.url}{history}")
    revision = desk.locator("#revision-1")
    expect(revision).to_contain_text(f"Phone: {OLD_PHONE}")
    expect(revision).to_contain_text("before correcting phone")
    expect(desk.locator("body")).to_contain_text(f"Phone: {NEW_PHONE}")

    # Nothing went wrong behind the scenes in either browser: no errors, no dialogs.
    person.assert_quiet()
    moderator.assert_quiet()
