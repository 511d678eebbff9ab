"""A million reviews: every page that reads them finds its rows through an index, and runs
as many SQL statements as it did with a thousand.

The pages are rendered through the app with 1,000 SYNTHETIC reviews and again with
1,000,000 (the same bulk SQL fill as bench/million.py, then ANALYZE, and VACUUM on
PostgreSQL, as a table that grew over years would have had), and every statement they run
is captured. Each statement that reads the review table is then EXPLAINed: PostgreSQL's
plan must hold no "Seq Scan on review", SQLite's no "SCAN review" (a full pass over the
table or over a whole index; "SEARCH review USING INDEX" is a lookup), and the first page
of each list must come in index order, with no sort of every matching review. Plans, not
timings: bench/million.py prints how long the pages take. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from bench.million import add_reviews, rebuild_and_analyze
from directory.extensions import db
from directory.models import PENDING, PUBLISHED, Location, Review
from directory.moderation import PER_PAGE as QUEUE_PER_PAGE
from directory.reviews import REVIEWS_PER_PAGE
from tests.factories import make_clinic
from tests.moderation_helpers import make_moderator, sign_in

SMALL, LARGE = 1_000, 1_000_000
CLINICS = 12
BUSY_EVERY = 20  # one review in 20 goes to the busiest clinic: 50,000 of a million
TOUCHES_REVIEWS = re.compile(r"\breview\b", re.IGNORECASE)
# First pages of a list show 10, 50 or 25 of tens of thousands of rows: the database must
# read them in index order, not sort every matching review to keep the first few.
FIRST_PAGES = ("clinic page, busiest clinic", "clinic page, another clinic",
               "all reviews, page 1", "moderation queue, page 1")


@contextmanager
def captured_statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its parameters) the app runs inside the block."""
    seen: list[tuple[str, Any]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)


def plan(statement: str, parameters: Any) -> tuple[str, list[str]]:
    """The dialect's name and the lines of the plan it chooses for this statement."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
            return "postgresql", [row[0] for row in rows]
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        return "sqlite", [row[-1].strip() for row in rows]


def full_scans_of_reviews(statement: str, parameters: Any) -> list[str]:
    """The plan lines of this statement that read the whole review table (or index)."""
    dialect, lines = plan(statement, parameters)
    if dialect == "postgresql":
        return [line for line in lines if re.search(r"Seq Scan on review\b", line)]
    return [line for line in lines if line.startswith("SCAN review")]


def sorts(statement: str, parameters: Any) -> list[str]:
    """The plan lines of this statement that sort rows (rather than read them in order)."""
    dialect, lines = plan(statement, parameters)
    if dialect == "postgresql":
        return [line for line in lines if re.search(r"(^|->)\s*(Incremental )?Sort\s", line)]
    return [line for line in lines if "TEMP B-TREE" in line and "ORDER BY" in line]


def pages(busy: Location, other: Location) -> dict[str, tuple[str, str]]:
    """(who asks, path) of each page that reads reviews or the scores kept from them."""
    published = db.session.execute(
        sa.select(sa.func.count(Review.id))
        .where(Review.location_id == busy.id, Review.status == PUBLISHED)).scalar_one()
    pending = db.session.execute(
        sa.select(sa.func.count(Review.id)).where(Review.status == PENDING)).scalar_one()
    last_reviews_page = math.ceil(published / REVIEWS_PER_PAGE)
    last_queue_page = math.ceil(pending / QUEUE_PER_PAGE)
    return {
        "clinic page, busiest clinic": ("public", f"/clinics/{busy.slug}"),
        "clinic page, another clinic": ("public", f"/clinics/{other.slug}"),
        "all reviews, page 1": ("public", f"/clinics/{busy.slug}/reviews"),
        "all reviews, last page": ("public",
                                   f"/clinics/{busy.slug}/reviews?page={last_reviews_page}"),
        "results by score": ("public", "/clinics?near=10011&sort=score"),
        "results well rated": ("public", "/clinics?near=10011&rated=1&sort=score"),
        "moderation queue, page 1": ("moderator", "/moderation/"),
        "moderation queue, last page": ("moderator", f"/moderation/?page={last_queue_page}"),
    }


def render_all(clients: dict[str, FlaskClient], busy: Location, other: Location,
               check: Callable[[str, str], None]) -> dict[str, list[tuple[str, Any]]]:
    """Render every page once; return the statements each ran. `check` sees each page."""
    ran = {}
    for name, (who, path) in pages(busy, other).items():
        with captured_statements() as seen:
            response = clients[who].get(path)
        assert response.status_code == 200, (name, path, response.status_code)
        check(name, response.get_data(as_text=True))
        ran[name] = list(seen)
    return ran


def shows_what_it_should(name: str, html: str) -> None:
    """A page that rendered nothing would pass any plan check: make sure it has content."""
    shown = "Synthetic Test Clinic" if name.startswith("results") else "SYNTHETIC BENCH review"
    assert shown in html, name


@pytest.fixture
def city(app: Flask) -> tuple[Location, Location, dict[str, FlaskClient]]:
    """Clinics in Chelsea (the busiest first), a signed-in moderator, and 1,000 reviews."""
    clinics = [make_clinic() for _ in range(CLINICS)]
    moderator = make_moderator()
    db.session.commit()
    add_reviews(1, SMALL, clinics[0].id, busy_every=BUSY_EVERY)
    rebuild_and_analyze()
    signed_in = app.test_client()
    assert sign_in(signed_in, moderator).status_code == 302
    return clinics[0], clinics[CLINICS // 2], {"public": app.test_client(),
                                               "moderator": signed_in}


def test_review_pages_use_indexes_and_no_more_statements_at_a_million_reviews(
        city: tuple[Location, Location, dict[str, FlaskClient]]) -> None:
    busy, other, clients = city
    small = render_all(clients, busy, other, shows_what_it_should)

    add_reviews(SMALL + 1, LARGE, busy.id, busy_every=BUSY_EVERY)
    rebuild_and_analyze()
    assert db.session.execute(sa.select(sa.func.count(Review.id))).scalar_one() == LARGE
    large = render_all(clients, busy, other, shows_what_it_should)

    grew = {name: (len(small[name]), len(large[name])) for name in small
            if len(large[name]) != len(small[name])}
    assert grew == {}, f"statements per page changed from {SMALL:,} to {LARGE:,} reviews"
    reading = {name: [(statement, parameters) for statement, parameters in statements
                      if TOUCHES_REVIEWS.search(statement)]
               for name, statements in large.items()}
    # The checks below are only worth something if the review pages did read reviews.
    assert all(reading[name] for name in (*FIRST_PAGES, "all reviews, last page",
                                          "moderation queue, last page"))
    scans: dict[str, list[tuple[str, list[str]]]] = {}
    for name, statements in reading.items():
        for statement, parameters in statements:
            assert statement.lstrip().upper().startswith(("SELECT", "WITH")), (
                f"{name} wrote to the review table on a GET: {statement[:200]}")
            found = full_scans_of_reviews(statement, parameters)
            if found:
                scans.setdefault(name, []).append((" ".join(statement.split())[:300], found))
    assert scans == {}, "pages that read every review"
    sorted_reviews = {
        name: " ".join(statement.split())[:200]
        for name in FIRST_PAGES for statement, parameters in large[name]
        if re.search(r"\bFROM review\b.*\bORDER BY\b", statement, re.DOTALL)
        and sorts(statement, parameters)}
    assert sorted_reviews == {}, "first pages that sort every matching review"


def test_the_plan_checks_see_a_full_scan_and_a_sort(
        city: tuple[Location, Location, dict[str, FlaskClient]]) -> None:
    """The detectors themselves, on 1,000 rows: no index on text, none in its order."""
    with captured_statements() as seen:
        db.session.execute(sa.select(Review.id).where(Review.text == "no index on text"))
        db.session.execute(sa.select(Review.id).where(Review.status == PUBLISHED)
                           .order_by(Review.text).limit(10))
    db.session.rollback()
    (scan, scan_parameters), (ordered, ordered_parameters) = seen[-2:]
    assert full_scans_of_reviews(scan, scan_parameters)
    assert sorts(ordered, ordered_parameters)
