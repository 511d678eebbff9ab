"""Fuzzing the moderators' forms, signed in, with Hypothesis.

tests/test_fuzz_forms.py fuzzes the public forms and the sign-in form; this file does the
same for every POST route behind the sign-in (and the pages' query parameters and ids):
deciding on reviews and suggestions, redacting, re-checking listings, the admins' account
forms, changing one's password and signing out. Its raw material (ANY, CSRF stand-ins,
hostile markup) and checks (page_of, pairs, fuzz) come from there.

For every request: never a 5xx; a page in the site's layout, or a redirect to the page the
route names; a good CSRF token most of the time, so that validation runs, and a missing or
another browser's token sometimes. The database is compared row by row before and after:
a refused input changes nothing at all, an accepted one makes exactly its change and one
audit entry per decision (a redaction is two: redacted, then approved). A redaction never
publishes a part the moderator asked to remove, and hostile markup comes back escaped.

Ids in paths are the row the form is about, the same id written with leading zeros or
other digits, a decided row, a row that does not exist, and numbers no route takes
(negative, beyond 32 bits, not numbers). The fields sent are read from the WTForms classes
(and, for the one form read by hand, from suggestions.FIELDS), so a new field fails the
coverage tests until it is fuzzed here. Every account, clinic, review and suggestion is
synthetic and lives only in the test database.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask, g
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import event, example, given
from hypothesis import strategies as st
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from werkzeug.test import TestResponse

from directory import auth, moderation, suggestions
from directory.config import Settings
from directory.extensions import db
from directory.geo import zip_centroid
from directory.models import (
    ADMIN,
    APPROVED,
    CLOSED,
    CLOSURE,
    CORRECTION,
    MODERATOR,
    NEW_CLINIC,
    PUBLISHED,
    REJECTED,
    AuditEntry,
    CostOption,
    Language,
    ListingRevision,
    Location,
    Moderator,
    Provenance,
    RequiredDocument,
    Review,
    Schedule,
    ServiceAtLocation,
    Suggestion,
)
from directory.redaction import REMOVED
from directory.reviews import clean_text
from directory.taxonomy import COST_OPTIONS, SERVICES, language_code
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import PASSWORD, cheap_hashing, make_admin, make_moderator, sign_in
from tests.moderation_helpers import token as csrf_of
from tests.test_fuzz_forms import (
    ANY,
    CSRF,
    CSRF_GOOD,
    CSRF_OTHER_SESSION,
    HOSTILE,
    UNICODE,
    Spec,
    Values,
    always,
    body_size,
    count,
    declared_fields,
    filled,
    first,
    fuzz,
    languages_ok,
    page_of,
    pairs,
    phone_ok,
    sampled,
    stays_on_site,
)

Verdict = bool | None  # None: the rule cannot say from outside; either answer, done right

# --- Paths: which row a form is about ---------------------------------------------------------

ROW = "\ue000row"  # the row this example made for the form
ROW_PADDED = "\ue000row-with-leading-zeros"
ROW_WIDE = "\ue000row-in-fullwidth-digits"  # Werkzeug reads any Unicode digit as a digit
ROW_DECIDED = "\ue000row-already-decided"
ROW_MISSING = "\ue000row-that-does-not-exist"
ID_MAX = 2**31 - 1  # the largest id a route takes: PostgreSQL's INTEGER
NO_ROUTE = ("-1", "+1", "1.0", "1e3", "0x1", "²", "one", "%00", str(ID_MAX + 1),
            str(2**63), "9" * 40)
PATH_IDS = st.one_of(st.just(ROW), st.just(ROW), st.just(ROW),
                     sampled(ROW_PADDED, ROW_WIDE, ROW_DECIDED, ROW_MISSING, "0"),
                     sampled(*NO_ROUTE))
WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


def path_id(stand_in: str, row: int, decided: int) -> tuple[str, str]:
    """The path segment a stand-in means, and what it names: row, decided, missing, or
    unrouted (no route takes it)."""
    segments = {ROW: (str(row), "row"), ROW_PADDED: (f"000{row}", "row"),
                ROW_WIDE: (str(row).translate(WIDE), "row"),
                ROW_DECIDED: (str(decided), "decided"), ROW_MISSING: (str(ID_MAX), "missing"),
                "0": ("0", "missing")}
    segment, target = segments.get(stand_in, (stand_in, "unrouted"))
    return quote(segment, safe=""), target


# A good token most of the time, so validation runs; now and then none, an empty one,
# another browser's, or two.
CSRF_SENT = st.sampled_from(([CSRF_GOOD],) * 8 + ([CSRF_GOOD, CSRF_OTHER_SESSION],
                                                 [CSRF_OTHER_SESSION], [], [""],
                                                 [CSRF_OTHER_SESSION, CSRF_GOOD]))

ADMIN_MOSTLY = sampled(True, True, True, True, None)  # None: a moderator tries


def signed(specs: dict[str, Spec]) -> st.SearchStrategy[dict[str, Values]]:
    """Values for a form's fields (see filled), and its CSRF token from CSRF_SENT."""
    fields = {name: spec for name, spec in specs.items() if name != "csrf_token"}
    return st.builds(lambda sent, csrf: {**sent, "csrf_token": csrf},
                     filled(fields) if fields else st.just({}), CSRF_SENT)


# Fields no route reads, sent alongside: they must change nothing.
EXTRA = st.lists(st.tuples(st.one_of(sampled("reason", "text", "remove", "edited", "role",
                                             "username", "status", "id", "active"),
                                     st.text(alphabet=UNICODE, min_size=1, max_size=12)),
                           ANY), max_size=3)

# --- The forms' fields ------------------------------------------------------------------------

REVIEW_REASONS = list(moderation.REJECT_REASONS)
SUGGESTION_REASONS = list(suggestions.REJECT_REASONS)


def one_of_ok(choices: list[str]) -> Callable[[Values], bool]:
    """The first value sent is one of the choices (a missing value is none of them)."""
    return lambda values: first(values, "\ue000missing") in choices


REJECT_SPECS: dict[str, Spec] = {
    "reason": Spec(valid=sampled(*REVIEW_REASONS),
                   invalid=sampled("", " ", "Spam", "spam ", "other", SUGGESTION_REASONS[0]),
                   ok=one_of_ok(REVIEW_REASONS), optional=False),
    "csrf_token": CSRF,
}
SUGGESTION_REJECT_SPECS: dict[str, Spec] = {
    "reason": Spec(valid=sampled(*SUGGESTION_REASONS),
                   invalid=sampled("", "Duplicate", "duplicate ", REVIEW_REASONS[0]),
                   ok=one_of_ok(SUGGESTION_REASONS), optional=False),
    "csrf_token": CSRF,
}
ONLY_CSRF: dict[str, Spec] = {"csrf_token": CSRF}

# The review a moderator redacts: six flagged parts, each written once, and hostile markup.
CLINIC_NAME = "Synthetic Redaction Clinic"
REVIEW_TEXT = ("Nurse Kay was kind. Ask Dr. Olsen or @olsen_fz. Call 212-555-0147, write "
               'kay.fz@example.org <script>alert("fz")</script> near 45 Main Street.')
FLAG_COUNT = 6
FLAG = tuple(f"\ue000flag-{n}" for n in range(FLAG_COUNT))  # the page's n-th checkbox
BLANKED = "\ue000text-with-flags-removed:"  # + "0,3": the text with those flags removed
REDACT_FLAGS_SPECS: dict[str, Spec] = {
    "remove": Spec(valid=sampled(*FLAG), invalid=sampled("", "0:1", "9:0", "-1:9", "a:b",
                                                         "0:99999", " 0:9", "0:9 ", "0:9:0"),
                   ok=always, multi=True),
    "csrf_token": CSRF,
}


def spans_removed(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with each [start, end) span replaced by [removed] (spans sorted, apart)."""
    out, position = [], 0
    for start, end in spans:
        out += [text[position:start], REMOVED]
        position = end
    return "".join([*out, text[position:]])


@st.composite
def edited_texts(draw: st.DrawFn) -> str:
    """A moderator's edit: parts removed, then perhaps changed in a way that is allowed
    (line ends, outer space) or not (a character added or lost, shouting)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(REVIEW_TEXT)), max_size=8)))
    spans = list(zip(cuts[::2], cuts[1::2], strict=False))
    text = spans_removed(REVIEW_TEXT, spans)
    change = draw(sampled("none", "none", "crlf", "padded", "insert", "drop", "upper"))
    at = draw(st.integers(0, len(text)))
    if change == "crlf":
        return text.replace(" ", "\r\n", 1)
    if change == "padded":
        return f" \r\n{text}\n\t"
    if change == "insert":
        return text[:at] + draw(st.text(alphabet=UNICODE, min_size=1, max_size=3)) + text[at:]
    if change == "drop":
        return text[:at] + text[at + 1:]
    return text.upper() if change == "upper" else text


REDACT_TEXT_SPECS: dict[str, Spec] = {
    "text": Spec(valid=st.one_of(edited_texts(), sampled(REMOVED, f"{REMOVED} {REMOVED}"),
                                 st.lists(st.integers(0, FLAG_COUNT - 1), min_size=1,
                                          max_size=FLAG_COUNT, unique=True).map(
                                     lambda ns: BLANKED + ",".join(map(str, ns)))),
                 invalid=sampled(REVIEW_TEXT, "", " \n ", REMOVED * 600, "[REMOVED]",
                                 REVIEW_TEXT + REMOVED + "x"),
                 ok=always),
    "csrf_token": CSRF,
}

# Approving a suggestion, perhaps after editing it: every fact of suggestions.FIELDS, read
# by hand in the view (no WTForms class), with the markers the edit form adds.
NAMES = sampled("Synthetic Edited Clinic", "Clínica Sintética Editada", HOSTILE[0],
                " Synthetic Padded \r\n", "n" * 400, "Synthetic\x00 Nul Clinic")
BLANKISH = sampled("", " ", "\x00", "\t\u200b\x7f")
HOURS_GOOD = ("Mon-Fri 9am-5pm", "Sat closed", "Mon-Fri 9am-5pm; Sat 10am-2pm; Sun closed",
              "weekdays 8:30am-4pm")
HOURS_BAD = ("whenever, really", "Mon-Fri 9-5", "9am-5pm", "Mon", "Tue 10am",
             "Mon-Fri 25am-5pm")
SERVICES_TEXT_GOOD = ("STI testing, PrEP", "no PEP", "PrEP and PEP")
SERVICES_TEXT_BAD = ("Reiki", "HIV testing;; Reiki")
YES_NO_ANY = Spec(valid=sampled("yes", "no", ""), invalid=sampled("maybe", "YES", " "), ok=always)
ADDRESS_LISTED = "\ue000address-of-a-listing-made-from-a-suggestion"
MARKER = Spec(valid=st.just("1"), invalid=sampled("", "0"), ok=always)
EDIT_SPECS: dict[str, Spec] = {
    "edited": Spec(valid=sampled("1", "1", "yes", "0"), invalid=st.just(""), ok=always),
    "name": Spec(valid=NAMES, invalid=BLANKISH, ok=always),
    "address_1": Spec(valid=sampled("2 Synthetic Avenue", "3 Test St, Suite <b>4</b>",
                                    "a" * 350, ADDRESS_LISTED),
                      invalid=BLANKISH, ok=always),
    "postal_code": Spec(valid=sampled("10011", "10027", "11201", "10011-1234", " 10001 ",
                                      "10011 and more"),
                        invalid=sampled("07030", "99999", "1001", "abcde", ""), ok=always),
    "phone": Spec(valid=sampled("(212) 555-0100", "212.555.0100", "+1 212 555 0100 x12", "",
                                "\x00(212) 555-0123"),
                  invalid=sampled("call me", "12", "5" * 26, HOSTILE[1]), ok=always),
    "services": Spec(valid=sampled(*SERVICES, *SERVICES_TEXT_GOOD),
                     invalid=sampled(*SERVICES_TEXT_BAD, "", " ", "HIV_TESTING", HOSTILE[0]),
                     ok=always, multi=True),
    "hours": Spec(valid=sampled(*HOURS_GOOD, ""), invalid=sampled(*HOURS_BAD), ok=always),
    "walk_in": YES_NO_ANY,
    "id_required": YES_NO_ANY,
    "insurance_required": YES_NO_ANY,
    "cost": Spec(valid=sampled(*COST_OPTIONS), invalid=sampled("", "FREE", "gold"), ok=always,
                 multi=True),
    "languages": Spec(valid=sampled("Spanish", "English, Spanish", "spanish ,  french", ""),
                      invalid=sampled("Klingon", "Spanish, Elvish", "English;Spanish"),
                      ok=always),
    "moved_to": Spec(valid=sampled("3 Synthetic Place", "", HOSTILE[1]),
                     invalid=st.just("m" * 301), ok=always),
    "cost-sent": MARKER,
    "services-sent": MARKER,
    "csrf_token": CSRF,
}

# Accounts: a new moderator (admins only) and one's own password.
USER_FRESH = "\ue000username-not-taken"
USER_FRESH_SHOUTED = "\ue000username-not-taken-upper-case-padded"
USER_TAKEN = "\ue000username-taken-upper-case"
NEW_MODERATOR_SPECS: dict[str, Spec] = {
    "username": Spec(valid=sampled(USER_FRESH, USER_FRESH, USER_FRESH_SHOUTED, USER_TAKEN),
                     invalid=sampled("", " ", "ab", "a" * 41, "-abc", "ab c", "abc\x00",
                                     "Ünïcode", "u" * 81, HOSTILE[0], "\u212aelvin-sign"),
                     ok=always, optional=False),
    "role": Spec(valid=sampled(MODERATOR, ADMIN), invalid=sampled("", "Admin", "root", " admin"),
                 ok=one_of_ok([MODERATOR, ADMIN]), optional=False),
    "csrf_token": CSRF,
}
PASSWORD_NOW = "\ue000current-password"
PASSWORD_NEW = "\ue000a-good-new-password"
SAME_AS_NEW = "\ue000same-as-new"


def given_ok(maximum: int | None = None) -> Callable[[Values], bool]:
    """A required field: sent, not blank, and at most `maximum` characters if given."""
    def ok(values: Values) -> bool:
        value = first(values)
        return bool(value.strip()) and (maximum is None or len(value) <= maximum)
    return ok


PASSWORD_SPECS: dict[str, Spec] = {
    "current": Spec(valid=sampled(PASSWORD_NOW, PASSWORD_NOW, "synthetic-wrong-password"),
                    invalid=sampled("", " ", "p" * 1025), ok=given_ok(1024), optional=False),
    "new": Spec(valid=sampled(PASSWORD_NEW, PASSWORD_NEW, "short", "eleven-char", "é" * 12,
                              "\x00" * 12),
                invalid=sampled("", "\t", "n" * 1025), ok=given_ok(1024), optional=False),
    "confirm": Spec(valid=st.just(SAME_AS_NEW), invalid=sampled("", "something else"),
                    ok=given_ok(), optional=False),
    "csrf_token": CSRF,
}

FORMS: dict[type[FlaskForm], dict[str, Spec]] = {
    moderation.RejectForm: REJECT_SPECS,
    moderation.RedactFlagsForm: REDACT_FLAGS_SPECS,
    moderation.RedactTextForm: REDACT_TEXT_SPECS,
    moderation.NewModeratorForm: NEW_MODERATOR_SPECS,
    moderation.ChangePasswordForm: PASSWORD_SPECS,
}
# Every POST route behind the sign-in, and the specs of what it reads.
POST_ROUTES: dict[str, dict[str, Spec]] = {
    "moderation.approve_review": ONLY_CSRF,
    "moderation.reject_review": REJECT_SPECS,
    "moderation.redact_review": {**REDACT_FLAGS_SPECS, **REDACT_TEXT_SPECS},
    "moderation.approve_suggestion": EDIT_SPECS,
    "moderation.reject_suggestion": SUGGESTION_REJECT_SPECS,
    "moderation.still_correct": ONLY_CSRF,
    "moderation.new_moderator": NEW_MODERATOR_SPECS,
    "moderation.change_password": PASSWORD_SPECS,
    "moderation.disable_moderator": ONLY_CSRF,
    "moderation.unlock_moderator": ONLY_CSRF,
    "moderation.logout": ONLY_CSRF,
    "moderation.logout_everywhere": ONLY_CSRF,
}

# --- The desk: signed-in browsers ---------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared test settings, with cheap password hashing."""
    return cheap_hashing(settings)


@dataclass
class Browser:
    """A browser signed in to one account, with its CSRF token and password."""

    client: FlaskClient
    account_id: int
    csrf: str
    password: str = PASSWORD

    def renew_token(self) -> None:
        """Read the token afresh (signing in again empties the session that held it)."""
        self.csrf = csrf_of(self.client, "/moderation/account")


@dataclass
class Desk:
    """The app, a moderator's and an admin's browser, and another browser's CSRF token."""

    app: Flask
    moderator: Browser
    admin: Browser
    csrf_other: str
    flags: list[str]  # the redaction page's checkbox values for REVIEW_TEXT, once read

    def live(self, browser: Browser) -> dict[str, str]:
        """The run-time values the CSRF stand-ins mean for this browser."""
        return {CSRF_GOOD: browser.csrf, CSRF_OTHER_SESSION: self.csrf_other}

    @property
    def limit(self) -> int:
        """The largest body the app reads."""
        return int(self.app.config["MAX_CONTENT_LENGTH"])


def signed_in(app: Flask, account: Moderator) -> Browser:
    """A new browser signed in to this (committed) account."""
    client = app.test_client()
    assert sign_in(client, account).status_code == 302
    return Browser(client, account.id, csrf_of(client, "/moderation/account"))


@pytest.fixture
def desk(app: Flask) -> Desk:
    """A signed-in moderator and admin, and a token from an anonymous browser."""
    moderator, admin = make_moderator(), make_admin()
    db.session.commit()
    other = csrf_of(app.test_client())
    return Desk(app, signed_in(app, moderator), signed_in(app, admin), other, [])


def send(browser: Browser, path: str, data: MultiDict[str, str]) -> TestResponse:
    """POST as this browser, then let the test read what the request committed."""
    # The test's app context outlives each request, and Flask-WTF caches a token in `g`:
    # drop it, or a page this request renders would carry another browser's token.
    g.pop("csrf_token", None)
    try:
        return browser.client.post(path, data=data)
    finally:
        db.session.rollback()  # also after an error, so the next example starts clean


def gate(sent: dict[str, Values], data: MultiDict[str, str], target: str,
         limit: int) -> int | None:
    """What any moderation POST answers before its own work: no route takes the path
    (404), the body is too big (413), the CSRF token is not this browser's (400)."""
    if target == "unrouted":
        return 404
    if data and body_size(data) > limit:  # (an empty body has no length to measure)
        return 413
    if not CSRF.ok(sent.get("csrf_token", [])):
        return 400
    return None


def answered(response: TestResponse, status: int, location: str | None = None) -> str:
    """Check the status, and that the answer is a page of the site or the redirect meant."""
    event(f"status {response.status_code}")
    assert response.status_code == status
    if 300 <= status < 400:
        assert location is not None
        assert stays_on_site(response.headers["Location"])
        assert response.headers["Location"] == location
        return ""
    return page_of(response)


# --- The database, row by row -------------------------------------------------------------------

Rows = dict[str, Any]


def rows(model: type[Any], *columns: Any) -> dict[int, tuple[Any, ...]]:
    """Each row's id -> the chosen columns, read afresh."""
    found = db.session.execute(sa.select(model.id, *columns).order_by(model.id)).all()
    return {row[0]: tuple(row[1:]) for row in found}


def fingerprint() -> Rows:
    """What a moderation request may change: decisions, listings, accounts, the log."""
    return {
        "review": rows(Review, Review.status, Review.text, Review.reject_reason),
        "suggestion": rows(Suggestion, Suggestion.status, Suggestion.payload,
                           Suggestion.notes, Suggestion.reject_reason),
        "location": rows(Location, Location.name, Location.address_1, Location.postal_code,
                         Location.phone, Location.status, Location.moderator_checked,
                         Location.modified_at),
        "moderator": rows(Moderator, Moderator.username, Moderator.role, Moderator.active,
                          Moderator.failed_logins, Moderator.session_version,
                          Moderator.password_hash),
        "facts": [count(model) for model in (ServiceAtLocation, Language, CostOption,
                                             Schedule, RequiredDocument, Provenance)],
        "verified": rows(Provenance, Provenance.verified_on, Provenance.source_id),
        "revisions": count(ListingRevision),
        "audit": count(AuditEntry),
    }


def audit_after(before: int) -> list[tuple[str, str, int | None, str | None, str | None]]:
    """The entries added since the log held `before`, oldest first."""
    entries = db.session.execute(sa.select(AuditEntry).order_by(AuditEntry.id)).scalars()
    return [(e.action, e.item_type, e.item_id, e.decision, e.reason)
            for e in list(entries)[before:]]


# --- Reviews: approve, reject, redact -----------------------------------------------------------


def review_pair() -> tuple[Review, Review, Location]:
    """A pending review of REVIEW_TEXT (at a listing of its own, so its public page shows
    only this review) and a published one; committed."""
    clinic = make_clinic(CLINIC_NAME)
    pending = make_review(clinic, text=REVIEW_TEXT, respect=4)
    decided = make_review(clinic, status=PUBLISHED, text="Synthetic decided review.", respect=2)
    db.session.commit()
    return pending, decided, clinic


def review_decision(desk: Desk, action: str, sent: dict[str, Values], stand_in: str,
                    extra: Sequence[tuple[str, str]] = ()
                    ) -> tuple[TestResponse, Rows, Rows, int, str, int | None]:
    """Send one decision about a fresh review; the answer, the rows before and after, the
    review's id, what the path named, and the status every route gives first."""
    pending, decided, _ = review_pair()
    segment, target = path_id(stand_in, pending.id, decided.id)
    data = pairs(sent, desk.live(desk.moderator))
    for name, value in extra:
        data.add(name, value)
    before = fingerprint()
    response = send(desk.moderator, f"/moderation/reviews/{segment}/{action}", data)
    return (response, before, fingerprint(), pending.id, target,
            gate(sent, data, target, desk.limit))


@fuzz(40)
@given(sent=signed(ONLY_CSRF), stand_in=PATH_IDS, extra=EXTRA)
@example(sent={"csrf_token": [CSRF_GOOD]}, stand_in="9" * 40, extra=[])  # was a 500
@example(sent={"csrf_token": [CSRF_GOOD]}, stand_in=str(ID_MAX + 1), extra=[])  # was a 500
@example(sent={"csrf_token": [CSRF_GOOD]}, stand_in=ROW_WIDE, extra=[("status", "rejected")])
def test_approving_publishes_only_a_pending_review(desk: Desk, sent: dict[str, Values],
                                                  stand_in: str,
                                                  extra: list[tuple[str, str]]) -> None:
    response, before, after, review_id, target, early = review_decision(
        desk, "approve", sent, stand_in, extra)
    if early is not None or target == "missing":
        answered(response, early or 404)
    elif target == "decided":
        answered(response, 302, "/moderation/")
    else:
        answered(response, 302, "/moderation/")
        before["review"][review_id] = (PUBLISHED, REVIEW_TEXT, None)
        before["audit"] += 1
        assert audit_after(after["audit"] - 1) == [("approve", "review", review_id, PUBLISHED,
                                                    None)]
    assert after == before


@fuzz(40)
@given(sent=signed(REJECT_SPECS), stand_in=PATH_IDS)
@example(sent={"reason": ["spam"], "csrf_token": [CSRF_GOOD]}, stand_in=str(2**63))
@example(sent={"reason": ["not_confirmed"], "csrf_token": [CSRF_GOOD]}, stand_in=ROW)
def test_rejecting_a_review_needs_a_listed_reason(desk: Desk, sent: dict[str, Values],
                                                 stand_in: str) -> None:
    response, before, after, review_id, target, early = review_decision(
        desk, "reject", sent, stand_in)
    reason = first(sent.get("reason", []))
    if early is not None:
        answered(response, early)
    elif reason not in moderation.REJECT_REASONS:  # the form is read before the review
        answered(response, 400)
    elif target == "missing":
        answered(response, 404)
    elif target == "decided":
        answered(response, 302, "/moderation/")
    else:
        answered(response, 302, "/moderation/")
        # A rejected text is dropped: it is never shown and may name someone.
        before["review"][review_id] = (REJECTED, None, reason)
        before["audit"] += 1
        assert audit_after(after["audit"] - 1) == [
            ("reject", "review", review_id, REJECTED, moderation.REJECT_REASONS[reason])]
    assert after == before


def redaction_of(original: str, edited: str) -> bool:
    """Whether `edited` is `original` with parts replaced by [removed] (at least one more
    [removed] than it had), once line ends and outer white space are evened out."""
    original, edited = even(original), even(edited)
    if edited.count(REMOVED) <= original.count(REMOVED):
        return False
    pattern = "(?s:.*?)".join(re.escape(piece) for piece in edited.split(REMOVED))
    return re.fullmatch(pattern, original) is not None


def even(text: str) -> str:
    """One kind of line end, no outer white space."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def flag_spans(desk: Desk, indices: list[int]) -> list[tuple[int, int]]:
    """The [start, end) spans of the page's flags with these indices, in order."""
    spans = [tuple(map(int, desk.flags[n].split(":"))) for n in sorted(set(indices))]
    return [(start, end) for start, end in spans]


def read_flags(desk: Desk, review_id: int) -> None:
    """Read, once, the parts the redaction page offers to remove (as a browser sees them)."""
    if desk.flags:
        return
    g.pop("csrf_token", None)
    html = page_of(desk.moderator.client.get(f"/moderation/reviews/{review_id}"))
    desk.flags = re.findall(r'name="remove" value="(\d+:\d+)"', html)
    assert len(desk.flags) == FLAG_COUNT
    for value in desk.flags:
        start, end = map(int, value.split(":"))
        assert REVIEW_TEXT.count(REVIEW_TEXT[start:end]) == 1  # so "gone" can be checked


REDACT_MODES = st.one_of(
    st.builds(lambda sent: ("flags", sent), signed(REDACT_FLAGS_SPECS)),
    st.builds(lambda sent: ("text", sent), signed(REDACT_TEXT_SPECS)))


@fuzz(90)
@given(mode_sent=REDACT_MODES, stand_in=PATH_IDS)
@example(mode_sent=("flags", {"remove": [FLAG[3], "0:1"], "csrf_token": [CSRF_GOOD]}),
         stand_in=ROW)
@example(mode_sent=("text", {"text": [REVIEW_TEXT.replace("Kay", REMOVED)],
                             "csrf_token": [CSRF_GOOD]}), stand_in=ROW)
@example(mode_sent=("text", {"text": [REVIEW_TEXT.replace("Kay", REMOVED + "!")],
                             "csrf_token": [CSRF_GOOD]}), stand_in=ROW)
@example(mode_sent=("text", {"text": [BLANKED + "0,1,2,3,4,5"], "csrf_token": [CSRF_GOOD]}),
         stand_in=ROW)
def test_a_redaction_publishes_nothing_the_moderator_removed(
        desk: Desk, mode_sent: tuple[str, dict[str, Values]], stand_in: str) -> None:
    mode, sent = mode_sent
    pending, decided, clinic = review_pair()
    read_flags(desk, pending.id)
    flags = {stand: value for stand, value in zip(FLAG, desk.flags, strict=True)}
    chosen: list[int] = []
    if mode == "text" and first(sent["text"]).startswith(BLANKED):
        chosen = [int(n) for n in first(sent["text"])[len(BLANKED):].split(",")]
        sent = {**sent, "text": [spans_removed(REVIEW_TEXT, flag_spans(desk, chosen))]}
    segment, target = path_id(stand_in, pending.id, decided.id)
    data = pairs(sent, {**desk.live(desk.moderator), **flags})
    before = fingerprint()
    response = send(desk.moderator, f"/moderation/reviews/{segment}/redact", data)
    after = fingerprint()
    early = gate(sent, data, target, desk.limit)
    if mode == "text" and sent["text"]:  # any "text" field means the edited-text form
        text = first(sent["text"])
        edited = bool(text.strip()) and len(text) <= moderation.MAX_TEXT
        accepted = edited and redaction_of(REVIEW_TEXT, text)
        published = even(text)
    else:
        removed = data.getlist("remove")
        accepted = bool(removed) and all(value in desk.flags for value in removed)
        chosen = [desk.flags.index(value) for value in removed] if accepted else []
        published = spans_removed(REVIEW_TEXT, flag_spans(desk, chosen))
    if early is not None or target == "missing":
        answered(response, early or 404)
    elif target == "decided":
        answered(response, 302, "/moderation/")
    elif not accepted:
        html = answered(response, 422)
        assert 'role="alert"' in html
    else:
        answered(response, 302, "/moderation/")
        parts = published.count(REMOVED) - REVIEW_TEXT.count(REMOVED)
        before["review"][pending.id] = (PUBLISHED, published, None)
        before["audit"] += 2
        log = audit_after(after["audit"] - 2)
        assert [entry[:4] for entry in log] == [("redact", "review", pending.id, "redacted"),
                                               ("approve", "review", pending.id, PUBLISHED)]
        assert (log[0][4] or "").startswith(f"{parts} part{'s' if parts != 1 else ''} removed")
        check_published(desk, clinic.slug, published, chosen)
    assert after == before


def check_published(desk: Desk, slug: str, published: str, chosen: list[int]) -> None:
    """The clinic's public reviews show the redacted text (escaped), and no removed part;
    the audit log names none of them either."""
    html = page_of(desk.moderator.client.get(f"/clinics/{slug}/reviews"))
    assert str(escape(published)) in html
    reasons = " ".join(str(reason) for *_, reason in audit_after(0))
    for start, end in flag_spans(desk, chosen):
        gone = REVIEW_TEXT[start:end]
        assert gone not in published
        assert str(escape(gone)) not in html
        assert gone not in reasons


# --- Suggestions: approve (as sent or edited), reject -----------------------------------------

PAYLOADS: dict[str, dict[str, object]] = {
    NEW_CLINIC: {"name": "Synthetic Suggested Clinic", "address_1": "1 Synthetic Street",
                 "postal_code": "10027", "services": ["prep"], "phone": "(212) 555-0111"},
    CORRECTION: {"phone": "(212) 555-0199", "languages": "Spanish"},
    CLOSURE: {"moved_to": "2 Synthetic Place"},
}
_unique = itertools.count(1)


def suggestion_pair(kind: str) -> tuple[Suggestion, Suggestion, Location | None]:
    """A pending suggestion of this kind (about a listing of its own) and a decided one.

    Each new clinic gets an address of its own, so only the fuzzed values can repeat one.
    """
    clinic = None if kind == NEW_CLINIC else make_clinic(
        services=CLINIC_SERVICES, languages=("en",), cost={"free": True},
        walk_in=False, documents={"id": True}, hours={"MO": [(540, 1020)]})
    proposal = dict(PAYLOADS[kind])
    if kind == NEW_CLINIC:
        proposal["address_1"] = f"{next(_unique)} Synthetic Street"
    pending = suggestions.new_suggestion(kind, clinic.id if clinic else None, proposal,
                                         "visited", "Synthetic note")
    decided = suggestions.new_suggestion(kind, clinic.id if clinic else None, proposal, None,
                                         None)
    decided.status = REJECTED
    decided.reject_reason = "spam"
    db.session.commit()
    return pending, decided, clinic


def edits_read(sent: dict[str, Values]) -> dict[str, object] | None:
    """The moderator's edits as the edit form means them: only when it says "edited",
    only the facts sent; text cleaned as the public forms clean it, and cut at 300
    characters; ticked boxes when the form says it sent them."""
    if not first(sent.get("edited", [])):
        return None
    values: dict[str, object] = {}
    for key in suggestions.FIELDS:
        if key in ("cost", "services") and sent.get(f"{key}-sent"):
            values[key] = list(sent.get(key, []))
        elif sent.get(key):
            values[key] = (clean_text(first(sent[key])) or "")[:300]
    return values


def combine(*verdicts: Verdict) -> Verdict:
    """Refused if any rule refuses; accepted if all accept; else not known from outside."""
    if False in verdicts:
        return False
    return True if all(verdicts) else None


# A service may be named by its code or its name, in any case: "PrEP", "hiv testing".
SERVICE_NAMES = {name: code for code, label in SERVICES.items()
                 for name in (code, code.replace("_", " "), label.lower(),
                              label.split("(")[0].strip().lower())}
STOPPED = re.compile(r"^(no longer offered:?|no longer|not|no)\s+|\s+(no longer offered|"
                     r"not offered)$")
CLINIC_SERVICES = ("hiv_testing", "prep")  # what each corrected listing offers at first


def services_named(value: object) -> tuple[set[str], set[str]] | None:
    """The services a correction says are offered, and those it says stopped ("no PEP",
    "PEP not offered"); None if a part names no service."""
    parts = value if isinstance(value, list) else re.split(r"[,;\n]|\band\b", str(value or ""))
    offered: set[str] = set()
    stopped: set[str] = set()
    for part in (str(p).strip().lower() for p in parts):
        name = STOPPED.sub("", part).strip()
        if part and name not in SERVICE_NAMES:
            return None
        if part:
            (stopped if name != part else offered).add(SERVICE_NAMES[name])
    return offered, stopped


def service_named(item: str) -> Verdict:
    """A service named by its code or its name, in any case ("no PEP" is judged inside)."""
    name = item.strip().lower()
    if not name or name in SERVICE_NAMES:
        return True
    return None if name.startswith(("no ", "not ")) or name.endswith("offered") else False


def services_ok(kind: str, value: object) -> Verdict:
    """A new clinic needs ticked services (at least one code); a correction may also list
    them in words."""
    if kind == CLOSURE:
        return True
    if isinstance(value, list):
        named = combine(*(service_named(str(item)) for item in value))
        return combine(named, kind != NEW_CLINIC or any(item in SERVICES for item in value))
    text = str(value or "").strip()
    if kind == NEW_CLINIC or text in SERVICES_TEXT_BAD:
        return False
    return True if not text or text in SERVICES_TEXT_GOOD or text in SERVICES else None


def hours_ok(kind: str, value: object) -> Verdict:
    """Opening hours by day or range of days ("Mon-Fri 9am-5pm"), or nothing."""
    text = str(value or "").strip()
    if kind == CLOSURE or not text or text in HOURS_GOOD:
        return True
    if text in HOURS_BAD or not re.search(r"(?i)mon|tue|wed|thu|fri|sat|sun|week|daily|every",
                                          text):
        return False
    return None


def needed_for_new(kind: str, value: object) -> Verdict:
    """A new clinic needs a name and a street address; other kinds do not use them."""
    return kind != NEW_CLINIC or bool(str(value or "").strip())


FACT_RULES: dict[str, Callable[[str, object], Verdict]] = {
    "name": needed_for_new,
    "address_1": needed_for_new,
    "postal_code": lambda kind, value: kind != NEW_CLINIC
    or zip_centroid(str(value or "").strip()[:5]) is not None,
    "phone": lambda kind, value: kind == CLOSURE or phone_ok([str(value or "")]),
    "services": services_ok,
    "hours": hours_ok,
    "walk_in": lambda kind, value: True,  # anything but yes or no leaves it as it was
    "id_required": lambda kind, value: True,
    "insurance_required": lambda kind, value: True,
    "cost": lambda kind, value: True,  # unknown ways to pay are not ticked
    "languages": lambda kind, value: kind == CLOSURE or languages_ok([str(value or "")]),
    "moved_to": lambda kind, value: True,  # read by the moderator, never applied
}


def listed_address(desk: Desk) -> str:
    """The street address of a listing approved from a suggestion just now (ZIP 10027)."""
    address = f"{next(_unique)} Listed Street"
    earlier = suggestions.new_suggestion(NEW_CLINIC, None, {**PAYLOADS[NEW_CLINIC],
                                                            "address_1": address}, None, None)
    moderator = db.session.get(Moderator, desk.moderator.account_id)
    assert moderator is not None
    suggestions.approve(earlier, moderator)
    db.session.commit()
    return address


def listed_already(values: dict[str, object]) -> bool:
    """Whether a listing made from a suggestion has this street address and ZIP code."""
    address = str(values.get("address_1") or "").strip().lower()
    zip5 = str(values.get("postal_code") or "").strip()[:5]
    return any(a.lower() == address and key.startswith("community|") for a, key in
               db.session.execute(sa.select(Location.address_1, Location.import_key)
                                  .where(Location.postal_code == zip5)).all())


@fuzz(110)
@given(kind=sampled(NEW_CLINIC, CORRECTION, CLOSURE), sent=signed(EDIT_SPECS),
       stand_in=PATH_IDS)
@example(kind=NEW_CLINIC, sent={"edited": ["1"], "name": ["Synthetic\x00Clinic"],
                                "address_1": ["1 \x00 Synthetic St"], "csrf_token": [CSRF_GOOD]},
         stand_in=ROW)  # a NUL byte: PostgreSQL refused the write (a 500)
@example(kind=NEW_CLINIC, sent={"edited": ["1"], "address_1": [ADDRESS_LISTED],
                                "csrf_token": [CSRF_GOOD]},
         stand_in=ROW)  # an address already listed: a unique key failed (a 500)
@example(kind=CORRECTION, sent={"edited": ["1"], "languages": ["Klingon"],
                                "csrf_token": [CSRF_GOOD]}, stand_in=ROW)
@example(kind=CORRECTION, sent={"edited": ["1"], "services": ["no PEP", "prep"],
                                "services-sent": ["1"], "csrf_token": [CSRF_GOOD]},
         stand_in=ROW)
@example(kind=NEW_CLINIC, sent={"edited": ["1"], "services": ["prep"],
                                "csrf_token": [CSRF_GOOD]}, stand_in=ROW)  # words, not boxes
@example(kind=NEW_CLINIC, sent={"edited": ["1"], "services": ["prep", "prep"],
                                "services-sent": ["1"], "csrf_token": [CSRF_GOOD]},
         stand_in=ROW)  # a service ticked twice broke a unique key (a 500)
@example(kind=CORRECTION, sent={"edited": ["1"], "walk_in": ["yes"], "services": ["STI testing"],
                                "csrf_token": [CSRF_GOOD]},
         stand_in=ROW)  # removed every other service, and left walk-in off the new one
@example(kind=CLOSURE, sent={"edited": [""], "csrf_token": [CSRF_GOOD]}, stand_in="9" * 40)
def test_approving_a_suggestion_writes_only_usable_values(
        desk: Desk, kind: str, sent: dict[str, Values], stand_in: str) -> None:
    pending, decided, clinic = suggestion_pair(kind)
    if ADDRESS_LISTED in sent.get("address_1", []):  # the rules read the address itself
        listed = listed_address(desk).upper()
        sent = {**sent, "address_1": [listed if value == ADDRESS_LISTED else value
                                      for value in sent["address_1"]]}
    segment, target = path_id(stand_in, pending.id, decided.id)
    data = pairs(sent, desk.live(desk.moderator))
    edits = edits_read(sent)
    values = {**suggestions.payload(pending), **(edits or {})}
    verdict = combine(*(rule(kind, values.get(key)) for key, rule in FACT_RULES.items()))
    if kind == NEW_CLINIC and verdict is not False and listed_already(values):
        verdict = False
    before = fingerprint()
    response = send(desk.moderator, f"/moderation/suggestions/{segment}/approve", data)
    after = fingerprint()
    early = gate(sent, data, target, desk.limit)
    event(f"{kind}: verdict {verdict}")
    if early is not None or target == "missing":
        answered(response, early or 404)
    elif target == "decided":
        answered(response, 302, "/moderation/suggestions")
    elif response.status_code == 422:
        assert verdict is not True
        assert 'role="alert"' in answered(response, 422)
    else:
        assert verdict is not False
        answered(response, 302, f"/moderation/suggestions?kind={kind}")
        check_applied(desk, kind, pending.id, clinic.id if clinic else None, values, edits,
                      before, after)
        return
    assert after == before


def check_applied(desk: Desk, kind: str, suggestion_id: int, clinic_id: int | None,
                  values: dict[str, object], edits: dict[str, object] | None, before: Rows,
                  after: Rows) -> None:
    """An approval made its one change, logged once, and touched nothing else."""
    found = db.session.get(Suggestion, suggestion_id)
    assert found is not None
    assert found.status == APPROVED
    if edits:
        assert json.loads(found.payload) == {k: v for k, v in values.items() if v}
    assert audit_after(before["audit"]) == [
        ("approve", "suggestion", suggestion_id, APPROVED, audit_reason(suggestion_id))]
    for table in ("review", "moderator"):
        assert after[table] == before[table]
    others = {k: v for k, v in after["suggestion"].items() if k != suggestion_id}
    assert others == {k: v for k, v in before["suggestion"].items() if k != suggestion_id}
    if kind == NEW_CLINIC:
        assert len(after["location"]) == len(before["location"]) + 1
        check_new_clinic(desk, values)
        return
    assert after["revisions"] == before["revisions"] + 1
    assert set(after["location"]) == set(before["location"])
    location = db.session.get(Location, clinic_id)
    assert location is not None
    if kind == CLOSURE:
        assert location.status == CLOSED
    else:
        check_corrected(location, values)


def audit_reason(suggestion_id: int) -> str | None:
    """The reason logged for this suggestion's approval (its summary, checked by shape)."""
    reason = db.session.execute(sa.select(AuditEntry.reason).where(
        AuditEntry.item_type == "suggestion", AuditEntry.item_id == suggestion_id)).scalar_one()
    assert reason is not None
    assert reason.split(":")[0] in (NEW_CLINIC, CORRECTION, CLOSURE)
    return reason


def check_corrected(location: Location, values: dict[str, object]) -> None:
    """The listing holds the approved facts: phone, walk-in, ID policy, languages, cost."""
    phone = str(values.get("phone") or "").strip()
    assert location.phone == (phone or "(212) 555-0100")
    sals = location.services
    named = services_named(values.get("services"))
    if named is not None:  # services added stay, stopped ones go, the others stay too
        offered, stopped = named
        assert {sal.service.code for sal in sals} == ({*CLINIC_SERVICES} | offered) - stopped
    walk_in = suggestions.YES_NO.get(str(values.get("walk_in") or ""))
    if walk_in is not None:
        assert all(sal.walk_in is walk_in for sal in sals)
    id_required = suggestions.YES_NO.get(str(values.get("id_required") or ""))
    if id_required is not None:
        assert all(doc.required is id_required for sal in sals for doc in sal.required_documents
                   if doc.document == "id")
    names = [n.strip() for n in str(values.get("languages") or "").split(",") if n.strip()]
    if names:
        assert all({lang.code for lang in sal.languages} == {language_code(n) for n in names}
                   for sal in sals)
    costs = values.get("cost")
    for option in costs if isinstance(costs, list) else []:
        if option in COST_OPTIONS:
            assert all(any(c.option == option and c.available for c in sal.cost_options)
                       for sal in sals)


def check_new_clinic(desk: Desk, values: dict[str, object]) -> None:
    """The new listing holds what was approved, and its public page shows it escaped."""
    location = db.session.execute(sa.select(Location).order_by(Location.id.desc())
                                  .limit(1)).scalar_one()
    assert location.name == str(values["name"]).strip()
    assert location.address_1 == str(values["address_1"]).strip()
    assert location.postal_code == str(values["postal_code"]).strip()[:5]
    assert location.phone == (str(values.get("phone") or "").strip() or None)
    ticked = {str(item) for item in values.get("services") or [] if str(item) in SERVICES}
    if not any(str(item).lower().startswith(("no ", "not ")) for item in values["services"]):
        assert ticked <= {sal.service.code for sal in location.services}
    html = page_of(desk.moderator.client.get(f"/clinics/{location.slug}"))
    assert str(escape(location.name)) in html


@fuzz(40)
@given(kind=sampled(NEW_CLINIC, CORRECTION, CLOSURE), sent=signed(SUGGESTION_REJECT_SPECS),
       stand_in=PATH_IDS)
@example(kind=CORRECTION, sent={"reason": ["spam"], "csrf_token": [CSRF_GOOD]},
         stand_in=str(ID_MAX + 1))
def test_rejecting_a_suggestion_needs_a_listed_reason(desk: Desk, kind: str,
                                                     sent: dict[str, Values],
                                                     stand_in: str) -> None:
    pending, decided, _ = suggestion_pair(kind)
    segment, target = path_id(stand_in, pending.id, decided.id)
    data = pairs(sent, desk.live(desk.moderator))
    before = fingerprint()
    response = send(desk.moderator, f"/moderation/suggestions/{segment}/reject", data)
    after = fingerprint()
    early = gate(sent, data, target, desk.limit)
    reason = data.get("reason", "")
    if early is not None:
        answered(response, early)
    elif reason not in suggestions.REJECT_REASONS:  # read before the suggestion
        answered(response, 400)
    elif target == "missing":
        answered(response, 404)
    elif target == "decided":
        answered(response, 302, "/moderation/suggestions")
    else:
        answered(response, 302, f"/moderation/suggestions?kind={kind}")
        _status, payload, _notes, _reason = before["suggestion"][pending.id]
        before["suggestion"][pending.id] = (REJECTED, payload, None, reason)
        before["audit"] += 1
        assert audit_after(after["audit"] - 1) == [
            ("reject", "suggestion", pending.id, REJECTED, suggestions.REJECT_REASONS[reason])]
    assert after == before


# --- Listings: still correct ---------------------------------------------------------------------


@fuzz(30)
@given(sent=signed(ONLY_CSRF), stand_in=PATH_IDS, extra=EXTRA)
@example(sent={"csrf_token": [CSRF_GOOD]}, stand_in=str(2**63), extra=[])  # was a 500
def test_still_correct_renews_only_a_listing_that_exists(
        desk: Desk, sent: dict[str, Values], stand_in: str,
        extra: list[tuple[str, str]]) -> None:
    clinic, closed = make_clinic(), make_clinic(status=CLOSED)
    db.session.commit()
    segment, target = path_id(stand_in, clinic.id, closed.id)
    data = pairs(sent, desk.live(desk.moderator))
    for name, value in extra:
        data.add(name, value)
    before = fingerprint()
    response = send(desk.moderator, f"/moderation/reverify/{segment}/still-correct", data)
    after = fingerprint()
    early = gate(sent, data, target, desk.limit)
    if early is not None or target == "missing":
        answered(response, early or 404)
        assert after == before
        return
    answered(response, 302, "/moderation/reverify")
    checked = clinic.id if target == "row" else closed.id
    assert [entry[:4] for entry in audit_after(before["audit"])] == [
        ("approve", "listing", checked, "still correct")]
    assert after["revisions"] == before["revisions"] + 1
    location = db.session.get(Location, checked)
    assert location is not None
    assert location.moderator_checked
    assert {p.verified_on for p in location.provenance} == {suggestions.today()}
    for table in ("review", "suggestion", "moderator", "facts"):
        assert after[table] == before[table]
    assert {k: v for k, v in after["location"].items() if k != checked} == {
        k: v for k, v in before["location"].items() if k != checked}


# --- Accounts: new moderator, password, disable, unlock, sign out -------------------------------


@fuzz(50)
@given(sent=signed(NEW_MODERATOR_SPECS), as_admin=ADMIN_MOSTLY)
@example(sent={"username": ["abc\x00"], "role": [MODERATOR], "csrf_token": [CSRF_GOOD]},
         as_admin=True)
@example(sent={"username": [USER_TAKEN], "role": [ADMIN], "csrf_token": [CSRF_GOOD]},
         as_admin=True)
@example(sent={"username": [USER_FRESH], "role": [ADMIN], "csrf_token": [CSRF_GOOD]},
         as_admin=None)
def test_a_new_account_needs_a_free_well_formed_username_and_a_role(
        desk: Desk, sent: dict[str, Values], as_admin: bool | None) -> None:
    browser = desk.admin if as_admin else desk.moderator
    taken = db.session.get(Moderator, desk.moderator.account_id)
    assert taken is not None
    fresh = f"fz-new-{next(_unique)}"
    live = {**desk.live(browser), USER_FRESH: fresh, USER_FRESH_SHOUTED: f" {fresh.upper()} ",
            USER_TAKEN: taken.username.upper()}
    data = pairs(sent, live)
    username = data.get("username", "")
    wanted = username.strip().lower()
    well_formed = (bool(username.strip()) and len(username) <= 80
                   and re.fullmatch(r"[a-z0-9][a-z0-9._-]{2,39}", wanted) is not None)
    free = well_formed and db.session.execute(sa.select(Moderator.id).where(
        sa.func.lower(Moderator.username) == wanted)).first() is None
    role_ok = NEW_MODERATOR_SPECS["role"].ok(sent.get("role", []))
    before = fingerprint()
    response = send(browser, "/moderation/moderators/new", data)
    after = fingerprint()
    early = gate(sent, data, "row", desk.limit)
    if early is not None:
        answered(response, early)
    elif not as_admin:
        answered(response, 403)
    elif not (well_formed and free and role_ok):
        html = answered(response, 422)
        assert 'name="username"' in html
    else:
        html = answered(response, 200)
        new = db.session.execute(sa.select(Moderator).where(
            Moderator.username == wanted)).scalar_one()
        assert (new.role, new.active, new.failed_logins) == (data["role"], True, 0)
        assert f"Account created: {wanted}" in html
        assert audit_after(before["audit"]) == [
            ("create_moderator", "moderator", new.id, new.role, None)]
        before["moderator"][new.id] = after["moderator"][new.id]
        before["audit"] += 1
    assert after == before


@fuzz(40)
@given(sent=signed(PASSWORD_SPECS))
@example(sent={"current": [PASSWORD_NOW], "new": ["\x00" * 12], "confirm": [SAME_AS_NEW],
               "csrf_token": [CSRF_GOOD]})
@example(sent={"current": [PASSWORD_NOW], "new": [PASSWORD_NEW], "confirm": [SAME_AS_NEW],
               "csrf_token": [CSRF_OTHER_SESSION]})
def test_a_password_changes_only_with_the_current_one_and_a_long_new_one(
        desk: Desk, sent: dict[str, Values]) -> None:
    browser = desk.moderator
    new_password = f"synthetic-new-password-{next(_unique)}"
    live = {**desk.live(browser), PASSWORD_NOW: browser.password, PASSWORD_NEW: new_password}
    new_sent = first(sent["new"])
    live[SAME_AS_NEW] = live.get(new_sent, new_sent)
    data = pairs(sent, live)
    fields_ok = all(PASSWORD_SPECS[name].ok(data.getlist(name))
                    for name in ("current", "new", "confirm"))
    right = (fields_ok and data["confirm"] == data["new"]
             and data["current"] == browser.password
             and len(data["new"]) >= auth.MIN_PASSWORD_LENGTH)
    before = fingerprint()
    response = send(browser, "/moderation/account/password", data)
    after = fingerprint()
    early = gate(sent, data, "row", desk.limit)
    if early is not None:
        answered(response, early)
    elif not right:
        answered(response, 422)
    else:
        answered(response, 302, "/moderation/account")
        me = db.session.get(Moderator, browser.account_id)
        assert me is not None
        assert auth.verify_password(me.password_hash, data["new"])
        assert audit_after(before["audit"]) == [
            ("change_password", "moderator", me.id, None, None)]
        # Other sessions end (a new session version); this browser goes on.
        assert after["moderator"][me.id][4] == before["moderator"][me.id][4] + 1
        before["moderator"][me.id] = after["moderator"][me.id]
        before["audit"] += 1
        browser.password = data["new"]
        g.pop("csrf_token", None)
        assert browser.client.get("/moderation/account").status_code == 200
        browser.renew_token()  # the session that held the old token was emptied
    assert after == before


TARGETS = ("self", "active", "active", "disabled", "locked")


@fuzz(50)
@given(action=sampled("disable", "unlock"), who=sampled(*TARGETS), sent=signed(ONLY_CSRF),
       stand_in=st.one_of(st.just(ROW), st.just(ROW), sampled(ROW_PADDED, ROW_MISSING, "0"),
                          sampled(*NO_ROUTE)),
       as_admin=ADMIN_MOSTLY, extra=EXTRA)
@example(action="disable", who="active", sent={"csrf_token": [CSRF_GOOD]},
         stand_in=str(2**63), as_admin=True, extra=[])  # was a 500
def test_disable_and_unlock_act_only_on_an_account_that_exists(
        desk: Desk, action: str, who: str, sent: dict[str, Values], stand_in: str,
        as_admin: bool | None, extra: list[tuple[str, str]]) -> None:
    browser = desk.admin if as_admin else desk.moderator
    if who == "self":
        target_id = browser.account_id
    else:
        other = make_moderator(active=who != "disabled")
        other.failed_logins = 99 if who == "locked" else 0
        db.session.commit()
        target_id = other.id
    segment, target = path_id(stand_in, target_id, target_id)
    data = pairs(sent, desk.live(browser))
    for name, value in extra:
        data.add(name, value)
    before = fingerprint()
    response = send(browser, f"/moderation/moderators/{segment}/{action}", data)
    after = fingerprint()
    early = gate(sent, data, target, desk.limit)
    if early is not None:
        answered(response, early)
    elif not as_admin:
        answered(response, 403)
    elif target == "missing":
        answered(response, 404)
    else:
        answered(response, 302, "/moderation/moderators")
        name, role, active, failed, version, password = before["moderator"][target_id]
        # Unlocking always acts (and is logged); disabling never acts on oneself, nor twice.
        if action == "unlock":
            before["moderator"][target_id] = (name, role, active, 0, version, password)
        elif who not in ("self", "disabled"):
            before["moderator"][target_id] = (name, role, False, failed, version + 1, password)
        if before["moderator"][target_id] != (name, role, active, failed, version, password) \
                or action == "unlock":
            before["audit"] += 1
            decision = "unlocked" if action == "unlock" else "disabled"
            assert audit_after(after["audit"] - 1) == [
                (f"{action}_moderator", "moderator", target_id, decision, None)]
    assert after == before


@fuzz(25)
@given(everywhere=st.booleans(), sent=signed(ONLY_CSRF), extra=EXTRA)
def test_signing_out_needs_the_token_and_ends_the_session(
        desk: Desk, everywhere: bool, sent: dict[str, Values],
        extra: list[tuple[str, str]]) -> None:
    account = make_moderator()
    db.session.commit()
    browser = signed_in(desk.app, account)
    data = pairs(sent, desk.live(browser))
    for name, value in extra:
        data.add(name, value)
    before = fingerprint()
    path = "/moderation/logout-everywhere" if everywhere else "/moderation/logout"
    response = send(browser, path, data)
    after = fingerprint()
    early = gate(sent, data, "row", desk.limit)
    with browser.client.session_transaction() as session:
        still_in = "moderator_id" in session
    if early is not None:
        answered(response, early)
        assert still_in
    else:
        answered(response, 302, "/moderation/login")
        assert not still_in
        action = "sign_out_everywhere" if everywhere else "sign_out"
        assert audit_after(before["audit"]) == [(action, "moderator", account.id, None, None)]
        before["audit"] += 1
        if everywhere:
            name, role, active, failed, version, password = before["moderator"][account.id]
            before["moderator"][account.id] = (name, role, active, failed, version + 1,
                                               password)
    assert after == before


# --- GET: the pages' ids and query parameters -----------------------------------------------------

PAGES = ("/moderation/", "/moderation/audit", "/moderation/suggestions", "/moderation/reverify",
         "/moderation/account", "/moderation/moderators", "/moderation/moderators/new",
         "/moderation/reviews/{id}", "/moderation/suggestions/{id}",
         "/moderation/clinics/{id}/history")
PARAMETERS = ("page", "kind")  # the ones moderation.py reads from request.args


@fuzz(60)
@given(page=sampled(*PAGES), stand_in=PATH_IDS,
       query=st.lists(st.tuples(st.one_of(sampled(*PARAMETERS),
                                          st.text(alphabet=UNICODE, min_size=1, max_size=8)),
                                st.one_of(sampled(*moderation.SUGGESTION_KINDS, "1", "2",
                                                  "0", "-1", "10001"), ANY)),
                      max_size=3))
@example(page="/moderation/reviews/{id}", stand_in="9" * 40, query=[])  # was a 500
@example(page="/moderation/clinics/{id}/history", stand_in=str(ID_MAX + 1), query=[])
@example(page="/moderation/", stand_in=ROW, query=[("page", "9" * 5000)])
def test_moderation_pages_answer_any_id_and_parameter(desk: Desk, page: str, stand_in: str,
                                                      query: list[tuple[str, str]]) -> None:
    pending, decided, clinic = review_pair()
    suggestion, done, _ = suggestion_pair(CORRECTION)
    row, old = {"reviews": (pending.id, decided.id),
                "suggestions": (suggestion.id, done.id)}.get(page.split("/")[2],
                                                             (clinic.id, clinic.id))
    segment, target = path_id(stand_in, row, old)
    path = page.format(id=segment)
    g.pop("csrf_token", None)
    before = fingerprint()
    response = desk.admin.client.get(path, query_string=MultiDict(query))
    db.session.rollback()
    assert fingerprint() == before
    kind = next((value for name, value in query if name == "kind"), CORRECTION)
    if "{id}" not in page:
        listed = page != "/moderation/suggestions" or kind in moderation.SUGGESTION_KINDS
        answered(response, 200 if listed else 404)
    elif target in ("unrouted", "missing"):
        answered(response, 404)
    elif target == "decided" and "history" not in page:
        queue = "/moderation/" if "reviews" in page else "/moderation/suggestions?kind=correction"
        answered(response, 302, queue)
    else:
        html = answered(response, 200)
        if "reviews" in page:
            assert "&lt;script&gt;" in html  # the review's markup, escaped


# --- Coverage: every form, field, route and parameter is fuzzed here ------------------------------


def test_every_moderation_form_field_has_its_own_values() -> None:
    forms = {cls for _, cls in inspect.getmembers(moderation, inspect.isclass)
             if issubclass(cls, FlaskForm) and cls.__module__ == moderation.__name__}
    forms.discard(moderation.LoginForm)  # tests/test_fuzz_forms.py fuzzes signing in
    assert forms == set(FORMS)
    for form_class, specs in FORMS.items():
        assert set(declared_fields(form_class)) == set(specs), form_class.__name__


def test_every_fact_a_moderator_edits_is_fuzzed_with_a_rule() -> None:
    source = Path(moderation.__file__).read_text()
    read_by_hand = set(re.findall(r"request\.form\.get(?:list)?\(\s*\"([^\"]+)\"", source))
    assert read_by_hand == {"edited", "reason"}
    edited = {*suggestions.FIELDS, "edited", "cost-sent", "services-sent", "csrf_token"}
    assert set(EDIT_SPECS) == edited
    assert set(FACT_RULES) == set(suggestions.FIELDS)
    assert set(re.findall(r"request\.args\.get\(\s*\"([^\"]+)\"", source)) == set(PARAMETERS)


def test_every_moderation_post_route_is_fuzzed(app: Flask) -> None:
    posts = {rule.endpoint for rule in app.url_map.iter_rules()
             if rule.rule.startswith("/moderation") and "POST" in (rule.methods or set())}
    posts.discard("moderation.login")  # tests/test_fuzz_forms.py
    assert posts == set(POST_ROUTES)
    gets = {re.sub(r"<[^>]+>", "{id}", rule.rule) for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/moderation") and "GET" in (rule.methods or set())}
    assert gets - {"/moderation/login"} == set(PAGES)
