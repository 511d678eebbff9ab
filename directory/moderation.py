"""Moderators: sign-in with a second factor, the review queue, redaction and the audit log.

Nothing a reviewer writes reaches the public until a moderator approves it here, and
every decision is written to the append-only audit log in the same transaction.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass

import click
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from flask.cli import AppGroup
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map
from wtforms import (
    PasswordField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, EqualTo, Length

from directory import audit, auth, scores, suggestions
from directory.extensions import db, limiter
from directory.models import (
    ADMIN,
    MODERATOR,
    PENDING,
    PUBLISHED,
    REJECTED,
    Location,
    Moderator,
    Review,
    Suggestion,
)
from directory.redaction import (
    REMOVED,
    Flag,
    NotARedaction,
    Segment,
    blank,
    check_redaction,
    find_flags,
    removed_count,
    segments,
)
from directory.reviews import clean_text
from directory.taxonomy import SERVICES

bp = Blueprint("moderation", __name__)


class RowIdConverter(IntegerConverter):
    """A row id in a path: at most PostgreSQL's INTEGER, so a larger number is a 404 here
    rather than a query the database refuses (a 500)."""

    def __init__(self, url_map: Map) -> None:
        super().__init__(url_map, max=2**31 - 1)


@bp.record_once
def _add_row_id_converter(state: BlueprintSetupState) -> None:
    # Recorded before any route, so the converter exists when the routes are added.
    state.app.url_map.converters["row_id"] = RowIdConverter

PER_PAGE = 25
MAX_TEXT = 5000
LOGIN_RATE_LIMIT = "10 per 15 minutes"
# One message for every failed sign-in: which part was wrong would help a guesser.
SIGN_IN_FAILED = "Those sign-in details did not work. Check them and try again."

# Reasons a moderator can give for rejecting a review (stored as the code).
REJECT_REASONS: dict[str, str] = {
    "not_about_clinic": "Not about this clinic",
    "identifies_person": "Identifies a person",
    "spam": "Spam or advertising",
    "abusive": "Hateful or abusive",
    "duplicate": "Duplicate",
}

# The review questions, as the queue shows them (mission.md, "no stink-eye").
QUESTIONS: list[tuple[str, str]] = [
    ("respect", "Treated with respect, without lectures or judgment"),
    ("open_about_work", "Could be open about their work"),
    ("asked_for_id", "Asked for ID, insurance or proof of income"),
    ("cost_affordable", "Cost as expected and affordable"),
    ("privacy", "Privacy protected"),
    ("gender_respected", "Gender and name respected"),
    ("would_recommend", "Would send a friend"),
]


class AlreadyDecided(Exception):
    """The review is no longer pending: another moderator or its author got there first."""


# --- forms -----------------------------------------------------------------------------


class LoginForm(FlaskForm):
    """Username, password and the authenticator app's code, in one step."""

    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    code = StringField("6-digit code from your authenticator app",
                       validators=[DataRequired(), Length(max=16)])


class RejectForm(FlaskForm):
    """Why a review is rejected."""

    reason = SelectField("Reason", validators=[DataRequired()],
                         choices=[SelectChoice(code, label)
                                  for code, label in REJECT_REASONS.items()])


class RedactFlagsForm(FlaskForm):
    """Which flagged parts to remove ("start:end" of each)."""

    remove = SelectMultipleField("Remove", choices=[], validate_choice=True)


class RedactTextForm(FlaskForm):
    """The text with parts replaced by [removed]."""

    text = TextAreaField("Text", validators=[DataRequired(), Length(max=MAX_TEXT)])


class NewModeratorForm(FlaskForm):
    """A new account: its username and role (the password is made for it)."""

    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    role = SelectField("Role", choices=[SelectChoice(MODERATOR, "Moderator"),
                                         SelectChoice(ADMIN, "Admin")])


class ChangePasswordForm(FlaskForm):
    """A new password, confirmed, after the current one."""

    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
    new = PasswordField("New password", validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField("New password again",
                            validators=[DataRequired(), EqualTo("new", "The two differ.")])


# --- the queue and decisions (plain functions: tests call them without HTTP) ------------


def pending_reviews(page: int = 1, per_page: int = PER_PAGE) -> list[Review]:
    """Pending reviews, oldest first (by month received, then arrival order)."""
    return list(
        db.session.execute(
            select(Review)
            .where(Review.status == PENDING)
            .options(selectinload(Review.location).selectinload(Location.organization))
            .order_by(Review.received_month, Review.id)
            .limit(per_page)
            .offset((max(page, 1) - 1) * per_page)
        ).scalars()
    )


def pending_count() -> int:
    """How many reviews wait for a decision."""
    return int(db.session.execute(
        select(func.count()).select_from(Review).where(Review.status == PENDING)
    ).scalar_one())


def review_for_decision(review_id: int) -> Review:
    """The pending review, locked for this transaction (on PostgreSQL), or AlreadyDecided."""
    review = db.session.execute(
        select(Review).where(Review.id == review_id).with_for_update()
    ).scalar_one_or_none()
    if review is None:
        abort(404)
    if review.status != PENDING:
        raise AlreadyDecided(review_id)
    return review


def approve(review: Review, moderator: Moderator) -> None:
    """Publish a pending review and update the clinic's score; never commits."""
    _set_status(review, PUBLISHED)
    audit.record(moderator, audit.APPROVE, "review", review.id, decision=PUBLISHED)


def reject(review: Review, moderator: Moderator, reason: str) -> None:
    """Reject a pending review for one of REJECT_REASONS; never commits."""
    if reason not in REJECT_REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    _set_status(review, REJECTED)
    review.reject_reason = reason
    # A rejected text is never shown, and may name someone: keeping it only adds risk.
    review.text = None
    audit.record(moderator, audit.REJECT, "review", review.id, decision=REJECTED,
                 reason=REJECT_REASONS[reason])


def redact_and_approve(review: Review, moderator: Moderator, redacted: str,
                       kinds: list[str] | None = None) -> None:
    """Replace the text with its redaction (checked), then publish; never commits.

    The unredacted words are overwritten, not kept, and the audit entry says only how many
    parts of which kind went, never what they said.
    """
    original = review.text or ""
    redacted = check_redaction(original, redacted)
    count = removed_count(original, redacted)
    if count == 0:
        raise NotARedaction("nothing was replaced by [removed]")
    review.text = redacted
    what = f"{count} part{'s' if count != 1 else ''} removed"
    if kinds:
        what += f" ({', '.join(sorted(set(kinds)))})"
    audit.record(moderator, audit.REDACT, "review", review.id, decision="redacted", reason=what)
    approve(review, moderator)


def _set_status(review: Review, status: str) -> None:
    """Change the status and keep the score in step, in the same transaction."""
    old = review.status
    review.status = status
    scores.on_review_status_change(review, old)


def review_flags(review: Review) -> list[Flag]:
    """The parts of a review's text that may identify someone (the clinic's name excepted)."""
    location = review.location
    known = [location.name, location.organization.name if location.organization else ""]
    return find_flags(review.text or "", ignore=known)


def flag_value(flag: Flag) -> str:
    """A flag as a form value."""
    return f"{flag.start}:{flag.end}"


@dataclass(frozen=True)
class QueueItem:
    """A review as the queue shows it: its text cut into plain and flagged segments."""

    review: Review
    segments: list[Segment]
    flags: list[Flag]
    answers: list[tuple[str, str]]
    service: str


def queue_item(review: Review) -> QueueItem:
    """What a moderator needs to decide on one review."""
    flags = review_flags(review)
    return QueueItem(review, segments(review.text or "", flags), flags, answers(review),
                     SERVICES.get(review.service_code or "", review.service_code or ""))


def answers(review: Review) -> list[tuple[str, str]]:
    """The questions the reviewer answered, with their answers in words."""
    shown: list[tuple[str, str]] = []
    for field, question in QUESTIONS:
        value = getattr(review, field)
        if value is None:
            continue
        if isinstance(value, bool):
            shown.append((question, "yes" if value else "no"))
        else:
            shown.append((question, f"{value} of 5"))
    return shown


# --- views -----------------------------------------------------------------------------


@bp.after_request
def keep_out_of_indexes(response: Response) -> Response:
    """No search engine lists, and no cache keeps, a moderation page."""
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def moderation_context() -> dict[str, object]:
    """The signed-in moderator and labels, for every moderation template."""
    return {"moderator": auth.current_moderator(), "ADMIN": ADMIN,
            "reject_reasons": REJECT_REASONS, "action_labels": audit.ACTION_LABELS}


@bp.errorhandler(403)
def forbidden(error: HTTPException) -> tuple[str, int]:
    """A friendly refusal that shows nothing of what is behind it."""
    return render_template("moderation/forbidden.html"), 403


def _login_rate_limit() -> str:
    """The sign-in limit per hashed client address (config MODERATION_LOGIN_RATE_LIMIT)."""
    return str(current_app.config.get("MODERATION_LOGIN_RATE_LIMIT", LOGIN_RATE_LIMIT))


def _page() -> int:
    """The page number asked for, 1 when missing or odd."""
    page = request.args.get("page", 1, type=int) or 1
    return min(max(page, 1), 10_000)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, methods=["POST"])
def login() -> Response | tuple[str, int]:
    """Sign in with username, password and a TOTP code."""
    if auth.current_moderator() is not None:
        return redirect(url_for("moderation.queue"))  # type: ignore[return-value]
    form = LoginForm()
    error = ""
    if form.validate_on_submit():
        try:
            moderator = auth.authenticate(form.username.data, form.password.data,
                                          form.code.data)
        except auth.SignInFailed as failure:
            # Recorded against an existing account only: a mistyped username may be a
            # password typed in the wrong box, and must never be written down.
            if failure.moderator is not None:
                audit.record(failure.moderator, audit.SIGN_IN_FAILED, "moderator",
                             failure.moderator.id, decision="refused", reason=failure.reason)
            db.session.commit()
            error = SIGN_IN_FAILED
        else:
            audit.record(moderator, audit.SIGN_IN, "moderator", moderator.id,
                         decision="signed in")
            db.session.commit()
            auth.start_session(moderator)
            return redirect(url_for("moderation.queue"))  # type: ignore[return-value]
    elif form.is_submitted():
        error = SIGN_IN_FAILED
    form.code.data = ""
    return render_template("moderation/login.html", form=form, error=error), 200


@bp.post("/logout")
def logout() -> Response:
    """Sign this browser out."""
    moderator = auth.current_moderator()
    if moderator is not None:
        audit.record(moderator, audit.SIGN_OUT, "moderator", moderator.id)
        db.session.commit()
    auth.end_session()
    flash("You are signed out.", "info")
    return redirect(url_for("moderation.login"))  # type: ignore[return-value]


@bp.post("/logout-everywhere")
@auth.moderator_required
def logout_everywhere() -> Response:
    """End this moderator's sessions on every device."""
    moderator = _me()
    auth.sign_out_everywhere(moderator)
    audit.record(moderator, audit.SIGN_OUT_EVERYWHERE, "moderator", moderator.id)
    db.session.commit()
    flash("You are signed out on every device.", "info")
    return redirect(url_for("moderation.login"))  # type: ignore[return-value]


def _me() -> Moderator:
    """The signed-in moderator of a view behind moderator_required."""
    moderator = auth.current_moderator()
    if moderator is None:  # pragma: no cover (the decorator already sent them away)
        abort(403)
    return moderator


@bp.get("/")
@auth.moderator_required
def queue() -> str:
    """Pending reviews, oldest first, each with its flagged parts and decision buttons."""
    page = _page()
    items = [queue_item(review) for review in pending_reviews(page)]
    total = pending_count()
    return render_template("moderation/queue.html", items=items, total=total, page=page,
                           has_next=page * PER_PAGE < total, reject_form=RejectForm())


@bp.get("/reviews/<row_id:review_id>")
@auth.moderator_required
def review(review_id: int) -> str | Response:
    """One pending review with the tools to redact it."""
    found = db.session.get(Review, review_id)
    if found is None:
        abort(404)
    if found.status != PENDING:
        flash("That review has already been decided.", "info")
        return redirect(url_for("moderation.queue"))  # type: ignore[return-value]
    return _review_page(found)


def _review_page(found: Review, text_form: RedactTextForm | None = None,
                 error: str = "") -> str:
    """Render the redaction page for a review."""
    item = queue_item(found)
    flags_form = RedactFlagsForm()
    if text_form is None:
        text_form = RedactTextForm()
        text_form.text.data = found.text or ""
    return render_template("moderation/review.html", item=item, flags_form=flags_form,
                           text_form=text_form, reject_form=RejectForm(), error=error,
                           flag_value=flag_value, removed=REMOVED)


@bp.post("/reviews/<row_id:review_id>/approve")
@auth.moderator_required
def approve_review(review_id: int) -> Response:
    """Publish a review as it is."""
    try:
        approve(review_for_decision(review_id), _me())
    except AlreadyDecided:
        return _already_decided()
    db.session.commit()
    flash("Review approved: it is public now.", "success")
    return redirect(url_for("moderation.queue"))  # type: ignore[return-value]


@bp.post("/reviews/<row_id:review_id>/reject")
@auth.moderator_required
def reject_review(review_id: int) -> Response:
    """Reject a review, with a reason from the short list."""
    form = RejectForm()
    if not form.validate():
        abort(400)
    try:
        reject(review_for_decision(review_id), _me(), form.reason.data)
    except AlreadyDecided:
        return _already_decided()
    db.session.commit()
    flash("Review rejected.", "success")
    return redirect(url_for("moderation.queue"))  # type: ignore[return-value]


@bp.post("/reviews/<row_id:review_id>/redact")
@auth.moderator_required
def redact_review(review_id: int) -> Response | tuple[str, int]:
    """Remove the ticked flagged parts, or apply an edited text, then publish."""
    try:
        found = review_for_decision(review_id)
    except AlreadyDecided:
        return _already_decided()
    if "text" in request.form:
        text_form = RedactTextForm()
        if not text_form.validate():
            return _review_page(found, text_form, "The text cannot be empty."), 422
        try:
            redact_and_approve(found, _me(), text_form.text.data)
        except NotARedaction:
            db.session.rollback()
            return _review_page(found, text_form, "You can only replace words with "
                                f"{REMOVED}. Nothing else in the text may change."), 422
    else:
        flags = review_flags(found)
        form = RedactFlagsForm()
        form.remove.choices = [SelectChoice(flag_value(flag), flag.label) for flag in flags]
        if not form.validate() or not form.remove.data:
            return _review_page(found, error="Tick at least one part to remove."), 422
        chosen = [flag for flag in flags if flag_value(flag) in form.remove.data]
        original = found.text or ""
        redact_and_approve(found, _me(), blank(original, chosen),
                           kinds=[flag.label for flag in chosen])
    db.session.commit()
    flash("Review redacted and approved: it is public now.", "success")
    return redirect(url_for("moderation.queue"))  # type: ignore[return-value]


def _already_decided() -> Response:
    """Back to the queue when someone else decided first."""
    db.session.rollback()
    flash("That review was already decided, or withdrawn by its author.", "info")
    return redirect(url_for("moderation.queue"))  # type: ignore[return-value]


@bp.get("/audit")
@auth.moderator_required
def audit_log() -> str:
    """The audit log, newest first. Read-only: no route changes an entry."""
    page = _page()
    total = audit.count()
    return render_template("moderation/audit.html", entries=audit.entries(page), page=page,
                           has_next=page * audit.PER_PAGE < total, total=total)


@bp.get("/account")
@auth.moderator_required
def account() -> str:
    """The moderator's own account: password and sessions."""
    return render_template("moderation/account.html", form=ChangePasswordForm())


@bp.post("/account/password")
@auth.moderator_required
def change_password() -> Response | tuple[str, int]:
    """Change one's password; other sessions end, this one goes on."""
    moderator = _me()
    form = ChangePasswordForm()
    error = ""
    if form.validate():
        try:
            auth.change_password(moderator, form.current.data, form.new.data)
        except auth.InvalidAccountDetails as exc:
            error = str(exc)
    else:
        error = "; ".join(message for messages in form.errors.values() for message in messages)
    if error:
        db.session.rollback()
        return render_template("moderation/account.html", form=form, error=error), 422
    audit.record(moderator, audit.CHANGE_PASSWORD, "moderator", moderator.id)
    db.session.commit()
    auth.start_session(moderator)
    flash("Password changed. Your other sessions are signed out.", "success")
    return redirect(url_for("moderation.account"))  # type: ignore[return-value]


@bp.get("/moderators")
@auth.admin_required
def moderators() -> str:
    """Every account, with disable and unlock buttons (admins only)."""
    everyone = db.session.execute(select(Moderator).order_by(Moderator.username)).scalars()
    return render_template("moderation/moderators.html", moderators=list(everyone),
                           is_locked=auth.is_locked)


@bp.route("/moderators/new", methods=["GET", "POST"])
@auth.admin_required
def new_moderator() -> str | tuple[str, int]:
    """Create an account; its password and TOTP secret are shown once, on this answer.

    No redirect after success, on purpose: the secrets must not travel in a cookie or a
    URL to a second page. The answer is not cached (no-store) and a resend fails, as the
    username is then taken.
    """
    form = NewModeratorForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("moderation/moderator_new.html", form=form), status
    password = secrets.token_urlsafe(15)
    try:
        new = auth.create_moderator(form.username.data, password, form.role.data)
    except auth.InvalidAccountDetails as exc:
        db.session.rollback()
        return render_template("moderation/moderator_new.html", form=form,
                               error=str(exc)), 422
    audit.record(_me(), audit.CREATE_MODERATOR, "moderator", new.moderator.id,
                 decision=new.moderator.role)
    db.session.commit()
    return render_template("moderation/moderator_created.html", account=new,
                           password=password, qr=auth.qr_data_uri(new.totp_uri))


@bp.post("/moderators/<row_id:moderator_id>/disable")
@auth.admin_required
def disable_moderator(moderator_id: int) -> Response:
    """Disable an account and end its sessions (never one's own)."""
    target = db.session.get(Moderator, moderator_id)
    if target is None:
        abort(404)
    me = _me()
    if target.id == me.id:
        flash("You cannot disable your own account.", "error")
    elif target.active:
        auth.disable_moderator(target)
        audit.record(me, audit.DISABLE_MODERATOR, "moderator", target.id, decision="disabled")
        db.session.commit()
        flash(f"{target.username} is disabled and signed out.", "success")
    return redirect(url_for("moderation.moderators"))  # type: ignore[return-value]


@bp.post("/moderators/<row_id:moderator_id>/unlock")
@auth.admin_required
def unlock_moderator(moderator_id: int) -> Response:
    """Let a locked account try again."""
    target = db.session.get(Moderator, moderator_id)
    if target is None:
        abort(404)
    auth.unlock_moderator(target)
    audit.record(_me(), audit.UNLOCK_MODERATOR, "moderator", target.id, decision="unlocked")
    db.session.commit()
    flash(f"{target.username} can sign in again.", "success")
    return redirect(url_for("moderation.moderators"))  # type: ignore[return-value]


# --- command line ----------------------------------------------------------------------

moderators_cli = AppGroup("moderators", help="Create, disable, unlock and list moderators.")


@moderators_cli.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Give the account the admin role.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_command(username: str, admin: bool, password_stdin: bool) -> None:
    """Create a moderator and print its TOTP secret (once: it is not shown again)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        new = auth.create_moderator(username, password, ADMIN if admin else MODERATOR)
    except auth.InvalidAccountDetails as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    audit.record(None, audit.CREATE_MODERATOR, "moderator", new.moderator.id,
                 decision=new.moderator.role, reason="command line")
    db.session.commit()
    click.echo(f"Created {new.moderator.role} {new.moderator.username}.")
    click.echo("Add this account to an authenticator app now; the secret is not shown again.")
    click.echo(f"TOTP secret: {new.totp_secret}")
    click.echo(f"URI: {new.totp_uri}")
    qr = auth.qr_text(new.totp_uri)
    if qr:
        click.echo(qr)


def _command_target(username: str) -> Moderator:
    """The account a command names, or a clear error."""
    target = auth.find_moderator(username)
    if target is None:
        raise click.ClickException(f"no moderator named {username!r}")
    return target


@moderators_cli.command("disable")
@click.argument("username")
def disable_command(username: str) -> None:
    """Disable a moderator and end their sessions."""
    target = _command_target(username)
    auth.disable_moderator(target)
    audit.record(None, audit.DISABLE_MODERATOR, "moderator", target.id, decision="disabled",
                 reason="command line")
    db.session.commit()
    click.echo(f"Disabled {target.username}.")


@moderators_cli.command("unlock")
@click.argument("username")
def unlock_command(username: str) -> None:
    """Clear a moderator's failed sign-ins after a lockout."""
    target = _command_target(username)
    auth.unlock_moderator(target)
    audit.record(None, audit.UNLOCK_MODERATOR, "moderator", target.id, decision="unlocked",
                 reason="command line")
    db.session.commit()
    click.echo(f"Unlocked {target.username}.")


@moderators_cli.command("list")
def list_command() -> None:
    """List moderators: username, role, and whether active or locked."""
    for moderator in db.session.execute(select(Moderator).order_by(Moderator.username)).scalars():
        state = "active" if moderator.active else "disabled"
        if moderator.active and auth.is_locked(moderator):
            state = "locked"
        click.echo(f"{moderator.username}\t{moderator.role}\t{state}")


def register_commands(app: Flask) -> None:
    """Add this audience's command-line tools to `flask`: `flask moderators ...`."""
    app.cli.add_command(moderators_cli)


# --- community suggestions, listing history and re-verification --------------------------
# (Logic lives in directory/suggestions.py; these views only read forms and commit.)

SUGGESTION_KINDS: dict[str, str] = {
    "new_clinic": "New clinics",
    "correction": "Corrections",
    "closure": "Closure reports",
}


@bp.context_processor
def suggestion_context() -> dict[str, object]:
    """Suggestion labels for the moderation templates."""
    return {"suggestion_kinds": SUGGESTION_KINDS,
            "suggestion_reasons": suggestions.REJECT_REASONS,
            "how_known": suggestions.HOW_KNOWN}


def _edited_values() -> dict[str, object]:
    """The values a moderator edited before approving (only fields the form sent)."""
    values: dict[str, object] = {}
    for key in suggestions.FIELDS:
        if key in ("cost", "services") and f"{key}-sent" in request.form:
            values[key] = request.form.getlist(key)
        elif key in request.form:
            # Cleaned as the public forms clean them: a NUL byte made PostgreSQL refuse
            # the write (a 500), and control characters have no place in a listing.
            values[key] = (clean_text(request.form.get(key, "")) or "")[:300]
    return values


@bp.get("/suggestions")
@auth.moderator_required
def suggestion_queue() -> str:
    """Pending suggestions of one kind, oldest first, each with its diff."""
    kind = request.args.get("kind", "correction")
    if kind not in SUGGESTION_KINDS:
        abort(404)
    items = [(s, suggestions.diff(s)) for s in suggestions.pending(kind)]
    return render_template("moderation/suggestions.html", kind=kind, items=items,
                           counts=suggestions.pending_counts())


@bp.get("/suggestions/<row_id:suggestion_id>")
@auth.moderator_required
def suggestion(suggestion_id: int) -> str | Response:
    """One pending suggestion, with every value editable before approving."""
    found = db.session.get(Suggestion, suggestion_id)
    if found is None:
        abort(404)
    if found.status != PENDING:
        flash("That suggestion has already been decided.", "info")
        return redirect(url_for("moderation.suggestion_queue", kind=found.kind))  # type: ignore[return-value]
    return _suggestion_page(found)


def _suggestion_page(found: Suggestion, error: str = "",
                     values: dict[str, object] | None = None) -> str:
    proposed = {**suggestions.payload(found), **(values or {})}
    return render_template("moderation/suggestion.html", item=found,
                           lines=suggestions.diff(found), proposed=proposed,
                           current=suggestions.current_values(found.location), error=error,
                           fields=suggestions.FIELDS, services=SERVICES,
                           costs=suggestions.COST_OPTIONS)


@bp.post("/suggestions/<row_id:suggestion_id>/approve")
@auth.moderator_required
def approve_suggestion(suggestion_id: int) -> Response | tuple[str, int]:
    """Approve as suggested, or with the moderator's edits (the edit form sends them)."""
    try:
        found = suggestions.for_decision(suggestion_id)
    except suggestions.AlreadyDecided:
        return _suggestion_already_decided()
    if found is None:
        abort(404)
    edited = _edited_values() if request.form.get("edited") else None
    try:
        location = suggestions.approve(found, _me(), edited)
    except suggestions.InvalidSuggestion as problem:
        db.session.rollback()
        again = db.session.get(Suggestion, suggestion_id)
        if again is None:  # pragma: no cover
            abort(404)
        return _suggestion_page(again, str(problem), edited), 422
    kind = found.kind
    db.session.commit()
    flash(f"Approved: {location.name if location else 'the listing'} is updated.", "success")
    return redirect(url_for("moderation.suggestion_queue", kind=kind))  # type: ignore[return-value]


@bp.post("/suggestions/<row_id:suggestion_id>/reject")
@auth.moderator_required
def reject_suggestion(suggestion_id: int) -> Response:
    """Reject a suggestion with a reason from the short list."""
    reason = request.form.get("reason", "")
    if reason not in suggestions.REJECT_REASONS:
        abort(400)
    try:
        found = suggestions.for_decision(suggestion_id)
    except suggestions.AlreadyDecided:
        return _suggestion_already_decided()
    if found is None:
        abort(404)
    kind = found.kind
    suggestions.reject(found, _me(), reason)
    db.session.commit()
    flash("Suggestion rejected.", "success")
    return redirect(url_for("moderation.suggestion_queue", kind=kind))  # type: ignore[return-value]


def _suggestion_already_decided() -> Response:
    db.session.rollback()
    flash("That suggestion was already decided by another moderator.", "info")
    return redirect(url_for("moderation.suggestion_queue"))  # type: ignore[return-value]


@bp.get("/clinics/<row_id:location_id>/history")
@auth.moderator_required
def listing_history(location_id: int) -> str:
    """A listing's earlier revisions, newest first, and its facts' sources now."""
    location = db.session.get(Location, location_id)
    if location is None:
        abort(404)
    return render_template("moderation/history.html", location=location,
                           revisions=suggestions.revisions(location_id),
                           current=suggestions.snapshot(location), loads=json.loads)


@bp.get("/reverify")
@auth.moderator_required
def reverify_queue() -> str:
    """Listings due for a check: several closure reports first, then the oldest facts."""
    days = suggestions.reverify_days(current_app.config)
    items = suggestions.stale_listings(suggestions.today(), days)
    return render_template("moderation/reverify.html", items=items, days=days)


@bp.post("/reverify/<row_id:location_id>/still-correct")
@auth.moderator_required
def still_correct(location_id: int) -> Response:
    """The moderator checked the listing (by phone or visit): renew its facts' dates."""
    location = db.session.get(Location, location_id)
    if location is None:
        abort(404)
    suggestions.still_correct(location, _me())
    db.session.commit()
    flash(f"{location.name}: marked as checked today.", "success")
    return redirect(url_for("moderation.reverify_queue"))  # type: ignore[return-value]
