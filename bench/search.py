"""Search speed at 300, 10,000 and 100,000 clinics, on SQLite and (when reachable) PostgreSQL.

Fills a SCRATCH database with SYNTHETIC clinics (every name starts "SYNTHETIC BENCH"),
never the real one, then prints:
- search latency p50/p95 (the search() function, as a view calls it) per size;
- the search page's throughput as a ratio to a trivial route, same app, same process;
- the bytes of a results page and the assets it loads, before any map tile.
Targets (issue "Find care"): p95 < 25 ms at 10,000; page throughput >= 0.5 x trivial at
10,000; results page + assets < 200 kB.

Usage: .venv/bin/python bench/search.py [--sizes 300,10000,100000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from directory import create_app  # noqa: E402
from directory.config import Settings  # noqa: E402
from directory.extensions import db  # noqa: E402
from directory.geo import NYC_COUNTIES  # noqa: E402
from directory.models import (  # noqa: E402
    CostOption,
    Language,
    Location,
    Organization,
    RequiredDocument,
    Schedule,
    Service,
    ServiceAtLocation,
    Source,
)
from directory.search import SearchQuery, search  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SOUTH, WEST, NORTH, EAST = 40.50, -74.25, 40.91, -73.70
LANGS = ["en", "es", "zh", "ru", "ht", "bn"]
SERVICES = ["hiv_testing", "sti_testing", "prep", "pep", "condoms", "primary_care"]


def nyc_zips() -> list[str]:
    """NYC ZIP codes from the zipcodes package, to search around."""
    import zipcodes

    return sorted(z["zip_code"] for z in zipcodes.filter_by(state="NY")
                  if z.get("county") in NYC_COUNTIES and z.get("lat"))


def fill(n: int, seed: int = 7) -> None:
    """Insert n synthetic clinics with services, hours, languages and policies."""
    rng = random.Random(seed)
    source = Source(key="synthetic-bench", title="SYNTHETIC benchmark data",
                    publisher="bench/search.py", url=None, as_of=date(2026, 1, 1))
    db.session.add(source)
    db.session.flush()
    today = date(2026, 1, 1)
    conn = db.session.connection()
    batch = 5000
    for start in range(0, n, batch):
        ids = range(start + 1, min(n, start + batch) + 1)
        conn.execute(sa.insert(Organization), [{"id": i, "name": f"SYNTHETIC BENCH org {i}"}
                                                for i in ids])
        conn.execute(sa.insert(Location), [{
            "id": i, "organization_id": i, "slug": f"synthetic-bench-{i}",
            "import_key": f"synthetic|{i}", "name": f"SYNTHETIC BENCH clinic {i}",
            "address_1": f"{i} Synthetic Street", "city": "New York", "state": "NY",
            "postal_code": "10001", "latitude": rng.uniform(SOUTH, NORTH),
            "longitude": rng.uniform(WEST, EAST), "coordinates_precision": "site",
            "status": "active", "moderator_checked": False} for i in ids])
        services, sals, scheds, langs, costs, docs = [], [], [], [], [], []
        for i in ids:
            for k, code in enumerate(rng.sample(SERVICES, 2)):
                sid = i * 2 + k
                services.append({"id": sid, "organization_id": i, "code": code, "name": code})
                sals.append({"id": sid, "service_id": sid, "location_id": i,
                             "source_id": source.id, "verified_on": today,
                             "walk_in": rng.choice([True, False, None])})
            sal = i * 2
            fact = {"service_at_location_id": sal, "source_id": source.id, "verified_on": today}
            opens = rng.choice([480, 540, 600])
            closes = rng.choice([1020, 1140, 1260])
            for day in rng.sample(["MO", "TU", "WE", "TH", "FR", "SA", "SU"], 5):
                scheds.append({**fact, "byday": day, "opens_minute": opens,
                               "closes_minute": closes})
            for code in rng.sample(LANGS, 2):
                langs.append({**fact, "code": code, "name": code})
            for option in ("free", "sliding_fee", "medicaid"):
                costs.append({**fact, "option": option, "available": rng.random() < 0.5})
            docs.append({**fact, "document": "id", "required": rng.choice([True, False, None])})
        conn.execute(sa.insert(Service), services)
        conn.execute(sa.insert(ServiceAtLocation), sals)
        conn.execute(sa.insert(Schedule), scheds)
        conn.execute(sa.insert(Language), langs)
        conn.execute(sa.insert(CostOption), costs)
        conn.execute(sa.insert(RequiredDocument), docs)
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as c:
            c.execute(sa.text("ANALYZE"))
            c.commit()
    else:
        with db.engine.connect() as c:
            c.execute(sa.text("ANALYZE"))
            c.commit()


def queries(rng: random.Random, zips: list[str], count: int) -> list[SearchQuery]:
    """A mix of ZIP searches, half with one or two filters."""
    out = []
    for _ in range(count):
        kwargs: dict[str, object] = {"near": rng.choice(zips)}
        if rng.random() < 0.5:
            kwargs.update(rng.choice([
                {"cost": ("free",)}, {"lang": ("es",)}, {"service": ("prep",)},
                {"hours": ("open_now",)}, {"walk_in": True, "no_id": True},
                {"cost": ("free",), "lang": ("zh",)},
            ]))
        out.append(SearchQuery(**kwargs))  # type: ignore[arg-type]
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def time_search(app, zips: list[str]) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """p50 and p95 of search() in milliseconds over a fixed query mix."""
    rng = random.Random(11)
    now = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    with app.app_context():
        for q in queries(rng, zips, 20):  # warm up
            search(q, now)
        samples = []
        for q in queries(rng, zips, 300):
            t0 = time.perf_counter()
            search(q, now)
            samples.append((time.perf_counter() - t0) * 1000)
            db.session.remove()
    return percentile(samples, 50), percentile(samples, 95)


def throughput(app, path: str, seconds: float = 3.0) -> float:  # type: ignore[no-untyped-def]
    """Requests per second for one URL through the full Flask stack, one client."""
    client = app.test_client()
    client.get(path)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        count += 1
    return count / (time.perf_counter() - start)


def page_weight(app, path: str) -> tuple[int, int, int, list[str]]:  # type: ignore[no-untyped-def]
    """Bytes of a page and of every asset it links from our origin: raw, and as sent to a
    browser that accepts compression."""
    client = app.test_client()
    html = client.get(path).get_data()
    assets = sorted(set(re.findall(rb'(?:src|href)="(/static/[^"?#]+)', html)))
    raw = sent = 0
    for asset in assets:
        plain = client.get(asset.decode())
        raw += len(plain.get_data())
        plain.close()
        packed = client.get(asset.decode(), headers={"Accept-Encoding": "br, gzip"})
        sent += len(packed.get_data())
        packed.close()
    return len(html), raw, sent, [a.decode() for a in assets]


def make_app(url: str):  # type: ignore[no-untyped-def]
    """An app on a scratch database, with rate limits off so the loop measures the page."""
    settings = Settings(env="bench", secret_key="bench-only", database_url=url,
                        map_tiles_url="", extra={"RATELIMIT_ENABLED": False})
    return create_app(settings)


def scratch_urls(use_pg: bool) -> list[tuple[str, str]]:
    """(label, url) of the scratch databases to fill: SQLite always, PostgreSQL if up."""
    OUT.mkdir(exist_ok=True)
    urls = [("sqlite", f"sqlite:///{OUT / 'bench-scratch.db'}")]
    if use_pg:
        try:
            admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(sa.text('DROP DATABASE IF EXISTS "caremap_bench_scratch" WITH (FORCE)'))
                c.execute(sa.text('CREATE DATABASE "caremap_bench_scratch"'))
            admin.dispose()
            urls.append(("postgresql", PG_ADMIN.rsplit("/", 1)[0] + "/caremap_bench_scratch"))
        except sa.exc.OperationalError:
            print("PostgreSQL not reachable: SQLite only")
    return urls


def main() -> None:
    """Fill, measure and print."""
    # Thousands of requests would flood the output with access-log lines.
    logging.getLogger("caremap.access").disabled = True
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="300,10000,100000")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    zips = nyc_zips()
    print("CareMap NYC search benchmark (synthetic clinics in a scratch database)")
    print(f"{'db':<11}{'clinics':>9}{'p50 ms':>9}{'p95 ms':>9}{'page/trivial':>14}")
    for label, url in scratch_urls(not args.no_postgres):
        for n in sizes:
            app = make_app(url)
            with app.app_context():
                db.drop_all()
                db.create_all()
                fill(n)
            p50, p95 = time_search(app, zips)
            ratio = ""
            if n == 10000 and "/healthz" in {r.rule for r in app.url_map.iter_rules()}:
                trivial = throughput(app, "/healthz")
                results = throughput(app, "/clinics?near=10011&cost=free")
                ratio = f"{results / trivial:.2f}"
            print(f"{label:<11}{n:>9}{p50:>9.2f}{p95:>9.2f}{ratio:>14}", flush=True)
            if label == "sqlite" and n == sizes[0] and "/clinics" in {
                    r.rule for r in app.url_map.iter_rules()}:
                html, raw, sent, names = page_weight(app, "/clinics?near=10011")
                print(f"results page before tiles: {html} B html + {len(names)} assets; "
                      f"{(html + raw) / 1024:.1f} kB uncompressed, "
                      f"{(html + sent) / 1024:.1f} kB as sent compressed")
            with app.app_context():
                db.drop_all()
                db.engine.dispose()


if __name__ == "__main__":
    main()
