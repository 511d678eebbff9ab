"""The "no stink-eye" score: kept in step with every review decision, shrunk so that one
review cannot put a clinic at the top.

Which questions. The score summarises the four questions about how a person was treated:
respect (no lectures or judgment), being open about one's work, privacy, and gender and
name respected. Cost is about money, not treatment; "would you send a friend" folds in
everything else (distance, waiting, services); being asked for ID is a yes/no fact about
intake. Those three are shown beside the score, on their own, not folded into it.

The formula, a Bayesian average per question. For a respect question q, let S_q be the sum
and n_q the number of a clinic's published answers (1-5), and C_q the city-wide mean of
every published answer to q at every clinic (3, the middle of the scale, before any):

    shrunk_q = (m * C_q + S_q) / (m + n_q)        with m = 5 pseudo-answers
    score    = (shrunk_respect + shrunk_open_about_work + shrunk_privacy
                + shrunk_gender_respected) / 4

A clinic with few answers sits near the city's mean; its own answers take over as they
add up. A question nobody answered at a clinic counts as the city's mean. The score is
shown only once a clinic has MIN_REVIEWS published reviews, always with their number.

Keeping it in step. ClinicScore holds each clinic's running sums and counts of published
answers. A decision changes one row by one review's answers (an INSERT .. ON CONFLICT DO
NOTHING and an UPDATE .. SET x = x + d: two statements, whatever the city's size, safe
under concurrent moderators). The city-wide means are one aggregate over ClinicScore rows
(one per reviewed clinic), never a scan of reviews. Because the means move with every
decision anywhere, the score itself is not stored: it is computed when read, in Python
for a page and as one SQL expression to sort and filter. `flask scores rebuild`
recomputes every sum from the reviews and reports any clinic whose kept sums differed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_babel import gettext, ngettext
from sqlalchemy import ColumnElement, case, delete, exists, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from directory.extensions import db
from directory.i18n import N_, format_one_decimal
from directory.models import PUBLISHED, ClinicScore, Location, Review

MIN_REVIEWS = 3
PRIOR_WEIGHT = 5.0  # m: how many answers at the city's mean each clinic starts with
NEUTRAL = 3.0  # the prior before the city has any answer: the middle of the scale
# "Well rated" in search: a shrunk score of at least this, from MIN_REVIEWS reviews or
# more. 4 is "Mostly" on every respect question, after shrinkage toward the city.
WELL_RATED = 4.0


@dataclass(frozen=True)
class Question:
    """One review question: how it is asked, how it is summarised, its answer words."""

    key: str
    text: str
    short: str
    choices: tuple[str, ...]  # words for 1..5, or for yes / no


# English, marked for the catalogs (N_): pages show them translated (i18n.tr); moderators'
# pages and stored data keep the English.
AGREE = (N_("Not at all"), N_("A little"), N_("Somewhat"), N_("Mostly"), N_("Completely"))
QUESTIONS: tuple[Question, ...] = (
    Question("respect", N_("Did staff treat you with respect, without lectures or judgment?"),
             N_("Treated with respect, no lectures"), AGREE),
    Question("open_about_work",
             N_("Could you be open about your work without it being held against you?"),
             N_("Could be open about work"), AGREE),
    Question("asked_for_id", N_("Were you asked for ID, insurance or proof of income?"),
             N_("Asked for ID, insurance or proof of income"), (N_("Yes"), N_("No"))),
    Question("cost_affordable", N_("Was the cost what you expected, and affordable?"),
             N_("Cost as expected and affordable"), AGREE),
    Question("privacy", N_("Did you feel your privacy was protected?"),
             N_("Privacy protected"), AGREE),
    Question("gender_respected", N_("Were your gender and name respected?"),
             N_("Gender and name respected"), AGREE),
    Question("would_recommend", N_("Would you send a friend here?"), N_("Would send a friend"),
             (N_("Definitely not"), N_("Probably not"), N_("Not sure"), N_("Probably"),
              N_("Definitely"))),
)
BY_KEY = {q.key: q for q in QUESTIONS}
SCALE_KEYS = tuple(q.key for q in QUESTIONS if len(q.choices) == 5)
RESPECT_KEYS = ("respect", "open_about_work", "privacy", "gender_respected")
# Every running total ClinicScore keeps, in a fixed order.
SUM_COLUMNS = ("review_count", *(f"{k}_{p}" for k in SCALE_KEYS for p in ("sum", "count")),
               "asked_for_id_yes", "asked_for_id_no")


@dataclass(frozen=True)
class Summary:
    """One question's published answers at one clinic."""

    question: Question
    answers: int
    mean: float | None = None  # for a 1-5 question
    share_yes: float | None = None  # for the yes/no question

    @property
    def text(self) -> str:
        """The summary in words: "4.3 of 5" or "1 in 5 said yes"; "" with no answers."""
        if not self.answers:
            return ""
        if self.mean is not None:
            return str(gettext("%(score)s of 5", score=format_one_decimal(self.mean)))
        return str(gettext("%(percent)d%% said yes", percent=round((self.share_yes or 0) * 100)))


@dataclass(frozen=True)
class Rating:
    """What the public sees of a clinic's reviews: the score, if there are enough of them."""

    review_count: int
    score: float | None  # None below MIN_REVIEWS
    summaries: tuple[Summary, ...] = ()

    @property
    def label(self) -> str:
        """A short line for lists and map popups."""
        if self.score is not None:
            return str(ngettext("Respect score %(score)s of 5 · %(num)d review",
                                "Respect score %(score)s of 5 · %(num)d reviews",
                                self.review_count, score=format_one_decimal(self.score)))
        if self.review_count:
            return str(gettext("Too few reviews yet for a score"))
        return str(gettext("Not reviewed yet"))


NO_REVIEWS = Rating(review_count=0, score=None)


def _col(name: str) -> ColumnElement[int]:
    return getattr(ClinicScore, name)  # type: ignore[no-any-return]


# --- Reading --------------------------------------------------------------------------


def city_means() -> dict[str, float]:
    """The city-wide mean of each respect question: one aggregate over ClinicScore rows."""
    columns = []
    for key in RESPECT_KEYS:
        columns += [func.coalesce(func.sum(_col(f"{key}_sum")), 0),
                    func.coalesce(func.sum(_col(f"{key}_count")), 0)]
    row = db.session.execute(select(*columns)).one()
    means = {}
    for i, key in enumerate(RESPECT_KEYS):
        total, count = int(row[2 * i]), int(row[2 * i + 1])
        means[key] = total / count if count else NEUTRAL
    return means


def shrunk_score(sums: Mapping[str, int], means: Mapping[str, float]) -> float:
    """The score from a clinic's sums and the city means (see the module docstring)."""
    parts = [(PRIOR_WEIGHT * means[k] + sums[f"{k}_sum"]) / (PRIOR_WEIGHT + sums[f"{k}_count"])
             for k in RESPECT_KEYS]
    return sum(parts) / len(parts)


def score_expression(means: Mapping[str, float]) -> ColumnElement[Any]:
    """The same average as shrunk_score, in SQL over ClinicScore (no minimum applied)."""
    parts = [(PRIOR_WEIGHT * means[k] + _col(f"{k}_sum")) / (PRIOR_WEIGHT + _col(f"{k}_count"))
             for k in RESPECT_KEYS]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total / float(len(parts))


def shown_score_expression(means: Mapping[str, float]) -> ColumnElement[Any]:
    """The score as shown: NULL below MIN_REVIEWS published reviews (to sort with)."""
    return case((ClinicScore.review_count >= MIN_REVIEWS, score_expression(means)), else_=None)


def well_rated_condition(means: Mapping[str, float]) -> ColumnElement[bool]:
    """SQL condition on Location: a shown score of at least WELL_RATED."""
    # Correlate with Location only: a score-ordered search also joins clinic_score outside.
    return exists(select(ClinicScore.location_id).where(
        ClinicScore.location_id == Location.id,
        ClinicScore.review_count >= MIN_REVIEWS,
        score_expression(means) >= WELL_RATED,
    ).correlate(Location))


def _sums(row: ClinicScore) -> dict[str, int]:
    return {name: int(getattr(row, name) or 0) for name in SUM_COLUMNS}


def rating_from(sums: Mapping[str, int], means: Mapping[str, float],
                with_summaries: bool = False) -> Rating:
    """A Rating from a clinic's kept sums; no score (and no summaries) below the minimum."""
    count = sums["review_count"]
    if count < MIN_REVIEWS:
        return Rating(review_count=max(count, 0), score=None)
    summaries: list[Summary] = []
    if with_summaries:
        for question in QUESTIONS:
            if question.key == "asked_for_id":
                yes, no = sums["asked_for_id_yes"], sums["asked_for_id_no"]
                summaries.append(Summary(question, yes + no,
                                         share_yes=yes / (yes + no) if yes + no else None))
            else:
                n = sums[f"{question.key}_count"]
                summaries.append(Summary(question, n,
                                         mean=sums[f"{question.key}_sum"] / n if n else None))
    return Rating(review_count=count, score=shrunk_score(sums, means),
                  summaries=tuple(summaries))


def rating_for(location_id: int) -> Rating:
    """One clinic's rating with every question's summary, for its page (two queries)."""
    row = db.session.get(ClinicScore, location_id)
    if row is None or not row.review_count:
        return NO_REVIEWS
    return rating_from(_sums(row), city_means(), with_summaries=True)


def ratings_for(location_ids: Iterable[int],
                means: Mapping[str, float] | None = None) -> dict[int, Rating]:
    """Ratings (without summaries) for a page of clinics, in at most two queries."""
    ids = list(location_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(ClinicScore).where(ClinicScore.location_id.in_(ids))
    ).scalars().all()
    found = {row.location_id: row for row in rows if row.review_count}
    if any(row.review_count >= MIN_REVIEWS for row in found.values()) and means is None:
        means = city_means()
    ratings = {}
    for location_id in ids:
        row = found.get(location_id)
        ratings[location_id] = (NO_REVIEWS if row is None
                                else rating_from(_sums(row), means or {}))
    return ratings


# --- Keeping the sums in step ---------------------------------------------------------


def _ensure_row(location_id: int) -> None:
    """Create the clinic's row of zeros if it has none; a no-op (not an error) if it has."""
    dialect = db.session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        db.session.execute(
            insert(ClinicScore).values(location_id=location_id)
            .on_conflict_do_nothing(index_elements=["location_id"])
        )
    elif db.session.get(ClinicScore, location_id) is None:
        db.session.add(ClinicScore(location_id=location_id))
        db.session.flush()


def answer_deltas(review: Review, sign: int) -> dict[str, int]:
    """How one review's answers change each running total, added (+1) or taken away (-1)."""
    deltas = {"review_count": sign}
    for key in SCALE_KEYS:
        value = getattr(review, key)
        if value is not None:
            deltas[f"{key}_sum"] = sign * int(value)
            deltas[f"{key}_count"] = sign
    if review.asked_for_id is True:
        deltas["asked_for_id_yes"] = sign
    elif review.asked_for_id is False:
        deltas["asked_for_id_no"] = sign
    return deltas


def on_review_status_change(review: Review, old_status: str) -> None:
    """Update the clinic's running sums after a review's status changed; never commits.

    Only a move into or out of "published" changes anything. Call it while the review
    still holds its answers (a withdrawal clears them only afterwards).
    """
    was_public = old_status == PUBLISHED
    is_public = review.status == PUBLISHED
    if was_public == is_public:
        return
    if review.location_id is None:
        db.session.flush()
    sign = 1 if is_public else -1
    if sign > 0:
        _ensure_row(review.location_id)
    values = {name: _col(name) + delta for name, delta in answer_deltas(review, sign).items()}
    # Arithmetic in SQL, not read-modify-write in Python: two moderators deciding about
    # the same clinic at once must not lose each other's change.
    db.session.execute(
        update(ClinicScore).where(ClinicScore.location_id == review.location_id).values(values)
    )


# --- Rebuilding from the reviews ------------------------------------------------------


def computed_sums() -> dict[int, dict[str, int]]:
    """Every clinic's totals recomputed from its published reviews (one GROUP BY)."""
    columns: list[ColumnElement[int]] = [func.count(Review.id)]
    for key in SCALE_KEYS:
        column = getattr(Review, key)
        columns += [func.coalesce(func.sum(column), 0), func.count(column)]
    columns += [func.count(case((Review.asked_for_id.is_(True), 1))),
                func.count(case((Review.asked_for_id.is_(False), 1)))]
    rows = db.session.execute(
        select(Review.location_id, *columns).where(Review.status == PUBLISHED)
        .group_by(Review.location_id)
    ).all()
    return {row[0]: dict(zip(SUM_COLUMNS, (int(v) for v in row[1:]), strict=True))
            for row in rows}


def kept_sums() -> dict[int, dict[str, int]]:
    """The totals ClinicScore holds now; rows of zeros count as no row."""
    rows = db.session.execute(select(ClinicScore)).scalars().all()
    return {row.location_id: _sums(row) for row in rows if any(_sums(row).values())}


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild found: how many clinics have reviews, and whose kept sums differed."""

    clinics: int
    differed: list[int]


def rebuild() -> RebuildReport:
    """Recompute every ClinicScore row from the reviews; never commits."""
    computed = computed_sums()
    kept = kept_sums()
    differed = sorted(i for i in computed.keys() | kept.keys() if computed.get(i) != kept.get(i))
    db.session.execute(delete(ClinicScore))
    if computed:
        db.session.add_all(ClinicScore(location_id=location_id, **sums)
                           for location_id, sums in computed.items())
    db.session.flush()
    return RebuildReport(clinics=len(computed), differed=differed)


@click.group("scores")
def scores_cli() -> None:
    """The "no stink-eye" scores."""


@scores_cli.command("rebuild")
@click.option("--check", is_flag=True, help="Compare only; change nothing; exit 1 if different.")
@with_appcontext
def rebuild_command(check: bool) -> None:
    """Recompute every clinic's sums from the published reviews, in one transaction."""
    try:
        report = rebuild()
    except BaseException:
        db.session.rollback()
        raise
    if check:
        db.session.rollback()
    else:
        db.session.commit()
    click.echo(f"{report.clinics} clinics have published reviews")
    if report.differed:
        click.echo(f"{len(report.differed)} clinics' kept sums differed: "
                   + ", ".join(str(i) for i in report.differed[:50]))
    else:
        click.echo("every kept sum agreed with the reviews")
    if check:
        click.echo("check only: nothing was changed")
        if report.differed:
            raise SystemExit(1)


def register_commands(app: Flask) -> None:
    """Add `flask scores rebuild`."""
    app.cli.add_command(scores_cli)
