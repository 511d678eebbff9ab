"""The directory's tables, shaped after Open Referral HSDS 3.0's core.

organization -> location -> service_at_location (joining a service to a location)
-> schedule, language, cost_option, required_document. Every fact row names its
source and the date it was last verified; tri-state facts (yes / no / unknown) are
nullable booleans where None means "not known yet", never "no".
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
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
