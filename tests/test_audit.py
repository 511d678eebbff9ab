"""The audit log: every action recorded, readable by moderators, unchangeable by anyone.

The guard is in the database (triggers on SQLite and PostgreSQL), so these tests run
raw SQL past the application to show the database itself refuses.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from directory import audit
from directory.config import Settings
from directory.extensions import db
from directory.models import AuditEntry
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import cheap_hashing, make_moderator, post, sign_in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


def test_record_adds_without_committing(app: Flask) -> None:
    moderator = make_moderator()
    db.session.commit()
    entry = audit.record(moderator, audit.APPROVE, "review", 7, decision="published")
    assert entry in db.session.new
    db.session.rollback()
    assert audit.count() == 0
    audit.record(moderator, audit.APPROVE, "review", 7, decision="published")
    audit.record(None, audit.CREATE_MODERATOR, "moderator", moderator.id, reason="command line")
    db.session.commit()
    newest, oldest = audit.entries()
    assert (newest.moderator, newest.reason) == (None, "command line")
    assert (oldest.moderator, oldest.item_id, oldest.decision) == (moderator, 7, "published")
    assert oldest.at is not None


def _one_entry() -> int:
    moderator = make_moderator()
    db.session.flush()
    entry = audit.record(moderator, audit.REJECT, "review", 1, decision="rejected",
                         reason="Spam or advertising")
    db.session.commit()
    return entry.id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET reason = 'nothing happened' WHERE id = :id",
        "UPDATE audit_entry SET moderator_id = NULL",
        "DELETE FROM audit_entry WHERE id = :id",
        "DELETE FROM audit_entry",
    ],
)
def test_the_database_refuses_updates_and_deletes(
    app: Flask, is_postgres: bool, statement: str
) -> None:
    entry_id = _one_entry()
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        db.session.execute(sa.text(statement), {"id": entry_id})
    db.session.rollback()
    entry = db.session.get(AuditEntry, entry_id)
    assert entry is not None
    assert entry.reason == "Spam or advertising"
    assert audit.count() == 1


def test_the_orm_cannot_change_an_entry_either(app: Flask) -> None:
    entry_id = _one_entry()
    entry = db.session.get(AuditEntry, entry_id)
    assert entry is not None
    entry.decision = "published"
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.get(AuditEntry, entry_id))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(AuditEntry, entry_id).decision == "rejected"  # type: ignore[union-attr]


def test_no_route_changes_or_removes_entries(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if "audit" in rule.rule:
            assert rule.methods is not None
            assert rule.methods <= {"GET", "HEAD", "OPTIONS"}, rule


def test_moderators_read_the_log_and_every_action_is_in_it(
    app: Flask, client: FlaskClient
) -> None:
    clinic = make_clinic()
    kept = make_review(clinic, text="Synthetic review kept")
    dropped = make_review(clinic, text="Synthetic review dropped")
    moderator = make_moderator("reader")
    db.session.commit()
    sign_in(client, moderator)
    post(client, f"/moderation/reviews/{kept.id}/approve")
    post(client, f"/moderation/reviews/{dropped.id}/reject", {"reason": "duplicate"})
    post(client, "/moderation/logout")
    sign_in(client, moderator, password="a-wrong-synthetic-password")
    entries = [(e.action, e.moderator_id, e.item_type, e.item_id, e.decision, e.reason)
               for e in db.session.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    assert entries == [
        (audit.SIGN_IN, moderator.id, "moderator", moderator.id, "signed in", None),
        (audit.APPROVE, moderator.id, "review", kept.id, "published", None),
        (audit.REJECT, moderator.id, "review", dropped.id, "rejected", "Duplicate"),
        (audit.SIGN_OUT, moderator.id, "moderator", moderator.id, None, None),
        (audit.SIGN_IN_FAILED, moderator.id, "moderator", moderator.id, "refused",
         "wrong password"),
    ]
    client2 = app.test_client()
    db.session.execute(sa.update(type(moderator)).values(last_totp_step=0))
    db.session.commit()
    sign_in(client2, moderator)
    html = client2.get("/moderation/audit").get_data(as_text=True)
    assert "6 entries" in html
    for words in ("signed in", "approved", "rejected", "Duplicate", "failed to sign in",
                  "wrong password", f"review #{kept.id}", "reader"):
        assert words in html
    # Reviewers' words never enter the log.
    assert "Synthetic review" not in html
