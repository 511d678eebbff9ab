"""Withdrawal codes: a real word list, enough entropy, forgiving input, keyed hashes only,
and a withdrawal that deletes the answers for good and updates the score.

Reviews here are synthetic (tests.factories).
"""

from __future__ import annotations

import math
import re
from importlib.resources import files

from flask import Flask

from directory import scores, withdrawal
from directory.extensions import db
from directory.models import PENDING, PUBLISHED, REJECTED, WITHDRAWN, ClinicScore
from directory.reviews import withdraw
from tests.factories import make_clinic, make_review

ANSWERS = {"respect": 5, "open_about_work": 4, "privacy": 5, "gender_respected": 3,
           "cost_affordable": 2, "would_recommend": 5, "asked_for_id": True}


def test_the_word_list_is_the_eff_long_list_shipped_by_xkcdpass() -> None:
    shipped = files("xkcdpass").joinpath("static/eff-long").read_text().split()
    assert len(shipped) == 7776
    words = withdrawal.word_list()
    # "yo-yo" and "yoyo" are one word once hyphens are ignored.
    assert len(words) == 7775
    assert set(words) <= set(shipped)
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)?", w) for w in words)
    letters = {withdrawal.normalise(w) for w in words}
    assert len(letters) == len(words)
    # No word begins another, so the letters of a code spell one sequence of words only.
    assert not [w for w in letters if any(w[:i] in letters for i in range(1, len(w)))]


def test_a_code_is_six_random_words_worth_over_64_bits() -> None:
    words = set(withdrawal.word_list())
    codes = [withdrawal.new_code() for _ in range(200)]
    assert len(set(codes)) == 200
    for code in codes:
        parts = code.split(" ")
        assert len(parts) == withdrawal.WORDS_PER_CODE
        assert set(parts) <= words
    bits = withdrawal.WORDS_PER_CODE * math.log2(len(words))
    assert bits > 77


def test_case_spaces_and_hyphens_do_not_matter_but_the_key_does() -> None:
    code = "abacus t-shirt ablaze Yoyo drop-down zoom"
    variants = [code, code.upper(), "abacus-tshirt-ablaze-yoyo-dropdown-zoom",
                "  Abacus  T Shirt ablaze, yo-yo. drop down ZOOM\n"]
    hashes = {withdrawal.code_hash(v, "secret-one") for v in variants}
    assert len(hashes) == 1
    digest = hashes.pop()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert "abacus" not in digest
    assert withdrawal.code_hash(code, "secret-two") != digest
    assert withdrawal.code_hash("abacus tshirt ablaze yoyo dropdown zoo", "secret-one") != digest


def _review_with_code(app: Flask, status: str, code: str):  # type: ignore[no-untyped-def]
    location = make_clinic()
    review = make_review(location, status=PENDING, text="words", service_code="prep",
                         **ANSWERS)
    review.withdrawal_hash = withdrawal.code_hash(code, app.config["SECRET_KEY"])
    if status != PENDING:
        old = review.status
        review.status = status
        scores.on_review_status_change(review, old)
    db.session.commit()
    return review


def test_withdrawing_deletes_every_answer_and_the_text_for_good(app: Flask) -> None:
    for status in (PENDING, PUBLISHED, REJECTED):
        code = withdrawal.new_code()
        review = _review_with_code(app, status, code)
        assert withdraw(code.upper())
        db.session.commit()
        db.session.refresh(review)
        assert review.status == WITHDRAWN
        for key in (*ANSWERS, "text", "service_code", "visit_month", "withdrawal_hash",
                    "reject_reason"):
            assert getattr(review, key) is None, key
        # Month received and clinic stay, so audit entries about it still make sense.
        assert review.received_month.day == 1
        assert not withdraw(code)


def test_withdrawing_a_published_review_takes_it_out_of_the_score(app: Flask) -> None:
    code = withdrawal.new_code()
    review = _review_with_code(app, PUBLISHED, code)
    row = db.session.get(ClinicScore, review.location_id)
    assert (row.review_count, row.respect_sum, row.asked_for_id_yes) == (1, 5, 1)
    assert withdraw(code)
    db.session.commit()
    db.session.refresh(row)
    assert (row.review_count, row.respect_sum, row.respect_count, row.asked_for_id_yes) == (
        0, 0, 0, 0)
    assert scores.kept_sums() == scores.computed_sums() == {}


def test_an_unknown_code_changes_nothing(app: Flask) -> None:
    review = _review_with_code(app, PUBLISHED, withdrawal.new_code())
    before = scores.kept_sums()
    for wrong in (withdrawal.new_code(), "", "   ", "x" * 500, "<script>"):
        assert not withdraw(wrong)
    db.session.refresh(review)
    assert review.status == PUBLISHED
    assert scores.kept_sums() == before
