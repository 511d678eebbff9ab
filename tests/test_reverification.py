"""The re-verification queue: stale listings enter it on the right day, and "still correct".

Every clinic and moderator here is synthetic and lives only in the test database.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from directory import suggestions
from directory.config import Settings
from directory.extensions import db
from directory.models import AuditEntry, ListingRevision, Location
from tests.factories import make_clinic, make_source
from tests.moderation_helpers import cheap_hashing, make_moderator, post, sign_in

VERIFIED = date(2025, 12, 1)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


def ids(on: date, days: int = 180) -> list[int]:
    return [item.location.id for item in suggestions.stale_listings(on, days)]


def test_a_listing_enters_the_queue_the_day_after_it_turns_stale(app: Flask) -> None:
    clinic = make_clinic(source=make_source(as_of=VERIFIED), languages=("en",),
                         hours={"Mo": [(540, 1020)]})
    db.session.commit()
    assert ids(VERIFIED + timedelta(days=180)) == []
    assert ids(VERIFIED + timedelta(days=181)) == [clinic.id]
    # The number of days is a setting.
    assert ids(VERIFIED + timedelta(days=31), days=30) == [clinic.id]
    assert ids(VERIFIED + timedelta(days=30), days=30) == []


def test_the_days_come_from_config(app: Flask) -> None:
    assert suggestions.reverify_days({}) == 180
    assert suggestions.reverify_days({"REVERIFY_AFTER_DAYS": 90}) == 90


def test_oldest_first_and_closure_reports_rise_to_the_top(app: Flask) -> None:
    old = make_clinic(source=make_source("old", as_of=date(2024, 1, 1)))
    older = make_clinic(source=make_source("older", as_of=date(2023, 1, 1)))
    fresh = make_clinic(source=make_source("fresh", as_of=date(2026, 11, 1)))
    on = date(2026, 11, 20)
    assert ids(on) == [older.id, old.id]
    suggestions.new_suggestion("closure", fresh.id, {}, None, None)
    assert ids(on) == [older.id, old.id]  # one report is not enough
    suggestions.new_suggestion("closure", fresh.id, {}, "visited", None)
    suggestions.new_suggestion("closure", old.id, {}, None, None)
    suggestions.new_suggestion("closure", old.id, {}, None, None)
    assert ids(on) == [old.id, fresh.id, older.id]


def test_still_correct_renews_every_fact_and_leaves_the_queue(client: FlaskClient,
                                                             app: Flask) -> None:
    clinic = make_clinic(source=make_source(as_of=date(2024, 1, 1)), languages=("es",),
                         cost={"free": True}, documents={"id": False},
                         hours={"Tu": [(600, 960)]})
    moderator = make_moderator()
    db.session.commit()
    sign_in(client, moderator)
    page = client.get("/moderation/reverify").get_data(as_text=True)
    assert clinic.name in page
    assert "Still correct" in page
    response = post(client, f"/moderation/reverify/{clinic.id}/still-correct",
                    page="/moderation/reverify")
    assert response.status_code == 302
    db.session.expire_all()
    location = db.session.get(Location, clinic.id)
    assert location is not None
    assert location.moderator_checked
    assert suggestions.oldest_verified(location) == suggestions.today()
    sal = location.services[0]
    for row in [sal, *sal.languages, *sal.cost_options, *sal.required_documents,
                *sal.schedules]:
        assert row.source_id == suggestions.moderators_source().id
    assert ids(suggestions.today()) == []
    assert db.session.execute(select(ListingRevision)).scalar_one().location_id == clinic.id
    entry = db.session.execute(
        select(AuditEntry).where(AuditEntry.item_type == "listing")).scalar_one()
    assert entry.decision == "still correct"
    assert entry.moderator_id == moderator.id
    assert "Community report, moderator-checked" in client.get(
        f"/clinics/{clinic.slug}").get_data(as_text=True)


def test_closed_listings_are_not_in_the_queue(app: Flask) -> None:
    make_clinic(source=make_source(as_of=date(2020, 1, 1)), status="closed")
    assert ids(date(2026, 11, 20)) == []


def test_old_facts_still_say_call_before_you_go(client: FlaskClient, app: Flask) -> None:
    clinic = make_clinic(source=make_source(as_of=date(2020, 1, 1)))
    db.session.commit()
    assert "call before you go" in client.get(f"/clinics/{clinic.slug}").get_data(
        as_text=True)
