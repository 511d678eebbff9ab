"""One million reviews: do the pages that read reviews stay within their budgets?

Fills a SCRATCH database (SQLite always, PostgreSQL when reachable), never the real one,
with SYNTHETIC clinics (every name starts "SYNTHETIC BENCH") and SYNTHETIC reviews (every
text starts "SYNTHETIC BENCH review"), first 1,000 reviews and then up to 1,000,000, in
bulk SQL (INSERT .. SELECT over generate_series on PostgreSQL, over a recursive CTE on
SQLite). Reviews are spread over the clinics, with one busy clinic receiving one in 20
of them; 88% published, 6% pending, 3% withdrawn (answers and text cleared, as a real
withdrawal leaves them), 3% rejected; received over the 36 months of 2023-2025. The
clinics' kept score sums are rebuilt from the reviews (scores.rebuild) and the database
ANALYZEd (and VACUUMed on PostgreSQL, as autovacuum would have done), then p50/p95
through the Flask test client (rate limits off) are printed for:
- the clinic page of the busiest clinic and of a typical one;
- the busiest clinic's all-reviews page 1 and a deep page (page 400, 50 a page);
- results sorted by score and filtered to well rated (both read the kept sums), as a
  page and as the search() function alone;
- the moderation queue, signed in with password and TOTP, page 1 and page 100;
- a review submission (POST with a form token issued beforehand).
Budgets: clinic page p95 < 30 ms (bench/reviews.py); search() p95 < 25 ms (bench/search.py).
The other pages have no budget of their own: 30 ms, the clinic page's, is printed beside
them as a yardstick. The machine has 2 cores; the client runs in the same process.

Usage: .venv/bin/python bench/million.py [--reviews 1000,1000000] [--no-postgres]
       [--no-sqlite] [--runs 100]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyotp
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory import auth, create_app, scores  # noqa: E402
from directory.config import Settings  # noqa: E402
from directory.extensions import db  # noqa: E402
from directory.models import (  # noqa: E402
    Location,
    Organization,
    Review,
    Service,
    ServiceAtLocation,
    Source,
)
from directory.reviews import issue_form_token  # noqa: E402
from directory.search import SearchQuery, search  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SCRATCH = "caremap_bench_million_scratch"
CLINICS = 300
BUSY_EVERY = 20  # one review in BUSY_EVERY goes to the busiest clinic
CLINIC_BUDGET_MS = 30.0
SEARCH_BUDGET_MS = 25.0
DEEP_REVIEWS_PAGE = 400
DEEP_QUEUE_PAGE = 100
PASSWORD = "synthetic-bench-password-1"
SERVICES = ("hiv_testing", "prep", "sti_testing", "condoms")
# Manhattan and north Brooklyn: around the ZIP the searches start from.
SOUTH, WEST, NORTH, EAST = 40.68, -74.02, 40.80, -73.93


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- Filling --------------------------------------------------------------------------


def fill_clinics(n: int, seed: int = 5) -> None:
    """n synthetic clinics around lower Manhattan, each offering two services."""
    rng = random.Random(seed)
    source = Source(key="synthetic-bench-million", title="SYNTHETIC benchmark data",
                    publisher="bench/million.py", url=None, as_of=date(2026, 1, 1))
    db.session.add(source)
    db.session.flush()
    conn = db.session.connection()
    ids = range(1, n + 1)
    conn.execute(sa.insert(Organization), [{"id": i, "name": f"SYNTHETIC BENCH org {i}"}
                                            for i in ids])
    conn.execute(sa.insert(Location), [{
        "id": i, "organization_id": i, "slug": f"synthetic-bench-{i}",
        "import_key": f"synthetic|{i}", "name": f"SYNTHETIC BENCH clinic {i}",
        "address_1": f"{i} Synthetic Street", "city": "New York", "state": "NY",
        "postal_code": "10011", "latitude": rng.uniform(SOUTH, NORTH),
        "longitude": rng.uniform(WEST, EAST), "coordinates_precision": "site",
        "status": "active", "moderator_checked": False} for i in ids])
    services = [{"id": 2 * i + k, "organization_id": i, "code": code, "name": code}
                for i in ids for k, code in enumerate(rng.sample(SERVICES, 2))]
    conn.execute(sa.insert(Service), services)
    conn.execute(sa.insert(ServiceAtLocation), [{
        "id": s["id"], "service_id": s["id"], "location_id": s["organization_id"],
        "source_id": source.id, "verified_on": date(2026, 1, 1)} for s in services])
    db.session.commit()


def _series(dialect: str) -> str:
    """A CTE `series(g)` of the integers :first..:last."""
    if dialect == "postgresql":
        return ("series(g) AS (SELECT generate_series(CAST(:first AS bigint), "
                "CAST(:last AS bigint)))")
    return ("series(g) AS (SELECT CAST(:first AS integer) UNION ALL SELECT g + 1 FROM series "
            "WHERE g < :last)")


def _month(dialect: str, months: str) -> str:
    """SQL for the first day of the month `months` after January 2023."""
    if dialect == "postgresql":
        return f"(DATE '2023-01-01' + ({months}) * INTERVAL '1 month')::date"
    return f"date('2023-01-01', '+' || ({months}) || ' months')"


def _hash(salt: int) -> str:
    """SQL for a pseudo-random 0..65535 from row number x.g (Knuth's multiplicative hash),
    a different one per salt, so that no two properties of a row move in step."""
    return f"((((x.g + {salt}) * 2654435761) % 4294967296) / 65536)"


def review_fill_sql(dialect: str) -> str:
    """INSERT .. SELECT of reviews :first..:last (a deterministic synthetic mix).

    Row g goes to the clinic :busy one time in :busy_every, else to the (g mod
    clinics)-th clinic by id; its status, month, answers and text follow from hashes of g.
    Clinics fall in three groups (k mod 3) whose answers average about 4.6, 4 and 3, so
    "well rated" and "sort by score" have something to sort.
    """
    withdrawn = "(x.st >= 94 AND x.st < 97)"

    def answer(salt: int, skip: int) -> str:
        return (f"CASE WHEN {withdrawn} OR {_hash(salt)} % {skip} = 0 THEN NULL "
                f"ELSE 5 - (({_hash(salt + 1)} % 5) * (1 + x.k % 3)) / 3 END")

    # Built from constants of this module only: no outside text reaches the SQL.
    return f"""
    WITH RECURSIVE {_series(dialect)},
    clinic(id, k) AS (SELECT id, row_number() OVER (ORDER BY id) - 1 FROM location),
    x AS (SELECT s.g AS g, c.k AS k, c.id AS clinic_id FROM series s
          JOIN clinic c ON c.k = s.g % :clinics),
    y AS (SELECT x.*, {_hash(1)} % 100 AS st, {_hash(2)} % :busy_every AS b FROM x)
    INSERT INTO review (location_id, status, received_month, visit_month, service_code,
        respect, open_about_work, asked_for_id, cost_affordable, privacy,
        gender_respected, would_recommend, text, withdrawal_hash, reject_reason)
    SELECT CASE WHEN x.b = 0 THEN :busy ELSE x.clinic_id END,
        CASE WHEN x.st < 88 THEN 'published' WHEN x.st < 94 THEN 'pending'
             WHEN x.st < 97 THEN 'withdrawn' ELSE 'rejected' END,
        {_month(dialect, f"{_hash(3)} % 36")},
        NULL,
        CASE WHEN {withdrawn} THEN NULL WHEN {_hash(4)} % 4 = 0 THEN 'hiv_testing'
             WHEN {_hash(4)} % 4 = 1 THEN 'prep' WHEN {_hash(4)} % 4 = 2 THEN 'sti_testing'
             ELSE NULL END,
        {answer(10, 7)}, {answer(20, 5)},
        CASE WHEN {withdrawn} OR {_hash(5)} % 5 = 0 THEN NULL ELSE {_hash(6)} % 3 = 0 END,
        {answer(30, 4)}, {answer(40, 6)}, {answer(50, 3)}, {answer(60, 8)},
        CASE WHEN {withdrawn} OR {_hash(7)} % 3 = 0 THEN NULL
             ELSE 'SYNTHETIC BENCH review ' || x.g END,
        NULL,
        CASE WHEN x.st >= 97 THEN 'spam' ELSE NULL END
    FROM y AS x
    """  # noqa: S608


def add_reviews(first: int, last: int, busy_location_id: int,
                busy_every: int = BUSY_EVERY) -> None:
    """Insert synthetic reviews numbered first..last in one statement; never commits.

    The review table's secondary indexes are dropped for the load and built again after
    it, as bulk loads do: sorting a million entries once is far quicker than inserting
    them one row at a time into six B-trees.
    """
    conn = db.session.connection()
    clinics = conn.execute(sa.select(sa.func.count(Location.id))).scalar_one()
    indexes = sorted(Review.__table__.indexes, key=lambda index: str(index.name))
    for index in indexes:
        index.drop(conn)
    conn.execute(sa.text(review_fill_sql(conn.dialect.name)), {
        "first": first, "last": last, "busy": busy_location_id, "clinics": clinics,
        "busy_every": busy_every})
    for index in indexes:
        index.create(conn)


def rebuild_and_analyze() -> None:
    """Bring every clinic's kept sums in step with the reviews; refresh planner statistics.

    On PostgreSQL, VACUUM too: autovacuum would have run on a table grown to a million
    rows over years, and its visibility map is what lets counts read the index alone.
    """
    scores.rebuild()
    db.session.commit()
    vacuum = "VACUUM ANALYZE" if db.engine.dialect.name == "postgresql" else "ANALYZE"
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(vacuum))


# --- Measuring ------------------------------------------------------------------------


def time_get(client: Any, path: str, runs: int) -> tuple[float, float]:
    """p50 and p95 in ms of GET path through the test client."""
    for _ in range(5):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return percentile(samples, 50), percentile(samples, 95)


def time_search(app: Any, runs: int) -> tuple[float, float]:
    """p50 and p95 in ms of search() sorted by score and filtered to well rated."""
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    queries = [SearchQuery(near="10011", sort="score"),
               SearchQuery(near="10011", rated=True),
               SearchQuery(near="10003", sort="score", rated=True)]
    samples = []
    with app.app_context():
        for q in queries:
            search(q, now)
        for i in range(runs):
            t0 = time.perf_counter()
            search(queries[i % len(queries)], now)
            samples.append((time.perf_counter() - t0) * 1000)
            db.session.remove()
    return percentile(samples, 50), percentile(samples, 95)


def signed_in_client(app: Any) -> Any:
    """A test client signed in as a synthetic moderator (password, then TOTP code)."""
    with app.app_context():
        account = auth.create_moderator(f"bench-mod-{time.time_ns()}", PASSWORD)
        db.session.commit()
        username, secret = account.moderator.username, account.totp_secret
    client = app.test_client()
    html = client.get("/moderation/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                     r'type="hidden" name="csrf_token" value="([^"]+)"', html)
    assert csrf, "no CSRF token on the sign-in page"
    response = client.post("/moderation/login", data={
        "csrf_token": csrf.group(1) or csrf.group(2), "username": username,
        "password": PASSWORD, "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 302, "moderator sign-in failed"
    return client


def time_submission(app: Any, slug: str, location_id: int, runs: int) -> tuple[float, float]:
    """p50 and p95 in ms of one review POST, the form token issued beforehand."""
    client = app.test_client()
    html = client.get(f"/clinics/{slug}/review").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert found
    with app.app_context():
        tokens = [issue_form_token(location_id, time.time() - 60) for _ in range(runs)]
    data = {"csrf_token": found.group(1), "respect": "4", "privacy": "5",
            "asked_for_id": "no", "text": "SYNTHETIC BENCH review submitted by bench/million"}
    samples = []
    for token in tokens:
        t0 = time.perf_counter()
        response = client.post(f"/clinics/{slug}/review", data={**data, "form_token": token})
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.status_code
    return percentile(samples, 50), percentile(samples, 95)


def report(label: str, figures: tuple[float, float], budget: float | None,
           yardstick: bool = False) -> None:
    """Print one line: p50, p95 and the budget it is held to."""
    p50, p95 = figures
    verdict = ""
    if budget is not None:
        mark = "within" if p95 < budget else "OVER"
        verdict = f"{mark} {'yardstick' if yardstick else 'budget'} p95 < {budget:.0f} ms"
    print(f"  {label:<46}{p50:>8.1f}{p95:>8.1f}   {verdict}", flush=True)


def measure(app: Any, runs: int) -> None:
    """Every page this benchmark is about, at the current number of reviews."""
    busy, typical = "synthetic-bench-1", "synthetic-bench-150"
    client = app.test_client()
    print(f"  {'what':<46}{'p50 ms':>8}{'p95 ms':>8}")
    report("clinic page, busiest clinic", time_get(client, f"/clinics/{busy}", runs),
           CLINIC_BUDGET_MS)
    report("clinic page, typical clinic", time_get(client, f"/clinics/{typical}", runs),
           CLINIC_BUDGET_MS)
    report("all reviews, busiest clinic, page 1",
           time_get(client, f"/clinics/{busy}/reviews", runs), CLINIC_BUDGET_MS, True)
    with app.app_context():
        published = db.session.execute(sa.text(
            "SELECT count(*) FROM review WHERE location_id = 1 AND status = 'published'"
        )).scalar_one()
    deep = min(DEEP_REVIEWS_PAGE, max(1, (published + 49) // 50))
    if deep > 1:
        report(f"all reviews, busiest clinic, page {deep}",
               time_get(client, f"/clinics/{busy}/reviews?page={deep}", runs),
               CLINIC_BUDGET_MS, True)
    report("results page, near 10011, sort=score",
           time_get(client, "/clinics?near=10011&sort=score", runs), CLINIC_BUDGET_MS, True)
    report("results page, near 10011, rated=1",
           time_get(client, "/clinics?near=10011&rated=1", runs), CLINIC_BUDGET_MS, True)
    report("search() by score / well rated", time_search(app, runs), SEARCH_BUDGET_MS)
    moderator = signed_in_client(app)
    report("moderation queue, page 1", time_get(moderator, "/moderation/", runs),
           CLINIC_BUDGET_MS, True)
    report(f"moderation queue, page {DEEP_QUEUE_PAGE}",
           time_get(moderator, f"/moderation/?page={DEEP_QUEUE_PAGE}", runs),
           CLINIC_BUDGET_MS, True)
    report("review submission (POST)", time_submission(app, typical, 150, runs), None)


# --- Running --------------------------------------------------------------------------


def make_app(url: str) -> Any:
    """An app on a scratch database: limits off, no form wait, cheap password hashing."""
    settings = Settings(env="bench", secret_key="bench-only", database_url=url,
                        map_tiles_url="", extra={
                            "RATELIMIT_ENABLED": False, "REVIEW_MIN_SECONDS": 0,
                            "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 8,
                            "ARGON2_PARALLELISM": 1})
    app = create_app(settings)
    # The access log would print a line per request of the loops.
    logging.getLogger("caremap.access").setLevel(logging.WARNING)
    return app


def scratch_urls(use_sqlite: bool, use_pg: bool) -> list[tuple[str, str]]:
    """(label, url) of the scratch databases to fill."""
    OUT.mkdir(exist_ok=True)
    urls = []
    if use_sqlite:
        path = OUT / "million-scratch.db"
        path.unlink(missing_ok=True)
        urls.append(("sqlite", f"sqlite:///{path}"))
    if use_pg:
        try:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_SCRATCH}" WITH (FORCE)'))
                c.execute(sa.text(f'CREATE DATABASE "{PG_SCRATCH}"'))
            admin.dispose()
            urls.append(("postgresql", PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_SCRATCH))
        except sa.exc.OperationalError:
            print("PostgreSQL not reachable: SQLite only")
    return urls


def drop_scratch(label: str, app: Any) -> None:
    """Empty the scratch database again; 1M rows are not worth keeping on disk."""
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    if label == "postgresql":
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_SCRATCH}" WITH (FORCE)'))
        admin.dispose()
    else:
        (OUT / "million-scratch.db").unlink(missing_ok=True)


def main() -> None:
    """Fill, measure at each size, print."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviews", default="1000,1000000",
                        help="comma-separated review totals, rising")
    parser.add_argument("--runs", type=int, default=100, help="timed requests per figure")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.reviews.split(","))
    print("CareMap NYC: one million reviews (SYNTHETIC clinics and reviews, scratch database;"
          f" {CLINICS} clinics; test client in-process)")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start: other "
          "work on the machine shows in the figures")
    for label, url in scratch_urls(not args.no_sqlite, not args.no_postgres):
        app = make_app(url)
        with app.app_context():
            db.drop_all()
            db.create_all()
            fill_clinics(CLINICS)
        done = 0
        for total in sizes:
            t0 = time.perf_counter()
            with app.app_context():
                add_reviews(done + 1, total, busy_location_id=1)
                rebuild_and_analyze()
                busiest = db.session.execute(sa.text(
                    "SELECT count(*) FROM review WHERE location_id = 1")).scalar_one()
            done = total
            print(f"\n[{label}, {total:,} reviews ({busiest:,} at the busiest clinic); "
                  f"filled, sums rebuilt and analyzed in {time.perf_counter() - t0:.1f} s]",
                  flush=True)
            measure(app, args.runs)
        drop_scratch(label, app)


if __name__ == "__main__":
    main()
