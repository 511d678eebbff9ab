"""Test data builders. Everything they make is synthetic and lives only in test databases."""

from __future__ import annotations

import itertools
from datetime import date

from directory.extensions import db
from directory.models import (
    ACTIVE,
    CostOption,
    Language,
    Location,
    Organization,
    Provenance,
    RequiredDocument,
    Review,
    Schedule,
    Service,
    ServiceAtLocation,
    Source,
)
from directory.taxonomy import LANGUAGES, SERVICES

_counter = itertools.count(1)


def make_source(key: str = "test-source", as_of: date = date(2025, 12, 1)) -> Source:
    """A source for synthetic test facts, clearly labelled as such."""
    source = db.session.execute(db.select(Source).filter_by(key=key)).scalar_one_or_none()
    if source is None:
        source = Source(
            key=key,
            title=f"Synthetic test data ({key})",
            publisher="CareMap NYC test suite",
            url=None,
            as_of=as_of,
            licence="test only",
        )
        db.session.add(source)
        db.session.flush()
    return source


def make_clinic(
    name: str | None = None,
    *,
    lat: float = 40.7420,
    lng: float = -74.0030,
    postal_code: str = "10011",
    services: tuple[str, ...] = ("hiv_testing",),
    languages: tuple[str, ...] = (),
    cost: dict[str, bool | None] | None = None,
    documents: dict[str, bool | None] | None = None,
    walk_in: bool | None = None,
    hours: dict[str, list[tuple[int, int]]] | None = None,
    status: str = ACTIVE,
    phone: str | None = "(212) 555-0100",
    source: Source | None = None,
) -> Location:
    """A synthetic clinic with the given facts on its first service; flushed, not committed."""
    n = next(_counter)
    name = name or f"Synthetic Test Clinic {n}"
    source = source or make_source()
    as_of = source.as_of
    org = Organization(name=name)
    location = Location(
        organization=org,
        slug=f"test-clinic-{n}",
        import_key=f"test|{n}",
        name=name,
        address_1=f"{n} Test Street",
        city="New York",
        postal_code=postal_code,
        borough="Manhattan",
        latitude=lat,
        longitude=lng,
        phone=phone,
        status=status,
    )
    db.session.add(location)
    for field in ("name", "address", "coordinates", "phone", "status"):
        location.provenance.append(Provenance(field=field, source=source, verified_on=as_of))
    for i, code in enumerate(services):
        service = Service(organization=org, code=code, name=SERVICES[code])
        sal = ServiceAtLocation(service=service, location=location, source=source,
                                verified_on=as_of, walk_in=walk_in if i == 0 else None)
        if i == 0:
            for lang in languages:
                sal.languages.append(Language(code=lang, name=LANGUAGES[lang],
                                              source_id=source.id, verified_on=as_of))
            for option, available in (cost or {}).items():
                sal.cost_options.append(CostOption(option=option, available=available,
                                                   source_id=source.id, verified_on=as_of))
            for document, required in (documents or {}).items():
                sal.required_documents.append(RequiredDocument(
                    document=document, required=required, source_id=source.id,
                    verified_on=as_of))
            for byday, intervals in (hours or {}).items():
                for opens, closes in intervals:
                    sal.schedules.append(Schedule(byday=byday, opens_minute=opens,
                                                  closes_minute=closes, source_id=source.id,
                                                  verified_on=as_of))
        db.session.add(sal)
    db.session.flush()
    return location


def make_review(location: Location, status: str = "pending", **answers: object) -> Review:
    """A synthetic review of a clinic (month precision only); flushed, not committed."""
    review = Review(location=location, status=status,
                    received_month=answers.pop("received_month", date(2026, 11, 1)),
                    **answers)
    db.session.add(review)
    db.session.flush()
    return review
