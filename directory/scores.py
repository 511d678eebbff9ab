"""The "no stink-eye" score: kept in step with every review decision.

(Interface only for now; the implementation lands with "Share experience".)
"""

from __future__ import annotations

from directory.models import Review

MIN_REVIEWS = 3


def on_review_status_change(review: Review, old_status: str) -> None:
    """Update the clinic's running sums after a review's status changed; never commits."""
