"""Which language a page is shown in: English, Spanish or Simplified Chinese.

Clinic data stays as published; the site's own words are translated.
"""

from __future__ import annotations

from flask import request

SUPPORTED = ("en", "es", "zh")


def select_locale() -> str:
    """The best supported language for this request, from the browser's preferences."""
    return request.accept_languages.best_match(SUPPORTED) or "en"
