"""Faults on the scale path: PostgreSQL restarting under a stream of reviews, Redis gone.

A person who sends a review while the database restarts must be told the truth: a
success page only if the review is kept (whole: every answer and the text), a kind
"nothing was saved, try again" otherwise, with what they typed still there to send again.
With Redis down the site keeps serving and keeps limiting (Flask-Limiter's in-memory
fallback, one count per worker), and goes back to shared limits when Redis returns.

Everything runs on the deployed stack (gunicorn, PostgreSQL, Redis; tests/stack.py) with
a PostgreSQL cluster of its own, so restarting it disturbs nobody else. All review text
is synthetic and says so; client addresses are documentation addresses (203.0.113.0/24).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html import unescape
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from directory import reviews
from directory.extensions import db
from directory.models import Review
from directory.privacy import (
    SECRET_KEY_PREFIX,
    USED_KEY_PREFIX,
    address_pepper,
    hash_address,
    utc_day,
)
from directory.reviews import MIN_FORM_SECONDS
from directory.scores import QUESTIONS
from directory.withdrawal import code_hash
from tests.factories import make_clinic
from tests.moderation_helpers import csrf_from
from tests.stack import (
    PrivateCluster,
    ProxiedClient,
    Response,
    Stack,
    StackUnavailable,
    client_address,
    private_cluster,
    review_form,
    running_stack,
    unavailable,
    wait_until,
)

pytestmark = pytest.mark.stack

MARKER = "SYNTHETIC fault-test review"
STREAM = 60  # review sends in the PostgreSQL stream
SENDERS = 3  # threads sending at once, as many as gunicorn has workers
PACE = 0.25  # seconds each sender waits between sends, so the outage falls mid-stream
FORM_WAIT = MIN_FORM_SECONDS + 0.1
WITHDRAW_LIMIT = 10  # reviews.WITHDRAW_RATE_LIMIT per hour: the 11th send is refused
WORKERS = 3
# Bounds on waiting for recovery (not timings under test): Flask-Limiter retries a dead
# storage with a back-off of up to 32 s, privacy.EphemeralStore after RETRY_SECONDS (30 s).
RECOVERY_WAIT = 75.0
EPHEMERAL_RETRY = 31.0
CODE_WORD = re.compile(r'<span class="code-word">([^<]+)</span>')
TEXTAREA = re.compile(r'<textarea[^>]*name="(?:text|kept_text)"[^>]*>(.*?)</textarea>', re.S)


# --- The stack, once for the module ------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    """A PostgreSQL cluster of this module's own, which the tests may restart."""
    try:
        with private_cluster() as made:
            yield made
    except StackUnavailable as exc:
        unavailable(str(exc))


@pytest.fixture(scope="module")
def stack(cluster: PrivateCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """gunicorn (3 workers), Redis and the seeded database on the private cluster."""
    manager = running_stack(Path(tmp_path_factory.mktemp("faults")),
                            admin_url=cluster.admin_url, workers=WORKERS)
    try:
        running = manager.__enter__()
    except StackUnavailable as exc:
        unavailable(str(exc))
        raise
    try:
        yield running
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="module")
def database(stack: Stack) -> Iterator[sa.Engine]:
    """The stack's database, for checking what was stored."""
    engine = sa.create_engine(stack.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def slugs(database: sa.Engine) -> list[str]:
    """A few open clinics of the real seed, to spread the reviews over."""
    with database.connect() as conn:
        found = list(conn.execute(sa.text(
            "SELECT slug FROM location WHERE status = 'active' ORDER BY id LIMIT 6")).scalars())
    assert found, "the seed has no open clinic"
    return found


# --- Sending reviews -------------------------------------------------------------------


@dataclass
class Submission:
    """One person's review: who sends it, where, what, and what came back."""

    number: int
    client: ProxiedClient
    slug: str
    hidden: dict[str, str]
    response: Response | None = None
    failure: str = ""  # the client's exception, if no response came back at all

    @property
    def text(self) -> str:
        """The review's marker text, unique to this submission."""
        return f"{MARKER} {self.number}"

    def answers(self) -> dict[str, object]:
        """What the review answers, as the database should hold it."""
        values: dict[str, object] = {}
        for i, question in enumerate(QUESTIONS):
            if question.key == "asked_for_id":
                values[question.key] = self.number % 2 == 0
            else:
                values[question.key] = (self.number + i) % 5 + 1
        return values

    def form(self) -> dict[str, str]:
        """The form as a browser sends it."""
        fields = {key: ("yes" if value else "no") if isinstance(value, bool) else str(value)
                  for key, value in self.answers().items()}
        return {**self.hidden, **fields, "service": "", "visit_month": "", "visit_year": "",
                "text": self.text, "confirm_site": ""}

    def send(self) -> None:
        """POST the form, keeping the response or why there was none."""
        try:
            self.response = self.client.post(f"/clinics/{self.slug}/review", self.form())
        except OSError as exc:
            self.failure = type(exc).__name__


def prepare(stack: Stack, slugs: list[str], numbers: range) -> list[Submission]:
    """Fetch one review form per submission, each from its own client address."""
    made = []
    for number in numbers:
        client = stack.client(client_address(number))
        slug = slugs[number % len(slugs)]
        made.append(Submission(number, client, slug, review_form(client, slug)))
    return made


def code_of(page: Response) -> str | None:
    """The withdrawal code a success page shows, or None if it is not a success page."""
    words = CODE_WORD.findall(page.text)
    return " ".join(unescape(w) for w in words) if page.status == 200 and words else None


def in_layout(page: Response) -> bool:
    """Whether a page is one of the site's own, with the quick exit, and no trace."""
    return ('id="quick-exit"' in page.text and "Traceback" not in page.text
            and "Internal Server Error" not in page.text)


def is_friendly_failure(page: Response) -> bool:
    """A 503 in the site's layout saying nothing was saved, with a Retry-After."""
    return (page.status == 503 and in_layout(page) and "nothing was saved" in page.text.lower()
            and "retry-after" in page.headers)


def kept_text(page: Response) -> str | None:
    """The review text a failure page hands back, in the form or to copy."""
    match = TEXTAREA.search(page.text)
    return unescape(match.group(1)).strip() if match else None


def send_stream(submissions: list[Submission], cluster: PrivateCluster,
                visitor: ProxiedClient, pages: list[str]) -> list[tuple[str, Response]]:
    """Send from SENDERS threads; restart PostgreSQL after a third, stop it after a half.

    While it is stopped, `visitor` opens `pages`; returns what each of them showed.
    """
    queue = list(submissions)
    lock = threading.Lock()
    done = [0]

    def sender() -> None:
        while True:
            with lock:
                if not queue:
                    return
                submission = queue.pop(0)
            submission.send()
            with lock:
                done[0] += 1
            time.sleep(PACE)

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: done[0] >= len(submissions) // 3, 60, "a third of the stream")
        # A restart kills the connections the workers hold in their pools mid-stream.
        cluster.ctl("restart")
        wait_until(lambda: done[0] >= len(submissions) // 2, 60, "half of the stream")
        # A stopped server: sends meet a database that refuses connections outright.
        cluster.ctl("stop")
        started = time.monotonic()
        outage = [(path, visitor.get(path)) for path in pages]
        time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
    finally:
        cluster.ctl("start")
        for thread in threads:
            thread.join(timeout=120)
    wait_until(cluster.is_up, 30, "PostgreSQL after the restart")
    return outage


def stored_reviews(database: sa.Engine) -> dict[str, list[dict[str, object]]]:
    """Every synthetic review in the database, by its text."""
    table = Review.__table__
    columns = [table.c.text, table.c.status, table.c.withdrawal_hash,
               *(table.c[q.key] for q in QUESTIONS)]
    with database.connect() as conn:
        rows = conn.execute(sa.select(*columns).where(table.c.text.like(f"{MARKER}%"))
                            ).mappings().all()
    found: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        found.setdefault(str(row["text"]), []).append(dict(row))
    return found


def assert_stored_whole(stored: dict[str, list[dict[str, object]]], submission: Submission,
                        secret: str, code: str | None) -> None:
    """The review is in the database exactly once, every answer as sent, pending."""
    rows = stored.get(submission.text, [])
    assert len(rows) == 1, f"{submission.text!r} stored {len(rows)} times"
    row = rows[0]
    assert row["status"] == "pending"
    assert {q.key: row[q.key] for q in QUESTIONS} == submission.answers(), \
        f"{submission.text!r} is half-written: {row}"
    if code is not None:
        assert row["withdrawal_hash"] == code_hash(code, secret), \
            f"the code shown for {submission.text!r} is not the one stored"


def app_secret(stack: Stack) -> str:
    """The SECRET_KEY the stack's app runs with (withdrawal codes are hashed under it)."""
    return stack._env["SECRET_KEY"]  # noqa: SLF001 (Stack keeps its environment private)


# --- PostgreSQL restarting under a stream of reviews -----------------------------------


def test_postgres_restart_mid_stream_loses_nothing_and_half_writes_nothing(
        stack: Stack, cluster: PrivateCluster, database: sa.Engine, slugs: list[str]) -> None:
    """Reviews sent while PostgreSQL restarts and stops: each is kept whole or refused
    kindly with its text handed back, never half-kept; and can be sent again after."""
    submissions = prepare(stack, slugs, range(STREAM))
    time.sleep(FORM_WAIT)
    pages = ["/", f"/clinics/{slugs[0]}", "/clinics?near=10001", f"/clinics/{slugs[1]}/review",
             "/api/v1/clinics?near=10001"]
    outage = send_stream(submissions, cluster, stack.client(client_address(201)), pages)

    # Pages that need the database say so kindly (some are served from a worker's cache).
    for path, page in outage:
        if path.startswith("/api/"):
            assert page.status == 503, (path, page.status)
            assert page.headers["content-type"] == "application/problem+json"
            assert "retry-after" in page.headers
        else:
            assert page.status == 200 or is_friendly_failure(page), (path, page.status)
    assert any(page.status == 503 for path, page in outage if not path.startswith("/api/"))

    successes = {s.number: code_of(s.response) for s in submissions
                 if s.response is not None and code_of(s.response)}
    failed = [s for s in submissions if s.response is not None and s.number not in successes
              and is_friendly_failure(s.response)]
    other = [(s.number, s.failure or (s.response.status if s.response else ""),
              (s.response.text[:300] if s.response else ""))
             for s in submissions if s.number not in successes and s not in failed]
    assert not other, f"neither a success nor a friendly failure: {other}"
    assert successes, "no review got through: the stream did not exercise the database"
    assert failed, "no send met the restart: the stream did not exercise the fault"

    stored = stored_reviews(database)
    secret = app_secret(stack)
    for submission in submissions:
        if submission.number in successes:
            assert_stored_whole(stored, submission, secret, successes[submission.number])
    refused_but_kept = [s.text for s in failed if s.text in stored]
    assert not refused_but_kept, f"told 'nothing was saved' but stored: {refused_but_kept}"
    assert len(stored) == len(successes)

    # Everything typed comes back on the failure page, so sending again costs no retyping.
    for submission in failed:
        assert submission.response is not None
        assert kept_text(submission.response) == submission.text

    # The site serves again (pool_pre_ping drops the dead connections), and each person
    # whose send failed sends again: from the form on the failure page when it has one,
    # else from a new form with the text they copied.
    for path in pages:
        assert stack.client(client_address(200)).get(path).status == 200, path
    for submission in failed:
        assert submission.response is not None
        if 'name="form_token"' in submission.response.text:
            submission.hidden = {"csrf_token": submission.response.form_value("csrf_token"),
                                 "form_token": submission.response.form_value("form_token")}
        else:
            submission.hidden = review_form(submission.client, submission.slug)
    time.sleep(FORM_WAIT)
    resent = {}
    for submission in failed:
        submission.send()
        assert submission.response is not None
        resent[submission.number] = code_of(submission.response)
        assert resent[submission.number], \
            f"re-send {submission.number}: {submission.response.status}"

    stored = stored_reviews(database)
    for submission in submissions:
        code = successes.get(submission.number) or resent.get(submission.number)
        assert_stored_whole(stored, submission, secret, code)
    assert len(stored) == STREAM

    # Nothing published changed, and the kept score sums still agree with the reviews.
    assert "every kept sum agreed" in stack.flask("scores", "rebuild", "--check")
    # The failures were logged without who sent them or what they wrote.
    logs = stack.logs()
    assert "database unreachable" in logs
    assert "203.0.113." not in logs
    assert MARKER not in logs


# --- Redis stopped and started again ---------------------------------------------------


WITHDRAW_FORM = {"code": "synthetic fault test code never issued"}


def withdraw_statuses(client: ProxiedClient, sends: int, stop_at_429: bool = True) -> list[int]:
    """Send a code that matches nothing `sends` times; the statuses, up to the first 429."""
    page = client.get("/reviews/withdraw")
    assert page.status == 200
    form = {**WITHDRAW_FORM, "csrf_token": page.form_value("csrf_token")}
    statuses = []
    for _ in range(sends):
        statuses.append(client.post("/reviews/withdraw", form).status)
        if stop_at_429 and statuses[-1] == 429:
            break
    return statuses


def limited_through_redis(client: ProxiedClient) -> bool:
    """Whether one address is refused after exactly WITHDRAW_LIMIT sends, as one shared
    count (per-worker counts would let up to WORKERS times as many through)."""
    return withdraw_statuses(client, WITHDRAW_LIMIT + 1, stop_at_429=False) == \
        [404] * WITHDRAW_LIMIT + [429]


def limiter_key_for(stack: Stack, address: str, secret: bytes) -> list[bytes]:
    """The limiter's Redis keys for one address's withdrawals (the key is its hash)."""
    hashed = hash_address(address, secret, address_pepper(stack.env_value("SECRET_KEY"))).encode()
    return [key for key in stack.redis.dump() if hashed in key and b"withdraw" in key]


def pages_serve(stack: Stack, address: str, slug: str) -> list[tuple[str, int]]:
    """Status of each public page, including the rate-limited search and API."""
    client = stack.client(address)
    paths = ["/", f"/clinics/{slug}", "/clinics?near=10001", "/api/v1/clinics?near=10001",
             f"/clinics/{slug}/review", "/reviews/withdraw"]
    return [(path, client.get(path).status) for path in paths]


def test_redis_down_keeps_serving_and_limiting_then_recovers(
        stack: Stack, database: sa.Engine, slugs: list[str]) -> None:
    """With Redis stopped, pages serve and limits hold per worker; reviews still go in;
    when Redis is back, limits are shared through it again."""
    # Through Redis the three workers share one count per address.
    assert limited_through_redis(stack.client(client_address(100)))
    dump = stack.redis.dump()
    day_secret = bytes.fromhex(dump[(SECRET_KEY_PREFIX + utc_day(datetime.now(UTC))).encode()]
                               .decode())
    assert limiter_key_for(stack, client_address(100), day_secret)
    assert not [key for key in dump if client_address(100).encode() in key]

    down_reviews = prepare(stack, slugs, range(110, 113))
    after_reviews = prepare(stack, slugs, range(113, 116))
    stack.redis.stop()
    try:
        served = pages_serve(stack, client_address(120), slugs[0])
        assert all(status == 200 for _, status in served), served

        # Each worker counts for itself now: at most WORKERS x the limit get through.
        statuses = withdraw_statuses(stack.client(client_address(121)),
                                     WORKERS * WITHDRAW_LIMIT + 1)
        assert set(statuses) <= {404, 429}, statuses
        assert statuses[-1] == 429, statuses

        # Reviews still go in; the one-use marker falls back to the worker's memory.
        time.sleep(FORM_WAIT)
        for submission in down_reviews:
            submission.send()
            assert submission.response is not None
            assert code_of(submission.response), submission.response.status
        replay = down_reviews[0]
        replay.send()
        assert replay.response is not None
        assert replay.response.status in (200, 409), replay.response.status
        assert in_layout(replay.response)
    finally:
        stack.redis.start()
    # Every worker's last failed Redis call came before this moment.
    restarted = time.monotonic()

    stored = stored_reviews(database)
    for submission in down_reviews[1:]:
        assert len(stored[submission.text]) == 1
    # A replay that reached another worker is taken twice while the marker is per worker.
    assert len(stored[replay.text]) == (2 if replay.response.status == 200 else 1)

    # Shared limits again, once each worker's limiter has retried Redis.
    attempt = iter(range(130, 160))
    wait_until(lambda: limited_through_redis(stack.client(client_address(next(attempt)))),
               RECOVERY_WAIT, "limits shared through Redis again")
    assert all(status == 200 for _, status in pages_serve(stack, client_address(122), slugs[0]))

    # One-use markers go to Redis again once the workers' retry pause is over.
    time.sleep(max(0.0, restarted + EPHEMERAL_RETRY - time.monotonic()))
    for submission in after_reviews:
        submission.send()
        assert submission.response is not None
        assert code_of(submission.response), submission.response.status
    markers = [key for key in stack.redis.dump() if key.startswith(USED_KEY_PREFIX.encode())]
    assert len(markers) == len(after_reviews)
    assert "203.0.113." not in stack.logs()


# --- The same failures, made on purpose in the test client ------------------------------
# The stream above cannot choose where a failure falls; these make one fall in the write
# (the database answers again at once: the form comes back) and in the first query (it
# stays away: the text comes back to copy).

LOST = OperationalError("INSERT INTO review ...", {}, ConnectionError("connection lost"))
TYPED = {"respect": "4", "asked_for_id": "no", "would_recommend": "5",
         "text": f"{MARKER}: <b>kept</b> & typed"}


def _test_form(client: FlaskClient, slug: str) -> dict[str, str]:
    html = client.get(f"/clinics/{slug}/review").get_data(as_text=True)
    return {"csrf_token": csrf_from(html),
            "form_token": unescape(re.findall(r'name="form_token" value="([^"]+)"', html)[0])}


def _fail(*_args: object, **_kwargs: object) -> None:
    raise LOST


def test_a_review_whose_write_fails_comes_back_with_its_answers_to_send_again(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database drops the write: a 503 form with every answer, and a send that works."""
    app.config["REVIEW_MIN_SECONDS"] = 0
    slug = make_clinic().slug
    db.session.commit()
    monkeypatch.setattr(reviews, "new_review", _fail)
    first = _test_form(client, slug)
    response = client.post(f"/clinics/{slug}/review", data={**first, **TYPED})
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "nothing was saved" in html
    assert kept_text(Response(503, {}, html)) == TYPED["text"]
    assert "&lt;b&gt;kept&lt;/b&gt; &amp; typed" in html
    assert re.search(r'name="respect" id="respect-3" value="4" checked', html)
    assert db.session.execute(sa.select(sa.func.count(Review.id))).scalar_one() == 0

    monkeypatch.undo()
    again = {"csrf_token": csrf_from(html),
             "form_token": unescape(re.findall(r'name="form_token" value="([^"]+)"', html)[0]),
             **TYPED}
    assert again["form_token"] != first["form_token"]
    response = client.post(f"/clinics/{slug}/review", data=again)
    assert response.status_code == 200
    assert code_of(Response(200, {}, response.get_data(as_text=True)))
    stored = db.session.execute(sa.select(Review)).scalar_one()
    assert (stored.text, stored.respect, stored.asked_for_id) == (TYPED["text"], 4, False)
    # The failed write did not use up the first form's one-use token either: a browser's
    # "resend" of it is a review (not "already sent", which would claim one was kept).
    assert client.post(f"/clinics/{slug}/review", data={**first, **TYPED}).status_code == 200


def test_a_database_that_stays_away_gets_a_kind_page_and_the_text_back_to_copy(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """No query works: the review's text comes back escaped; other pages and the API 503."""
    app.config["REVIEW_MIN_SECONDS"] = 0
    slug = make_clinic().slug
    db.session.commit()
    hidden = _test_form(client, slug)
    monkeypatch.setattr(db.session, "execute", _fail)
    response = client.post(f"/clinics/{slug}/review", data={**hidden, **TYPED})
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "Nothing was saved" in html
    assert 'id="quick-exit"' in html
    assert kept_text(Response(503, {}, html)) == TYPED["text"]
    assert "<b>kept</b>" not in html
    for path in (f"/clinics/{slug}", f"/clinics/{slug}/review"):
        page = client.get(path)
        assert page.status_code == 503, path
        assert "Nothing was saved" in page.get_data(as_text=True)
        assert 'name="kept_text"' not in page.get_data(as_text=True)
    api = client.get(f"/api/v1/clinics/{slug}")
    assert api.status_code == 503
    assert api.mimetype == "application/problem+json"
    assert api.headers["Retry-After"]

    # Nothing was kept, and the form's one-use token was not used up: the same form, sent
    # again (a browser's "resend") once the database is back, goes in once.
    monkeypatch.undo()
    assert db.session.execute(sa.select(sa.func.count(Review.id))).scalar_one() == 0
    response = client.post(f"/clinics/{slug}/review", data={**hidden, **TYPED})
    assert response.status_code == 200
    assert db.session.execute(sa.select(Review.text)).scalar_one() == TYPED["text"]
