"""The moderators' audit log: who did what to which item, and why. Append-only.

Entries are only ever added; the database refuses updates and deletes (see the triggers
in models.py), so no route, bug or moderator can rewrite the record. An entry never holds
text a reviewer wrote, nor anything about the person at the other end of a request.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from directory.extensions import db
from directory.models import AuditEntry, Moderator

# Actions, as stored in audit_entry.action.
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
SIGN_OUT_EVERYWHERE = "sign_out_everywhere"
CHANGE_PASSWORD = "change_password"  # noqa: S105 (an action name, not a password)
APPROVE = "approve"
REJECT = "reject"
REDACT = "redact"
CREATE_MODERATOR = "create_moderator"
DISABLE_MODERATOR = "disable_moderator"
UNLOCK_MODERATOR = "unlock_moderator"

ACTION_LABELS: dict[str, str] = {
    SIGN_IN: "signed in",
    SIGN_IN_FAILED: "failed to sign in",
    SIGN_OUT: "signed out",
    SIGN_OUT_EVERYWHERE: "signed out everywhere",
    CHANGE_PASSWORD: "changed password",
    APPROVE: "approved",
    REJECT: "rejected",
    REDACT: "redacted",
    CREATE_MODERATOR: "created moderator",
    DISABLE_MODERATOR: "disabled moderator",
    UNLOCK_MODERATOR: "unlocked moderator",
}

PER_PAGE = 100


def record(
    moderator: Moderator | None,
    action: str,
    item_type: str,
    item_id: int | None = None,
    decision: str | None = None,
    reason: str | None = None,
) -> AuditEntry:
    """Add one entry (moderator None means the command line); never commits."""
    entry = AuditEntry(
        moderator_id=moderator.id if moderator is not None else None,
        action=action,
        item_type=item_type,
        item_id=item_id,
        decision=decision,
        reason=reason,
    )
    db.session.add(entry)
    return entry


def entries(page: int = 1, per_page: int = PER_PAGE) -> list[AuditEntry]:
    """One page of the log, newest first, with each entry's moderator loaded."""
    page = max(page, 1)
    return list(
        db.session.execute(
            select(AuditEntry)
            .options(selectinload(AuditEntry.moderator))
            .order_by(AuditEntry.id.desc())
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).scalars()
    )


def count() -> int:
    """How many entries the log holds."""
    return int(db.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one())
