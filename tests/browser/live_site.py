"""A live directory for the accessibility and slow-phone tests: synthetic clinics with
hours, published reviews and a moderator, served on 127.0.0.1.

Every clinic, review and account here is synthetic and lives only in a scratch SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from directory import create_app
from directory.config import PROJECT_ROOT, Settings
from directory.extensions import db
from directory.models import PUBLISHED, Neighbourhood
from tests.browser.conftest import serve
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import CHEAP_ARGON2, PASSWORD, make_moderator

# Weekday hours, 9 am to 5 pm, and late on Thursdays (minutes after midnight).
HOURS = {day: [(9 * 60, 17 * 60)] for day in ("MO", "TU", "WE", "FR")} | {
    "TH": [(9 * 60, 20 * 60)], "SA": [(0, 0)],
}
MAIN = "Synthetic Access Clinic"
ZIP_SEARCH = "/clinics?near=10011"
MODERATOR = "synthetic-a11y-mod"


@dataclass(frozen=True)
class LiveSite:
    """The live directory: its base URL, seeded clinic slugs and a moderator's secret."""

    url: str
    neutral: str
    slugs: dict[str, str]
    totp_secret: str
    app: Flask

    def clinic(self, name: str = MAIN) -> str:
        """The path of a seeded clinic's page."""
        return f"/clinics/{self.slugs[name]}"


def add_neighbourhoods() -> None:
    """The real neighbourhood names (public NTA 2020 data), for the search suggestions."""
    from directory.importer import load_neighbourhoods

    index = load_neighbourhoods(PROJECT_ROOT / "data" / "raw" / "nyc_nta2020.geojson")
    db.session.add_all(Neighbourhood(code=h.code, name=h.name, borough=h.borough,
                                     latitude=h.latitude, longitude=h.longitude)
                       for h in (index.hoods[i] for i in index.kept))


def seed(busy: bool = False) -> tuple[dict[str, str], str]:
    """Clinics near ZIP 10011 (one with hours, transit and reviews) and a moderator.

    busy: a full page of results (25 clinics) and every neighbourhood name, so pages weigh
    what they weigh with the real directory.
    """
    main = make_clinic(MAIN, lat=40.7425, lng=-73.9985, services=("hiv_testing", "prep"),
                       languages=("es", "zh", "en"), cost={"free": True},
                       documents={"id": False, "insurance": False}, walk_in=True,
                       hours=HOURS)
    main.transit = "Synthetic: subway to 14 St, then two blocks west."
    others = [
        make_clinic(f"Synthetic Nearby Clinic {n}", lat=40.7402 + n / 500,
                    lng=-73.9996 - n / 700, languages=("es",), cost={"free": n % 2 == 0})
        for n in range(1, 26 if busy else 6)
    ]
    if busy:
        add_neighbourhoods()
    for answer in (5, 4, 5, 4):
        make_review(main, status=PUBLISHED, respect=answer, open_about_work=answer,
                    privacy=answer, gender_respected=answer, asked_for_id=False,
                    text="Synthetic review: staff were kind and did not lecture.")
    moderator = make_moderator(MODERATOR)
    # The score's running sums follow moderation decisions; seeded rows need a rebuild.
    from directory import scores

    scores.rebuild()
    db.session.commit()
    slugs = {loc.name: loc.slug for loc in [main, *others]}
    return slugs, moderator.totp_secret


def settings_for(database: Path, neutral: str, **extra: object) -> Settings:
    """Test settings for a live server: no tile server, no rate limits, fast review forms."""
    return Settings(
        env="testing",
        secret_key="browser-test-secret-not-for-production",
        database_url=f"sqlite:///{database}",
        map_tiles_url="",
        quick_exit_url=f"{neutral}/",
        testing=True,
        extra={"RATELIMIT_ENABLED": False, "REVIEW_MIN_SECONDS": 0, **CHEAP_ARGON2, **extra},
    )


@contextmanager
def live_site(database: Path, neutral: str, busy: bool = False,
              **extra: object) -> Iterator[LiveSite]:
    """The seeded app served on a free port of 127.0.0.1 for as long as the block lasts."""
    app = create_app(settings_for(database, neutral, **extra))
    with app.app_context():
        db.create_all()
        slugs, secret = seed(busy)
        db.session.remove()
    try:
        with serve(app) as url:
            yield LiveSite(url, neutral, slugs, secret, app)
    finally:
        with app.app_context():
            db.drop_all()
            db.engine.dispose()


__all__ = ["HOURS", "MAIN", "MODERATOR", "PASSWORD", "ZIP_SEARCH", "LiveSite", "live_site"]
