"""The "no stink-eye" score: the formula, the minimum, incremental sums that always agree
with a rebuild, SQL that matches Python, and search sorted and filtered by score.

Every clinic and review here is synthetic (tests.factories).
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from directory import scores
from directory.extensions import db
from directory.models import (
    PENDING,
    PUBLISHED,
    REJECTED,
    WITHDRAWN,
    ClinicScore,
    Location,
    Review,
)
from directory.reviews import withdraw
from directory.search import SearchQuery, search
from directory.withdrawal import code_hash
from tests.factories import make_clinic, make_review
from tests.test_public_pages import Page, map_data

RESPECT_ALL = dict.fromkeys(scores.RESPECT_KEYS, 5)
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


def decide(review: Review, status: str) -> None:
    """A moderator's decision as the moderation UI makes it: status, then the score."""
    old = review.status
    review.status = status
    scores.on_review_status_change(review, old)


def published(location: Location, **answers: object) -> Review:
    review = make_review(location, **answers)
    decide(review, PUBLISHED)
    return review


def test_the_formula_shrinks_toward_the_city_mean() -> None:
    sums = dict.fromkeys(scores.SUM_COLUMNS, 0)
    for key in scores.RESPECT_KEYS:
        sums[f"{key}_sum"], sums[f"{key}_count"] = 5, 1
    means = dict.fromkeys(scores.RESPECT_KEYS, 3.0)
    # (m * C + S) / (m + n) = (5 * 3 + 5) / (5 + 1) on each question.
    assert scores.shrunk_score(sums, means) == pytest.approx(20 / 6)
    # With no answers at all a clinic sits exactly on the city's mean.
    empty = dict.fromkeys(scores.SUM_COLUMNS, 0)
    assert scores.shrunk_score(empty, dict.fromkeys(scores.RESPECT_KEYS, 4.2)) == pytest.approx(
        4.2)


def test_no_score_below_three_published_reviews(app: Flask) -> None:
    location = make_clinic()
    for _ in range(2):
        published(location, **RESPECT_ALL)
    make_review(location, status=PENDING, **RESPECT_ALL)
    db.session.flush()
    rating = scores.rating_for(location.id)
    assert rating.review_count == 2
    assert rating.score is None
    assert rating.label == "Too few reviews yet for a score"
    published(location, respect=1)
    rating = scores.rating_for(location.id)
    assert rating.review_count == 3
    assert rating.score is not None
    assert rating.label.startswith("Respect score")
    assert [s.question.key for s in rating.summaries] == [q.key for q in scores.QUESTIONS]


def test_three_glowing_reviews_rank_below_twenty_glowing_ones(app: Flask) -> None:
    steady = make_clinic("Steady", lat=40.7410, lng=-74.0010)
    new = make_clinic("Newcomer", lat=40.7411, lng=-74.0011)
    poor = make_clinic("Poor", lat=40.7409, lng=-74.0009)
    few = make_clinic("Two Reviews", lat=40.7408, lng=-74.0008)
    for _ in range(20):
        published(steady, **RESPECT_ALL)
    for _ in range(3):
        published(new, **RESPECT_ALL)
    for _ in range(10):
        published(poor, **dict.fromkeys(scores.RESPECT_KEYS, 2))
    for _ in range(2):
        published(few, **RESPECT_ALL)
    db.session.commit()
    ratings = scores.ratings_for([steady.id, new.id, poor.id, few.id])
    assert ratings[steady.id].score > ratings[new.id].score > ratings[poor.id].score
    assert ratings[few.id].score is None
    assert ratings[new.id].score < 5

    page = search(SearchQuery(near="10011", sort="score"), NOW)
    assert [h.location.name for h in page.hits] == ["Steady", "Newcomer", "Poor", "Two Reviews"]
    rated = search(SearchQuery(near="10011", rated=True), NOW)
    assert {h.location.name for h in rated.hits} == {"Steady", "Newcomer"}
    assert ("rated", "", "Well rated") in SearchQuery(rated=True).filters_in_use()
    assert SearchQuery(rated=True, sort="score").url_args() == {"rated": 1, "sort": "score"}


def test_sql_and_python_compute_the_same_score(app: Flask) -> None:
    rng = random.Random(5)  # noqa: S311 (synthetic answers, not secrets)
    for _ in range(6):
        location = make_clinic()
        for _ in range(rng.randint(0, 8)):
            answers = {k: rng.choice([None, 1, 2, 3, 4, 5]) for k in scores.SCALE_KEYS}
            published(location, **answers)
    db.session.flush()
    means = scores.city_means()
    rows = db.session.execute(sa.select(ClinicScore, scores.score_expression(means))).all()
    assert rows
    for row, sql_score in rows:
        sums = {name: getattr(row, name) for name in scores.SUM_COLUMNS}
        assert sql_score == pytest.approx(scores.shrunk_score(sums, means))


def test_kept_sums_agree_with_a_rebuild_after_random_decisions(app: Flask) -> None:
    rng = random.Random(2026)  # noqa: S311 (synthetic answers, not secrets)
    clinics = [make_clinic() for _ in range(4)]
    secret = app.config["SECRET_KEY"]
    codes: dict[int, str] = {}
    live: list[Review] = []
    for i in range(60):
        answers = {k: rng.choice([None, 1, 2, 3, 4, 5]) for k in scores.SCALE_KEYS}
        answers["asked_for_id"] = rng.choice([None, True, False])
        review = make_review(rng.choice(clinics), text=f"synthetic {i}", **answers)
        code = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(20))
        review.withdrawal_hash = code_hash(code, secret)
        codes[review.id] = code
        live.append(review)
    db.session.flush()
    for _ in range(400):
        review = rng.choice(live)
        action = WITHDRAWN if rng.random() < 0.05 else rng.choice(
            [PUBLISHED, PUBLISHED, REJECTED, PENDING])
        if action == WITHDRAWN:
            assert withdraw(codes[review.id])
            live.remove(review)
        else:
            decide(review, action)
        if rng.random() < 0.1:
            db.session.commit()
    db.session.commit()
    assert 5 < len(live) < 60
    assert scores.kept_sums() == scores.computed_sums()
    report = scores.rebuild()
    assert report.differed == []
    assert report.clinics == len({r.location_id for r in live if r.status == PUBLISHED})


def test_rebuild_finds_and_repairs_drift_and_the_command_says_so(app: Flask) -> None:
    location = make_clinic()
    for _ in range(3):
        published(location, **RESPECT_ALL)
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["scores", "rebuild", "--check"])
    assert result.exit_code == 0, result.output
    assert "every kept sum agreed" in result.output

    db.session.execute(sa.update(ClinicScore).values(respect_sum=ClinicScore.respect_sum + 7))
    db.session.commit()
    result = runner.invoke(args=["scores", "rebuild", "--check"])
    assert result.exit_code == 1
    assert str(location.id) in result.output
    result = runner.invoke(args=["scores", "rebuild"])
    assert result.exit_code == 0
    db.session.expire_all()
    assert scores.kept_sums() == scores.computed_sums()
    assert runner.invoke(args=["scores", "rebuild", "--check"]).exit_code == 0


def _statements_for_one_decision(app: Flask, review: Review) -> int:
    db.session.flush()
    seen: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        old = review.status
        review.status = PUBLISHED
        db.session.flush()  # the review's own UPDATE is the caller's, not the score's
        seen.clear()
        scores.on_review_status_change(review, old)
        db.session.flush()
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert not any("FROM review" in s for s in seen), seen
    return len(seen)


def test_one_score_update_costs_the_same_few_statements_whatever_the_citys_size(
    app: Flask
) -> None:
    location = make_clinic()
    small = _statements_for_one_decision(app, make_review(location, **RESPECT_ALL))
    others = make_clinic()
    db.session.execute(sa.insert(Review), [
        {"location_id": others.id, "status": PUBLISHED, "received_month": date(2026, 11, 1),
         "respect": 4} for _ in range(2000)])
    big = _statements_for_one_decision(app, make_review(location, **RESPECT_ALL))
    assert small == big <= 2


def test_scores_show_in_the_list_the_map_and_on_the_clinic_page(
    client: FlaskClient, app: Flask
) -> None:
    location = make_clinic("Scored Clinic", lat=40.7410, lng=-74.0010)
    for _ in range(3):
        published(location, **RESPECT_ALL, asked_for_id=False)
    make_clinic("Unreviewed Clinic", lat=40.7411, lng=-74.0011)
    db.session.commit()
    page = Page(client.get("/clinics?near=10011&sort=score").get_data(as_text=True))
    assert "Respect score 5.0 of 5 · 3 reviews" in page.text
    assert "Not reviewed yet" in page.text
    pins = map_data(page)["clinics"]  # type: ignore[index]
    assert pins[0]["score"] == "Respect score 5.0 of 5 · 3 reviews"  # type: ignore[index]
    assert pins[1]["score"] == "Not reviewed yet"  # type: ignore[index]
    well = Page(client.get("/clinics?near=10011&rated=1").get_data(as_text=True))
    assert "Scored Clinic" in well.text
    assert "Unreviewed Clinic" not in well.text
    assert "Well rated" in well.text  # the filter chip, removable
    bad = client.get("/clinics?near=10011&sort=sideways")
    assert bad.status_code == 400
    assert "order asked for" in bad.get_data(as_text=True)
    clinic = Page(client.get(f"/clinics/{location.slug}").get_data(as_text=True))
    assert "Respect score 5.0 of 5 from 3 reviews" in clinic.text
    assert "Asked for ID, insurance or proof of income: 0% said yes (3 answers)" in clinic.text
    assert "Could be open about work: 5.0 of 5 (3 answers)" in clinic.text
