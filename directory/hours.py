"""Opening hours: reading the sources' free text, and asking "is it open?" in New York time.

Every hour fact is a weekly schedule row in local wall-clock minutes (0-1440), so "open
now" must first turn the current instant into New York's local day and minute, whatever
the server's own time zone, and across daylight-saving changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from directory.i18n import N_
from directory.models import Schedule

NEW_YORK = ZoneInfo("America/New_York")
DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# English names, marked for the catalogs: pages translate them when shown (i18n.tr).
DAY_NAMES = dict(zip(DAYS, (N_("Monday"), N_("Tuesday"), N_("Wednesday"), N_("Thursday"),
                            N_("Friday"), N_("Saturday"), N_("Sunday")), strict=True))
WEEKEND = ("SA", "SU")
EVENING_MINUTE = 17 * 60
MIDNIGHT = 24 * 60

_CLOSED_WORDS = re.compile(r"^\s*(closed|clsoed|close|none|n/?a)\s*\.?\s*$", re.I)
_ALL_DAY = re.compile(r"^\s*(24\s*(hours?|hrs?)|open 24 hours)\s*\.?\s*$", re.I)
_TIME = r"(\d{1,2})(?:\s*:\s*(\d{2}))?\s*(a\.?m\.?|p\.?m\.?|noon)?"
_RANGE = re.compile(_TIME + r"\s*(?:-|–|to)\s*" + _TIME, re.I)


@dataclass(frozen=True)
class Interval:
    """One opening interval in local minutes; closes < opens means it runs past midnight."""

    opens: int
    closes: int


class HoursNotUnderstood(ValueError):
    """The source's text does not read as hours; keep it as text, do not guess."""


def _minute(hour: str, minute: str | None, meridiem: str | None) -> int:
    h, m = int(hour), int(minute or 0)
    mer = (meridiem or "").lower().replace(".", "")
    if mer == "noon":
        h, mer = 12, "pm"
    if h > 24 or m > 59 or (mer and not 1 <= h <= 12):
        raise HoursNotUnderstood(f"{hour}:{minute} {meridiem}")
    if mer == "pm" and h != 12:
        h += 12
    elif mer == "am" and h == 12:
        h = 0
    return h * 60 + m


def parse_day(text: str) -> list[Interval] | None:
    """Read one day's hours ("9:00 AM - 5:00 PM", "9am-5pm", "CLOSED", "24 Hrs").

    Returns the intervals, an empty list for a day the source says is closed, or None
    when the source says nothing. Raises HoursNotUnderstood for text we cannot read.
    """
    text = (text or "").strip()
    if not text:
        return None
    if _CLOSED_WORDS.match(text):
        return []
    if _ALL_DAY.match(text):
        return [Interval(0, MIDNIGHT)]
    intervals: list[Interval] = []
    for part in re.split(r"[,;&]|\band\b", text):
        if not part.strip():
            continue
        found = _RANGE.search(part)
        if not found:
            raise HoursNotUnderstood(text)
        h1, m1, mer1, h2, m2, mer2 = found.groups()
        # "9-5pm": a missing first meridiem follows the second unless that would
        # put the opening after the closing ("11-1pm" is 11 am to 1 pm).
        if not mer1 and mer2:
            mer1 = mer2
            if _minute(h1, m1, mer1) >= _minute(h2, m2, mer2) and mer2.lower().startswith("p"):
                mer1 = "am"
        opens, closes = _minute(h1, m1, mer1), _minute(h2, m2, mer2)
        if closes == 0:
            closes = MIDNIGHT
        if opens == closes:
            raise HoursNotUnderstood(text)
        intervals.append(Interval(opens, closes))
    return intervals


def local_day_and_minute(when: datetime) -> tuple[str, str, int]:
    """Today's and yesterday's day codes and the minute of the day, in New York."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(NEW_YORK)
    index = local.weekday()
    return DAYS[index], DAYS[index - 1], local.hour * 60 + local.minute


def is_open(schedules: Iterable[tuple[str, int, int]], when: datetime) -> bool:
    """Whether weekly hours (byday, opens, closes) are open at the instant `when`."""
    today, yesterday, minute = local_day_and_minute(when)
    for byday, opens, closes in schedules:
        overnight = closes < opens
        if byday == today and opens <= minute and (overnight or minute < closes):
            return True
        if byday == yesterday and overnight and minute < closes:
            return True
    return False


def open_at_clause(when: datetime) -> ColumnElement[bool]:
    """SQL condition on Schedule rows that are open at `when`: the SQL twin of is_open."""
    today, yesterday, minute = local_day_and_minute(when)
    overnight = Schedule.closes_minute < Schedule.opens_minute
    return or_(
        and_(
            Schedule.byday == today,
            Schedule.opens_minute <= minute,
            or_(overnight, Schedule.closes_minute > minute),
        ),
        and_(Schedule.byday == yesterday, overnight, Schedule.closes_minute > minute),
    )


def evening_clause() -> ColumnElement[bool]:
    """SQL condition on Schedule rows open at some time after 5 pm."""
    return or_(
        Schedule.closes_minute > EVENING_MINUTE,
        Schedule.closes_minute < Schedule.opens_minute,
    )


def weekend_clause() -> ColumnElement[bool]:
    """SQL condition on Schedule rows for Saturday or Sunday."""
    return and_(Schedule.byday.in_(WEEKEND), Schedule.opens_minute != Schedule.closes_minute)


def format_minute(minute: int) -> str:
    """Minutes after midnight as a clock time people read ("9:30 AM", "midnight")."""
    if minute in (0, MIDNIGHT):
        return "midnight"
    if minute == 12 * 60:
        return "noon"
    hour, mins = divmod(minute, 60)
    suffix = "AM" if hour < 12 else "PM"
    hour = hour % 12 or 12
    return f"{hour}:{mins:02d} {suffix}"


def format_interval(opens: int, closes: int) -> str:
    """An interval as text ("9:00 AM – 5:00 PM", "open 24 hours")."""
    if opens == 0 and closes == MIDNIGHT:
        return "open 24 hours"
    return f"{format_minute(opens)} – {format_minute(closes)}"
