"""Load on the scale path: gunicorn, PostgreSQL and Redis as deployed, under a realistic mix.

Starts the stack of tests/stack.py (gunicorn with gunicorn.conf.py and CAREMAP_ENV=production
on a SCRATCH PostgreSQL database with the real seed data imported, a private Redis as the
limiter's storage, the app behind one trusted proxy) and sends it, from Python threads,
to 127.0.0.1 only, in steps of rising concurrency, each bounded in time:
- 80% searches: ZIPs of the seed's clinics, NYC neighbourhood names, "near me" points
  beside real clinics, half with one or two filters (cost, language, service, hours,
  walk-in and no ID, well rated, sort by score), one in ten asking for page 2;
- 15% clinic pages (real slugs from the database);
- 5% review submissions, with forms fetched between steps (the form refuses a send
  within 3 s of being shown), texts "SYNTHETIC load-test review".
Every request comes from its own address of 198.18.0.0/15 (RFC 2544's benchmarking range;
reviews from 198.19.x.y, the rest from 198.18.x.y), as the proxy's X-Forwarded-For, so the
per-address limits (searches 120 a minute, reviews 6 an hour) do not turn the load into
429s. SEARCH_RATE_LIMIT is not read from the environment (directory/config.py), so the
limits stay as deployed and the addresses spread the load instead.

Per step it prints requests/s, p50/p95/p99 latency overall and per kind, errors (5xx,
connection errors, timeouts), 429s and other 4xx, then the same concurrency against
/healthz and the ratio of the mix's throughput to it. The machine has 2 cores shared by
gunicorn, PostgreSQL, Redis and this client: the figures are that machine's, the client's
own CPU included; the absolute numbers say little about a real server, the trend and the
ratio more.

Usage: .venv/bin/python bench/load.py [--quick] [--steps 1,4,8,16,32] [--seconds 10]
       [--workers 5]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import os
import queue
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack import ProxiedClient, Stack, StackUnavailable, running_stack  # noqa: E402

MIX = (("search", 80), ("clinic", 15), ("review", 5))
FILTERS: tuple[dict[str, str], ...] = (
    {"cost": "free"}, {"lang": "es"}, {"service": "prep"}, {"hours": "open_now"},
    {"walk_in": "y", "no_id": "y"}, {"service": "hiv_testing", "cost": "free"},
    {"lang": "zh"}, {"rated": "y"}, {"sort": "score"}, {"hours": "evening"},
)
TIMEOUT_S = 10.0
FORM_WAIT_S = 3.2  # the form refuses a send within 3 s of being shown
CONNECTION_ERROR, TIMEOUT = 0, -1
REVIEW_TEXT = "SYNTHETIC load-test review: friendly staff, no questions about work."
USER_AGENT = "CareMap load test (bench/load.py)"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values; nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class Addresses:
    """Hands out addresses of 198.18.0.0/15, never the same one twice in a run."""

    def __init__(self, second_octet: int) -> None:
        self._second = second_octet
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next(self) -> str:
        """The next unused address (65,024 of them per half of the range)."""
        with self._lock:
            n = next(self._counter)
        return f"198.{self._second}.{(n // 254) % 256}.{1 + n % 254}"


@dataclass
class Seed:
    """What the real seed data offers to search for and to open."""

    zips: list[str]
    neighbourhoods: list[str]
    points: list[tuple[float, float]]
    slugs: list[str]

    @classmethod
    def read(cls, database_url: str) -> Seed:
        """Read ZIPs, neighbourhood names, clinic positions and slugs from the database."""
        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as conn:
                def column(sql: str) -> list[object]:
                    return [row[0] for row in conn.execute(sa.text(sql))]
                active = "FROM location WHERE status = 'active'"
                zips = column(f"SELECT DISTINCT postal_code {active} AND postal_code <> ''")
                names = column("SELECT name FROM neighbourhood")
                points = [(float(r[0]), float(r[1])) for r in conn.execute(sa.text(
                    f"SELECT latitude, longitude {active}"))]
                slugs = column(f"SELECT slug {active}")
        finally:
            engine.dispose()
        return cls([str(z) for z in zips], [str(n) for n in names], points,
                   [str(s) for s in slugs])

    def search_path(self, rng: random.Random) -> str:
        """One search a person might make: a place, maybe filters, maybe page 2."""
        params: dict[str, str] = {}
        where = rng.random()
        if where < 0.5 or not self.neighbourhoods:
            params["near"] = rng.choice(self.zips)
        elif where < 0.8:
            params["near"] = rng.choice(self.neighbourhoods)
        else:  # "near me": a phone's position a few blocks from a clinic
            lat, lng = rng.choice(self.points)
            params["lat"] = f"{lat + rng.uniform(-0.01, 0.01):.4f}"
            params["lng"] = f"{lng + rng.uniform(-0.01, 0.01):.4f}"
        if rng.random() < 0.5:
            for extra in rng.sample(FILTERS, rng.choice((1, 1, 2))):
                params.update(extra)
        if rng.random() < 0.1:
            params["page"] = "2"
        return f"/clinics?{urlencode(params)}"


@dataclass
class ReadyForm:
    """A review form fetched beforehand: the client holding its session, and its fields."""

    client: ProxiedClient
    slug: str
    fields: dict[str, str]
    shown_at: float


@dataclass
class Sample:
    """One request's kind, status (0: connection error, -1: timeout) and latency."""

    kind: str
    status: int
    ms: float


@dataclass
class Step:
    """The samples of one step and how long it took."""

    concurrency: int
    seconds: float
    samples: list[Sample] = field(default_factory=list)
    pool_ran_dry: int = 0

    @property
    def rate(self) -> float:
        """Requests completed per second."""
        return len(self.samples) / self.seconds if self.seconds else 0.0

    def latencies(self, kind: str | None = None) -> list[float]:
        """Latencies in ms of answered requests (any status), of one kind or all."""
        return [s.ms for s in self.samples if s.status > 0 and kind in (None, s.kind)]

    def count(self, test: Callable[[int], bool]) -> int:
        """How many samples have a status passing test."""
        return sum(1 for s in self.samples if test(s.status))


def is_error(status: int) -> bool:
    """5xx, connection errors and timeouts: what a person would see as the site failing."""
    return status <= 0 or status >= 500


class Load:
    """The request mix against one running stack."""

    def __init__(self, stack: Stack, seed: Seed) -> None:
        self.stack = stack
        self.seed = seed
        self.browsing = Addresses(18)
        self.reviewing = Addresses(19)
        self.forms: queue.Queue[ReadyForm] = queue.Queue()

    def client(self, addresses: Addresses) -> ProxiedClient:
        """A client behind the proxy, from a fresh address."""
        client = self.stack.client(addresses.next(), USER_AGENT)
        client.timeout = TIMEOUT_S
        return client

    def get(self, path: str) -> int:
        """GET a path (query string included) from a fresh browsing address; the status."""
        return self.client(self.browsing).request("GET", path).status

    def fetch_form(self, rng: random.Random) -> None:
        """Fetch one review form, as a person opening it, and keep it for a later send."""
        client = self.client(self.reviewing)
        slug = rng.choice(self.seed.slugs)
        page = client.get(f"/clinics/{slug}/review")
        if page.status == 200:
            self.forms.put(ReadyForm(client, slug, {
                "csrf_token": page.form_value("csrf_token"),
                "form_token": page.form_value("form_token")}, time.monotonic()))

    def top_up_forms(self, wanted: int, threads: int = 4) -> None:
        """Fill the pool of ready forms to `wanted`, then wait until all may be sent."""
        missing = wanted - self.forms.qsize()
        if missing > 0:
            def fetch(worker: int) -> None:
                rng = random.Random(worker * 7919 + time.time_ns())
                for _ in range(worker, missing, threads):
                    self.fetch_form(rng)
            workers = [threading.Thread(target=fetch, args=(i,)) for i in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        time.sleep(FORM_WAIT_S)

    def send_review(self, rng: random.Random, step: Step) -> tuple[str, int]:
        """Send a ready form; a search instead (counted) if the pool ran dry."""
        try:
            form = self.forms.get_nowait()
        except queue.Empty:
            step.pool_ran_dry += 1
            return "search", self.get(self.seed.search_path(rng))
        answers = {"respect": str(rng.randint(3, 5)), "privacy": str(rng.randint(2, 5)),
                   "asked_for_id": rng.choice(["yes", "no"]), "text": REVIEW_TEXT}
        response = form.client.post(f"/clinics/{form.slug}/review", {**form.fields, **answers})
        return "review", response.status

    def one(self, kind: str, rng: random.Random, step: Step) -> tuple[str, int]:
        """Send one request of this kind; returns the kind actually sent and its status."""
        if kind == "search":
            return kind, self.get(self.seed.search_path(rng))
        if kind == "clinic":
            slug = rng.choice(self.seed.slugs)
            return kind, self.get(f"/clinics/{slug}")
        if kind == "healthz":
            return kind, self.get("/healthz")
        return self.send_review(rng, step)

    def run_step(self, concurrency: int, seconds: float, only: str | None = None) -> Step:
        """`concurrency` threads sending the mix (or only `only`) for `seconds`."""
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        step = Step(concurrency, seconds)
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def worker(n: int) -> None:
            rng = random.Random(n * 104729 + time.time_ns())
            mine = []
            while time.monotonic() < deadline:
                kind = only or rng.choices(kinds, weights)[0]
                t0 = time.perf_counter()
                try:
                    sent, status = self.one(kind, rng, step)
                except TimeoutError:
                    sent, status = kind, TIMEOUT
                except (OSError, http.client.HTTPException):
                    sent, status = kind, CONNECTION_ERROR
                mine.append(Sample(sent, status, (time.perf_counter() - t0) * 1000))
            with lock:
                step.samples.extend(mine)

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        step.seconds = time.monotonic() - started
        return step


def figures(values: list[float]) -> str:
    """p50/p95/p99 in ms, aligned."""
    return "".join(f"{percentile(values, q):>8.1f}" for q in (50, 95, 99))


def print_step(step: Step, healthz: Step) -> None:
    """One line for the mix and one per kind."""
    errors = step.count(is_error)
    limited = step.count(lambda s: s == 429)
    other = step.count(lambda s: 400 <= s < 500 and s != 429)
    ratio = step.rate / healthz.rate if healthz.rate else float("nan")
    print(f"{step.concurrency:>5}{step.rate:>9.1f}{figures(step.latencies())}"
          f"{errors:>8}{limited:>6}{other:>6}{healthz.rate:>11.1f}"
          f"{healthz.count(is_error):>6}{ratio:>8.2f}", flush=True)
    for kind, _ in MIX:
        latencies = step.latencies(kind)
        sent = sum(1 for s in step.samples if s.kind == kind)
        kind_errors = sum(1 for s in step.samples if s.kind == kind and is_error(s.status))
        print(f"{'':>5}  {kind:<7}{sent:>6} sent{figures(latencies)}{kind_errors:>8}")
    if step.pool_ran_dry:
        print(f"{'':>7}(review forms ran out {step.pool_ran_dry} times: searches sent)")


def main() -> None:
    """Start the stack, run every step, print, tear down."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="steps 1,4,8 of 3 s each (about a minute with set-up)")
    parser.add_argument("--steps", default="1,4,8,16,32", help="concurrency per step")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each step")
    parser.add_argument("--workers", type=int, default=min(2 * (os.cpu_count() or 1) + 1, 8),
                        help="gunicorn workers (default: gunicorn.conf.py's 2 x cores + 1)")
    args = parser.parse_args()
    steps = [1, 4, 8] if args.quick else [int(s) for s in args.steps.split(",")]
    seconds = 3.0 if args.quick else min(args.seconds, 20.0)  # bounded, whatever is asked
    with tempfile.TemporaryDirectory(prefix="caremap-load-") as workdir:
        try:
            with running_stack(Path(workdir), workers=args.workers) as stack:
                run(stack, steps, seconds, args.workers)
        except StackUnavailable as exc:
            print(f"cannot start the stack: {exc}")
            raise SystemExit(1) from exc


def run(stack: Stack, steps: list[int], seconds: float, workers: int) -> None:
    """Warm up, then each step of the mix and of /healthz, printed as they finish."""
    seed = Seed.read(stack.database_url)
    load = Load(stack, seed)
    print("CareMap NYC load test: gunicorn (gunicorn.conf.py, production settings, "
          f"{workers} sync workers), PostgreSQL and Redis, all on 127.0.0.1")
    print(f"real seed data in a scratch database: {len(seed.slugs)} open clinics, "
          f"{len(seed.zips)} ZIPs, {len(seed.neighbourhoods)} neighbourhoods; "
          "reviews sent are SYNTHETIC")
    print(f"{os.cpu_count()} cores shared by gunicorn, PostgreSQL, Redis and this client "
          "(Python threads, a new connection per request, no keep-alive); load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    print(f"mix: 80% search, 15% clinic page, 5% review submission; {seconds:.0f} s per "
          "step, then /healthz at the same concurrency for as long")
    warm = load.run_step(4, 3.0)
    print(f"warm-up: {len(warm.samples)} requests, {warm.count(is_error)} errors\n")
    print(f"{'conc':>5}{'req/s':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'errors':>8}{'429':>6}"
          f"{'4xx':>6}{'healthz/s':>11}{'err':>6}{'ratio':>8}")
    print(f"{'':>5}  (per kind: requests sent, p50/p95/p99 ms, errors)")
    total_errors = 0
    for concurrency in steps:
        # Reviews are 5% of the mix: enough ready forms for 5% of ~40 requests/s per
        # thread (at most ~150/s overall on two cores), with room to spare.
        load.top_up_forms(int(0.05 * min(40 * concurrency, 150) * seconds * 2) + 5)
        mix = load.run_step(concurrency, seconds)
        healthz = load.run_step(concurrency, seconds, only="healthz")
        print_step(mix, healthz)
        total_errors += mix.count(is_error) + healthz.count(is_error)
    server_errors = sum(1 for line in stack.logs().splitlines() if "Traceback" in line)
    print(f"\nerrors in all steps: {total_errors}; tracebacks in gunicorn's log: "
          f"{server_errors}")


if __name__ == "__main__":
    main()
