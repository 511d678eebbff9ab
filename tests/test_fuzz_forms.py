"""Fuzzing every form and query parameter of the HTML site with Hypothesis.

Each field gets values valid on their own, values it must refuse, and anything at all:
control characters and NUL, surrogate-free unicode, strings up to about 10 kB, numbers at
their extremes (NaN, inf, -0, 1e309, huge integers), repeated parameters, empty values and
the wrong types. A draw is all-valid, all-valid but one field, or mixed, so that the
deep paths (a good CSRF token and form token with fuzzed answers; a good ZIP code with
fuzzed filters) are reached as often as the refusals.

For every request: never a 5xx; the answer is a page in the site's layout, or a redirect
that stays on the site; and the database changes exactly as the input deserves: for an
acceptable form one row holding exactly what was sent (as the form cleans it), for
anything else nothing. The oracles state the rules from the outside (answers 1 to 5, a
visit month in the last three years, at most 1,000 characters, a known ZIP code...).

The fields sent are read from the WTForms classes themselves, so a new field is fuzzed at
once (generically, by its type), and test_every_field_has_its_own_values_and_rule fails
until it gets values and a rule of its own. The parameters read straight from
request.args are listed by scanning the code, and must all be fuzzed here too. Every
clinic, review and moderator is synthetic and lives only in the test database.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import flask_babel
import pyotp
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import FlaskForm
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder, TestResponse
from wtforms.fields.core import UnboundField

from directory import create_app
from directory.assets import file_hash
from directory.community import NO_CLINIC, CorrectForm, SuggestForm
from directory.config import Settings
from directory.extensions import db
from directory.forms import SearchForm
from directory.geo import zip_centroid
from directory.i18n import HTML_LANG, SUPPORTED
from directory.models import (
    CLOSED,
    CLOSURE,
    CORRECTION,
    NEW_CLINIC,
    PENDING,
    PUBLISHED,
    WITHDRAWN,
    AuditEntry,
    Location,
    Moderator,
    Neighbourhood,
    Review,
    Suggestion,
)
from directory.moderation import SUGGESTION_KINDS, LoginForm
from directory.reviews import (
    MAX_FORM_AGE,
    ReviewForm,
    WithdrawForm,
    clean_text,
    current_month,
    first_use_of,
    issue_form_token,
    new_review,
)
from directory.search import SORTS
from directory.suggestions import FIELDS, HOW_KNOWN
from directory.taxonomy import (
    COST_FILTERS,
    COST_OPTIONS,
    HOURS_FILTERS,
    LANGUAGES,
    SERVICES,
    language_code,
)
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import PASSWORD, make_moderator, sign_in, token

Values = list[str]

# --- What is sent: the raw material -------------------------------------------------------

HOSTILE = ('<script>alert("fz")</script>', '"><img src=x onerror=alert("fz")>')
UNICODE = st.characters(exclude_categories=("Cs",))  # surrogates cannot be sent as UTF-8
CONTROLS = st.text(alphabet=st.one_of(st.characters(max_codepoint=0x1F),
                                      st.sampled_from("\x7f\x85\u200b\u200e\u202e\ufeff\uffff")),
                   max_size=12)
BLANKS = st.text(alphabet=" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u3000", min_size=1, max_size=4)
EXTREME_NUMBERS = (
    "NaN", "nan", "-nan", "inf", "-inf", "Infinity", "-0", "-0.0", "0", "1e309", "-1e309",
    "1e-400", "4.9e-324", "1.7976931348623157e308", str(2**64), str(-(2**63) - 1),
    "9" * 5000, "0x1A", "1_0", " 7 ", "٣", "²", "१०", "+5", "5.", ".5", "1e2", "-1", "00001",
)
NUMBERS = st.one_of(st.sampled_from(EXTREME_NUMBERS), st.integers().map(str),
                    st.floats().map(repr))
WRONG_TYPES = st.sampled_from((
    "true", "false", "None", "null", "undefined", "[]", "{}", "[1, 2]", '{"a": 1}', "on",
    "off", "yes", "no", "%00", "%", "&", "=", "a=b&c=d", "../../etc/passwd", "' OR '1'='1",
    "$(id)", "{{7*7}}", "${7*7}", *HOSTILE,
))
# Around the limits the forms state (40, 200, 300, 1,000 characters), and up to ~10 kB.
BOUNDARY = st.builds(lambda ch, n: ch * n, st.sampled_from(("a", "é", "字", "\n", "\x00")),
                     st.sampled_from((40, 41, 200, 201, 300, 301, 1000, 1001)))
LONG = st.builds(lambda unit, size: (unit * (size // len(unit) + 1))[:size],
                 st.text(alphabet=UNICODE, min_size=1, max_size=8), st.integers(1001, 10_000))
ANY = st.one_of(st.just(""), st.text(alphabet=UNICODE, max_size=40), CONTROLS, BLANKS,
                NUMBERS, WRONG_TYPES, BOUNDARY, LONG)

# Stand-ins for values known only at run time (tokens, codes, slugs), swapped in just
# before sending. Private-use characters, so no generated text is taken for one.
CSRF_GOOD = "\ue000csrf"
CSRF_OTHER_SESSION = "\ue000csrf-of-another-browser"
TOKEN_FRESH = "\ue000token"
TOKEN_REPLAYED = "\ue000token-already-used"
TOKEN_TOO_FAST = "\ue000token-just-issued"
TOKEN_EXPIRED = "\ue000token-expired"
TOKEN_OTHER_CLINIC = "\ue000token-of-another-clinic"
TOKEN_TAMPERED = "\ue000token-tampered"
SLUG_OPEN = "\ue000slug-open"
SLUG_CLOSED = "\ue000slug-closed"


def first(values: Sequence[str], default: str = "") -> str:
    """The value a single-valued field reads: the first one sent."""
    return values[0] if values else default


def cleaned(values: Sequence[str]) -> str:
    """A text field's value as its form cleans it (line ends, control characters, ends)."""
    return clean_text(first(values)) or ""


def always(values: Sequence[str]) -> bool:
    """Any value will do: the field cannot be wrong (booleans, the honeypot)."""
    return True


@dataclass(frozen=True)
class Spec:
    """How one field is fuzzed, whether what was sent is acceptable, and what it means.

    `ok` judges the values as sent (stand-ins included); `read` is the value the form
    keeps; `optional` says whether leaving the field out is acceptable.
    """

    valid: st.SearchStrategy[str]
    ok: Callable[[Values], bool]
    invalid: st.SearchStrategy[str] = st.nothing()
    multi: bool = False
    optional: bool = True
    read: Callable[[Values], object] = first


def good(spec: Spec) -> st.SearchStrategy[Values]:
    """Values the field accepts on its own: one, a repeat (the first counts), or none."""
    options = [spec.valid.map(lambda value: [value])]
    if spec.multi:
        options.append(st.lists(spec.valid, min_size=2, max_size=4))
    else:
        options.append(st.tuples(spec.valid, ANY).map(list))
    if spec.optional:
        options.append(st.just([]))
    return st.one_of(options)


def bad(spec: Spec) -> st.SearchStrategy[Values]:
    """Values most likely refused: a known-bad one, anything at all, or a mix repeated."""
    return st.one_of(spec.invalid.map(lambda value: [value]), ANY.map(lambda value: [value]),
                     st.lists(st.one_of(spec.valid, spec.invalid, ANY), min_size=2, max_size=4))


@st.composite
def filled(draw: st.DrawFn, specs: dict[str, Spec]) -> dict[str, Values]:
    """Values for every field: all acceptable, all but one, or each field either way."""
    mode = draw(st.sampled_from(("valid", "one_bad", "mixed")))
    spoiled = draw(st.sampled_from(sorted(specs))) if mode == "one_bad" else ""
    sent: dict[str, Values] = {}
    for name in sorted(specs):
        spec = specs[name]
        if mode == "mixed":
            sent[name] = draw(st.one_of(good(spec), bad(spec)))
        else:
            sent[name] = draw(bad(spec) if name == spoiled else good(spec))
    return sent


# --- The forms' fields, from the classes themselves ----------------------------------------

GENERIC = Spec(valid=ANY, ok=always, multi=True)


def declared_fields(form_class: type[FlaskForm]) -> list[str]:
    """The fields a form class declares (its own and inherited), and its CSRF token."""
    names = sorted(name for name in dir(form_class)
                   if isinstance(getattr(form_class, name, None), UnboundField))
    if getattr(form_class.Meta, "csrf", True) is not False:
        names.append("csrf_token")
    return names


def fuzzed(form_class: type[FlaskForm], specs: dict[str, Spec]) -> dict[str, Spec]:
    """A spec for every field the class declares: its own, else a generic one, so a new
    field is sent from the start (and the coverage test asks for its rule)."""
    return {name: specs.get(name, GENERIC) for name in declared_fields(form_class)}


def choice_ok(choices: Sequence[str], blank_ok: bool = False) -> Callable[[Values], bool]:
    """One value among the choices (or left out); blank counts as left out if `blank_ok`."""
    def ok(values: Values) -> bool:
        value = first(values)
        return not values or value in choices or (blank_ok and not value.strip())
    return ok


def all_choices_ok(choices: Sequence[str], required: bool = False) -> Callable[[Values], bool]:
    """Every value among the choices (several may be ticked); at least one if required."""
    def ok(values: Values) -> bool:
        return all(value in choices for value in values) and (bool(values) or not required)
    return ok


def text_ok(maximum: int, required: bool = False) -> Callable[[Values], bool]:
    """Free text of at most `maximum` characters once cleaned; not empty if required."""
    def ok(values: Values) -> bool:
        text = cleaned(values)
        return len(text) <= maximum and (bool(text) or not required)
    return ok


def number_ok(parse: Callable[[str], float], low: float, high: float) -> Callable[[Values], bool]:
    """A number in [low, high] once parsed, or blank (an optional field left empty)."""
    def ok(values: Values) -> bool:
        raw = first(values)
        if not raw.strip():
            return True
        try:
            number = parse(raw)
        except ValueError:
            return False
        return math.isfinite(number) and low <= number <= high
    return ok


def sentinel_ok(*accepted: str) -> Callable[[Values], bool]:
    """The first value is one of the stand-ins that mean "the right one"."""
    return lambda values: first(values) in accepted


def sampled(*values: str) -> st.SearchStrategy[str]:
    """One of these values."""
    return st.sampled_from(values)


CSRF = Spec(valid=st.just(CSRF_GOOD), invalid=sampled(CSRF_OTHER_SESSION, ""),
            ok=sentinel_ok(CSRF_GOOD), optional=False)
FORM_TOKEN = Spec(valid=sampled(TOKEN_FRESH, TOKEN_FRESH, TOKEN_FRESH, TOKEN_REPLAYED),
                  invalid=sampled(TOKEN_TOO_FAST, TOKEN_EXPIRED, TOKEN_OTHER_CLINIC,
                                  TOKEN_TAMPERED, ""),
                  ok=sentinel_ok(TOKEN_FRESH, TOKEN_REPLAYED), optional=False)
# Judged by the oracles (a filled honeypot is "accepted" and stores nothing).
HONEYPOT = Spec(valid=st.just(""), invalid=sampled("x", " ", "https://spam.example"), ok=always)
TEXTS = st.one_of(st.text(alphabet=UNICODE, max_size=200),
                  sampled("Kind staff, quick results.", "Trato amable.", "很友好", "a\r\nb"),
                  st.builds(lambda ch, n: ch * n, sampled("a", "é", "ab\r\n", " x"),
                            st.sampled_from((299, 300, 999, 1000))))

# The search: every SearchForm field, from the URL's query string.
NEAR_FOUND = ("10011", "10027", "11201", " 10011 ")
SEARCH_SPECS: dict[str, Spec] = {
    "near": Spec(valid=sampled(*NEAR_FOUND, "Chelsea", "chelsea-hudson yards", "Chelsa",
                               "99999", "1001", "Nowhere At All", ""),
                 invalid=st.builds(lambda n: "1" * n, st.integers(201, 2000)),
                 ok=lambda values: len(first(values)) <= 200),
    "lat": Spec(valid=st.one_of(st.floats(40.49, 40.92).map(str), sampled("", " ", "-0")),
                invalid=sampled("91", "-90.5", "nan", "inf", "1e309", "north", "40,7"),
                ok=number_ok(float, -90, 90)),
    "lng": Spec(valid=st.one_of(st.floats(-74.26, -73.7).map(str), sampled("", " ", "180")),
                invalid=sampled("181", "-180.5", "-inf", "NaN", "-1e309", "west"),
                ok=number_ok(float, -180, 180)),
    "cost": Spec(valid=sampled(*COST_FILTERS), invalid=sampled("", "FREE", "free ", "zz"),
                 ok=all_choices_ok(list(COST_FILTERS)), multi=True),
    "lang": Spec(valid=sampled(*LANGUAGES), invalid=sampled("", "Spanish", "EN", "xx"),
                 ok=all_choices_ok(list(LANGUAGES)), multi=True),
    "service": Spec(valid=sampled(*SERVICES), invalid=sampled("", "HIV testing", "prep "),
                    ok=all_choices_ok(list(SERVICES)), multi=True),
    "hours": Spec(valid=sampled(*HOURS_FILTERS), invalid=sampled("", "always", "24/7"),
                  ok=all_choices_ok(list(HOURS_FILTERS)), multi=True),
    "walk_in": Spec(valid=sampled("y", "on", "true", "1", "", "false"), ok=always),
    "no_id": Spec(valid=sampled("y", "on", "true", "1", "", "false"), ok=always),
    "rated": Spec(valid=sampled("y", "on", "true", "1", "", "false"), ok=always),
    "sort": Spec(valid=sampled(*SORTS, "", " "), invalid=sampled("Score", "name", "distance "),
                 ok=choice_ok(SORTS, blank_ok=True)),
    "page": Spec(valid=st.one_of(st.integers(1, 500).map(str), sampled("", " ")),
                 invalid=sampled("0", "501", "-1", "1.5", "NaN", "1e3", "²"),
                 ok=number_ok(int, 1, 500)),
    "tiles": Spec(valid=sampled("on", "off", "", " "), invalid=sampled("OFF", "no", "0"),
                  ok=choice_ok(("on", "off"), blank_ok=True)),
}

# The review form: each question, the service, the visit month and year, the text.
THIS_MONTH = current_month()


def months_back(month: date, count: int) -> date:
    """The first day of the month `count` months before `month`."""
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


EARLIEST_VISIT = months_back(THIS_MONTH, 36)  # "visits in the last three years"
VISIT_MONTHS = ("", *(str(m) for m in range(1, 13)))
VISIT_YEARS = ("", *(str(y) for y in range(THIS_MONTH.year, EARLIEST_VISIT.year - 1, -1)))
SCALE_QUESTIONS = ("respect", "open_about_work", "cost_affordable", "privacy",
                   "gender_respected", "would_recommend")
OPEN_CLINIC_SERVICES = ("hiv_testing", "prep")


def scale_answer(values: Values) -> int | None:
    """A 1-5 answer as the form reads it ("" is no answer); ValueError if not a number."""
    raw = first(values)
    return None if raw == "" else int(raw)


def scale_ok(values: Values) -> bool:
    """An answer from 1 to 5, or none."""
    try:
        answer = scale_answer(values)
    except ValueError:
        return False
    return answer is None or 1 <= answer <= 5


SCALE = Spec(valid=sampled("1", "2", "3", "4", "5", ""),
             invalid=sampled("0", "6", "-1", "10", "3.0", "five", "NaN", "1e309", " "),
             ok=scale_ok)
REVIEW_SPECS: dict[str, Spec] = {
    **{key: SCALE for key in SCALE_QUESTIONS},
    "asked_for_id": Spec(valid=sampled("yes", "no", ""), invalid=sampled("Yes", "true", "1"),
                         ok=choice_ok(("yes", "no", ""))),
    "service": Spec(valid=sampled("", *OPEN_CLINIC_SERVICES, "other"),
                    invalid=sampled("pep", "HIV_TESTING", "other ", "none"),
                    ok=choice_ok(("", *OPEN_CLINIC_SERVICES, "other"))),
    "visit_month": Spec(valid=sampled(*VISIT_MONTHS), invalid=sampled("0", "13", "01", "May"),
                        ok=choice_ok(VISIT_MONTHS)),
    "visit_year": Spec(valid=sampled(*VISIT_YEARS),
                       invalid=sampled(str(THIS_MONTH.year + 1), str(EARLIEST_VISIT.year - 1),
                                       "1999", "20 25"),
                       ok=choice_ok(VISIT_YEARS)),
    "text": Spec(valid=TEXTS, invalid=st.builds(lambda n: "a" * n, st.integers(1001, 9000)),
                 ok=text_ok(1000), read=cleaned),
    "confirm_site": HONEYPOT,
    "form_token": FORM_TOKEN,
    "csrf_token": CSRF,
}

# Withdrawing a review: the code, however it was written down.
CODE_REAL = "\ue000code"
CODE_SHOUTED = "\ue000code-upper-case"
CODE_HYPHENS = "\ue000code-with-hyphens"
CODE_NOISY = "\ue000code-with-digits-and-dots"
CODE_EARLIER = "\ue000code-of-an-earlier-review"
CODE_PADDED = "\ue000code-after-600-letters"  # only the first 500 characters are read
WITHDRAW_SPECS: dict[str, Spec] = {
    "code": Spec(valid=sampled(CODE_REAL, CODE_SHOUTED, CODE_HYPHENS, CODE_NOISY, CODE_EARLIER),
                 invalid=sampled("", "   ", "123 456", "not the right six words at all",
                                 CODE_PADDED),
                 ok=always),
    "csrf_token": CSRF,
}

# "Suggest a clinic" and "Something wrong?": the shared fields, then each form's own.
PHONE_SHAPE = re.compile(r"^[0-9()+.\- ]{7,25}( ?(x|ext\.?) ?\d{1,6})?$")


def phone_ok(values: Values) -> bool:
    """Nothing, or a phone number of at most 40 characters in a phone number's shape."""
    phone = cleaned(values)
    return not phone or (len(phone) <= 40 and bool(PHONE_SHAPE.match(phone)))


def languages_ok(values: Values) -> bool:
    """Language names we know, separated by commas, at most 300 characters."""
    text = cleaned(values)
    names = [part.strip() for part in text.split(",")]
    return len(text) <= 300 and all(language_code(name) for name in names if name)


def nyc_zip_ok(values: Values) -> bool:
    """A ZIP code in New York City (at most 10 characters: ZIP+4 fits)."""
    code = cleaned(values)
    return len(code) <= 10 and zip_centroid(code) is not None


YES_NO_UNKNOWN = Spec(valid=sampled("yes", "no", ""), invalid=sampled("maybe", "YES", "1", " "),
                      ok=choice_ok(("yes", "no", "")))
COMMUNITY_SPECS: dict[str, Spec] = {
    "phone": Spec(valid=sampled("(212) 555-0100", "212.555.0100", "+1 212 555 0100 x12", ""),
                  invalid=sampled("call me", "12", "5" * 26, "(212) 555-0100 ext. 1234567"),
                  ok=phone_ok, read=cleaned),
    "hours": Spec(valid=sampled("Mon-Fri 9am-5pm", "Sat closed", "whenever, really", ""),
                  invalid=st.just("M" * 301), ok=text_ok(300), read=cleaned),
    "walk_in": YES_NO_UNKNOWN,
    "id_required": YES_NO_UNKNOWN,
    "insurance_required": YES_NO_UNKNOWN,
    "cost": Spec(valid=sampled(*COST_OPTIONS), invalid=sampled("", "FREE", "gold", " "),
                 ok=all_choices_ok(list(COST_OPTIONS)), multi=True, read=list),
    "languages": Spec(valid=sampled("Spanish", "English, Spanish", "spanish ,  french", ""),
                      invalid=sampled("Klingon", "Spanish, Elvish", "English;Spanish"),
                      ok=languages_ok, read=cleaned),
    "how_known": Spec(valid=sampled(*HOW_KNOWN, ""), invalid=sampled("visited ", "friend"),
                      ok=choice_ok(list(HOW_KNOWN), blank_ok=True)),
    "notes": Spec(valid=TEXTS, invalid=st.builds(lambda n: "n" * n, st.integers(1001, 9000)),
                  ok=text_ok(1000), read=cleaned),
    "confirm_site": HONEYPOT,
    "form_token": FORM_TOKEN,
    "csrf_token": CSRF,
}
SUGGEST_SPECS: dict[str, Spec] = {
    **COMMUNITY_SPECS,
    "name": Spec(valid=sampled("Synthetic Test Clinic", "Clínica Sintética de Prueba"),
                 invalid=sampled("", "   ", "\x00"), ok=text_ok(300, required=True),
                 optional=False, read=cleaned),
    "address_1": Spec(valid=sampled("1 Synthetic Street", "2 Test Ave, Suite 3"),
                      invalid=sampled("", "\t"), ok=text_ok(300, required=True),
                      optional=False, read=cleaned),
    "postal_code": Spec(valid=sampled("10011", "10027", "11201", "10011-1234", " 10001 "),
                        invalid=sampled("99999", "07030", "1001", "abcde", "10011 10011"),
                        ok=nyc_zip_ok, optional=False, read=cleaned),
    "services": Spec(valid=sampled(*SERVICES), invalid=sampled("", "HIV testing", " "),
                     ok=all_choices_ok(list(SERVICES), required=True), multi=True,
                     optional=False, read=list),
}
CORRECT_SPECS: dict[str, Spec] = {
    **COMMUNITY_SPECS,
    "kind": Spec(valid=sampled(CORRECTION, CLOSURE), invalid=sampled("", "closed", "new_clinic"),
                 ok=choice_ok((CORRECTION, CLOSURE))),
    "services": Spec(valid=sampled("STI testing, PrEP", "no PEP", ""),
                     invalid=st.just("s" * 301), ok=text_ok(300), read=cleaned),
    "moved_to": Spec(valid=sampled("3 Synthetic Place", ""), invalid=st.just("m" * 301),
                     ok=text_ok(300), read=cleaned),
}

# Moderator sign-in.
USER_REAL = "\ue000moderator"
USER_SHOUTED = "\ue000moderator-upper-case-with-spaces"
PASSWORD_REAL = "\ue000password"
CODE_NOW = "\ue000totp-now"
CODE_NOW_SPACED = "\ue000totp-now-spaced"
LOGIN_SPECS: dict[str, Spec] = {
    "username": Spec(valid=sampled(USER_REAL, USER_SHOUTED, "test-mod-unknown"),
                     invalid=sampled("", " ", "u" * 81), ok=always),
    "password": Spec(valid=sampled(PASSWORD_REAL, "synthetic-wrong-password"),
                     invalid=sampled("", "\t", "p" * 1025), ok=always),
    "code": Spec(valid=sampled(CODE_NOW, CODE_NOW_SPACED, "000000", "123 456"),
                 invalid=sampled("", "1234567", "１２３４５６", "1" * 17), ok=always),
    "csrf_token": CSRF,
}

FORMS: dict[type[FlaskForm], dict[str, Spec]] = {
    SearchForm: SEARCH_SPECS, ReviewForm: REVIEW_SPECS, WithdrawForm: WITHDRAW_SPECS,
    SuggestForm: SUGGEST_SPECS, CorrectForm: CORRECT_SPECS, LoginForm: LOGIN_SPECS,
}

# Parameters read straight from request.args (module, name), each fuzzed below.
QUERY_PARAMETERS = {("i18n", "next"), ("public", "tiles"), ("reviews", "page"),
                    ("community", "kind"), ("moderation", "page"), ("moderation", "kind"),
                    ("assets", "v")}

# One app per test, shared by its examples: each example reads the rows it compares
# afresh, so nothing carries over that the oracles do not account for.
FUZZ = settings(deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])


def fuzz(examples: int) -> settings:
    """The shared settings with this many examples (kept small: the file runs in seconds)."""
    return settings(FUZZ, max_examples=examples)


# --- The site under test ----------------------------------------------------------------------


@dataclass
class Site:
    """The app with synthetic clinics, a browser with a CSRF token, and used form tokens."""

    app: Flask
    client: FlaskClient
    csrf: str
    csrf_other_session: str
    open_id: int
    open_slug: str
    closed_slug: str
    used_tokens: dict[int, str]
    published: int = 0  # published reviews of the open clinic
    # Letters of each withdrawal code whose review is not withdrawn yet -> its id.
    live_codes: dict[str, int] = field(default_factory=dict)
    signed_in: bool = False

    def live(self, clinic_id: int) -> dict[str, str]:
        """The run-time values the stand-ins mean, for a form of this clinic, now."""
        now = time.time()
        fresh = issue_form_token(clinic_id, now - 10)
        return {
            CSRF_GOOD: self.csrf, CSRF_OTHER_SESSION: self.csrf_other_session,
            TOKEN_FRESH: fresh, TOKEN_REPLAYED: self.used_tokens[clinic_id],
            TOKEN_TOO_FAST: issue_form_token(clinic_id, now),
            TOKEN_EXPIRED: issue_form_token(clinic_id, now - MAX_FORM_AGE - 60),
            TOKEN_OTHER_CLINIC: issue_form_token(clinic_id + 1000, now - 10),
            # The first character, not the last: a signature's last base64 character
            # carries unused bits, so changing it could leave the same bytes (a valid token).
            TOKEN_TAMPERED: ("A" if fresh[0] != "A" else "B") + fresh[1:],
            SLUG_OPEN: self.open_slug, SLUG_CLOSED: self.closed_slug,
        }


@pytest.fixture
def site(app: Flask, client: FlaskClient) -> Site:
    """Synthetic clinics (one open, one closed), a neighbourhood, a CSRF token for
    `client` and one for another browser, and a used form token for each form."""
    open_clinic = make_clinic("Synthetic Fuzz Clinic", services=OPEN_CLINIC_SERVICES,
                              languages=("es",), cost={"free": True}, walk_in=True)
    closed = make_clinic("Synthetic Closed Clinic", status=CLOSED)
    db.session.add(Neighbourhood(code="MN0401", name="Chelsea-Hudson Yards",
                                 borough="Manhattan", latitude=40.7455, longitude=-74.0008))
    db.session.commit()
    other_browser = app.test_client()
    csrf_other = token(other_browser, "/suggest")
    csrf = token(client, "/suggest")  # last, so `g` holds this browser's token
    now = time.time()
    used = {}
    for clinic_id in (open_clinic.id, NO_CLINIC):
        used[clinic_id] = issue_form_token(clinic_id, now - 10)
        assert first_use_of(used[clinic_id], now)
    return Site(app, client, csrf, csrf_other, open_clinic.id, open_clinic.slug, closed.slug,
                used)


# --- Checking the answers ---------------------------------------------------------------------


def page_of(response: TestResponse, layout: bool = True) -> str:
    """The answer's HTML, checked to be a whole page of the site (in its layout unless it
    is the bare printable card), with no hostile markup sent back unescaped."""
    assert response.status_code < 500
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert html.rstrip().endswith("</html>")
    if layout:
        assert 'id="quick-exit"' in html
        assert '<main id="main"' in html
    for marker in HOSTILE:
        assert marker not in html
    return html


def pairs(sent: dict[str, Values], live: dict[str, str]) -> MultiDict[str, str]:
    """What the browser sends: every value of every field, stand-ins swapped for the real."""
    return MultiDict([(name, live.get(value, value))
                      for name, values in sent.items() for value in values])


def body_size(data: MultiDict[str, str]) -> int:
    """The size of the urlencoded body these fields make, as the test client sends it."""
    builder = EnvironBuilder(method="POST", data=data)
    try:
        return int(builder.get_environ()["CONTENT_LENGTH"])
    finally:
        builder.close()


def count(model: type[Any], *where: Any) -> int:
    """Rows of a table (matching `where`), read afresh."""
    return int(db.session.execute(
        sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one())


def newest(model: type[Any]) -> Any:
    """The row of a table with the highest id."""
    return db.session.execute(sa.select(model).order_by(model.id.desc()).limit(1)).scalar_one()


@dataclass(frozen=True)
class Expected:
    """The answer a form deserves, and the values of the one row it adds (None: no row)."""

    status: int
    stored: dict[str, object] | None = None


def refusal(sent: dict[str, Values], specs: dict[str, Spec], size: int,
            limit: int) -> Expected | None:
    """What every anonymous form answers before reading its fields: too big, bad CSRF,
    or a filled honeypot (the same thanks as a real send, and nothing stored)."""
    if size > limit:
        return Expected(413)
    if not specs["csrf_token"].ok(sent["csrf_token"]):
        return Expected(400)
    if "confirm_site" in sent and first(sent["confirm_site"]):
        return Expected(200)
    return None


def fields_ok(sent: dict[str, Values], specs: dict[str, Spec]) -> bool:
    """Whether every field is acceptable on its own (a field without a rule yet: yes)."""
    return all(specs.get(name, GENERIC).ok(values) for name, values in sent.items())


# --- The rules each form must keep ------------------------------------------------------------


def visit_of(sent: dict[str, Values]) -> tuple[bool, date | None]:
    """Whether the visit month is acceptable (both or neither, last three years), and it."""
    month, year = first(sent["visit_month"]), first(sent["visit_year"])
    if not month and not year:
        return True, None
    if month not in VISIT_MONTHS or year not in VISIT_YEARS or not month or not year:
        return False, None
    visit = date(int(year), int(month), 1)
    return EARLIEST_VISIT <= visit <= THIS_MONTH, visit


def review_expected(sent: dict[str, Values], size: int, limit: int, clinic_id: int) -> Expected:
    """What a review POST deserves: refused (nothing stored) or stored exactly as sent."""
    early = refusal(sent, REVIEW_SPECS, size, limit)
    if early is not None:
        return early
    visit_ok, visit = visit_of(sent)
    if not fields_ok(sent, REVIEW_SPECS) or not visit_ok:
        return Expected(400)
    answers: dict[str, object] = {key: scale_answer(sent[key]) for key in SCALE_QUESTIONS}
    answers["asked_for_id"] = {"yes": True, "no": False}.get(first(sent["asked_for_id"]))
    text = cleaned(sent["text"])
    if not text and all(answer is None for answer in answers.values()):
        return Expected(400)  # nothing said at all
    if first(sent["form_token"]) == TOKEN_REPLAYED:
        return Expected(409)
    return Expected(200, {
        **answers, "service_code": first(sent["service"]) or None, "visit_month": visit,
        "text": text or None, "location_id": clinic_id, "status": PENDING,
        "received_month": current_month(),
    })


def suggestion_expected(sent: dict[str, Values], specs: dict[str, Spec], size: int, limit: int,
                        location_id: int | None) -> Expected:
    """What a suggestion or correction POST deserves, and the row it must add."""
    early = refusal(sent, specs, size, limit)
    if early is not None:
        return early
    if not fields_ok(sent, specs):
        return Expected(400)
    values = {key: specs[key].read(sent[key]) for key in FIELDS if key in specs}
    notes = cleaned(sent["notes"])
    kind = NEW_CLINIC if location_id is None else first(sent["kind"], CORRECTION)
    if kind == CORRECTION and not any(values.values()) and not notes:
        return Expected(400)  # a correction must correct something
    if first(sent["form_token"]) == TOKEN_REPLAYED:
        return Expected(409)
    how_known = first(sent["how_known"])
    return Expected(200, {
        "kind": kind, "location_id": location_id,
        "payload": {key: value for key, value in values.items() if value},
        "how_known": how_known if how_known in HOW_KNOWN else None, "notes": notes or None,
        "status": PENDING, "received_month": current_month(),
    })


def stored_review(review: Review, expected: dict[str, object]) -> dict[str, object]:
    """A stored review's values, for the keys an expectation names."""
    return {key: getattr(review, key) for key in expected}


def stored_suggestion(suggestion: Suggestion) -> dict[str, object]:
    """A stored suggestion's values, its payload decoded."""
    return {"kind": suggestion.kind, "location_id": suggestion.location_id,
            "payload": json.loads(suggestion.payload), "how_known": suggestion.how_known,
            "notes": suggestion.notes, "status": suggestion.status,
            "received_month": suggestion.received_month}


def review_example(**changes: Values) -> dict[str, Values]:
    """An acceptable review (fresh tokens, one answer) with some fields changed."""
    sent: dict[str, Values] = {name: [] for name in REVIEW_SPECS}
    sent.update(csrf_token=[CSRF_GOOD], form_token=[TOKEN_FRESH], respect=["4"])
    sent.update(changes)
    return sent


def suggestion_example(specs: dict[str, Spec], **changes: Values) -> dict[str, Values]:
    """An acceptable suggestion (or correction) with some fields changed."""
    sent: dict[str, Values] = {name: [] for name in specs}
    sent.update(csrf_token=[CSRF_GOOD], form_token=[TOKEN_FRESH], phone=["(212) 555-0100"])
    if "postal_code" in specs:
        sent.update(name=["Synthetic Test Clinic"], address_1=["1 Synthetic Street"],
                    postal_code=["10011"], services=["hiv_testing"])
    sent.update(changes)
    return sent


# --- Coverage: every field and every query parameter has values and a rule -------------------


@pytest.mark.parametrize("form_class", list(FORMS), ids=lambda cls: cls.__name__)
def test_every_field_has_its_own_values_and_rule(settings: Settings,
                                                 form_class: type[FlaskForm]) -> None:
    with create_app(settings).test_request_context():  # forms need a request, not tables
        fields = {field.name for field in form_class()}
    assert fields == set(declared_fields(form_class))
    assert fields == set(FORMS[form_class])


def test_every_query_parameter_read_from_the_request_is_fuzzed() -> None:
    read = set()
    for path in (Path(__file__).parent.parent / "directory").glob("*.py"):
        if path.stem == "api":  # the API is schemathesis' (test_api_schemathesis.py)
            continue
        for name in re.findall(r"request\.args\.get\(\s*\"([^\"]+)\"", path.read_text()):
            read.add((path.stem, name))
    assert read == QUERY_PARAMETERS


# --- GET: the search, the pages, the language switch ------------------------------------------


def search_statuses(sent: dict[str, Values]) -> set[int]:
    """A refused search is the search page again (400); else results (200) or "no such
    place" (404), and surely results for a ZIP code we know with no coordinates."""
    if not fields_ok(sent, SEARCH_SPECS):
        return {400}
    no_point = not first(sent["lat"]).strip() and not first(sent["lng"]).strip()
    if no_point and first(sent["near"]) in NEAR_FOUND:
        return {200}
    return {200, 404}


EXTRA_NAMES = st.text(alphabet=UNICODE, min_size=1, max_size=12)


@fuzz(150)
@given(sent=filled(fuzzed(SearchForm, SEARCH_SPECS)),
       extra=st.lists(st.tuples(EXTRA_NAMES, ANY), max_size=2))
@example(sent={"near": ["10011"], "lat": ["nan"], "lng": ["-73.99"]}, extra=[])
@example(sent={"near": ["10011"], "page": ["1e309"], "lang": ["es", "\x00"]}, extra=[])
def test_search_answers_every_query_with_a_page(site: Site, sent: dict[str, Values],
                                                extra: list[tuple[str, str]]) -> None:
    sent = {**{name: [] for name in SEARCH_SPECS}, **sent}  # explicit examples name a few
    query = pairs(sent, {})
    for name, value in extra:
        if name not in SEARCH_SPECS:
            query.add(name, value)
    response = site.client.get("/clinics", query_string=query)
    db.session.rollback()
    event(f"status {response.status_code}")
    assert response.status_code in search_statuses(sent)
    html = page_of(response)
    if response.status_code != 200:
        assert 'role="alert"' in html


@fuzz(40)
@given(query=st.lists(st.tuples(st.one_of(EXTRA_NAMES, sampled(*SEARCH_SPECS)), ANY),
                      max_size=3),
       cookie=st.one_of(st.none(), sampled(*SUPPORTED, "ES", "fr", ""),
                        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                                max_size=20)))
def test_search_page_ignores_what_it_does_not_read(site: Site, query: list[tuple[str, str]],
                                                   cookie: str | None) -> None:
    if cookie is None:
        site.client.delete_cookie("ui_lang")
    else:
        site.client.set_cookie("ui_lang", cookie)
    # The test's app context outlives each request and Flask-Babel keeps the language
    # chosen in it: forget it, as a fresh request would.
    flask_babel.refresh()
    response = site.client.get("/", query_string=MultiDict(query))
    db.session.rollback()
    assert response.status_code == 200
    html = page_of(response)
    lang = re.search(r'<html lang="([^"]+)"', html)
    assert lang
    expected = HTML_LANG.get(cookie or "", "en")
    assert lang.group(1) == expected


# Known slugs about half the time, so the pages' own parameters are reached.
SLUGS = st.one_of(st.just(SLUG_OPEN), st.just(SLUG_OPEN), st.just(SLUG_CLOSED),
                  st.text(alphabet=st.characters(exclude_categories=("Cs",),
                                                 exclude_characters="/"),
                          min_size=1, max_size=40),
                  sampled("test-clinic-0", "TEST-CLINIC-1", "..", "%00", "\x00", "x" * 400))
PAGE_PARAMETERS = {"clinic": "tiles", "card": "v", "reviews": "page", "correct": "kind",
                   "review": "x"}


def reviews_page_exists(values: Values, published: int) -> bool:
    """A reviews page number: plain digits (up to 4), 1, or a page that has reviews."""
    raw = first(values, "1")
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 5):
        return False
    number = int(raw)
    return number == 1 or number > 1 and (number - 1) * 50 < published


@fuzz(150)
@given(route=sampled(*PAGE_PARAMETERS), slug=SLUGS,
       values=st.one_of(st.lists(ANY, max_size=3), st.lists(sampled("1", "2", "3", "off",
                                                                      CLOSURE), max_size=2)))
@example(route="reviews", slug=SLUG_OPEN, values=["²"])  # isdigit() but not int(): was a 500
@example(route="reviews", slug=SLUG_OPEN, values=["١"])
@example(route="clinic", slug="\x00", values=[])
def test_clinic_pages_answer_any_slug_and_parameter(site: Site, route: str, slug: str,
                                                    values: Values) -> None:
    if not site.published:  # two pages of reviews, so page 2 exists and page 3 does not
        location = db.session.get(Location, site.open_id)
        for n in range(51):
            make_review(location, status=PUBLISHED, respect=1 + n % 5, text=f"Synthetic {n}")
        db.session.commit()
        site.published = 51
    live = site.live(site.open_id)
    real = live.get(slug, slug)
    path = "/clinics/" + quote(real, safe="").replace(".", "%2E")
    if route != "clinic":
        path += "/" + route
    response = site.client.get(path, query_string=MultiDict(
        [(PAGE_PARAMETERS[route], value) for value in values]))
    db.session.rollback()
    event(f"{route}: status {response.status_code}")
    known = slug in (SLUG_OPEN, SLUG_CLOSED)
    found = {
        "clinic": known, "card": known, "review": slug == SLUG_OPEN,
        "reviews": known and reviews_page_exists(values, site.published if slug == SLUG_OPEN
                                                 else 0),
        "correct": slug == SLUG_OPEN,
    }[route]
    assert response.status_code == (200 if found else 404)
    page_of(response, layout=not (found and route == "card"))


def stays_on_site(location: str) -> bool:
    """Whether a browser following this Location stays on this site: it drops tabs and
    line breaks, trims spaces and control characters, and reads "\\" as "/"."""
    location = re.sub(r"[\t\n\r]", "", location).strip("".join(map(chr, range(33))))
    target = urlsplit(urljoin("http://localhost/language/en", location.replace("\\", "/")))
    return target.scheme == "http" and target.netloc == "localhost"


OFF_SITE = ("//evil.example", "https://evil.example", "/\\evil.example", "\\\\evil.example",
            "/\t/evil.example", " //evil.example", "javascript:alert(1)", "http:evil.example",
            "///evil.example", "\x00//evil.example", "／／evil.example", "/\\/evil.example",
            "https:/\\evil.example", "%2F%2Fevil.example", "//evil.example/%2E%2E",
            "/ /evil.example", "\\/evil.example")
ON_SITE = ("/", "/clinics?near=10011", "/about", "/clinics/x?tiles=off&near=10011")


@fuzz(150)
@given(code=st.one_of(sampled(*SUPPORTED, "EN", "fr", "es-MX", "zh_Hans"),
                      st.text(alphabet=st.characters(exclude_categories=("Cs",),
                                                     exclude_characters="/"),
                              min_size=1, max_size=10)),
       next_values=st.lists(st.one_of(sampled(*OFF_SITE), sampled(*ON_SITE), ANY,
                                      ANY.map(lambda text: "/" + text)), max_size=2))
@example(code="es", next_values=["//evil.example"])
@example(code="es", next_values=["https://evil.example"])
@example(code="zh", next_values=["/\\evil.example"])
@example(code="es", next_values=["/ /evil.example"])  # was kept as a path
def test_language_switch_never_sends_a_browser_off_site(site: Site, code: str,
                                                        next_values: Values) -> None:
    response = site.client.get("/language/" + quote(code, safe="").replace(".", "%2E"),
                               query_string=MultiDict([("next", v) for v in next_values]))
    assert response.status_code == 303
    location = response.headers["Location"]
    assert stays_on_site(location)
    if first(next_values) in OFF_SITE:
        assert location == "/"
    if first(next_values) in ON_SITE:
        assert location == first(next_values)
    cookies = [c.split(";")[0] for c in response.headers.getlist("Set-Cookie")]
    assert cookies == ([f"ui_lang={code}"] if code in SUPPORTED else [])


@fuzz(25)
@given(values=st.lists(st.one_of(st.just("\ue000hash"), ANY), max_size=2))
def test_static_files_ignore_any_version(site: Site, values: Values) -> None:
    stylesheet = Path(site.app.static_folder or "") / "css" / "site.css"
    current = file_hash(stylesheet) or ""
    sent = [current if value == "\ue000hash" else value for value in values]
    response = site.client.get("/static/css/site.css", query_string=MultiDict(
        [("v", value) for value in sent]))
    assert response.status_code == 200
    immutable = "immutable" in response.headers.get("Cache-Control", "")
    assert immutable == (first(sent) == current)
    response.close()


# --- POST: the review form and withdrawing ----------------------------------------------------


@fuzz(150)
@given(sent=filled(fuzzed(ReviewForm, REVIEW_SPECS)))
@example(sent=review_example(respect=["6"]))  # an answer out of range
@example(sent=review_example(privacy=["0"], text=["fine"]))
@example(sent=review_example(visit_month=[str(months_back(THIS_MONTH, -1).month)],
                             visit_year=[str(months_back(THIS_MONTH, -1).year)]))  # future
@example(sent=review_example(visit_month=[str(months_back(THIS_MONTH, 37).month)],
                             visit_year=[str(months_back(THIS_MONTH, 37).year)]))  # too old
@example(sent=review_example(text=["a" * 1001]))
@example(sent=review_example(visit_month=["1"], visit_year=["9" * 30]))  # OverflowError: a 500
@example(sent=review_example(form_token=[TOKEN_TAMPERED]))
@example(sent=review_example(form_token=["not a token"]))
@example(sent=review_example(csrf_token=[CSRF_OTHER_SESSION]))
@example(sent=review_example(respect=[], text=["\x00\x01 \u200b"]))  # says nothing
@example(sent=review_example(service=["pep"]))  # a service the clinic does not offer
def test_review_form_stores_exactly_what_is_acceptable(site: Site,
                                                       sent: dict[str, Values]) -> None:
    data = pairs(sent, site.live(site.open_id))
    size = body_size(data)
    expected = review_expected(sent, size, site.app.config["MAX_CONTENT_LENGTH"], site.open_id)
    before = count(Review)
    response = site.client.post(f"/clinics/{site.open_slug}/review", data=data)
    db.session.rollback()
    event(f"status {response.status_code}" + (", stored" if expected.stored else ""))
    assert response.status_code == expected.status
    html = page_of(response)
    if expected.stored is None:
        assert count(Review) == before
    else:
        assert count(Review) == before + 1
        assert stored_review(newest(Review), expected.stored) == expected.stored
        assert len(re.findall(r'class="code-word"', html)) == 6


def code_letters(code: str) -> str:
    """A withdrawal code as it is compared: its letters, lower case (first 500 sent)."""
    return re.sub(r"[^a-z]+", "", code[:500].lower())


@fuzz(80)
@given(sent=filled(fuzzed(WithdrawForm, WITHDRAW_SPECS)))
@example(sent={"code": [CODE_REAL], "csrf_token": [CSRF_OTHER_SESSION]})
@example(sent={"code": [CODE_PADDED], "csrf_token": [CSRF_GOOD]})
def test_withdrawing_deletes_only_the_review_the_code_belongs_to(
        site: Site, sent: dict[str, Values]) -> None:
    live_codes = site.live_codes
    earlier = next(iter(live_codes), "no earlier review")
    review, code = new_review(site.open_id, {"respect": 4, "text": "Synthetic to withdraw"})
    db.session.commit()
    live_codes[code_letters(code)] = review.id
    live = {**site.live(site.open_id), CODE_REAL: code, CODE_SHOUTED: code.upper(),
            CODE_HYPHENS: code.replace(" ", "-"),
            CODE_NOISY: " 1. " + code.title().replace(" ", " , 7 ") + " ?",
            CODE_EARLIER: earlier, CODE_PADDED: "x" * 600 + code}
    data = pairs(sent, live)
    letters = code_letters(first(data.getlist("code")))
    withdrawn_before = count(Review, Review.status == WITHDRAWN)
    response = site.client.post("/reviews/withdraw", data=data)
    db.session.rollback()
    event(f"status {response.status_code}")
    if body_size(data) > site.app.config["MAX_CONTENT_LENGTH"]:
        assert response.status_code == 413
    elif not CSRF.ok(sent["csrf_token"]) or not letters:
        assert response.status_code == 400
    elif letters in live_codes:
        assert response.status_code == 303
        assert response.headers["Location"] == "/reviews/withdrawn"
        gone = db.session.get(Review, live_codes.pop(letters))
        assert gone is not None
        db.session.refresh(gone)
        assert (gone.status, gone.text, gone.respect) == (WITHDRAWN, None, None)
        assert count(Review, Review.status == WITHDRAWN) == withdrawn_before + 1
        return
    else:
        assert response.status_code == 404
    page_of(response)
    assert count(Review, Review.status == WITHDRAWN) == withdrawn_before


# --- POST: suggesting a clinic, correcting a listing ------------------------------------------


def check_suggestion(site: Site, url: str, specs: dict[str, Spec], sent: dict[str, Values],
                     clinic_id: int, location_id: int | None) -> None:
    """Send a community form; the answer and the stored rows are what the input deserves."""
    data = pairs(sent, site.live(clinic_id))
    size = body_size(data)
    expected = suggestion_expected(sent, specs, size, site.app.config["MAX_CONTENT_LENGTH"],
                                   location_id)
    before = count(Suggestion)
    response = site.client.post(url, data=data)
    db.session.rollback()
    event(f"status {response.status_code}" + (", stored" if expected.stored else ""))
    assert response.status_code == expected.status
    page_of(response)
    if expected.stored is None:
        assert count(Suggestion) == before
    else:
        assert count(Suggestion) == before + 1
        assert stored_suggestion(newest(Suggestion)) == expected.stored


@fuzz(130)
@given(sent=filled(fuzzed(SuggestForm, SUGGEST_SPECS)))
@example(sent=suggestion_example(SUGGEST_SPECS, postal_code=["07030"]))  # not in NYC
@example(sent=suggestion_example(SUGGEST_SPECS, services=["HIV testing"]))
@example(sent=suggestion_example(SUGGEST_SPECS, name=["\x00 \x01"]))
@example(sent=suggestion_example(SUGGEST_SPECS, phone=["call me"]))
@example(sent=suggestion_example(SUGGEST_SPECS, languages=["Klingon"]))
@example(sent=suggestion_example(SUGGEST_SPECS, notes=["n" * 1001]))
@example(sent=suggestion_example(SUGGEST_SPECS, walk_in=[" "]))  # blank is not a choice
@example(sent=suggestion_example(SUGGEST_SPECS, services=[" "]))
@example(sent=suggestion_example(SUGGEST_SPECS, form_token=[TOKEN_EXPIRED]))
def test_suggesting_a_clinic_stores_exactly_what_is_acceptable(
        site: Site, sent: dict[str, Values]) -> None:
    check_suggestion(site, "/suggest", SUGGEST_SPECS, sent, NO_CLINIC, None)


@fuzz(130)
@given(sent=filled(fuzzed(CorrectForm, CORRECT_SPECS)))
@example(sent=suggestion_example(CORRECT_SPECS, phone=[], kind=[CORRECTION]))  # changes nothing
@example(sent=suggestion_example(CORRECT_SPECS, kind=["closed"]))
@example(sent=suggestion_example(CORRECT_SPECS, cost=[" "]))
@example(sent=suggestion_example(CORRECT_SPECS, id_required=["\t"]))
@example(sent=suggestion_example(CORRECT_SPECS, form_token=[TOKEN_OTHER_CLINIC]))
def test_correcting_a_listing_stores_exactly_what_is_acceptable(
        site: Site, sent: dict[str, Values]) -> None:
    check_suggestion(site, f"/clinics/{site.open_slug}/correct", CORRECT_SPECS, sent,
                     site.open_id, site.open_id)


# --- Moderators: signing in, and the queues' parameters ---------------------------------------


def login_field_ok(values: Values, maximum: int) -> bool:
    """A sign-in field as the form requires it: given, not blank, not too long."""
    value = first(values)
    return bool(value.strip()) and len(value) <= maximum


@fuzz(70)
@given(sent=filled(fuzzed(LoginForm, LOGIN_SPECS)))
@example(sent={"username": [USER_REAL], "password": [PASSWORD_REAL], "code": [CODE_NOW],
               "csrf_token": [CSRF_OTHER_SESSION]})
@example(sent={"username": [USER_SHOUTED], "password": [PASSWORD_REAL],
               "code": [CODE_NOW_SPACED], "csrf_token": [CSRF_GOOD]})  # signs in
@example(sent={"username": ["\x00"], "password": [PASSWORD_REAL], "code": ["123456"],
               "csrf_token": [CSRF_GOOD]})
def test_sign_in_lets_in_only_the_right_details(site: Site, sent: dict[str, Values]) -> None:
    app = site.app
    app.config["MODERATOR_MAX_FAILED_LOGINS"] = 10**9  # a lock would hide the other paths
    moderator = db.session.execute(sa.select(Moderator)).scalar_one_or_none()
    if moderator is None:
        moderator = make_moderator()
        db.session.commit()
    browser = app.test_client()
    totp = pyotp.TOTP(moderator.totp_secret)
    now_code = totp.now()
    live = {CSRF_GOOD: token(browser, "/moderation/login"),
            CSRF_OTHER_SESSION: site.csrf_other_session,
            USER_REAL: moderator.username, USER_SHOUTED: f"  {moderator.username.upper()} ",
            PASSWORD_REAL: PASSWORD, CODE_NOW: now_code,
            CODE_NOW_SPACED: f"{now_code[:3]} {now_code[3:]}"}
    data = pairs(sent, live)
    fresh_step = totp.timecode(time.time()) > moderator.last_totp_step
    audits = count(AuditEntry)
    response = browser.post("/moderation/login", data=data)
    db.session.rollback()
    event(f"status {response.status_code}")
    db.session.refresh(moderator)
    form_ok = (login_field_ok(data.getlist("username"), 80)
               and login_field_ok(data.getlist("password"), 1024)
               and login_field_ok(data.getlist("code"), 16))
    ours = first(data.getlist("username")).strip().lower() == moderator.username
    right = (first(sent["password"]) == PASSWORD_REAL
             and first(sent["code"]) in (CODE_NOW, CODE_NOW_SPACED) and fresh_step)
    with browser.session_transaction() as session:
        signed_in = "moderator_id" in session
    if body_size(data) > app.config["MAX_CONTENT_LENGTH"]:
        assert response.status_code == 413
        assert count(AuditEntry) == audits
    elif not CSRF.ok(sent["csrf_token"]):
        assert response.status_code == 400
        assert count(AuditEntry) == audits
    elif form_ok and ours and right:
        assert response.status_code == 302
        assert response.headers["Location"] == "/moderation/"
        assert signed_in
        assert count(AuditEntry) == audits + 1
        return
    else:
        assert response.status_code == 200
        assert count(AuditEntry) == audits + (1 if form_ok and ours else 0)
    assert not signed_in
    page_of(response)


@fuzz(40)
@given(path=sampled("/moderation/", "/moderation/audit", "/moderation/suggestions"),
       values=st.lists(st.one_of(sampled(*SUGGESTION_KINDS, "1", "2"), ANY), max_size=2))
@example(path="/moderation/", values=["9" * 5000])
def test_moderation_queues_answer_any_page_or_kind(site: Site, path: str,
                                                   values: Values) -> None:
    if not site.signed_in:
        site.signed_in = True
        moderator = make_moderator()
        db.session.commit()
        assert sign_in(site.client, moderator).status_code == 302
    name = "kind" if path.endswith("suggestions") else "page"
    response = site.client.get(path, query_string=MultiDict([(name, v) for v in values]))
    db.session.rollback()
    refused = name == "kind" and first(values, CORRECTION) not in SUGGESTION_KINDS
    assert response.status_code == (404 if refused else 200)
    page_of(response)

