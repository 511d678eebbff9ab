"""The public's corrections: "Suggest a clinic" and "Something wrong?" on every clinic page.

Anonymous like reviews, and defended the same way, with the review form's own helpers:
CSRF, a honeypot, the signed form token (shown-at time checked, one use only), rate limits
keyed by a hashed, daily-rotating client key, and friendly errors that keep what was typed.
What is stored is the proposed values, how the person knows, their notes and the month.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import NotFound, TooManyRequests
from wtforms import (
    HiddenField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import Length, Optional

from directory import errors, suggestions
from directory.extensions import db, limiter
from directory.models import ACTIVE, CLOSURE, CORRECTION, NEW_CLINIC, Location
from directory.reviews import (
    TOKEN_MESSAGES,
    FormTokenProblem,
    check_form_token,
    clean_text,
    first_use_of,
    issue_form_token,
)
from directory.taxonomy import COST_OPTIONS, SERVICES

bp = Blueprint("community", __name__)

SUGGEST_RATE_LIMIT = "6 per hour;20 per day"
NOTES_MAX = 1000
NO_CLINIC = 0  # the form token's clinic id for "Suggest a clinic", which has none yet


class CheckboxesField(SelectMultipleField):
    """Several choices as checkboxes."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


# No Optional() on choice fields that offer "" or take none: it clears the "not a valid
# choice" error for a blank value, which was then stored (" " as a walk-in answer).
def _yes_no(label: str) -> RadioField:
    return RadioField(label, default="", choices=[
        SelectChoice("yes", _l("Yes")), SelectChoice("no", _l("No")),
        SelectChoice("", _l("Don't know / no change"))])


def _text(label: str, maximum: int = 300) -> StringField:
    return StringField(label, filters=[clean_text], validators=[Length(max=maximum)])


class _CommunityForm(FlaskForm):
    """Fields both forms share, and the honeypot and form token."""

    phone = _text(_l("Phone number"), 40)
    hours = _text(_l("Opening hours, as you know them (e.g. Mon–Fri 9am–5pm)"))
    walk_in = _yes_no(_l("Can people walk in without an appointment?"))
    id_required = _yes_no(_l("Do they ask for ID?"))
    insurance_required = _yes_no(_l("Do they ask for insurance?"))
    cost = CheckboxesField(_l("Ways to pay"), choices=[
        SelectChoice(code, label) for code, label in COST_OPTIONS.items()])
    languages = _text(_l("Languages staff speak, separated by commas"))
    how_known = RadioField(_l("How do you know?"), default="", validators=[Optional()],
                           choices=[SelectChoice(k, v) for k, v in
                                    suggestions.HOW_KNOWN.items()])
    notes = TextAreaField(_l("Anything else a moderator should know (optional)"),
                          filters=[clean_text], validators=[Length(max=NOTES_MAX)])
    # The honeypot: hidden from people, screen readers and the tab order.
    confirm_site = StringField("Leave this empty")
    form_token = HiddenField()

    def check_values(self) -> bool:
        """Checks beyond single fields: phone shape, known languages."""
        valid = True
        try:
            suggestions.check_phone(self.phone.data or "")
        except suggestions.InvalidSuggestion as problem:
            self.phone.errors = [*self.phone.errors, str(problem)]
            valid = False
        try:
            suggestions.check_languages(self.languages.data or "")
        except suggestions.InvalidSuggestion as problem:
            self.languages.errors = [*self.languages.errors, str(problem)]
            valid = False
        return valid

    def values(self) -> dict[str, object]:
        """The proposed values as stored."""
        return {key: self[key].data for key in suggestions.FIELDS if key in self}


class SuggestForm(_CommunityForm):
    """A new clinic."""

    name = _text(_l("Name of the clinic"), 300)
    address_1 = _text(_l("Street address"), 300)
    postal_code = _text(_l("ZIP code"), 10)
    services = CheckboxesField(_l("What it offers"), choices=[
        SelectChoice(code, label) for code, label in SERVICES.items()])

    def validate(self, extra_validators=None) -> bool:  # type: ignore[no-untyped-def]
        """Field checks, then: a name, an address, an NYC ZIP code, at least one service."""
        valid = bool(super().validate(extra_validators)) and self.check_values()
        if not self.name.data:
            self.name.errors = [*self.name.errors, _l("Give the clinic's name.")]
            valid = False
        if not self.address_1.data:
            self.address_1.errors = [*self.address_1.errors, _l("Give the street address.")]
            valid = False
        try:
            suggestions.nyc_zip(self.postal_code.data or "")
        except suggestions.InvalidSuggestion as problem:
            self.postal_code.errors = [*self.postal_code.errors, str(problem)]
            valid = False
        if not self.services.data:
            self.services.errors = [*self.services.errors,
                                    _l("Tick at least one thing the clinic offers.")]
            valid = False
        return valid


class CorrectForm(_CommunityForm):
    """A correction to a listing, or a report that it closed or moved."""

    kind = RadioField(_l("What is wrong?"), default=CORRECTION, choices=[
        SelectChoice(CORRECTION, _l("Some details are wrong")),
        SelectChoice(CLOSURE, _l("It has closed or moved"))])
    services = _text(_l("Services (what they offer now)"))
    moved_to = _text(_l("New address, if it moved"))

    def validate(self, extra_validators=None) -> bool:  # type: ignore[no-untyped-def]
        """Field checks, then: a correction must change something."""
        valid = bool(super().validate(extra_validators)) and self.check_values()
        if valid and self.kind.data == CORRECTION and not any(self.values().values()) \
                and not self.notes.data:
            self.form_errors.append(_l("Fill in at least one detail that is wrong, or "
                                       "write a note."))
            valid = False
        return valid


def messages(form: FlaskForm) -> list[tuple[str, str]]:
    """(field id, message) for every problem, in page order."""
    found: list[tuple[str, str]] = [("community-form", str(m)) for m in form.form_errors]
    for field in form:
        for error in field.errors:
            text = str(error)
            if text.startswith(("Not a valid", "Invalid", "'")):
                text = str(_l("Choose from the list."))
            elif text.startswith("Field cannot be longer"):
                text = str(_l("This is too long. Please shorten it: everything you typed "
                              "is still here."))
            found.append((field.id, text))
    return list(dict.fromkeys(found))


def _rate() -> str:
    return str(current_app.config.get("SUGGEST_RATE_LIMIT") or SUGGEST_RATE_LIMIT)


def _open_clinic(slug: str) -> Location | None:
    return db.session.execute(
        select(Location).where(Location.slug == slug[:200], Location.status == ACTIVE)
    ).scalar_one_or_none()


def _clinic(slug: str) -> Location:
    location = _open_clinic(slug)
    if location is None:
        raise NotFound()
    return location


def _page(form: FlaskForm, token: str, status: int, location: Location | None = None,
          notices: list[tuple[str, str]] | None = None,
          not_sent: bool = False) -> tuple[str, int]:
    """The form page; `not_sent`: it comes back for a reason that is not the writer's."""
    template = "community/correct.html" if location else "community/suggest.html"
    return render_template(template, form=form, token=token, location=location,
                           messages=(notices or []) + messages(form),
                           notes_max=NOTES_MAX, not_sent=not_sent), status


def _receive(form: _CommunityForm, location: Location | None) -> ResponseReturnValue:
    """The shared POST path: honeypot, token, validation, one use, store."""
    now = time.time()
    clinic_id = location.id if location else NO_CLINIC
    if form.confirm_site.data:
        # A bot filled the honeypot: it sees the same thanks page, and nothing is stored.
        return render_template("community/thanks.html", location=location), 200
    token = form.form_token.data or ""
    notices = []
    try:
        check_form_token(token, clinic_id, now)
    except FormTokenProblem as problem:
        notices.append(("community-form", TOKEN_MESSAGES[problem.reason]))
        if problem.reason != "too_fast":
            token = issue_form_token(clinic_id, now)
    if not form.validate() or notices:
        return _page(form, token, 400, location, notices)
    kind = NEW_CLINIC if location is None else str(form.kind.data)
    # Written before the token is marked used, and the page rendered before the commit,
    # as for reviews: a database failure leaves the token unused and nothing half-said.
    suggestions.new_suggestion(kind, clinic_id or None, form.values(),
                               form.how_known.data or None, form.notes.data or None)
    if not first_use_of(token, now):
        db.session.rollback()
        return render_template("community/thanks.html", location=location,
                               already=True), 409
    page = render_template("community/thanks.html", location=location)
    db.session.commit()
    return page, 200


@bp.get("/suggest")
def suggest_form() -> tuple[str, int]:
    """The form to suggest a clinic that is not listed."""
    return _page(SuggestForm(formdata=None), issue_form_token(NO_CLINIC, time.time()), 200)


@bp.post("/suggest")
@limiter.limit(_rate, deduct_when=lambda response: response.status_code == 200)
def suggest_send() -> ResponseReturnValue:
    """Store a suggested clinic for moderators."""
    return _receive(SuggestForm(), None)


@bp.get("/clinics/<slug>/correct")
def correct_form(slug: str) -> tuple[str, int]:
    """"Something wrong?": the form to correct a listing or report it closed."""
    location = _clinic(slug)
    form = CorrectForm(formdata=None)
    if request.args.get("kind") == CLOSURE:
        form.kind.data = CLOSURE
    return _page(form, issue_form_token(location.id, time.time()), 200, location)


@bp.post("/clinics/<slug>/correct")
@limiter.limit(_rate, deduct_when=lambda response: response.status_code == 200)
def correct_send(slug: str) -> ResponseReturnValue:
    """Store a correction or closure report for moderators."""
    return _receive(CorrectForm(), _clinic(slug))


# --- Friendly failures that keep what was typed ---------------------------------------


def _retyped(status: int, notice: str) -> ResponseReturnValue | None:
    """The form again with what was sent, if the request was one of ours; else None."""
    location = None
    if request.endpoint == "community.correct_send" and request.view_args:
        location = _open_clinic(str(request.view_args.get("slug", "")))
        if location is None:
            return None
        form: _CommunityForm = CorrectForm()
    elif request.endpoint == "community.suggest_send":
        form = SuggestForm()
    else:
        return None
    token = issue_form_token(location.id if location else NO_CLINIC, time.time())
    form.form_token.data = token
    return _page(form, token, status, location, [("community-form", notice)], not_sent=True)


@bp.errorhandler(CSRFError)
def csrf_failed(error: CSRFError) -> ResponseReturnValue:
    """A missing, expired or forged CSRF token: nothing stored, nothing typed lost."""
    page = _retyped(400, str(_l("This form had expired or did not come from this site, so "
                                "nothing was sent. Please look it over and send it again.")))
    return page if page is not None else (render_template("error.html", code=400,
                                                          error=error), 400)


@bp.errorhandler(429)
def too_many(error: TooManyRequests) -> ResponseReturnValue:
    """Rate limited: say why, and keep what was typed to send later."""
    page = _retyped(429, str(_l("Several reports came from your connection in a short "
                                "time. Please wait an hour, then send again: what you "
                                "typed is still below.")))
    return page if page is not None else (render_template("reviews/slow_down.html"), 429)


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
def database_failed(error: OperationalError | InterfaceError) -> ResponseReturnValue:
    """The database failed during a send: nothing was kept, and nothing typed is lost."""
    notice = str(_l("Something went wrong on our side, so nothing was saved. Please send it "
                    "again: what you typed is still below."))
    return errors.form_failed(error, lambda: _retyped(503, notice),
                              kept_text=str(request.form.get("notes") or "")[:2000])


@bp.app_context_processor
def people_report_helper() -> dict[str, object]:
    """`people_report(location_id)` for the clinic page: reviewers' answers, not facts."""
    return {"people_report": suggestions.people_report}
