"""Reviews: clinic pages with many reviews, review submission, and one score update.

Fills a SCRATCH database with SYNTHETIC clinics and reviews (every clinic name starts
"SYNTHETIC BENCH", every review text "SYNTHETIC BENCH review"), never the real one, then
prints, on SQLite and (when reachable) PostgreSQL:
- the clinic page of a clinic with 500 published reviews, and its all-reviews page
  (50 a page): p50/p95 through the test client (target: clinic page p95 < 30 ms);
- review submission throughput through the test client: POSTs with tokens issued
  beforehand, and whole GET form + POST round trips;
- one score update (a review approved: scores.on_review_status_change, flushed): median
  and p95 time and the number of SQL statements, with 1,000 and with 100,000 reviews in
  the city. It must not grow with the city's reviews.

Usage: .venv/bin/python bench/reviews.py [--no-postgres] [--sizes 1000,100000]
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory import create_app, scores  # noqa: E402
from directory.config import Settings  # noqa: E402
from directory.extensions import db  # noqa: E402
from directory.models import (  # noqa: E402
    PENDING,
    PUBLISHED,
    Location,
    Organization,
    Review,
    Service,
    ServiceAtLocation,
    Source,
)
from directory.reviews import issue_form_token  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_SCRATCH = "caremap_bench_reviews_scratch"
CLINICS = 300
BUSY_REVIEWS = 500


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def fill_clinics(n: int) -> None:
    """n synthetic clinics, each with one service (HIV testing), in bulk."""
    source = Source(key="synthetic-bench-reviews", title="SYNTHETIC benchmark data",
                    publisher="bench/reviews.py", url=None, as_of=date(2026, 1, 1))
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
        "postal_code": "10011", "latitude": 40.70 + i * 0.0003, "longitude": -74.0,
        "coordinates_precision": "site", "status": "active", "moderator_checked": False,
    } for i in ids])
    conn.execute(sa.insert(Service), [{"id": i, "organization_id": i, "code": "hiv_testing",
                                       "name": "HIV testing"} for i in ids])
    conn.execute(sa.insert(ServiceAtLocation), [{
        "id": i, "service_id": i, "location_id": i, "source_id": source.id,
        "verified_on": date(2026, 1, 1)} for i in ids])
    db.session.commit()


def review_rows(rng: random.Random, count: int, location_id: int | None,
                start: int) -> list[dict[str, object]]:
    """Synthetic published reviews, month precision, all questions answered at random."""
    rows = []
    for k in range(count):
        row: dict[str, object] = {
            "location_id": location_id or rng.randint(2, CLINICS),
            "status": PUBLISHED,
            "received_month": date(2024 + (k % 3), 1 + k % 12, 1),
            "visit_month": None,
            "service_code": "hiv_testing",
            "asked_for_id": rng.choice([None, True, False]),
            "text": f"SYNTHETIC BENCH review {start + k}: " + "words " * rng.randint(5, 60),
        }
        for key in scores.SCALE_KEYS:
            row[key] = rng.choice([None, 1, 2, 3, 4, 5, 5, 4])
        rows.append(row)
    return rows


def fill_reviews(city_total: int) -> None:
    """BUSY_REVIEWS on clinic 1 and the rest of city_total spread over the others."""
    rng = random.Random(3)
    conn = db.session.connection()
    conn.execute(sa.insert(Review), review_rows(rng, BUSY_REVIEWS, 1, 0))
    done = BUSY_REVIEWS
    while done < city_total:
        batch = min(10_000, city_total - done)
        conn.execute(sa.insert(Review), review_rows(rng, batch, None, done))
        done += batch
    scores.rebuild()
    db.session.commit()
    with db.engine.connect() as c:
        c.execute(sa.text("ANALYZE"))
        c.commit()


def time_get(app, path: str, runs: int = 200) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """p50 and p95 in ms of GET path through the test client."""
    client = app.test_client()
    for _ in range(10):
        assert client.get(path).status_code == 200, path
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200
    return percentile(samples, 50), percentile(samples, 95)


def submission_rates(app, seconds: float = 3.0) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Review POSTs per second: with tokens issued beforehand, and as GET form + POST."""
    client = app.test_client()
    html = client.get("/clinics/synthetic-bench-2/review").get_data(as_text=True)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert found
    csrf = found.group(1)
    with app.app_context():
        tokens = [issue_form_token(2, time.time() - 60) for _ in range(20_000)]
    data = {"csrf_token": csrf, "respect": "4", "privacy": "5", "asked_for_id": "no",
            "text": "SYNTHETIC BENCH review submitted by the benchmark"}
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        response = client.post("/clinics/synthetic-bench-2/review",
                               data={**data, "form_token": tokens[count]})
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        count += 1
    posts = count / (time.perf_counter() - start)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        html = client.get("/clinics/synthetic-bench-3/review").get_data(as_text=True)
        found = re.search(r'name="form_token" value="([^"]+)"', html)
        assert found
        response = client.post("/clinics/synthetic-bench-3/review",
                               data={**data, "form_token": found.group(1)})
        assert response.status_code == 200
        count += 1
    rounds = count / (time.perf_counter() - start)
    return posts, rounds


def score_update_cost(app, runs: int = 200) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Median and p95 ms, and SQL statements, of approving one review (flush included)."""
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    with app.app_context():
        pending = [Review(location_id=5 + i % 50, status=PENDING,
                          received_month=date(2026, 11, 1), respect=4, privacy=5,
                          gender_respected=3, asked_for_id=False,
                          text="SYNTHETIC BENCH pending review") for i in range(runs)]
        db.session.add_all(pending)
        db.session.commit()
        samples, per_update = [], []
        sa.event.listen(db.engine, "before_cursor_execute", count)
        try:
            for review in pending:
                review.status = PUBLISHED
                db.session.flush()  # the caller's own UPDATE of the review, not timed
                statements.clear()
                t0 = time.perf_counter()
                scores.on_review_status_change(review, PENDING)
                db.session.flush()
                samples.append((time.perf_counter() - t0) * 1000)
                per_update.append(len(statements))
            db.session.commit()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count)
        report = scores.rebuild()
        assert report.differed == [], report.differed
        db.session.rollback()
    assert len(set(per_update)) == 1, per_update
    return statistics.median(samples), percentile(samples, 95), per_update[0]


def make_app(url: str):  # type: ignore[no-untyped-def]
    """An app on a scratch database: limits off, no wait, so loops measure the work."""
    settings = Settings(env="bench", secret_key="bench-only", database_url=url, map_tiles_url="",
                        extra={"RATELIMIT_ENABLED": False, "REVIEW_MIN_SECONDS": 0})
    app = create_app(settings)
    # The access log would print a line per request of the loops.
    logging.getLogger("caremap.access").setLevel(logging.WARNING)
    return app


def scratch_urls(use_pg: bool) -> list[tuple[str, str]]:
    """(label, url) of the scratch databases: SQLite always, PostgreSQL if up."""
    OUT.mkdir(exist_ok=True)
    urls = [("sqlite", f"sqlite:///{OUT / 'reviews-scratch.db'}")]
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


def main() -> None:
    """Fill, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("CareMap NYC reviews benchmark (synthetic clinics and reviews, scratch database)")
    for label, url in scratch_urls(not args.no_postgres):
        for n in sizes:
            app = make_app(url)
            with app.app_context():
                db.drop_all()
                db.create_all()
                fill_clinics(CLINICS)
                fill_reviews(n)
            print(f"\n[{label}, {n:,} published reviews in the city, {CLINICS} clinics]")
            if n == sizes[0]:
                p50, p95 = time_get(app, "/clinics/synthetic-bench-1")
                print(f"clinic page, {BUSY_REVIEWS} published reviews (10 shown): "
                      f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p95 < 30 ms)")
                p50, p95 = time_get(app, "/clinics/synthetic-bench-1/reviews")
                print(f"all-reviews page, 50 of {BUSY_REVIEWS} shown: "
                      f"p50 {p50:.1f} ms, p95 {p95:.1f} ms")
                p50, p95 = time_get(app, "/clinics?near=10011&sort=score")
                print(f"search sorted by score: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
                posts, rounds = submission_rates(app)
                print(f"review submission: {posts:.0f} POST/s (tokens issued beforehand), "
                      f"{rounds:.0f} GET form + POST/s")
            median, p95, statements = score_update_cost(app)
            print(f"one score update: median {median:.3f} ms, p95 {p95:.3f} ms, "
                  f"{statements} SQL statements")
            with app.app_context():
                db.drop_all()
                db.engine.dispose()


if __name__ == "__main__":
    main()
