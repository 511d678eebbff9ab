"""Opening hours: reading the sources' text and answering "open now?" in New York time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from directory import hours
from directory.extensions import db
from directory.hours import Interval, is_open, parse_day
from directory.models import Schedule
from directory.search import SearchQuery, search
from tests.factories import make_clinic


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9:00 AM - 5:00 PM", [Interval(540, 1020)]),
        ("9am-5pm", [Interval(540, 1020)]),
        ("8: 30 AM - 5:00 PM", [Interval(510, 1020)]),
        ("9:00AM - 5:00PM", [Interval(540, 1020)]),
        ("9-5pm", [Interval(540, 1020)]),
        ("11-1pm", [Interval(660, 780)]),
        ("10:00 AM - 12:00 PM, 1:00 PM - 4:00 PM", [Interval(600, 720), Interval(780, 960)]),
        ("10pm - 6am", [Interval(1320, 360)]),
        ("6pm - 12am", [Interval(1080, 1440)]),
        ("24 Hours", [Interval(0, 1440)]),
        ("24 Hrs", [Interval(0, 1440)]),
        ("CLOSED", []),
        ("CLSOED", []),
        ("", None),
    ],
)
def test_source_hours_text_is_read(text: str, expected: list[Interval] | None) -> None:
    assert parse_day(text) == expected


@pytest.mark.parametrize("text", ["OPEN DURING SCHOOL HOURS", "by appointment", "25:00-26:00"])
def test_unreadable_hours_are_refused_not_guessed(text: str) -> None:
    with pytest.raises(hours.HoursNotUnderstood):
        parse_day(text)


def _ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=hours.NEW_YORK)


WEEKDAY_9_TO_5 = [(d, 540, 1020) for d in ("MO", "TU", "WE", "TH", "FR")]


def test_open_now_uses_new_york_time_whatever_the_servers_zone() -> None:
    # Wednesday 2026-11-25 at 16:30 in New York is 21:30 UTC and 06:30 Thursday in Tokyo.
    instant = _ny(2026, 11, 25, 16, 30)
    assert is_open(WEEKDAY_9_TO_5, instant)
    assert is_open(WEEKDAY_9_TO_5, instant.astimezone(UTC))
    assert is_open(WEEKDAY_9_TO_5, instant.astimezone(timezone(timedelta(hours=9))))
    assert not is_open(WEEKDAY_9_TO_5, _ny(2026, 11, 25, 17, 0))  # closing minute is closed
    assert not is_open(WEEKDAY_9_TO_5, _ny(2026, 11, 28, 12))  # Saturday


def test_hours_past_midnight_count_on_the_next_morning() -> None:
    friday_night = [("FR", 22 * 60, 4 * 60)]
    assert is_open(friday_night, _ny(2026, 11, 27, 23))  # Friday 11 pm
    assert is_open(friday_night, _ny(2026, 11, 28, 3, 59))  # Saturday 3:59 am
    assert not is_open(friday_night, _ny(2026, 11, 28, 4))
    assert not is_open(friday_night, _ny(2026, 11, 27, 3))  # Friday early morning


def test_daylight_saving_change_days() -> None:
    sunday = [("SU", 9 * 60, 17 * 60)]
    # 2026-03-08: clocks go forward at 2 am. 13:30 UTC is 9:30 EDT (open), not 8:30 EST.
    assert is_open(sunday, datetime(2026, 3, 8, 13, 30, tzinfo=UTC))
    # 2026-11-01: clocks go back. 13:30 UTC is 8:30 EST (closed), not 9:30 EDT.
    assert not is_open(sunday, datetime(2026, 11, 1, 13, 30, tzinfo=UTC))
    assert is_open(sunday, datetime(2026, 11, 1, 14, 30, tzinfo=UTC))


def test_a_closed_day_is_never_open() -> None:
    assert not is_open([("SA", 0, 0)], _ny(2026, 11, 28, 0, 30))
    assert not is_open([("SA", 0, 0)], _ny(2026, 11, 28, 12))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (_ny(2026, 11, 27, 23), {"night", "allday"}),  # Friday 11 pm
        (_ny(2026, 11, 28, 2), {"night", "allday"}),  # Saturday 2 am, Friday hours
        (_ny(2026, 11, 28, 12), {"allday"}),  # Saturday noon: night clinic shut, day closed
        (_ny(2026, 11, 25, 10), {"day", "allday"}),  # Wednesday morning
    ],
)
def test_sql_open_now_agrees_with_python(app, when: datetime, expected: set[str]) -> None:
    make_clinic("day", hours={d: [(540, 1020)] for d in ("MO", "TU", "WE", "TH", "FR")} | {
        "SA": [(0, 0)]})
    make_clinic("night", hours={"FR": [(22 * 60, 4 * 60)]})
    make_clinic("allday", hours={d: [(0, 1440)] for d in hours.DAYS})
    found = {hit.location.name for hit in search(SearchQuery(hours=("open_now",)), when).hits}
    assert found == expected
    rows = db.session.execute(db.select(Schedule)).scalars().all()
    by_clinic: dict[str, list[tuple[str, int, int]]] = {}
    for row in rows:
        by_clinic.setdefault(row.service_at_location.location.name, []).append(
            (row.byday, row.opens_minute, row.closes_minute))
    assert {name for name, sched in by_clinic.items() if is_open(sched, when)} == expected


def test_evening_and_weekend_filters(app) -> None:
    now = _ny(2026, 11, 25, 10)
    make_clinic("late", hours={"TU": [(12 * 60, 20 * 60)]})
    make_clinic("early", hours={"TU": [(8 * 60, 16 * 60)], "SA": [(0, 0)], "SU": [(0, 0)]})
    make_clinic("saturday", hours={"SA": [(10 * 60, 14 * 60)]})
    evening = {h.location.name for h in search(SearchQuery(hours=("evening",)), now).hits}
    weekend = {h.location.name for h in search(SearchQuery(hours=("weekend",)), now).hits}
    assert evening == {"late"}
    assert weekend == {"saturday"}


def test_times_read_as_people_write_them() -> None:
    assert hours.format_interval(540, 1020) == "9:00 AM – 5:00 PM"
    assert hours.format_interval(0, 1440) == "open 24 hours"
    assert hours.format_minute(720) == "noon"
