"""Which language a page is shown in: English, Spanish or Simplified Chinese.

The site's own words are translated (gettext catalogs in translations/); clinic data stays
as published. The language comes from the `ui_lang` cookie, set by the visible switch on
every page, and otherwise from the browser's Accept-Language. It is never in the URL, so a
shared link opens in the reader's own language.

Distances are in miles, and short ones also in New York blocks: about 20 "short" blocks
(north-south, between streets) make a mile in Manhattan, so 1 block is 0.05 mi. Long
avenue blocks are three to four times longer; "about N blocks" is a rough guide, said only
up to half a mile, where it helps most.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from babel.dates import format_skeleton
from flask import Blueprint, Flask, current_app, has_request_context, redirect, request
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, get_locale, gettext, ngettext

SUPPORTED = ("en", "es", "zh")
# The switch names each language in itself, so a reader finds their own.
NAMES = {"en": "English", "es": "Español", "zh": "简体中文"}
# BCP 47 tags for <html lang> and hreflang: the catalogs are Simplified Chinese.
HTML_LANG = {"en": "en", "es": "es", "zh": "zh-Hans"}
COOKIE = "ui_lang"
# Long enough to be remembered between visits; the cookie holds only "en", "es" or "zh".
COOKIE_MAX_AGE = 180 * 24 * 3600
NEXT_MAX = 2000
BLOCKS_PER_MILE = 20
BLOCKS_UP_TO_MILES = 0.5

bp = Blueprint("i18n", __name__)


def N_(text: str) -> str:  # noqa: N802 (gettext's conventional name for "mark only")
    """Mark a string for the catalogs without translating it here.

    For labels defined at import time that stay English as data (taxonomy labels go to the
    partner API and HSDS exports as they are); pages translate them when shown (`tr`).
    """
    return text


def select_locale() -> str:
    """The language for this request: the switch's cookie, else the browser's preferences."""
    if not has_request_context():
        return "en"  # commands and background work speak English
    chosen = request.cookies.get(COOKIE, "")
    if chosen in SUPPORTED:
        return chosen
    return request.accept_languages.best_match(SUPPORTED) or "en"


def current_language() -> str:
    """This page's language as a BCP 47 tag, for <html lang>."""
    return HTML_LANG.get(str(get_locale() or "en").split("_")[0], "en")


def current_code() -> str:
    """This page's language as one of SUPPORTED."""
    code = str(get_locale() or "en").split("_")[0]
    return code if code in SUPPORTED else "en"


def safe_next(target: str | None) -> str:
    """A same-site path to go back to, or "/": never another host or scheme."""
    target = (target or "").strip()
    if (not target.startswith("/") or target.startswith(("//", "/\\"))
            or len(target) > NEXT_MAX
            # Our own links never hold raw whitespace or control characters; "/ /evil.example"
            # is junk at best, and browsers are lenient with what they strip.
            or any(ord(ch) < 32 or ord(ch) == 127 or ch.isspace() for ch in target)):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def here() -> str:
    """This page's path and query, for the switch to come back to."""
    query = request.query_string.decode("utf-8", "replace")
    return request.path + (f"?{query}" if query else "")


@bp.get("/language/<code>")
def choose(code: str) -> ResponseReturnValue:
    """Remember a language in a cookie and go back to the page the switch was on."""
    response = redirect(safe_next(request.args.get("next")), 303)
    if code in SUPPORTED:
        response.set_cookie(
            COOKIE, code, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax",
            secure=current_app.config.get("SESSION_COOKIE_SECURE", False), path="/",
        )
    return response


def format_distance(miles: float | None) -> str:
    """A distance in miles, in local number form ("0.4 mi", "0,4 mi"); "" with no origin."""
    if miles is None:
        return ""
    if miles < 0.1:
        return str(gettext("under %(miles)s mi", miles=format_decimal(0.1, "0.0")))
    return str(gettext("%(miles)s mi", miles=format_decimal(miles, "0.0")))


def format_blocks(miles: float | None) -> str:
    """Short distances also in New York blocks ("about 8 blocks"); "" past half a mile."""
    if miles is None or miles > BLOCKS_UP_TO_MILES:
        return ""
    blocks = max(1, round(miles * BLOCKS_PER_MILE))
    return str(ngettext("about %(num)d block", "about %(num)d blocks", blocks))


def format_month(day: date | None) -> str:
    """A date to the month only, in the page's language: "November 2018",
    "noviembre de 2018", "2018年11月"."""
    if day is None:
        return str(gettext("date not known"))
    return str(format_skeleton("yMMMM", day, locale=get_locale() or "en"))


def translate_label(text: object) -> str:
    """A label marked with N_ in the page's language; any other text comes back as it is.

    Returns a plain string, so the template still escapes it: labels can fall back to
    published data (a service name no code covers), which must never become markup.
    """
    if not isinstance(text, str) or not text:
        return "" if text is None else str(text)
    return str(gettext(text))


def format_one_decimal(value: float | None) -> str:
    """A score like 4.5 in local number form ("4.5", "4,5")."""
    return "" if value is None else str(format_decimal(value, "0.0"))


def format_number(value: int) -> str:
    """A whole number in local form ("1,000", "1.000")."""
    return str(format_decimal(value, "#,##0"))


def _clock(minute: int) -> str:
    """Minutes after midnight on a 24-hour clock ("9:00", "17:30", "24:00")."""
    hour, mins = divmod(minute, 60)
    return f"{hour}:{mins:02d}"


def format_span(opens: int, closes: int) -> str:
    """Opening hours in the page's language: English keeps "9:00 AM – 5:00 PM" as the
    sources write it; Spanish and Chinese readers expect a 24-hour clock ("9:00–17:00")."""
    from directory.hours import MIDNIGHT, format_interval

    if opens == 0 and closes == MIDNIGHT:
        return str(gettext("open 24 hours"))
    if current_code() == "en":
        return format_interval(opens, closes)
    return f"{_clock(opens)}–{_clock(closes)}"


def format_day_hours(day: object) -> str:
    """A day's intervals (search.DayHours) joined, each in local form."""
    spans = getattr(day, "spans", None)
    if not spans:
        return ", ".join(getattr(day, "intervals", []))
    return ", ".join(format_span(opens, closes) for opens, closes in spans)


def register_i18n(app: Flask) -> None:
    """The language switch's route and the template helpers every page uses."""
    app.register_blueprint(bp)
    app.jinja_env.globals.update(
        current_language=current_language, current_code=current_code, here=here,
        language_names=NAMES, html_lang=HTML_LANG,
    )
    app.jinja_env.filters.update(
        tr=translate_label, decimal1=format_one_decimal, number=format_number,
        day_hours=format_day_hours,
    )
