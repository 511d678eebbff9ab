"""Sharing an experience: leaving an anonymous review and withdrawing it with its code.

What a review stores: its answers, its text, the clinic, the month it was received (and,
if given, the month of the visit), and its status. Nothing about who sent it: no address,
no user agent, no cookie id, no day or time. `current_month()` is the only clock reading
that reaches a review.

Bots are slowed without tracking anyone: a honeypot field (filled in: we pretend to
accept and store nothing), a signed form token with no server-side state (the clinic and
when the form was shown; refused if sent within MIN seconds or after MAX_FORM_AGE), a
one-use marker per token in the rate limiter's storage (so a refresh or a replay cannot
add the same review twice), and rate limits keyed by privacy.rate_limit_key.

The withdrawal code is shown once, in the response to the POST that stored the review,
and never travels in a URL or a cookie: a redirect would have needed one of those to
carry it (the session cookie is signed, not encrypted). That page is no-store, like every
page, and refreshing it re-sends the form, which the one-use marker refuses.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import TooManyRequests
from wtforms import (
    HiddenField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import ValidationError

from directory import errors, scores, withdrawal
from directory.extensions import db, limiter
from directory.hours import NEW_YORK
from directory.i18n import N_, format_number
from directory.models import ACTIVE, PENDING, PUBLISHED, WITHDRAWN, Location, Review
from directory.privacy import ephemeral_store
from directory.scores import BY_KEY, QUESTIONS, Question
from directory.taxonomy import SERVICES

bp = Blueprint("reviews", __name__)

TEXT_MAX = 1000
VISIT_MONTHS_BACK = 36  # a visit may be up to three years ago
MIN_FORM_SECONDS = 3.0  # a form sent faster than this was not filled in by a person
MAX_FORM_AGE = 2 * 3600  # seconds a form stays valid
CLINIC_PAGE_REVIEWS = 10  # newest reviews on a clinic's page; the rest one tap away
REVIEWS_PER_PAGE = 50
REVIEW_RATE_LIMIT = "6 per hour;20 per day"
WITHDRAW_RATE_LIMIT = "10 per hour;30 per day"
FORM_TOKEN_SALT = "caremap.review-form.v1"  # noqa: S105 (a salt naming the purpose, not a secret)
# English, marked for the catalogs: the form shows them translated (i18n.tr).
MONTHS = (N_("January"), N_("February"), N_("March"), N_("April"), N_("May"), N_("June"),
          N_("July"), N_("August"), N_("September"), N_("October"), N_("November"),
          N_("December"))
OTHER_SERVICE = "other"


def current_month() -> date:
    """The first day of this month in New York: the only time a review ever records."""
    return datetime.now(NEW_YORK).date().replace(day=1)


def months_before(month: date, count: int) -> date:
    """The first day of the month `count` months before `month`."""
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


# --- The signed form token ------------------------------------------------------------


class FormTokenProblem(Exception):
    """A review form's token is not acceptable; `reason` says why, for the message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid", "too_fast" or "expired"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=FORM_TOKEN_SALT)


def issue_form_token(location_id: int, now: float) -> str:
    """A token for one showing of one clinic's form: the clinic, the second it was shown,
    and a random nonce that makes each token (and so its one-use marker) unique.

    The time never leaves the form: it is not stored anywhere, and the marker of a used
    token is a hash that expires with its two-hour bucket (see _marker_ttl).
    """
    payload = {"c": location_id, "t": int(now), "n": secrets.token_urlsafe(9)}
    return str(_serializer().dumps(payload))


def check_form_token(token: str, location_id: int, now: float) -> None:
    """Raise FormTokenProblem unless the token was made for this clinic, long enough ago
    for a person to have filled the form in, and not too long ago."""
    try:
        payload = _serializer().loads(token or "")
    except BadSignature as exc:
        raise FormTokenProblem("invalid") from exc
    if not isinstance(payload, dict) or payload.get("c") != location_id:
        raise FormTokenProblem("invalid")
    issued = payload.get("t")
    if not isinstance(issued, int):
        raise FormTokenProblem("invalid")
    age = now - issued
    if age < float(current_app.config.get("REVIEW_MIN_SECONDS", MIN_FORM_SECONDS)):
        raise FormTokenProblem("too_fast")
    if age > MAX_FORM_AGE:
        raise FormTokenProblem("expired")


def _marker_ttl(now: float) -> int:
    """Seconds a used-token marker lives: to the end of the next two-hour bucket.

    Every marker made in one bucket expires at the same instant, so the time left on a
    marker does not date the review it was made for.
    """
    bucket = int(now // MAX_FORM_AGE)
    return int((bucket + 2) * MAX_FORM_AGE - now) + 1


def first_use_of(token: str, now: float) -> bool:
    """Mark a form token as used; True only the first time (shared across workers)."""
    marker = "form:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return ephemeral_store().first_use(marker, _marker_ttl(now))


# --- The form ---------------------------------------------------------------------------


def _scale(value: object) -> int | None:
    """A 1-5 answer from the form; "" (skip) is no answer."""
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    return int(str(value))


def _yes_no(value: object) -> bool | None:
    """A yes/no answer from the form; "" (skip) is no answer."""
    if value is None or value == "" or isinstance(value, bool):
        return value if isinstance(value, bool) else None
    if str(value) not in ("yes", "no"):
        raise ValueError("not yes or no")
    return str(value) == "yes"


def _question_field(question: Question) -> RadioField:
    """Radio buttons with words for one question, and a "skip" that is chosen at first."""
    coerce: Callable[[object], object]
    if question.key == "asked_for_id":
        choices = [SelectChoice("yes", N_("Yes")), SelectChoice("no", N_("No"))]
        coerce = _yes_no
    else:
        choices = [SelectChoice(str(i), word) for i, word in enumerate(question.choices, 1)]
        coerce = _scale
    choices.append(SelectChoice("", N_("Skip this question")))
    return RadioField(question.text, choices=choices, coerce=coerce, default="")


def clean_text(value: str | None) -> str | None:
    """Text as stored: browser line ends made one character (as `maxlength` counts them),
    control characters (which PostgreSQL may refuse) removed, ends trimmed."""
    if value is None:
        return None
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = "".join(ch for ch in value if ch in "\n\t" or ch.isprintable())
    return value.strip()


def _text_length(form: FlaskForm, field: TextAreaField) -> None:
    if field.data and len(field.data) > TEXT_MAX:
        raise ValidationError(gettext(
            "Your text is %(length)s characters long; the limit is %(max)s. "
            "Please shorten it: everything you typed is still here.",
            length=format_number(len(field.data)), max=format_number(TEXT_MAX),
        ))


# Marked for the catalogs (N_) and translated when shown (gettext at the point of use).
FRIENDLY = {
    "service": N_("Choose a service from the list, or “Something else”."),
    "visit_month": N_("Choose a month from the list, or leave it empty."),
    "visit_year": N_("Choose a year from the list, or leave it empty."),
    "text": N_("Your text could not be read. Please type it again."),
}
TOKEN_MESSAGES = {
    "invalid": N_("This form could not be checked. Please look over your answers and send "
                  "them again."),
    "too_fast": N_("That was sent very fast. Please look over your answers and send them "
                   "again."),
    "expired": N_("This form was open for more than two hours. Please look over your "
                  "answers and send them again."),
}


class ReviewForm(FlaskForm):
    """The review form. Every question is optional; at least one answer or some text."""

    respect = _question_field(BY_KEY["respect"])
    open_about_work = _question_field(BY_KEY["open_about_work"])
    asked_for_id = _question_field(BY_KEY["asked_for_id"])
    cost_affordable = _question_field(BY_KEY["cost_affordable"])
    privacy = _question_field(BY_KEY["privacy"])
    gender_respected = _question_field(BY_KEY["gender_respected"])
    would_recommend = _question_field(BY_KEY["would_recommend"])
    service = SelectField(N_("Which service did you go for?"), default="")
    visit_month = SelectField(N_("Month"), default="", choices=[
        SelectChoice("", N_("Month")),
        *(SelectChoice(str(i), m) for i, m in enumerate(MONTHS, 1))])
    visit_year = SelectField(N_("Year"), default="")
    text = TextAreaField(N_("In your own words (optional)"), filters=[clean_text],
                         validators=[_text_length])
    # The honeypot: hidden from people (and from screen readers and the tab order), but
    # bots that fill every field fill it too.
    confirm_site = StringField("Leave this empty")
    form_token = HiddenField()

    def setup(self, location: Location, this_month: date) -> ReviewForm:
        """Choices that depend on the clinic and on the month: its services, the years."""
        codes = sorted({sal.service.code for sal in location.services},
                       key=lambda c: list(SERVICES).index(c) if c in SERVICES else 99)
        self.service.choices = [
            SelectChoice("", N_("Choose one (optional)")),
            *(SelectChoice(code, SERVICES.get(code, code)) for code in codes),
            SelectChoice(OTHER_SERVICE, N_("Something else")),
        ]
        years = range(this_month.year, months_before(this_month, VISIT_MONTHS_BACK).year - 1, -1)
        self.visit_year.choices = [SelectChoice("", N_("Year")),
                                   *(SelectChoice(str(y), str(y)) for y in years)]
        self._this_month = this_month
        return self

    def question_fields(self) -> list[tuple[Question, RadioField]]:
        """The questions in the mission's order, each with its field."""
        return [(q, self[q.key]) for q in QUESTIONS]

    def visit(self) -> date | None:
        """The visit month chosen, as its first day; None if not given (or not valid)."""
        try:
            return date(int(self.visit_year.data), int(self.visit_month.data), 1)
        except (TypeError, ValueError, OverflowError):  # a year past C's int is no month
            return None

    def validate(self, extra_validators=None) -> bool:  # type: ignore[no-untyped-def]
        """Field checks, then the checks across fields: the visit month and "say something"."""
        valid = bool(super().validate(extra_validators))
        month, year = self.visit_month.data or "", self.visit_year.data or ""
        if bool(month) != bool(year) and not (self.visit_month.errors or self.visit_year.errors):
            field = self.visit_year if month else self.visit_month
            field.errors.append(gettext("Choose both the month and the year of your visit, "
                                        "or neither."))
            valid = False
        visit = self.visit()
        if visit is not None:
            if visit > self._this_month:
                self.visit_month.errors.append(gettext("The visit month cannot be in the "
                                                       "future."))
                valid = False
            elif visit < months_before(self._this_month, VISIT_MONTHS_BACK):
                self.visit_month.errors.append(gettext("We only ask about visits in the last "
                                                       "three years."))
                valid = False
        if valid and not self.text.data and all(
                self[q.key].data is None for q in QUESTIONS):
            self.form_errors.append(gettext("Answer at least one question or write a few "
                                            "words, then send."))
            valid = False
        return valid

    def messages(self) -> list[tuple[str, str]]:
        """(field id to link to, friendly sentence) for every problem, in page order."""
        found: list[tuple[str, str]] = [("review-form", m) for m in self.form_errors]
        for question, field in self.question_fields():
            if field.errors:
                found.append((f"q-{question.key}", gettext(
                    "Choose one of the answers to “%(question)s”, or skip it.",
                    question=gettext(question.text))))
        for name in ("service", "visit_month", "visit_year", "text"):
            for error in self[name].errors:
                friendly = error if _is_ours(error) else gettext(FRIENDLY[name])
                found.append((name, friendly))
        return list(dict.fromkeys(found))

    def answers(self) -> dict[str, object]:
        """What is stored from a valid form: the answers, service, visit month and text."""
        data: dict[str, object] = {q.key: self[q.key].data for q in QUESTIONS}
        data["service_code"] = self.service.data or None
        data["visit_month"] = self.visit()
        data["text"] = self.text.data or None
        return data


def _is_ours(message: str) -> bool:
    """Whether an error is one of this module's sentences, not WTForms' technical words."""
    return not message.startswith(("Not a valid", "Invalid"))


# --- Storing and withdrawing ------------------------------------------------------------


def new_review(location_id: int, answers: dict[str, object]) -> tuple[Review, str]:
    """A pending review with these answers, and its withdrawal code (shown once, not kept).

    Added to the session and flushed, never committed: the view commits.
    """
    code = withdrawal.new_code()
    review = Review(
        location_id=location_id,
        status=PENDING,
        received_month=current_month(),
        withdrawal_hash=withdrawal.code_hash(code, current_app.config["SECRET_KEY"]),
        **answers,
    )
    db.session.add(review)
    db.session.flush()
    return review, code


def withdraw(code: str) -> bool:
    """Delete the answers and text of the review with this code, for good; True if found.

    The row stays as a tombstone (clinic, month received, status "withdrawn") so that
    moderators' audit entries about it still make sense; nothing the person wrote or
    answered remains. Never commits.
    """
    digest = withdrawal.code_hash(code, current_app.config["SECRET_KEY"])
    # FOR UPDATE: a moderator deciding about this review at the same moment waits, so the
    # score sees exactly one of the two changes in the right order.
    review = db.session.execute(
        select(Review).where(Review.withdrawal_hash == digest).with_for_update()
    ).scalar_one_or_none()
    if review is None:
        return False
    old_status = review.status
    review.status = WITHDRAWN
    # The score must subtract this review's answers before they are cleared.
    scores.on_review_status_change(review, old_status)
    for key in scores.BY_KEY:
        setattr(review, key, None)
    review.text = None
    review.service_code = None
    review.visit_month = None
    review.reject_reason = None
    review.withdrawal_hash = None
    db.session.flush()
    return True


@dataclass(frozen=True)
class PublicReview:
    """A published review as the public sees it: months only, answers in words."""

    received: date
    visited: date | None
    service: str
    answers: list[tuple[str, str]]
    text: str


def _answer_words(question: Question, value: object) -> str:
    if isinstance(value, bool):
        return str(gettext("Yes") if value else gettext("No"))
    number = int(value)  # type: ignore[call-overload]
    if 1 <= number <= 5:
        return str(gettext("%(answer)s (%(num)d of 5)",
                           answer=gettext(question.choices[number - 1]), num=number))
    return str(gettext("%(num)d of 5", num=number))


def public_reviews(location_id: int, limit: int, offset: int = 0) -> list[PublicReview]:
    """A clinic's published reviews, newest month first; pending and rejected never."""
    rows = db.session.execute(
        select(Review)
        .where(Review.location_id == location_id, Review.status == PUBLISHED)
        .order_by(Review.received_month.desc(), Review.id.desc())
        .offset(offset).limit(limit)
    ).scalars().all()
    shown = []
    for row in rows:
        answers = [(gettext(q.short), _answer_words(q, getattr(row, q.key)))
                   for q in QUESTIONS if getattr(row, q.key) is not None]
        service = ""
        if row.service_code:
            service = gettext(SERVICES.get(row.service_code, N_("Something else")))
        shown.append(PublicReview(row.received_month, row.visit_month, service, answers,
                                  row.text or ""))
    return shown


# --- Views ------------------------------------------------------------------------------


def _open_clinic(slug: str) -> Location | None:
    """An open clinic by its slug: closed places take no new reviews."""
    return db.session.execute(
        select(Location).where(Location.slug == slug[:200], Location.status == ACTIVE)
    ).scalar_one_or_none()


def _clinic(slug: str) -> Location:
    """An open clinic by its slug, or a 404."""
    location = _open_clinic(slug)
    if location is None:
        abort(404)
    return location


def _form_page(location: Location, form: ReviewForm, token: str, status: int,
               notices: list[tuple[str, str]] | None = None,
               not_sent: bool = False) -> tuple[str, int]:
    """The form page; `not_sent`: it comes back for a reason that is not the writer's."""
    messages = (notices or []) + form.messages()
    return render_template("reviews/form.html", location=location, form=form, token=token,
                           messages=messages, text_max=TEXT_MAX, not_sent=not_sent), status


def _rate(name: str, default: str) -> str:
    return str(current_app.config.get(name) or default)


@bp.get("/clinics/<slug>/review")
def leave_review(slug: str) -> tuple[str, int]:
    """The review form for one clinic."""
    location = _clinic(slug)
    form = ReviewForm(formdata=None).setup(location, current_month())
    return _form_page(location, form, issue_form_token(location.id, time.time()), 200)


@bp.post("/clinics/<slug>/review")
@limiter.limit(lambda: _rate("REVIEW_RATE_LIMIT", REVIEW_RATE_LIMIT),
               deduct_when=lambda response: response.status_code == 200)
def send_review(slug: str) -> ResponseReturnValue:
    """Store a review as pending and show its withdrawal code, once."""
    location = _clinic(slug)
    now = time.time()
    form = ReviewForm().setup(location, current_month())
    if form.confirm_site.data:
        # A bot filled the honeypot: it sees the same success page, and nothing is stored.
        return _thanks(location, withdrawal.new_code())
    token = form.form_token.data or ""
    notices = []
    try:
        check_form_token(token, location.id, now)
    except FormTokenProblem as problem:
        notices.append(("review-form", gettext(TOKEN_MESSAGES[problem.reason])))
        if problem.reason != "too_fast":
            token = issue_form_token(location.id, now)
    if not form.validate() or notices:
        return _form_page(location, form, token, 400, notices)
    # Written (not committed) before the token is marked used, so a database that fails
    # here leaves the token unused; a person sending it again is not told "already sent".
    _review, code = new_review(location.id, form.answers())
    if not first_use_of(token, now):
        db.session.rollback()
        return render_template("reviews/already_sent.html", location=location), 409
    # Rendered before the commit, so nothing after it needs the database: a failure after
    # the commit would say "nothing was saved" about a review that was kept.
    page = _thanks(location, code)
    db.session.commit()
    return page


def _thanks(location: Location, code: str) -> tuple[str, int]:
    return render_template("reviews/thanks.html", location=location,
                           code_words=code.split()), 200


@bp.get("/clinics/<slug>/reviews")
def all_reviews(slug: str) -> str:
    """Every published review of one clinic, newest month first, a page at a time."""
    location = db.session.execute(
        select(Location).where(Location.slug == slug[:200])
    ).scalar_one_or_none()
    if location is None:
        abort(404)
    page = request.args.get("page", "1")
    # isascii: "²" and other digits that int() refuses pass isdigit() alone.
    number = int(page) if page.isascii() and page.isdigit() and 0 < len(page) < 5 else 0
    if number < 1:
        abort(404)
    total = db.session.execute(
        select(func.count(Review.id))
        .where(Review.location_id == location.id, Review.status == PUBLISHED)
    ).scalar_one()
    shown = public_reviews(location.id, REVIEWS_PER_PAGE, (number - 1) * REVIEWS_PER_PAGE)
    if number > 1 and not shown:
        abort(404)
    return render_template("reviews/list.html", location=location, reviews=shown,
                           rating=scores.rating_for(location.id), page=number, total=total,
                           has_next=total > number * REVIEWS_PER_PAGE,
                           min_reviews=scores.MIN_REVIEWS)


class WithdrawForm(FlaskForm):
    """The withdrawal form: the code, however it was written down."""

    code = StringField(N_("Your withdrawal code"))


NOT_FOUND = N_("We could not find a review with that code. Check the six words and try "
               "again. If the review was already withdrawn, there is nothing left to delete.")


@bp.get("/reviews/withdraw")
def withdraw_form() -> str:
    """The page to take a review back."""
    return render_template("reviews/withdraw.html", form=WithdrawForm(formdata=None),
                           message="")


@bp.post("/reviews/withdraw")
@limiter.limit(lambda: _rate("WITHDRAW_RATE_LIMIT", WITHDRAW_RATE_LIMIT))
def withdraw_send() -> ResponseReturnValue:
    """Withdraw the review a code belongs to; a wrong code learns nothing."""
    form = WithdrawForm()
    code = (form.code.data or "")[:500]
    if not withdrawal.normalise(code):
        return render_template("reviews/withdraw.html", form=form,
                               message=gettext("Type the six words of your code.")), 400
    if not withdraw(code):
        # One answer for every code that matches nothing, whatever reviews exist.
        return render_template("reviews/withdraw.html", form=form,
                               message=gettext(NOT_FOUND)), 404
    db.session.commit()
    return redirect(url_for("reviews.withdrawn"), 303)


@bp.get("/reviews/withdrawn")
def withdrawn() -> str:
    """After a withdrawal: says what was deleted (anyone may open it; it names nothing)."""
    return render_template("reviews/withdrawn.html")


# --- Friendly failures that keep what was typed -----------------------------------------


def _retyped_form_page(status: int, notice: str) -> ResponseReturnValue | None:
    """The review form again with what was sent, if the request was a review; else None."""
    if request.endpoint != "reviews.send_review" or not request.view_args:
        return None
    location = _open_clinic(str(request.view_args.get("slug", "")))
    if location is None:
        return None
    form = ReviewForm().setup(location, current_month())
    token = issue_form_token(location.id, time.time())
    form.form_token.data = token
    return _form_page(location, form, token, status, [("review-form", notice)], not_sent=True)


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> ResponseReturnValue:
    """A missing, expired or forged CSRF token: nothing stored, nothing typed lost."""
    notice = gettext("This form had expired or did not come from this site, so nothing "
                     "was sent. Please look over your answers and send them again.")
    page = _retyped_form_page(400, notice)
    if page is not None:
        return page
    if request.endpoint == "reviews.withdraw_send":
        return render_template("reviews/withdraw.html", form=WithdrawForm(), message=notice), 400
    return render_template("error.html", code=400, error=error), 400


@bp.errorhandler(429)
def too_many(error: TooManyRequests) -> ResponseReturnValue:
    """Rate limited: a page that says why, keeping a review's text to send later."""
    if request.endpoint == "reviews.send_review":
        page = _retyped_form_page(429, gettext(
            "Several reviews came from your connection in a short time. Please wait an "
            "hour, then send again: your answers are still below."))
        if page is not None:
            return page
    return render_template("reviews/slow_down.html"), 429


DATABASE_NOTICE = N_("Something went wrong on our side, so nothing was saved. Please send "
                     "it again: your answers are still below.")


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
def database_failed(error: OperationalError | InterfaceError) -> ResponseReturnValue:
    """The database failed during a send: nothing was kept, and nothing typed is lost.

    The form comes back with the answers if the database answers again by now; if it is
    still away, the error page hands the text back to copy.
    """
    return errors.form_failed(error, lambda: _retyped_form_page(503, gettext(DATABASE_NOTICE)),
                              kept_text=clean_text(request.form.get("text")) or "")


def register_commands(app: Flask) -> None:
    """Add this audience's command-line tools to `flask`: `flask scores rebuild`."""
    scores.register_commands(app)

