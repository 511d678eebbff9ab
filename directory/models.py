"""The directory's tables, shaped after Open Referral HSDS 3.0's core.

organization -> location -> service_at_location (joining a service to a location)
-> schedule, language, cost_option, required_document. Every fact row names its
source and the date it was last verified; tri-state facts (yes / no / unknown) are
nullable booleans where None means "not known yet", never "no".
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    DDL,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from directory.extensions import Model

# Statuses of a location. Closed sites keep their page but never appear in search.
ACTIVE = "active"
CLOSED = "closed"


class Source(Model):
    """A published dataset (or, later, a moderator check) that facts come from."""

    __tablename__ = "source"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    publisher: Mapped[str] = mapped_column(String(300))
    url: Mapped[str | None] = mapped_column(String(500))
    as_of: Mapped[date] = mapped_column(Date)
    # Free text such as "newest date inside the data"; shown on /about.
    as_of_note: Mapped[str] = mapped_column(Text, default="")
    licence: Mapped[str] = mapped_column(String(300), default="")
    caveats: Mapped[str] = mapped_column(Text, default="")


class Neighbourhood(Model):
    """A 2020 Neighborhood Tabulation Area, with the centroid used for name searches."""

    __tablename__ = "neighbourhood"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    borough: Mapped[str] = mapped_column(String(40))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)


class Organization(Model):
    """The body that runs one or more locations (HSDS organization)."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    website: Mapped[str | None] = mapped_column(String(500))

    locations: Mapped[list[Location]] = relationship(back_populates="organization")
    services: Mapped[list[Service]] = relationship(back_populates="organization")


class Location(Model):
    """A physical site where care is given: what a person walks into (HSDS location)."""

    __tablename__ = "location"
    __table_args__ = (
        # The bounding-box prefilter of every near search reads this index.
        Index("ix_location_lat_lng", "latitude", "longitude"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    # Normalised "address|zip" the importer merges on; stable across imports.
    import_key: Mapped[str] = mapped_column(String(300), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    address_1: Mapped[str] = mapped_column(String(300))
    address_2: Mapped[str | None] = mapped_column(String(300))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2), default="NY")
    postal_code: Mapped[str] = mapped_column(String(10), index=True)
    borough: Mapped[str | None] = mapped_column(String(40))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    # "site" when the coordinates are the building's; "zip" when only a ZIP centroid.
    coordinates_precision: Mapped[str] = mapped_column(String(8), default="site")
    neighbourhood_id: Mapped[int | None] = mapped_column(ForeignKey("neighbourhood.id"))
    phone: Mapped[str | None] = mapped_column(String(40))
    website: Mapped[str | None] = mapped_column(String(500))
    transit: Mapped[str | None] = mapped_column(Text)
    # What kind of place the source calls it ("Community Health Center", "Hospital").
    category: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE, index=True)
    # False until a CareMap moderator has checked the listing by hand.
    moderator_checked: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the listing last changed (partners sync with it); about clinics, not people.
    modified_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC), index=True
    )

    organization: Mapped[Organization] = relationship(back_populates="locations")
    neighbourhood: Mapped[Neighbourhood | None] = relationship()
    provenance: Mapped[list[Provenance]] = relationship(
        back_populates="location", cascade="all, delete-orphan"
    )
    services: Mapped[list[ServiceAtLocation]] = relationship(
        back_populates="location", cascade="all, delete-orphan"
    )


class Provenance(Model):
    """Where one of a location's own fields (address, phone, status…) comes from."""

    __tablename__ = "provenance"
    __table_args__ = (UniqueConstraint("location_id", "field"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    # One of: name, address, coordinates, phone, website, category, status.
    field: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"))
    verified_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(Text)

    location: Mapped[Location] = relationship(back_populates="provenance")
    source: Mapped[Source] = relationship()


class Service(Model):
    """A service an organization offers, tagged with one code of our taxonomy."""

    __tablename__ = "service"
    __table_args__ = (UniqueConstraint("organization_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organization.id"))
    code: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str] = mapped_column(String(200))

    organization: Mapped[Organization] = relationship(back_populates="services")


class ServiceAtLocation(Model):
    """A service offered at a location; owns that service's hours, languages and policies."""

    __tablename__ = "service_at_location"
    __table_args__ = (UniqueConstraint("service_id", "location_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("service.id"))
    location_id: Mapped[int] = mapped_column(
        ForeignKey("location.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"))
    verified_on: Mapped[date] = mapped_column(Date)
    # Why the source supports this service, when it is not stated as a plain field.
    note: Mapped[str | None] = mapped_column(Text)
    walk_in: Mapped[bool | None] = mapped_column(Boolean)
    telehealth: Mapped[bool | None] = mapped_column(Boolean)

    service: Mapped[Service] = relationship()
    location: Mapped[Location] = relationship(back_populates="services")
    source: Mapped[Source] = relationship()
    schedules: Mapped[list[Schedule]] = relationship(
        back_populates="service_at_location", cascade="all, delete-orphan"
    )
    languages: Mapped[list[Language]] = relationship(
        back_populates="service_at_location", cascade="all, delete-orphan"
    )
    cost_options: Mapped[list[CostOption]] = relationship(
        back_populates="service_at_location", cascade="all, delete-orphan"
    )
    required_documents: Mapped[list[RequiredDocument]] = relationship(
        back_populates="service_at_location", cascade="all, delete-orphan"
    )


class _FactMixin:
    """Columns every fact owned by a service-at-location carries."""

    id: Mapped[int] = mapped_column(primary_key=True)
    service_at_location_id: Mapped[int] = mapped_column(
        ForeignKey("service_at_location.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[int] = mapped_column(ForeignKey("source.id"))
    verified_on: Mapped[date] = mapped_column(Date)


class Schedule(_FactMixin, Model):
    """Weekly opening hours for one day (HSDS schedule: freq=WEEKLY, byday, opens/closes).

    Times are minutes after local midnight in America/New_York. A closing minute before
    the opening minute means the hours run past midnight into the next day; a closing
    minute of 1440 is midnight at the end of the day. A row with opens == closes (0, 0)
    records a day the source says is closed, so "closed" stays apart from "not known".
    """

    __tablename__ = "schedule"
    __table_args__ = (Index("ix_schedule_byday", "byday"),)

    byday: Mapped[str] = mapped_column(String(2))
    opens_minute: Mapped[int] = mapped_column(Integer)
    closes_minute: Mapped[int] = mapped_column(Integer)
    # The hours as the source wrote them, kept so a reader can check our reading.
    description: Mapped[str | None] = mapped_column(String(200))

    service_at_location: Mapped[ServiceAtLocation] = relationship(back_populates="schedules")


class Language(_FactMixin, Model):
    """A language staff speak for a service at a location."""

    __tablename__ = "language"
    __table_args__ = (Index("ix_language_code", "code"),)

    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(80))

    service_at_location: Mapped[ServiceAtLocation] = relationship(back_populates="languages")


class CostOption(_FactMixin, Model):
    """A way to pay (free, sliding fee, Medicaid…) and whether it is available."""

    __tablename__ = "cost_option"
    __table_args__ = (Index("ix_cost_option_option", "option"),)

    option: Mapped[str] = mapped_column(String(40))
    available: Mapped[bool | None] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(Text)

    service_at_location: Mapped[ServiceAtLocation] = relationship(back_populates="cost_options")


class RequiredDocument(_FactMixin, Model):
    """A document (ID, insurance card, proof of income) and whether it is asked for."""

    __tablename__ = "required_document"
    __table_args__ = (Index("ix_required_document_document", "document"),)

    document: Mapped[str] = mapped_column(String(40))
    required: Mapped[bool | None] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(Text)

    service_at_location: Mapped[ServiceAtLocation] = relationship(
        back_populates="required_documents"
    )


# --- Reviews: "no stink-eye" experiences, anonymous and moderated --------------------

PENDING = "pending"
PUBLISHED = "published"
REJECTED = "rejected"
WITHDRAWN = "withdrawn"
REVIEW_STATUSES = (PENDING, PUBLISHED, REJECTED, WITHDRAWN)


class Review(Model):
    """One person's experience of a clinic, answered on simple scales; all optional.

    Deliberately absent: any address, user agent, cookie id or precise time. The only
    dates are the month the review was received and, if given, the month of the visit,
    each stored as the first day of its month, so a clinic cannot match a review to a
    visit on a given day. Ratings are 1 (worst) to 5 (best).
    """

    __tablename__ = "review"
    __table_args__ = (
        Index("ix_review_status_location", "status", "location_id"),
        # A clinic's published reviews newest first, and the moderation queue oldest
        # first, are read in index order: a page never sorts all of a busy clinic's (or
        # the city's pending) reviews to show 10 of them. asked_for_id rides along so the
        # clinic page's "people report" counts from the index alone.
        Index("ix_review_location_status_month", "location_id", "status", "received_month",
              "id", "asked_for_id"),
        Index("ix_review_status_month", "status", "received_month", "id"),
        CheckConstraint("status IN ('pending', 'published', 'rejected', 'withdrawn')",
                        name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    received_month: Mapped[date] = mapped_column(Date)
    visit_month: Mapped[date | None] = mapped_column(Date)
    service_code: Mapped[str | None] = mapped_column(String(40))
    respect: Mapped[int | None] = mapped_column(Integer)
    open_about_work: Mapped[int | None] = mapped_column(Integer)
    asked_for_id: Mapped[bool | None] = mapped_column(Boolean)
    cost_affordable: Mapped[int | None] = mapped_column(Integer)
    privacy: Mapped[int | None] = mapped_column(Integer)
    gender_respected: Mapped[int | None] = mapped_column(Integer)
    would_recommend: Mapped[int | None] = mapped_column(Integer)
    # Redaction overwrites this text: the unredacted words are not kept anywhere.
    text: Mapped[str | None] = mapped_column(Text)
    # Keyed hash of the one-time withdrawal code; the code itself is shown once, never kept.
    withdrawal_hash: Mapped[str | None] = mapped_column(String(128), unique=True)
    reject_reason: Mapped[str | None] = mapped_column(String(64))

    location: Mapped[Location] = relationship()


class ClinicScore(Model):
    """Running sums of a clinic's published answers, kept in step with every decision, so
    a score update touches one row instead of rescanning the city's reviews."""

    __tablename__ = "clinic_score"

    location_id: Mapped[int] = mapped_column(ForeignKey("location.id"), primary_key=True)
    review_count: Mapped[int] = mapped_column(Integer, default=0)
    respect_sum: Mapped[int] = mapped_column(Integer, default=0)
    respect_count: Mapped[int] = mapped_column(Integer, default=0)
    # The summary questions' sums and counts, as JSON-free columns for plain SQL sorting.
    open_about_work_sum: Mapped[int] = mapped_column(Integer, default=0)
    open_about_work_count: Mapped[int] = mapped_column(Integer, default=0)
    privacy_sum: Mapped[int] = mapped_column(Integer, default=0)
    privacy_count: Mapped[int] = mapped_column(Integer, default=0)
    gender_respected_sum: Mapped[int] = mapped_column(Integer, default=0)
    gender_respected_count: Mapped[int] = mapped_column(Integer, default=0)
    cost_affordable_sum: Mapped[int] = mapped_column(Integer, default=0)
    cost_affordable_count: Mapped[int] = mapped_column(Integer, default=0)
    would_recommend_sum: Mapped[int] = mapped_column(Integer, default=0)
    would_recommend_count: Mapped[int] = mapped_column(Integer, default=0)
    asked_for_id_yes: Mapped[int] = mapped_column(Integer, default=0)
    asked_for_id_no: Mapped[int] = mapped_column(Integer, default=0)
    # No stored score: the shrunk score leans on the city-wide mean, which every decision
    # anywhere moves, so a stored copy would go stale at every other clinic. scores.py
    # computes it from these sums when read (in Python for a page, in SQL to sort).


# --- Moderation ---------------------------------------------------------------------

MODERATOR = "moderator"
ADMIN = "admin"


class Moderator(Model):
    """A trusted person who decides what the public sees. Created from the command line."""

    __tablename__ = "moderator"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default=MODERATOR)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped by "sign out everywhere": sessions carrying an older value are refused.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # The last TOTP time step accepted, so a code cannot be used twice.
    last_totp_step: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)


class AuditEntry(Model):
    """One moderator action. Append-only: the database refuses updates and deletes.

    Times here are precise on purpose: they describe moderators' work, not reviewers.
    """

    __tablename__ = "audit_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("moderator.id"))
    action: Mapped[str] = mapped_column(String(40))
    item_type: Mapped[str] = mapped_column(String(40))
    item_id: Mapped[int | None] = mapped_column(Integer)
    decision: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)

    moderator: Mapped[Moderator | None] = relationship()


# The database itself refuses to change or remove audit entries, whatever the site does.
AUDIT_GUARD_SQLITE = [
    "CREATE TRIGGER audit_entry_no_update BEFORE UPDATE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER audit_entry_no_delete BEFORE DELETE ON audit_entry "
    "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
]
AUDIT_GUARD_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'the audit log is append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry "
    "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()",
]
for _sql in AUDIT_GUARD_SQLITE:
    event.listen(AuditEntry.__table__, "after_create",
                 DDL(_sql).execute_if(dialect="sqlite"))
for _sql in AUDIT_GUARD_POSTGRESQL:
    event.listen(AuditEntry.__table__, "after_create",
                 DDL(_sql.replace("%", "%%")).execute_if(dialect="postgresql"))


# --- Community suggestions and listing history ----------------------------------------

NEW_CLINIC = "new_clinic"
CORRECTION = "correction"
CLOSURE = "closure"
SUGGESTION_KINDS = (NEW_CLINIC, CORRECTION, CLOSURE)
APPROVED = "approved"


class Suggestion(Model):
    """A member of the public's new clinic, correction or closure report; moderated.

    Like a review it records nothing about who sent it: no address, no user agent and no
    day or time, only the month it arrived.
    """

    __tablename__ = "suggestion"
    __table_args__ = (
        Index("ix_suggestion_status_kind", "status", "kind"),
        CheckConstraint("kind IN ('new_clinic', 'correction', 'closure')", name="kind"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    location_id: Mapped[int | None] = mapped_column(
        ForeignKey("location.id", ondelete="CASCADE"), index=True
    )
    # The proposed values, as JSON text: {"phone": "...", "id_required": "no", ...}.
    payload: Mapped[str] = mapped_column(Text, default="{}")
    how_known: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    received_month: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    reject_reason: Mapped[str | None] = mapped_column(String(64))

    location: Mapped[Location | None] = relationship()


class ListingRevision(Model):
    """A listing's facts as they were just before a moderator changed them.

    Times here are precise on purpose: they describe moderators' work, not the public.
    """

    __tablename__ = "listing_revision"
    __table_args__ = (UniqueConstraint("location_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(
        ForeignKey("location.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    snapshot: Mapped[str] = mapped_column(Text)
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("moderator.id"))
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: datetime.now(UTC)
    )
    # What changed, in a moderator's words ("phone, ID policy"), for the history page.
    summary: Mapped[str] = mapped_column(Text, default="")

    moderator: Mapped[Moderator | None] = relationship()
