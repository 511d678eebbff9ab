"""The privacy audit on the production configuration: what a visit leaves behind.

Every public journey (searches by ZIP, neighbourhood and "near me", clinic pages, the
card, reviews sent and withdrawn, a suggested clinic, a corrected listing, the API and
its HSDS export, the language switch, a 404 and a 400) is made against gunicorn on
PostgreSQL and Redis, behind a proxy header, as deployed (tests/stack.py). Each journey
comes from its own address in 203.0.113.0/24 (TEST-NET-3, documentation only) with a user
agent and a referrer that carry canaries. Then everything the site kept is read back: a
pg_dump of the database, every line gunicorn and the app logged (at debug level), and
every key, value and expiry in Redis. None may hold an address, the user agent, the
referrer, the near-me coordinates, or the day or time a review was sent.

Finally Chromium opens every public page with map images off and records each request it
makes: all of them must go to our own origin.

All clinics are the shipped seed data; every review, suggestion and visitor is synthetic.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from directory.hours import NEW_YORK
from directory.privacy import SECRET_KEY_PREFIX, address_pepper, hash_address
from tests.stack import (
    CLIENT_NETWORK,
    ProxiedClient,
    Response,
    Stack,
    StackUnavailable,
    client_address,
    review_form,
    running_stack,
    unavailable,
)

pytestmark = pytest.mark.stack

UA_CANARY = "UA-canary-q7x4v"
REFERRER_CANARY = "referrer-canary-m2k9"
REFERRER = f"https://{REFERRER_CANARY}.invalid/came/from/here"
# "Near me" positions with digits no clinic or ZIP centroid shares; the app keeps only two
# decimals (about 1 km), so the audit looks for the full values and for the rounded pairs.
NEAR_ME = ("40.7433", "-73.9921")
NEAR_ME_ROUNDED = ("40.74", "-73.99")
API_NEAR = ("40.6782", "-73.9442")
API_NEAR_ROUNDED = ("40.68", "-73.94")
REVIEW_TEXT = "Synthetic audit review: calm waiting room, clear answers."
# A review form refuses a send within 3 s of being shown (reviews.MIN_FORM_SECONDS).
FORM_WAIT = 3.1
# How a day may be written: ISO, US, and the access-log style ("25/Nov/2026").
DAY_FORMS = ("%Y-%m-%d", "%m/%d/%Y", "%d/%b/%Y")
# How far apart, in a log, two rounded coordinates may be and still read as one position.
PAIR_SPAN = 200
TIME_OF_DAY = re.compile(r"(?<!\d)\d{1,2}:\d{2}:\d{2}(?!\d)")
ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
LIMIT_WINDOW = re.compile(rb"/(\d+)/(\d+)/(second|minute|hour|day|month|year)s?$")
# Seconds a key's expiry, as read through pttl, may stray from its window's grid.
GRID_SLACK = 0.5
WINDOW_SECONDS = {b"second": 1, b"minute": 60, b"hour": 3600, b"day": 86400,
                  b"month": 30 * 86400, b"year": 365 * 86400}


def agent(n: int) -> str:
    """A distinctive user agent for journey n; every one carries the canary."""
    return f"CareMapAudit/7.3 ({UA_CANARY}-{n}; synthetic)"


# --- Visitors -----------------------------------------------------------------------------


@dataclass
class Visitor:
    """One person on one address with one user agent, arriving from a referring page."""

    client: ProxiedClient

    def get(self, path: str, expect: int = 200, **params: str | list[str]) -> Response:
        """GET, with the referrer, checking the status so the journey really happened."""
        target = path + (f"?{urlencode(params, doseq=True)}" if params else "")
        response = self.client.request("GET", target, headers={"Referer": REFERRER})
        assert response.status == expect, f"GET {target}: {response.status}"
        return response

    def post(self, path: str, form: dict[str, str | list[str]], expect: int = 200
             ) -> Response:
        """POST a form, with the referrer, checking the status."""
        response = self.client.request("POST", path, form, headers={"Referer": REFERRER})
        assert response.status == expect, f"POST {path}: {response.status}\n{response.text}"
        return response


@dataclass
class Moment:
    """When a review was sent: the instants around the send, to search for afterwards."""

    before: datetime
    after: datetime

    def minutes(self) -> set[datetime]:
        """Every minute the send touched, in UTC and in New York."""
        found = set()
        instant = self.before.replace(second=0, microsecond=0)
        while instant <= self.after:
            found |= {instant, instant.astimezone(NEW_YORK)}
            instant += timedelta(minutes=1)
        return found

    def days(self) -> set[str]:
        """The send's day, in UTC and in New York, as ISO, US and log-style dates."""
        return {m.strftime(form) for m in self.minutes() for form in DAY_FORMS}

    def clock_times(self) -> set[str]:
        """The send's time of day as HH:MM (and H:MM), in UTC and in New York."""
        times = set()
        for minute in self.minutes():
            times |= {minute.strftime("%H:%M"), f"{minute.hour}:{minute.minute:02d}"}
        return times

    def epoch_seconds(self) -> set[str]:
        """Every Unix second around the send, as the digits a timestamp would store."""
        start, end = int(self.before.timestamp()) - 5, int(self.after.timestamp()) + 5
        return {str(second) for second in range(start, end + 1)}


@dataclass
class Journeys:
    """What the journeys did, for the checks and to prove they really ran."""

    addresses: list[str] = field(default_factory=list)
    review_moments: list[Moment] = field(default_factory=list)
    slug: str = ""

    def visitor(self, stack: Stack) -> Visitor:
        """A new visitor on the next address of 203.0.113.0/24."""
        n = len(self.addresses) + 1
        address = client_address(100 + n)
        self.addresses.append(address)
        return Visitor(stack.client(address, agent(n)))


def first_clinic_slug(page: Response) -> str:
    """The first clinic linked from a results page."""
    match = re.search(r'href="/clinics/([a-z0-9-]+)(?:\?[^"]*)?"', page.text)
    assert match, "no clinic on the results page"
    return match.group(1)


def code_words(thanks: Response) -> str:
    """The withdrawal code shown once on the thanks page."""
    words = re.findall(r'<span class="code-word">([^<]+)</span>', thanks.text)
    assert len(words) == 6, thanks.text
    return " ".join(words)


def browse(stack: Stack, journeys: Journeys) -> None:
    """The journeys that only read: searches, pages, the API, languages, errors."""
    journeys.visitor(stack).get(
        "/clinics", near="10001", service=["prep", "sti_testing"], cost="free", lang="es",
        hours="evening", walk_in="y", sort="distance")
    journeys.slug = slug = first_clinic_slug(
        journeys.visitor(stack).get("/clinics", near="10001"))
    journeys.visitor(stack).get("/clinics", near="Mott Haven", no_id="y")
    near_me = journeys.visitor(stack)
    near_me.get("/clinics", lat=NEAR_ME[0], lng=NEAR_ME[1])
    near_me.get("/clinics", lat=NEAR_ME[0], lng=NEAR_ME[1], page="2", tiles="off")
    reader = journeys.visitor(stack)
    reader.get(f"/clinics/{slug}")
    reader.get(f"/clinics/{slug}/card")
    reader.get(f"/clinics/{slug}/reviews")
    api = journeys.visitor(stack)
    api.get("/api/v1/clinics", lat=API_NEAR[0], lng=API_NEAR[1], service="prep")
    api.get(f"/api/v1/clinics/{slug}")
    api.get("/api/v1/hsds.json")
    api.get("/api/v1/clinics", expect=400, lat="999")
    switcher = journeys.visitor(stack)
    switcher.get("/language/es", expect=303, next=f"/clinics/{slug}")
    spanish = switcher.get(f"/clinics/{slug}")
    assert 'lang="es"' in spanish.text
    lost = journeys.visitor(stack)
    lost.get("/clinics/no-such-clinic-anywhere", expect=404)
    lost.get("/clinics", expect=400, lat="not-a-number")


def contribute(stack: Stack, journeys: Journeys) -> None:
    """The journeys that write: two reviews (one withdrawn), a suggestion, a correction."""
    slug = journeys.slug
    keeper, withdrawer = journeys.visitor(stack), journeys.visitor(stack)
    suggester, corrector = journeys.visitor(stack), journeys.visitor(stack)
    forms = {
        "keeper": review_form(keeper.client, slug),
        "withdrawer": review_form(withdrawer.client, slug),
        "suggest": _hidden_fields(suggester.get("/suggest")),
        "correct": _hidden_fields(corrector.get(f"/clinics/{slug}/correct")),
    }
    withdraw_page = _hidden_fields(withdrawer.get("/reviews/withdraw"))
    time.sleep(FORM_WAIT)  # once, for all four forms
    answers = {"respect": "5", "open_about_work": "4", "asked_for_id": "no",
               "cost_affordable": "3", "privacy": "5", "gender_respected": "",
               "would_recommend": "4", "service": "", "visit_month": "", "visit_year": "",
               "confirm_site": "", "text": REVIEW_TEXT}
    codes = []
    for who, visitor in (("keeper", keeper), ("withdrawer", withdrawer)):
        before = datetime.now(UTC)
        thanks = visitor.post(f"/clinics/{slug}/review", {**answers, **forms[who]})
        journeys.review_moments.append(Moment(before, datetime.now(UTC)))
        codes.append(code_words(thanks))
    withdrawn = withdrawer.post("/reviews/withdraw", {**withdraw_page, "code": codes[1]},
                                expect=303)
    assert withdrawn.headers["location"].endswith("/reviews/withdrawn")
    suggester.post("/suggest", {
        **forms["suggest"], "name": "Synthetic Audit Clinic", "address_1": "1 Example Plaza",
        "postal_code": "10001", "services": ["prep", "condoms"], "phone": "212-555-0100",
        "how_known": "visited", "notes": "Synthetic suggestion for the privacy audit.",
        "confirm_site": ""})
    corrector.post(f"/clinics/{slug}/correct", {
        **forms["correct"], "kind": "correction", "phone": "212-555-0199",
        "how_known": "visited", "notes": "Synthetic correction for the privacy audit.",
        "confirm_site": ""})


def _hidden_fields(page: Response) -> dict[str, str | list[str]]:
    """The CSRF token, and the form token where the form has one."""
    fields: dict[str, str | list[str]] = {"csrf_token": page.form_value("csrf_token")}
    if 'name="form_token"' in page.text:
        fields["form_token"] = page.form_value("form_token")
    return fields


# --- What the site kept ---------------------------------------------------------------


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as pg_dump understands it (no +psycopg driver)."""
    return sa.engine.make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def pg_dump(database_url: str, *options: str) -> str:
    """The database as pg_dump writes it."""
    command = ["pg_dump", *options, "--dbname", libpq_url(database_url)]
    # S603, S607: pg_dump from PATH, as the operator would run it; arguments are ours.
    result = subprocess.run(command, capture_output=True, text=True,  # noqa: S603,S607
                            timeout=300, check=False)
    if result.returncode != 0:
        raise StackUnavailable(f"pg_dump failed: {result.stderr[-500:]}")
    return result.stdout


def temporal_values(database_url: str) -> dict[tuple[str, str], set[str]]:
    """Every value of every date, time or timestamp column, by (table, column)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            columns = conn.execute(sa.text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND (data_type LIKE 'date%' "
                "OR data_type LIKE 'time%' OR data_type LIKE 'interval%')")).all()
            return {(table, column): {str(v) for v in conn.execute(sa.text(
                # S608: the names come from information_schema, not from input.
                f'SELECT DISTINCT "{column}" FROM "{table}"')).scalars()}  # noqa: S608
                for table, column in columns}
    finally:
        engine.dispose()


@dataclass
class RedisEntry:
    """A Redis key with its value and the moment it expires (None: never)."""

    value: bytes
    expires_at: float | None


def redis_contents(stack: Stack) -> dict[bytes, RedisEntry]:
    """Every key, its value and when it expires, as someone with the server would see."""
    import redis

    values = stack.redis.dump()
    client = redis.Redis(host="127.0.0.1", port=stack.redis.port)
    try:
        now = time.time()
        entries = {}
        for key, value in values.items():
            ttl = client.pttl(key)
            entries[key] = RedisEntry(value, now + ttl / 1000 if ttl > 0 else None)
        return entries
    finally:
        client.close()


# What the journeys must have written, or the audit read an untouched database.
COUNTS = {
    "reviews": "SELECT count(*) FROM review WHERE text = :text",
    "withdrawn": "SELECT count(*) FROM review WHERE status = 'withdrawn'",
    "suggestions": "SELECT count(*) FROM suggestion WHERE notes LIKE 'Synthetic%'",
}


@dataclass
class Evidence:
    """Everything the stack kept after the journeys, and what the journeys were."""

    journeys: Journeys
    data_dump: str
    full_dump: str
    new_rows: list[str]
    new_temporal: dict[tuple[str, str], set[str]]
    review_columns: dict[str, str]
    logs: str
    redis: dict[bytes, RedisEntry]
    counts: dict[str, int]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The production stack, with gunicorn logging at debug level so that is audited too."""
    try:
        with running_stack(tmp_path_factory.mktemp("privacy-stack"),
                           extra_env={"GUNICORN_LOGLEVEL": "debug"}) as running:
            yield running
    except StackUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def evidence(stack: Stack) -> Evidence:
    """Run every journey, then read back the database, the logs and Redis."""
    before_rows = set(pg_dump(stack.database_url, "--data-only").splitlines())
    before_temporal = temporal_values(stack.database_url)
    journeys = Journeys()
    browse(stack, journeys)
    contribute(stack, journeys)
    data_dump = pg_dump(stack.database_url, "--data-only")
    after_temporal = temporal_values(stack.database_url)
    engine = sa.create_engine(stack.database_url)
    with engine.connect() as conn:
        review_columns = dict(conn.execute(sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'review'")).all())
        counts = {name: conn.execute(sa.text(sql), {"text": REVIEW_TEXT}).scalar_one()
                  for name, sql in COUNTS.items()}
    engine.dispose()
    return Evidence(
        journeys=journeys,
        data_dump=data_dump,
        full_dump=pg_dump(stack.database_url),
        new_rows=[line for line in data_dump.splitlines() if line not in before_rows],
        new_temporal={key: values - before_temporal.get(key, set())
                      for key, values in after_temporal.items()},
        review_columns=review_columns,
        logs=stack.logs(),
        redis=redis_contents(stack),
        counts=counts,
    )


# --- What may not be there ------------------------------------------------------------


def address_forms(address: str) -> dict[str, str]:
    """Ways an address could be written down: dotted, reversed, hex, integer, hashed."""
    ip = ipaddress.IPv4Address(address)
    return {
        "dotted": address,
        "reversed (in-addr.arpa)": ".".join(reversed(address.split("."))),
        "hex": ip.packed.hex(),
        "mapped IPv6": f"::ffff:{ip.packed[:2].hex()}:{ip.packed[2:].hex()}",
        "integer": str(int(ip)),
        "sha256": hashlib.sha256(address.encode()).hexdigest()[:16],
        "sha1": hashlib.sha1(address.encode()).hexdigest()[:16],  # noqa: S324 (a search term)
        "md5": hashlib.md5(address.encode()).hexdigest()[:16],  # noqa: S324 (a search term)
    }


def identity_leaks(text: str, addresses: list[str]) -> list[str]:
    """Every trace of who the visitors were: address, user agent or referrer."""
    lowered = text.lower()
    found = [f"an address of {CLIENT_NETWORK}0/24"] if CLIENT_NETWORK in text else []
    for address in addresses:
        for form, written in address_forms(address).items():
            pattern = rf"(?<![0-9a-f]){re.escape(written.lower())}(?![0-9a-f])" \
                if form in ("integer", "hex") else re.escape(written.lower())
            if re.search(pattern, lowered):
                found.append(f"{address} as {form} ({written})")
    for canary, what in ((UA_CANARY, "the user agent"), ("caremapaudit", "the user agent"),
                         (REFERRER_CANARY, "the referrer")):
        if canary.lower() in lowered:
            found.append(what)
    return found


def packed_leaks(raw: bytes, addresses: list[str]) -> list[str]:
    """Addresses as the four raw bytes a binary store would keep."""
    return [a for a in addresses if ipaddress.IPv4Address(a).packed in raw]


def coordinate_leaks(text: str, pairs_apart: int | None) -> list[str]:
    """The near-me positions at full precision anywhere; rounded as a pair, nearby.

    pairs_apart is how far apart the rounded halves may be (None: on one line).
    """
    found = [value for value in (*NEAR_ME, *API_NEAR)
             if re.search(rf"(?<![\d.]){re.escape(value)}(?!\d)", text)]
    for lat, lng in (NEAR_ME_ROUNDED, API_NEAR_ROUNDED):
        lat_re, lng_re = (rf"(?<![\d.]){re.escape(v)}(?!\d)" for v in (lat, lng))
        span = r"[^\n]*?" if pairs_apart is None else rf"[\s\S]{{0,{pairs_apart}}}?"
        if re.search(rf"{lat_re}{span}{lng_re}|{lng_re}{span}{lat_re}", text):
            found.append(f"{lat},{lng} (rounded, as a pair)")
    return found


def moment_leaks(text: str, moments: list[Moment]) -> list[str]:
    """A review send's day (as an ISO date), its time of day, or its Unix second."""
    found = []
    for moment in moments:
        found += [day for day in moment.days() if day in text]
        found += [clock for clock in moment.clock_times()
                  if re.search(rf"(?<![\d:]){clock}(?![\d])", text)]
        found += [s for s in moment.epoch_seconds() if re.search(rf"(?<!\d){s}(?!\d)", text)]
    return found


# --- The audit ----------------------------------------------------------------------------


def test_the_journeys_really_ran_and_were_logged(evidence: Evidence) -> None:
    """The audit is only as good as its journeys: they wrote rows and left log lines."""
    assert evidence.counts == {"reviews": 1, "withdrawn": 1, "suggestions": 2}
    assert len(set(evidence.journeys.addresses)) == len(evidence.journeys.addresses) >= 12
    slug = evidence.journeys.slug
    for line in (f"POST /clinics/{slug}/review 200", "POST /reviews/withdraw 303",
                 "POST /suggest 200", f"POST /clinics/{slug}/correct 200",
                 "GET /api/v1/hsds.json 200", "GET /clinics 400", "[DEBUG]"):
        assert line in evidence.logs, f"no {line!r} in the logs"
    assert any(key.startswith(b"LIMITS") for key in evidence.redis), "no rate-limit keys"
    assert evidence.new_rows, "the journeys changed nothing in the database"


def test_database_keeps_no_address_user_agent_or_referrer(evidence: Evidence) -> None:
    """pg_dump (data only and whole) names no visitor in any form."""
    addresses = evidence.journeys.addresses
    for name, dump in (("data-only", evidence.data_dump), ("full", evidence.full_dump)):
        assert identity_leaks(dump, addresses) == [], f"pg_dump {name}"
        assert packed_leaks(dump.encode(), addresses) == [], f"pg_dump {name}"


def test_logs_keep_no_address_user_agent_or_referrer(evidence: Evidence) -> None:
    """gunicorn's access and error logs and the app's own log name no visitor."""
    assert identity_leaks(evidence.logs, evidence.journeys.addresses) == []


def test_redis_keeps_no_address_user_agent_or_referrer(evidence: Evidence) -> None:
    """No Redis key or value names a visitor, in text or as raw bytes."""
    addresses = evidence.journeys.addresses
    for key, entry in evidence.redis.items():
        raw = key + b" " + entry.value
        assert identity_leaks(raw.decode("latin-1"), addresses) == [], key
        assert packed_leaks(raw, addresses) == [], key


def test_near_me_positions_are_kept_nowhere(evidence: Evidence) -> None:
    """Neither the exact position sent nor its rounded pair is in the data, logs or Redis."""
    assert coordinate_leaks(evidence.full_dump, pairs_apart=None) == []
    assert coordinate_leaks("\n".join(evidence.new_rows), pairs_apart=None) == []
    assert coordinate_leaks(evidence.logs, pairs_apart=PAIR_SPAN) == []
    redis_text = "\n".join((k + b" " + e.value).decode("latin-1")
                           for k, e in evidence.redis.items())
    assert coordinate_leaks(redis_text, pairs_apart=PAIR_SPAN) == []


def test_reviews_keep_months_only(evidence: Evidence) -> None:
    """The review table has dates but no times, and every date is a month's first day."""
    temporal = {name: kind for name, kind in evidence.review_columns.items()
                if kind.startswith(("date", "time", "interval"))}
    assert temporal == {"received_month": "date", "visit_month": "date"}
    new_dates = {f"{table}.{column}": values
                 for (table, column), values in evidence.new_temporal.items() if values}
    assert "review.received_month" in new_dates, "the review's month was not stored"
    for column, values in new_dates.items():
        for value in values - {"None"}:
            assert re.fullmatch(r"\d{4}-\d{2}-01", value), f"{column} holds {value}"


def test_database_rows_written_by_the_journeys_carry_no_day_or_time(
        evidence: Evidence) -> None:
    """Rows the journeys added or changed hold no day of the month and no time of day."""
    written = "\n".join(evidence.new_rows)
    assert moment_leaks(written, evidence.journeys.review_moments) == []
    assert TIME_OF_DAY.findall(written) == []
    days = [m.group(0) for m in ISO_DATE.finditer(written) if m.group(3) != "01"]
    assert days == []


def test_logs_carry_no_day_or_time(evidence: Evidence) -> None:
    """No log line dates a request: no review day, no clock time, no Unix second."""
    assert moment_leaks(evidence.logs, evidence.journeys.review_moments) == []
    assert TIME_OF_DAY.findall(evidence.logs) == []


def test_redis_carries_no_review_day_or_time(evidence: Evidence) -> None:
    """Redis names no review's day or time, in keys, values or in when keys expire.

    One key names a UTC day on purpose: the day's rate-limit secret (privacy.py), which
    exists as soon as anyone is rate limited that day and says nothing about a review.
    """
    moments = evidence.journeys.review_moments
    for key, entry in evidence.redis.items():
        name = key.decode("latin-1")
        if name.startswith(SECRET_KEY_PREFIX):
            name = SECRET_KEY_PREFIX
        assert moment_leaks(f"{name} {entry.value.decode('latin-1')}", moments) == [], key
        assert expiry_dates_a_send(key, entry, moments) == [], key
    limits = {key: entry for key, entry in evidence.redis.items() if LIMIT_WINDOW.search(key)}
    assert any(b"reviews.send_review" in key for key in limits)
    assert {key: off_grid for key, entry in limits.items()
            if (off_grid := seconds_off_grid(key, entry))} == {}


def limit_window(key: bytes) -> int | None:
    """The window of a rate-limit counter, in seconds, from its key's name."""
    match = LIMIT_WINDOW.search(key)
    return int(match.group(2)) * WINDOW_SECONDS[match.group(3)] if match else None


def expiry_dates_a_send(key: bytes, entry: RedisEntry, moments: list[Moment]) -> list[str]:
    """Whether a key's expiry, less its window, falls on the second of a review send.

    A counter that expires one window after its first hit tells whoever reads the TTL
    when that hit was: for the review limit, when the review was sent.
    """
    if entry.expires_at is None:
        return []
    window = limit_window(key)
    if window and seconds_off_grid(key, entry) == 0.0:
        # On its window's grid (checked apart): the expiry names the window, not the
        # second, and a send that happened to fall near a grid line is no leak.
        return []
    windows = [window] if window else [60, 3600, 7200, 86400]
    return [f"expires {window} s after a send" for window in windows for m in moments
            if m.before.timestamp() - 2 <= entry.expires_at - window
            <= m.after.timestamp() + 2]


def seconds_off_grid(key: bytes, entry: RedisEntry) -> float:
    """How far a counter's expiry is from its window's grid (0: it dates only the window)."""
    window = limit_window(key)
    if entry.expires_at is None or window is None:
        return 0.0
    off = entry.expires_at % window
    # pttl and the clock are read a moment apart: a few milliseconds either way is on grid.
    return 0.0 if min(off, window - off) < GRID_SLACK else round(off, 3)


def test_a_copy_of_redis_cannot_turn_limit_keys_back_into_addresses(
        evidence: Evidence, stack: Stack) -> None:
    """Whoever copies Redis tries every address under the secrets found there: no match.

    Here only the journeys' own addresses are tried; an attacker would try them all. The
    same try with the app's own SECRET_KEY does match, so the keys are the ones tried.
    """
    secrets = [bytes.fromhex(entry.value.decode()) for key, entry in evidence.redis.items()
               if key.startswith(SECRET_KEY_PREFIX.encode())]
    assert secrets, "no rate-limit secret in Redis: the limiter did not run"
    keys = b"\n".join(evidence.redis)

    def recovered(pepper: bytes) -> list[str]:
        return [address for address in evidence.journeys.addresses for secret in secrets
                if hash_address(address, secret, pepper).encode() in keys]

    assert recovered(b"") == []
    assert recovered(address_pepper(stack.env_value("SECRET_KEY")))


# --- Chromium, with map images off ------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium through Playwright, as tests/browser/conftest.py starts it."""
    from tests.browser.conftest import launched_chromium

    with launched_chromium(unavailable) as browser:
        yield browser


def public_pages(slug: str) -> list[str]:
    """Every public page, with map images off wherever a map is drawn."""
    return [
        "/", "/about", "/safety", "/suggest", "/reviews/withdraw", "/reviews/withdrawn",
        "/clinics?near=10001&tiles=off",
        "/clinics?near=Mott+Haven&service=prep&cost=free&tiles=off",
        f"/clinics?lat={NEAR_ME[0]}&lng={NEAR_ME[1]}&tiles=off",
        f"/clinics/{slug}?tiles=off", f"/clinics/{slug}/card", f"/clinics/{slug}/reviews",
        f"/clinics/{slug}/review", f"/clinics/{slug}/correct",
        f"/language/es?next=/clinics/{slug}%3Ftiles%3Doff",
        "/api/v1/docs", "/clinics/no-such-clinic-anywhere", "/clinics?lat=not-a-number",
    ]


@pytest.mark.browser
def test_pages_request_nothing_outside_our_origin(stack: Stack, chromium: Any,
                                                  evidence: Evidence) -> None:
    """Chromium opening every public page asks our origin only: no tiles, fonts or CDNs."""
    origin = f"http://127.0.0.1:{stack.port}"
    address = client_address(250)
    context = chromium.new_context(
        user_agent=agent(0), extra_http_headers={"X-Forwarded-For": address})
    requests: list[str] = []
    try:
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        for path in public_pages(evidence.journeys.slug):
            page.goto(origin + path, wait_until="networkidle")
    finally:
        context.close()
    foreign = [url for url in requests
               if not url.startswith("data:") and not url.startswith(origin + "/")]
    assert foreign == []
    # The pages really loaded their own assets (the map's script and styles, at least).
    assert any("/static/" in url for url in requests)
    assert len(requests) > len(public_pages(evidence.journeys.slug))
    # A real browser's headers (client hints and all) are kept nowhere either.
    assert identity_leaks(stack.logs(), [address]) == []
    assert [key for key, value in stack.redis.dump().items()
            if identity_leaks((key + b" " + value).decode("latin-1"), [address])] == []

