"""Re-importing newer public data never loses a moderator's edits.

Uses a copy of the real seed files (data/raw) with one phone number changed, in tmp_path;
the moderator and the correction are synthetic.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from directory import suggestions
from directory.extensions import db
from directory.importer import run_import
from directory.models import (
    PENDING,
    CostOption,
    Language,
    Location,
    RequiredDocument,
    Schedule,
    ServiceAtLocation,
    Suggestion,
)
from tests.moderation_helpers import make_moderator

REAL_DATA = Path(__file__).resolve().parent.parent / "data" / "raw"
NEW_PHONE = "(212) 555-0142"


def _digits_pattern(phone: str) -> re.Pattern[str]:
    """The ten digits of a phone number with any separators between them."""
    digits = re.sub(r"\D", "", phone)[:10]
    return re.compile(r"\D{0,3}".join(digits))


def _listing_with_a_phone_in_one_place() -> tuple[Location, Path, str]:
    """A listing whose phone appears exactly once in all the seed files: (it, file, text)."""
    texts = {path: path.read_text(encoding="utf-8", errors="replace")
             for path in sorted(REAL_DATA.iterdir()) if path.suffix in (".csv", ".json")}
    for location in db.session.execute(
            select(Location).where(Location.phone.is_not(None)).order_by(Location.id)
    ).scalars():
        pattern = _digits_pattern(location.phone or "")
        hits = [(path, m.group(0)) for path, text in texts.items()
                for m in pattern.finditer(text)]
        if len(hits) == 1:
            return location, hits[0][0], hits[0][1]
    raise AssertionError("no listing with a phone number found once")


def _pending_from_public_data() -> list[Suggestion]:
    return list(db.session.execute(select(Suggestion).where(
        Suggestion.notes == suggestions.PUBLIC_DATA_CHANGED,
        Suggestion.status == PENDING)).scalars())


def test_a_moderators_correction_survives_a_reimport_and_conflicts_are_queued(
        app: Flask, tmp_path: Path) -> None:
    run_import(REAL_DATA, db.session)
    db.session.commit()
    location, path, written = _listing_with_a_phone_in_one_place()
    public_phone = location.phone
    moderator = make_moderator()
    correction = suggestions.new_suggestion("correction", location.id, {"phone": NEW_PHONE},
                                            "visited", None)
    suggestions.approve(correction, moderator)
    db.session.commit()

    # The same public data again: it still says the old number, which is no news.
    run_import(REAL_DATA, db.session)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Location, location.id).phone == NEW_PHONE  # type: ignore[union-attr]
    assert _pending_from_public_data() == []

    # Newer public data with another number for this listing.
    copy = tmp_path / "raw"
    shutil.copytree(REAL_DATA, copy)
    changed = copy / path.name
    digits = iter("7185550177")  # the same separators, other digits
    other = re.sub(r"\d", lambda _: next(digits), written)
    changed.write_text(changed.read_text(encoding="utf-8", errors="replace").replace(
        written, other), encoding="utf-8")
    for _ in range(2):  # twice: the conflict is filed once, never twice
        run_import(copy, db.session)
        db.session.commit()
    db.session.expire_all()
    kept = db.session.get(Location, location.id)
    assert kept is not None
    assert kept.phone == NEW_PHONE
    phone = next(p for p in kept.provenance if p.field == "phone")
    assert phone.source.key == suggestions.MODERATORS_SOURCE
    queued = _pending_from_public_data()
    assert len(queued) == 1
    assert queued[0].location_id == location.id
    assert queued[0].kind == "correction"
    assert queued[0].payload == '{"phone": "(718) 555-0177"}'
    assert public_phone != NEW_PHONE


def _counts() -> dict[str, int]:
    return {model.__tablename__: int(db.session.execute(
        select(func.count()).select_from(model)).scalar_one())
        for model in (ServiceAtLocation, Schedule, Language, CostOption, RequiredDocument)}


def test_a_rechecked_listing_is_neither_overwritten_nor_doubled(app: Flask) -> None:
    run_import(REAL_DATA, db.session)
    db.session.commit()
    before = _counts()
    location = db.session.execute(
        select(Location).join(Location.services).order_by(Location.id).limit(1)
    ).scalars().first()
    assert location is not None
    suggestions.still_correct(location, make_moderator())
    db.session.commit()
    run_import(REAL_DATA, db.session)
    db.session.commit()
    assert _counts() == before
    db.session.expire_all()
    again = db.session.get(Location, location.id)
    assert again is not None
    source = suggestions.moderators_source()
    assert all(sal.source_id == source.id for sal in again.services)
    assert all(p.source_id == source.id for p in again.provenance)
    assert _pending_from_public_data() == []
