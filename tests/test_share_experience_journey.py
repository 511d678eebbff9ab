"""The whole "share experience" journey across both halves, through the test client.

A person leaves a review of a clinic through the real form; it stays private until a
moderator, signed in with password and TOTP through the real sign-in form, redacts what the
helper flagged and approves it; the clinic page then shows it with the month only; the
score appears with the third published review; the code withdraws the first review again.
Bad input is tried along the way. At the end every table of the database and every log
line the journey produced are searched for the people's addresses, their user agent and
the day or time they wrote.

Every clinic, review and account here is synthetic (tests.factories,
tests.moderation_helpers) and lives only in the test database. Addresses come from
203.0.113.0/24 (TEST-NET-3, documentation only).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from directory import create_app, scores
from directory.config import Settings
from directory.extensions import db, limiter
from directory.hours import NEW_YORK
from directory.models import PENDING, PUBLISHED, WITHDRAWN, AuditEntry, Moderator, Review
from directory.privacy import ephemeral_store
from directory.reviews import months_before
from tests.factories import make_clinic
from tests.moderation_helpers import PASSWORD, cheap_hashing, code_for, make_moderator

NET = "203.0.113."
USER_AGENT = "JourneyAgent/1.0 distinctive-ua"
# The last part of each person's address.
FIRST, SECOND, THIRD, MODERATOR_PHONE, PASSER_BY, STRANGER = 21, 22, 23, 24, 25, 26

# Every question answered, as the first reviewer does.
ALL_ANSWERS = {"respect": "5", "open_about_work": "4", "asked_for_id": "no",
               "cost_affordable": "4", "privacy": "5", "gender_respected": "5",
               "would_recommend": "5"}
NAME, PHONE = "Maria Lopez", "(212) 555-0147"
FIRST_TEXT = (f"No lectures at all. The nurse {NAME} explained PrEP without judgment; "
              f"if you want tips, text me at {PHONE}.")
REDACTED = FIRST_TEXT.replace(NAME, "[removed]").replace(PHONE, "[removed]")
SECOND_TEXT = "Quick and kind, and nobody asked about my work."
# Built to break out of a textarea, an attribute or a template literal if left unescaped.
HOSTILE = ("</textarea><script>alert(\"review\")</script><img src=x onerror=alert(2)> "
           "${alert(3)} `tick` & 'single' \"double\"")
HOSTILE_NAME = '"><script>alert("user")</script>'
RAW_MARKUP = ("</textarea><script>", "<script>alert(", "<img src=x")


# --- Reading pages as a browser would --------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass(eq=False)
class Node:
    """An element of a parsed page: its tag, attributes and children."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def raw_text(self) -> str:
        """The text inside, as it is (scripts and styles left out)."""
        return "".join(c if isinstance(c, str) else c.raw_text() for c in self.children
                       if isinstance(c, str) or c.tag not in ("script", "style"))

    def text(self) -> str:
        """The text inside, white space collapsed: what a person reads."""
        return " ".join(self.raw_text().split())

    def walk(self) -> Iterator[Node]:
        """Every element inside, in page order."""
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def all(self, tag: str | None = None, class_: str | None = None,
            **attrs: str | Callable[[str], bool]) -> list[Node]:
        """Elements by tag, class and attributes (a value may be a test on the attribute)."""
        found = []
        for node in self.walk():
            if tag and node.tag != tag:
                continue
            if class_ and class_ not in node.attrs.get("class", "").split():
                continue
            if all(name in node.attrs and (want(node.attrs[name]) if callable(want)
                                           else node.attrs[name] == want)
                   for name, want in attrs.items()):
                found.append(node)
        return found

    def one(self, tag: str | None = None, class_: str | None = None,
            **attrs: str | Callable[[str], bool]) -> Node:
        """The first such element; the test fails clearly if there is none."""
        found = self.all(tag, class_, **attrs)
        assert found, f"no <{tag or '*'} class={class_!r} {attrs}> in {self.text()[:300]!r}"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.open) - 1, 0, -1):
            if self.open[depth].tag == tag:
                del self.open[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(html: str) -> Node:
    """A page as a tree of elements."""
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


class Form:
    """A form as a browser holds it: defaults first, then what the person chooses."""

    TEXT_TYPES = ("text", "hidden", "password", "search", "email", "tel", "url", "number")

    def __init__(self, node: Node) -> None:
        self.action = node.attrs["action"]
        self.values: dict[str, list[str]] = {}
        self.options: dict[str, list[str]] = {}
        self.labels: dict[tuple[str, str], str] = {}
        self._label_of: dict[int, str] = {}
        for label in node.all("label"):
            for inner in label.all("input"):
                self._label_of[id(inner)] = label.text()
        for element in node.walk():
            self._take(element)

    def _take(self, element: Node) -> None:
        name = element.attrs.get("name")
        if not name:
            return
        if element.tag == "input":
            kind = element.attrs.get("type", "text")
            value = element.attrs.get("value", "")
            if kind in self.TEXT_TYPES:
                self.values[name] = [value]
            elif kind in ("radio", "checkbox"):
                self.options.setdefault(name, []).append(value)
                self.labels[(name, value)] = self._label_of.get(id(element), "")
                chosen = self.values.setdefault(name, [])
                if "checked" in element.attrs:
                    chosen[:] = [value] if kind == "radio" else [*chosen, value]
        elif element.tag == "textarea":
            # HTML drops one newline right after the opening tag.
            text = element.raw_text()
            self.values[name] = [text[1:] if text.startswith("\n") else text]
        elif element.tag == "select":
            options = element.all("option")
            self.options[name] = [o.attrs.get("value", o.text()) for o in options]
            picked = [o for o in options if "selected" in o.attrs] or options[:1]
            self.values[name] = [picked[0].attrs.get("value", picked[0].text())]

    def choose(self, name: str, value: str) -> Form:
        """Pick one of a radio group's or a list's own choices, as a tap would."""
        assert value in self.options.get(name, []), f"{value!r} is not a choice of {name}"
        self.values[name] = [value]
        return self

    def type(self, name: str, text: str) -> Form:
        """Type into a text field or textarea (replacing what was there)."""
        assert name in self.values, f"no field {name}"
        assert name not in self.options, f"{name} is a choice, not a text field"
        self.values[name] = [text]
        return self

    def tick(self, name: str, value: str) -> Form:
        """Tick one checkbox."""
        assert value in self.options.get(name, []), f"{value!r} is not a box of {name}"
        self.values[name] = [*self.values.get(name, []), value]
        return self

    def data(self) -> MultiDict[str, str]:
        """What the browser sends."""
        return MultiDict([(name, value) for name, values in self.values.items()
                          for value in values])


def form_of(page: Node, action: Callable[[str], bool] | str) -> Form:
    """The page's form with that action."""
    return Form(page.one("form", action=action))


@dataclass
class Person:
    """Someone's own browser: one test client, one address, one user agent."""

    client: FlaskClient
    number: int

    @property
    def environ(self) -> dict[str, str]:
        return {"REMOTE_ADDR": f"{NET}{self.number}", "HTTP_USER_AGENT": USER_AGENT}

    def get(self, url: str, status: int = 200) -> tuple[Node, str]:
        """Open a page; its tree and HTML."""
        response = self.client.get(url, environ_base=self.environ)
        html = response.get_data(as_text=True)
        assert response.status_code == status, (url, response.status_code, html[:800])
        return parse(html), html

    def send(self, form: Form, status: int) -> TestResponse:
        """Submit a form as it stands."""
        response = self.client.post(form.action, data=form.data(), environ_base=self.environ)
        assert response.status_code == status, (form.action, response.status_code,
                                                response.get_data(as_text=True)[:1500])
        return response


def answer(response: TestResponse) -> tuple[Node, str]:
    html = response.get_data(as_text=True)
    return parse(html), html


# --- The reviewers' clock --------------------------------------------------------------


class ReviewersClock:
    """The reviewers act on one distinctive day and hour, with the clock frozen.

    Frozen time lets a form wait out its minimum-time check honestly (the clock moves on
    between showing and sending the form), and makes the moments of writing stand out: no
    other clock reading of the test (the clinic's, the moderator's, the audit log's) falls
    on that day or within hours of that time, so finding them anywhere later is a leak.
    """

    def __init__(self) -> None:
        real = datetime.now(NEW_YORK)
        taken = {1, real.day, datetime.now(UTC).day}
        day = next(d for d in (*range(13, 29), *range(2, 13)) if d not in taken)
        hour = 4 if real.hour >= 11 else 16  # hours away from the real time of day
        self._next = real.replace(day=day, hour=hour, minute=7, second=31, microsecond=250_000)
        self.day = self._next.date()
        self.windows: list[tuple[float, float]] = []

    @contextmanager
    def stretch(self) -> Iterator[Callable[[float], None]]:
        """Freeze the clock for one stretch of a reviewer's actions; yield wait(seconds)."""
        start = self._next
        waited = 0.0
        with time_machine.travel(start, tick=False) as traveller:

            def wait(seconds: float) -> None:
                nonlocal waited
                traveller.shift(seconds)
                waited += seconds

            yield wait
        self.windows.append((start.timestamp(), start.timestamp() + waited))
        self._next = start + timedelta(seconds=waited + 300)

    def traces(self) -> list[re.Pattern[str]]:
        """Every way the reviewers' day or moments could be written down."""
        spaced: set[str] = set()  # written with separators: bounded by non-digits
        packed: set[str] = set()  # written as one run of digits: bounded by non-word
        for zone in (NEW_YORK, UTC):
            for start, end in self.windows:
                for second in range(int(start), int(end) + 1):
                    moment = datetime.fromtimestamp(second, zone)
                    day = moment.date()
                    spaced |= {moment.strftime("%H:%M:%S"), day.isoformat(),
                               day.strftime("%m/%d/%Y"), day.strftime("%d/%m/%Y"),
                               day.strftime("%d.%m.%Y"), f"{day.year}, {day.month}, {day.day}",
                               f"{day:%B} {day.day}", f"{day.day} {day:%B}",
                               f"{day:%b} {day.day}", f"{day.day} {day:%b}"}
                    packed |= {moment.strftime("%H%M%S"), day.strftime("%Y%m%d")}
        # Unix times: seconds, and the start of milliseconds or nanoseconds.
        unix = {str(second) for start, end in self.windows
                for second in range(int(start), int(end) + 1)}

        def any_of(words: set[str]) -> str:
            return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))

        return [re.compile(rf"(?<!\d)(?:{any_of(spaced)})(?!\d)"),
                re.compile(rf"(?<!\w)(?:{any_of(packed)})(?!\w)"),
                re.compile(rf"(?<!\d)(?:{any_of(unix)})")]


# --- Fixtures --------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings with cheap password hashing."""
    return cheap_hashing(settings)


@dataclass
class Journey:
    """The site as the people reach it, with a record of every request it saw."""

    app: Flask
    seen: list[tuple[str | None, str]]

    def person(self, number: int) -> Person:
        return Person(self.app.test_client(), number)


@pytest.fixture
def journey(app: Flask, settings: Settings) -> Journey:
    """The site with its rate limits on and the form's real minimum time (3 seconds).

    A second app on the fixture's database: each request then gets an app context of its
    own, as in production, instead of sharing the test's (and its cached CSRF token).
    """
    site = create_app(replace(settings, extra={**settings.extra, "RATELIMIT_ENABLED": True}))
    site.config.pop("REVIEW_MIN_SECONDS", None)
    seen: list[tuple[str | None, str]] = []

    @site.before_request
    def note_who_asked() -> None:
        # Test-only, in memory: proof that the site really saw the address and agent.
        seen.append((request.remote_addr, request.user_agent.string))

    return Journey(site, seen)


@pytest.fixture
def hear_everything(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every logger at DEBUG, including those that set a quieter level themselves."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


# --- Steps -----------------------------------------------------------------------------


def fresh() -> None:
    """Forget what the test's own session holds: the site changed the database."""
    db.session.rollback()
    db.session.expire_all()


def all_reviews() -> list[Review]:
    fresh()
    return list(db.session.execute(sa.select(Review).order_by(Review.id)).scalars())


def review_by_id(review_id: int) -> Review:
    return db.session.execute(sa.select(Review).where(Review.id == review_id)).scalar_one()


def code_on(page: Node) -> str:
    """The withdrawal code on a thanks page."""
    words = [node.text() for node in page.all(class_="code-word")]
    assert len(words) == 6, page.text()[:500]
    return " ".join(words)


def reviews_section(page: Node) -> Node:
    """The clinic page's reviews: the section its "How people were treated" heading names."""
    return page.one("section", **{"aria-labelledby": "reviews-heading"})


def shown_reviews(page: Node) -> list[Node]:
    return reviews_section(page).all("li", class_="review")


def open_review_form(person: Person, slug: str) -> Form:
    """From the clinic page, follow the link to share an experience."""
    clinic, _ = person.get(f"/clinics/{slug}")
    link = clinic.one("a", href=f"/clinics/{slug}/review")
    page, _ = person.get(link.attrs["href"])
    form = form_of(page, f"/clinics/{slug}/review")
    assert form.values["form_token"][0], "the form carries a signed token"
    assert form.values["csrf_token"][0], "the form carries a CSRF token"
    return form


def session_of(app: Flask, person: Person) -> str:
    """What this browser's session cookie holds, decoded (it is signed, not encrypted)."""
    cookie = person.client.get_cookie("session")
    if cookie is None:
        return ""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    return repr(serializer.loads(cookie.value))


def signed_in(person: Person) -> bool:
    """Whether this browser gets into the review queue."""
    response = person.client.get("/moderation/", environ_base=person.environ)
    return response.status_code == 200


def sign_in_form(person: Person, username: str, password: str, code: str,
                 status: int) -> TestResponse:
    """Fill in the moderators' sign-in form and send it."""
    page, _ = person.get("/moderation/login")
    form = form_of(page, "/moderation/login")
    form.type("username", username).type("password", password).type("code", code)
    return person.send(form, status)


def queue_card(page: Node, words: str) -> Node:
    """The queue's card of the review whose text holds these words."""
    cards = [c for c in page.all("li", id=lambda v: v.startswith("review-"))
             if words in c.text()]
    assert len(cards) == 1, page.text()[:800]
    return cards[0]


def approve_from_queue(moderator: Person, words: str) -> int:
    """Find a review in the queue by its words and press its Approve button."""
    queue, html = moderator.get("/moderation/")
    card = queue_card(queue, words)
    review_id = int(card.attrs["id"].removeprefix("review-"))
    response = moderator.send(form_of(card, lambda a: a.endswith("/approve")), 302)
    assert response.location.endswith("/moderation/")
    return review_id


def assert_escaped(html: str, hostile: str) -> None:
    """The hostile text is in the page as text, and none of it as markup."""
    for markup in RAW_MARKUP:
        assert markup not in html
    assert hostile in parse(html).text() or hostile in html_attribute_values(html)


def html_attribute_values(html: str) -> str:
    return " ".join(v for node in parse(html).walk() for v in node.attrs.values())


# --- The journey -----------------------------------------------------------------------


def test_a_review_goes_from_the_form_through_moderation_to_the_public_and_back_leaving_no_trace(
    app: Flask, journey: Journey, hear_everything: pytest.LogCaptureFixture
) -> None:
    clinic = make_clinic("Synthetic Journey Clinic", services=("hiv_testing", "prep"))
    moderator_account = make_moderator("synthetic-journey-mod")
    disabled_account = make_moderator("synthetic-gone-mod", active=False)
    db.session.commit()
    slug, clinic_id = clinic.slug, clinic.id
    clock = ReviewersClock()
    this_month = clock.day.replace(day=1)
    month_words = f"{this_month:%B %Y}"  # "November 2026"
    first, second, third = (journey.person(n) for n in (FIRST, SECOND, THIRD))
    moderator, passer_by, stranger = (journey.person(n)
                                      for n in (MODERATOR_PHONE, PASSER_BY, STRANGER))

    # 1. The first person opens the form, answers every question, writes too much...
    with clock.stretch() as wait:
        form = open_review_form(first, slug)
        questions = {n for n, options in form.options.items() if "" in options
                     and n not in ("service", "visit_month", "visit_year")}
        assert questions == set(ALL_ANSWERS), "every question of the form gets an answer"
        for question, value in ALL_ANSWERS.items():
            form.choose(question, value)
        visited = months_before(this_month, 2)
        form.choose("service", "prep").choose("visit_month", str(visited.month))
        form.choose("visit_year", str(visited.year))
        too_long = ("No stink-eye here, they listened. " * 40)[:1000] + "!"
        assert len(too_long) == 1001
        form.type("text", too_long)
        wait(95)  # a person takes a while; the form's minimum time is passed honestly
        page, html = answer(first.send(form, 400))
        # ...and is told so kindly, with everything typed and chosen still there.
        assert page.one(role="alert").all("a", href="#text")
        again = form_of(page, f"/clinics/{slug}/review")
        assert again.values["text"] == [too_long]
        assert {q: again.values[q] for q in ALL_ANSWERS} == {
            q: [v] for q, v in ALL_ANSWERS.items()}
        assert again.values["service"] == ["prep"]
        assert not all_reviews()

        # Shortened, it goes through, and the withdrawal code is shown once.
        again.type("text", FIRST_TEXT)
        wait(40)
        thanks, _ = answer(first.send(again, 200))
        first_code = code_on(thanks)
        cookie = session_of(journey.app, first)
        assert "csrf_token" in cookie
        assert not [word for word in first_code.split() if word in cookie]
    [first_review] = all_reviews()
    assert first_review.status == PENDING
    assert first_review.received_month == this_month
    assert first_review.visit_month == visited

    # 2. It is not public: not on the clinic page, not in the full list.
    page, html = passer_by.get(f"/clinics/{slug}")
    assert "explained PrEP" not in html
    assert NAME not in html
    assert not shown_reviews(page)
    _, html = passer_by.get(f"/clinics/{slug}/reviews")
    assert "explained PrEP" not in html

    # 3. Moderator sign-in: a disabled account and a wrong code get nowhere...
    page, _ = answer(sign_in_form(stranger, disabled_account.username, PASSWORD,
                                  code_for(disabled_account), 200))
    assert page.one(role="alert")
    assert not signed_in(stranger)
    response = sign_in_form(stranger, HOSTILE_NAME, "not the password", "123456", 200)
    page, html = answer(response)
    assert page.one(role="alert")
    assert_escaped(html, HOSTILE_NAME)
    now = datetime.now(UTC).timestamp()
    current = {code_for(moderator_account, now + step) for step in (-30, 0, 30)}
    earlier = (code_for(moderator_account, now - hours * 3600) for hours in range(1, 9))
    stale = next(code for code in earlier if code not in current)
    page, _ = answer(sign_in_form(moderator, moderator_account.username, PASSWORD, stale, 200))
    assert page.one(role="alert")
    assert not signed_in(moderator)
    # ...password and the authenticator's code now get in.
    response = sign_in_form(moderator, moderator_account.username, PASSWORD,
                            code_for(moderator_account), 302)
    assert response.location.endswith("/moderation/")
    assert signed_in(moderator)

    # 4. The queue shows the review with the name and phone number flagged.
    queue, _ = moderator.get("/moderation/")
    card = queue_card(queue, "explained PrEP")
    flagged = [mark.text() for mark in card.all("mark")]
    assert NAME in flagged
    assert PHONE in flagged
    review_page, _ = moderator.get(card.one("a", href=lambda h: h.startswith(
        "/moderation/reviews/")).attrs["href"])
    [redact] = [Form(node) for node in review_page.all("form", action=lambda a: a.endswith(
        "/redact")) if node.all("input", name="remove")]
    boxes = [(value, redact.labels[("remove", value)]) for value in redact.options["remove"]]
    for words in (NAME, PHONE):
        [value] = [value for value, label in boxes if words in label]
        redact.tick("remove", value)
    response = moderator.send(redact, 302)
    assert response.location.endswith("/moderation/")
    queue, _ = moderator.get("/moderation/")
    assert "explained PrEP" not in queue.text()

    # 5. Public now: the redacted words, the month only, no score from one review.
    fresh()
    first_review = review_by_id(first_review.id)
    assert first_review.status == PUBLISHED
    assert first_review.text == REDACTED
    page, html = passer_by.get(f"/clinics/{slug}")
    [shown] = shown_reviews(page)
    assert REDACTED in shown.text()
    assert NAME not in html
    assert "555-0147" not in html
    assert month_words in shown.text()
    assert f"{visited:%B %Y}" in shown.text()
    assert not [found.group() for p in clock.traces() if (found := p.search(html))]
    assert not reviews_section(page).all(class_="score-number")

    # 6. The second person: a forged CSRF token is refused, keeping the words...
    with clock.stretch() as wait:
        form = open_review_form(second, slug)
        form.choose("respect", "4").choose("privacy", "4").choose("asked_for_id", "no")
        form.type("text", SECOND_TEXT)
        form.type("csrf_token", "forged-" + form.values["csrf_token"][0][7:])
        wait(60)
        page, _ = answer(second.send(form, 400))
        assert page.one(role="alert")
        retry = form_of(page, f"/clinics/{slug}/review")
        assert retry.values["text"] == [SECOND_TEXT]
        assert len(all_reviews()) == 1
        # ...sent again from that page once the person has looked it over, it is stored...
        wait(20)
        sent = second.send(retry, 200)
        second_code = code_on(answer(sent)[0])
        # ...and the very same form sent again adds nothing, with a kind page, not a code.
        wait(5)
        page, _ = answer(second.send(retry, 409))
        assert not page.all(class_="code-word")
        assert page.one("a", href=f"/clinics/{slug}")
        assert page.one("a", id="quick-exit")
    assert len(all_reviews()) == 2
    assert second_code != first_code

    # 7. The third person: an empty form, then script in the text, then a half-given month.
    with clock.stretch() as wait:
        form = open_review_form(third, slug)
        wait(30)
        page, _ = answer(third.send(form, 400))
        assert page.one(role="alert").all("a", href="#review-form")
        form = form_of(page, f"/clinics/{slug}/review")
        form.choose("respect", "4").choose("gender_respected", "4").choose("would_recommend", "3")
        form.type("text", HOSTILE).choose("visit_month", str(this_month.month))
        wait(30)
        page, html = answer(third.send(form, 400))
        assert_escaped(html, HOSTILE)
        form = form_of(page, f"/clinics/{slug}/review")
        assert form.values["text"] == [HOSTILE]
        form.choose("visit_year", str(this_month.year))
        wait(30)
        code_on(answer(third.send(form, 200))[0])
    assert [r.status for r in all_reviews()] == [PUBLISHED, PENDING, PENDING]

    # 8. The moderator sees the script as text, and approves both.
    _, html = moderator.get("/moderation/")
    assert_escaped(html, HOSTILE)
    third_id = queue_card(parse(html), "alert(3)").attrs["id"].removeprefix("review-")
    _, html = moderator.get(f"/moderation/reviews/{third_id}")
    assert_escaped(html, HOSTILE)
    approve_from_queue(moderator, SECOND_TEXT)
    approve_from_queue(moderator, "alert(3)")

    # 9. Three published reviews: the score appears; the script is still only text.
    fresh()
    rating = scores.rating_for(clinic_id)
    assert rating.review_count == 3
    assert rating.score is not None
    page, html = passer_by.get(f"/clinics/{slug}")
    section = reviews_section(page)
    assert [n.text() for n in section.all(class_="score-number")] == [f"{rating.score:.1f}"]
    assert len(shown_reviews(page)) == 3
    assert_escaped(html, HOSTILE)
    _, html = passer_by.get(f"/clinics/{slug}/reviews")
    assert_escaped(html, HOSTILE)
    results, _ = passer_by.get("/clinics?near=10011")
    assert f"{rating.score:.1f}" in results.text()

    # 10. A stranger's guess at a code, script and all, withdraws nothing and runs nothing.
    page, _ = stranger.get("/reviews/withdraw")
    guess = form_of(page, "/reviews/withdraw").type("code", HOSTILE)
    _, html = answer(stranger.send(guess, 404))
    assert_escaped(html, HOSTILE)
    assert len([r for r in all_reviews() if r.status == PUBLISHED]) == 3

    # 11. The first person withdraws with the code, written down their own way.
    with clock.stretch() as wait:
        clinic_page, _ = first.get(f"/clinics/{slug}")
        page, _ = first.get(clinic_page.one("a", href="/reviews/withdraw").attrs["href"])
        withdraw = form_of(page, "/reviews/withdraw")
        withdraw.type("code", "  " + first_code.upper().replace(" ", " - ", 2) + " ")
        wait(25)
        response = first.send(withdraw, 303)
        assert response.location.endswith("/reviews/withdrawn")
        first.get(response.location)

    # 12. Gone for good, and the score follows: two reviews are too few again.
    fresh()
    gone = review_by_id(first_review.id)
    assert gone.status == WITHDRAWN
    assert gone.text is None
    assert gone.withdrawal_hash is None
    assert all(getattr(gone, key) is None for key in ALL_ANSWERS)
    page, html = passer_by.get(f"/clinics/{slug}")
    assert "explained PrEP" not in html
    assert "[removed]" not in html
    assert len(shown_reviews(page)) == 2
    assert not reviews_section(page).all(class_="score-number")
    rating = scores.rating_for(clinic_id)
    assert (rating.review_count, rating.score) == (2, None)
    assert scores.computed_sums() == scores.kept_sums()

    # 13. Every step is on record, without the words that were removed.
    fresh()
    actions = [e.action for e in db.session.execute(
        sa.select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    assert actions.count("sign_in_failed") == 2  # the disabled account, the wrong code
    assert actions.count("redact") == 1
    assert actions.count("approve") == 3

    # 14. The whole database and every log line: no address, no agent, no day or time.
    assert {who for who, _agent in journey.seen} == {
        f"{NET}{n}" for n in (FIRST, SECOND, THIRD, MODERATOR_PHONE, PASSER_BY, STRANGER)}
    assert {agent for _who, agent in journey.seen} == {USER_AGENT}
    assert_no_trace(journey, clock, hear_everything)


def _readable(value: object) -> object:
    """A stored time as people write it, to the second: its microseconds are six digits
    that can read like a reviewer's packed HHMMSS by chance (a flaky false alarm)."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return value


def assert_no_trace(journey: Journey, clock: ReviewersClock,
                    caplog: pytest.LogCaptureFixture) -> None:
    """Search the whole database, the log and the limiter for what identifies the people."""
    fresh()
    dump = "\n".join(f"{table.name}: {tuple(map(_readable, row))!r}"
                     for table in db.metadata.sorted_tables
                     for row in db.session.execute(table.select()))
    assert "synthetic-journey-mod" in dump, "the dump holds the journey's rows"
    records = caplog.records
    assert any(r.name == "caremap.access" for r in records), "the site's own log was heard"
    messages = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}"
                         for r in records)
    logs = caplog.text + "\n" + messages
    stores = repr(getattr(limiter.storage, "storage", {})) + repr(
        getattr(limiter.storage, "expirations", {}))
    with journey.app.app_context():
        stores += repr(ephemeral_store().__dict__)

    for form in identifying_forms():
        assert form not in dump, f"the database holds {form!r}"
        assert form not in logs, f"the log holds {form!r}"
        assert form not in stores, f"the limiter's storage holds {form!r}"
    for pattern in clock.traces():
        for where, text in (("database", dump), ("log", messages)):
            found = pattern.search(text)
            context = text[max(0, found.start() - 120):found.end() + 60] if found else ""
            assert not found, f"the {where} holds a reviewer's moment: {context!r}"
    # The words the moderator removed are nowhere in the database, not even the audit log.
    assert NAME not in dump
    assert "555-0147" not in dump

    # Reviews carry months only: no time column at all, and every date a first of a month.
    columns = Review.__table__.columns
    assert not [c.name for c in columns if isinstance(c.type, sa.DateTime | sa.Time)]
    dates = [c for c in columns if isinstance(c.type, sa.Date)]
    assert dates
    for row in db.session.execute(sa.select(*dates)):
        assert all(v is None or (type(v) is date and v.day == 1) for v in row), row
    # The one place with precise times is the moderators' audit log: moderators' times.
    moderator_ids = set(db.session.execute(sa.select(Moderator.id)).scalars())
    for entry in db.session.execute(sa.select(AuditEntry)).scalars():
        assert entry.moderator_id in moderator_ids


def identifying_forms() -> list[str]:
    """The people's addresses as text, number, hex and common plain hashes; their agent."""
    forms = [NET, "113.0.203", USER_AGENT, "JourneyAgent", "distinctive-ua"]
    for number in (FIRST, SECOND, THIRD, MODERATOR_PHONE, PASSER_BY, STRANGER):
        address = ipaddress.ip_address(f"{NET}{number}")
        forms += [str(int(address)), address.packed.hex()]
        for name in ("md5", "sha1", "sha256"):
            for value in (str(address).encode(), address.packed):
                forms.append(hashlib.new(name, value).hexdigest()[:32])
    return forms
