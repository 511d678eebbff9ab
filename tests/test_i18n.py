"""English, Spanish and Simplified Chinese: complete catalogs, a remembered switch that
keeps URLs shareable, local dates and distances; clinic data stays as published.

Every clinic here is synthetic (tests.factories).
"""

from __future__ import annotations

import gettext as stdlib_gettext
import re
from datetime import date
from pathlib import Path

import flask_babel
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask, g
from flask.testing import FlaskClient

from directory import i18n
from directory.config import PROJECT_ROOT
from directory.extensions import db
from tests.factories import make_clinic

TRANSLATIONS = PROJECT_ROOT / "translations"
LANGUAGES = ("es", "zh")
KEYWORDS = {"_": None, "_l": None, "gettext": None, "ngettext": (1, 2), "N_": None,
            "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|\{[a-z]+\}")


def extracted_messages() -> dict[str, tuple[str, ...]]:
    """Every message the code and public templates use today, freshly extracted."""
    with open(PROJECT_ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found: dict[str, tuple[str, ...]] = {}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(PROJECT_ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        ids = message if isinstance(message, tuple) else (message,)
        found[ids[0]] = tuple(i for i in ids if i)
    return found


@pytest.fixture(scope="module")
def messages() -> dict[str, tuple[str, ...]]:
    """The extracted messages, once for this module."""
    return extracted_messages()


def catalog(code: str):  # type: ignore[no-untyped-def]
    """The committed .po catalog of a language."""
    with open(TRANSLATIONS / code / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=code)


def fresh(client: FlaskClient) -> FlaskClient:
    """Forget the language cached for the test's app context, as a new request would."""
    flask_babel.refresh()
    g.pop("csrf_token", None)
    return client


def text_of(html: str) -> str:
    """A page's visible text, roughly: tags dropped, spaces collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- The catalogs ---------------------------------------------------------------------


def test_there_are_messages_to_translate(messages: dict[str, tuple[str, ...]]) -> None:
    assert len(messages) > 300
    # Labels defined at import time are marked with N_ and so are found too.
    assert {"STI testing", "Monday", "Did you feel your privacy was protected?"} <= set(messages)


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_message_has_a_translation_that_is_not_fuzzy_or_empty(
    code: str, messages: dict[str, tuple[str, ...]]
) -> None:
    translated = {(m.id[0] if isinstance(m.id, tuple) else m.id): m
                  for m in catalog(code) if m.id}
    missing = sorted(set(messages) - set(translated))
    assert not missing, f"{code}: not in the catalog (run pybabel extract/update): {missing}"
    problems = []
    for msgid in messages:
        entry = translated[msgid]
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(strings):
            problems.append(f"{msgid!r}: {'fuzzy' if entry.fuzzy else 'empty'}")
            continue
        # Every placeholder the English fills must be filled in the translation too.
        wanted = set(PLACEHOLDER.findall(" ".join(messages[msgid])))
        for string in strings:
            if set(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"{msgid!r}: placeholders differ in {string!r}")
    assert not problems, f"{code}:\n" + "\n".join(problems)


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_compiled_catalog_matches_the_po_file(code: str) -> None:
    with open(TRANSLATIONS / code / "LC_MESSAGES" / "messages.mo", "rb") as mo:
        compiled = stdlib_gettext.GNUTranslations(mo)
    for entry in catalog(code):
        if not entry.id or entry.fuzzy:
            continue
        if isinstance(entry.id, tuple):
            assert compiled.ngettext(entry.id[0], entry.id[1], 1) == entry.string[0]
        else:
            assert compiled.gettext(entry.id) == entry.string, (
                f"{code}: messages.mo is older than messages.po: run pybabel compile")


def test_html_in_translations_keeps_the_tags_of_the_english(
    messages: dict[str, tuple[str, ...]]
) -> None:
    tags = re.compile(r"</?[a-z]+>")
    for code in LANGUAGES:
        for entry in catalog(code):
            if entry.id and isinstance(entry.id, str) and "<" in entry.id:
                assert sorted(tags.findall(entry.id)) == sorted(tags.findall(entry.string)), (
                    code, entry.id)


# --- Choosing the language --------------------------------------------------------------


def test_the_browser_language_is_used_when_nothing_was_chosen(client: FlaskClient) -> None:
    html = fresh(client).get("/", headers={"Accept-Language": "es-US,es;q=0.9"}).get_data(
        as_text=True)
    assert '<html lang="es">' in html
    assert "Encuentra una clínica que te trate con respeto" in html
    html = fresh(client).get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(
        as_text=True)
    assert '<html lang="zh-Hans">' in html
    assert "找到一家尊重你的诊所" in html
    html = fresh(client).get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="en">' in html


def test_the_switch_remembers_a_choice_in_a_cookie_and_returns_to_the_same_page(
    client: FlaskClient
) -> None:
    response = fresh(client).get("/language/zh?next=/clinics%3Fnear%3D10011%26cost%3Dfree")
    assert response.status_code == 303
    assert response.location == "/clinics?near=10011&cost=free"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("ui_lang=zh;")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Max-Age=" in cookie
    # The cookie wins over the browser's language; the URL itself names no language.
    page = fresh(client).get("/clinics?near=10011&cost=free",
                             headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page
    assert "附近的诊所" in page
    assert "lang=zh" not in page
    assert "/zh/" not in page


@pytest.mark.parametrize("target", [
    "//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)",
    "evil", "", "/ok\r\nSet-Cookie: x=1", "/" + "a" * 3000,
])
def test_the_switch_never_sends_anyone_to_another_site(client: FlaskClient, target: str) -> None:
    response = fresh(client).get("/language/es", query_string={"next": target})
    assert response.status_code == 303
    assert response.location == "/"


def test_an_unknown_language_sets_nothing(client: FlaskClient) -> None:
    response = fresh(client).get("/language/fr?next=/about")
    assert response.location == "/about"
    assert "Set-Cookie" not in response.headers
    assert i18n.safe_next("/clinics?near=10011") == "/clinics?near=10011"


def test_every_public_page_has_the_switch_pointing_back_to_itself(client: FlaskClient) -> None:
    slug = make_clinic("Synthetic Switch Clinic").slug
    db.session.commit()
    for path in ("/", "/clinics?near=10011", f"/clinics/{slug}", f"/clinics/{slug}/review",
                 f"/clinics/{slug}/reviews", "/about", "/safety", "/reviews/withdraw",
                 "/no-such-page"):
        html = fresh(client).get(path).get_data(as_text=True)
        switch = re.search(r'<nav class="language-switch"[^>]*>(.*?)</nav>', html, re.S)
        assert switch, path
        links = re.findall(r'href="(/language/(\w+)\?next=[^"]*)" lang="([^"]+)"',
                           switch.group(1))
        assert [(code, lang) for _, code, lang in links] == [
            ("en", "en"), ("es", "es"), ("zh", "zh-Hans")], path
        assert 'aria-current="true">English<' in switch.group(1), path


# --- What gets translated, and what does not ------------------------------------------


def test_filters_services_and_review_questions_are_translated_clinic_data_is_not(
    client: FlaskClient
) -> None:
    clinic = make_clinic("Synthetic Clínica Name Stays", services=("prep",))
    db.session.commit()
    client.set_cookie("ui_lang", "es")
    search = text_of(fresh(client).get("/clinics?near=10011&cost=free").get_data(as_text=True))
    for words in ("Pruebas de ITS", "Gratis", "Fines de semana",
                  "Bien valoradas", "Salida rápida", "Filtros (toca para quitar)"):
        assert words in search, words
    page = text_of(fresh(client).get(f"/clinics/{clinic.slug}").get_data(as_text=True))
    assert "Synthetic Clínica Name Stays" in page  # the clinic's name as published
    assert "PrEP (pastilla para prevenir el VIH)" in page
    assert "Synthetic test data (test-source)" in page  # a source's title as published
    assert "verificado por última vez en diciembre de 2025" in page
    form = text_of(fresh(client).get(f"/clinics/{clinic.slug}/review").get_data(as_text=True))
    assert "¿Sentiste que se protegió tu privacidad?" in form
    assert "Saltar esta pregunta" in form
    assert "Enero" in form


def test_chinese_pages_use_chinese_dates_days_and_a_24_hour_clock(client: FlaskClient) -> None:
    clinic = make_clinic("Synthetic Hours Clinic", hours={"MO": [(9 * 60, 17 * 60 + 30)]})
    db.session.commit()
    client.set_cookie("ui_lang", "zh")
    page = text_of(fresh(client).get(f"/clinics/{clinic.slug}").get_data(as_text=True))
    assert "星期一 9:00–17:30" in page
    assert "2025年12月" in page
    card = text_of(fresh(client).get(f"/clinics/{clinic.slug}/card").get_data(as_text=True))
    assert "星期一 9:00–17:30" in card


def test_the_map_popups_get_their_words_in_the_page_language(client: FlaskClient) -> None:
    make_clinic("Synthetic Popup Clinic")
    db.session.commit()
    client.set_cookie("ui_lang", "es")
    html = fresh(client).get("/clinics?near=10011").get_data(as_text=True)
    assert '"words":{"open":"Abierto ahora","closed":"Cerrado ahora"' in html


def test_moderation_pages_stay_in_english(client: FlaskClient) -> None:
    client.set_cookie("ui_lang", "es")
    html = fresh(client).get("/moderation/login").get_data(as_text=True)
    assert "Moderator sign-in" in html
    assert '<html lang="es">' in html  # the shared header and switch follow the choice


# --- Dates and distances ----------------------------------------------------------------


@pytest.mark.parametrize(("code", "month"), [
    ("en", "December 2025"), ("es", "diciembre de 2025"), ("zh", "2025年12月"),
])
def test_months_are_written_the_local_way(app: Flask, code: str, month: str) -> None:
    with app.test_request_context("/", headers={"Cookie": f"ui_lang={code}"}):
        assert i18n.format_month(date(2025, 12, 1)) == month


@pytest.mark.parametrize(("code", "miles", "shown", "blocks"), [
    ("en", 0.04, "under 0.1 mi", "about 1 block"),
    ("en", 0.24, "0.2 mi", "about 5 blocks"),
    ("en", 0.5, "0.5 mi", "about 10 blocks"),
    ("en", 0.8, "0.8 mi", ""),
    ("en", 13.62, "13.6 mi", ""),
    ("es", 0.24, "0,2 mi", "aprox. 5 cuadras"),
    ("es", 0.05, "menos de 0,1 mi", "aprox. 1 cuadra"),
    ("zh", 0.3, "0.3 英里", "约 6 个街区"),
])
def test_distances_are_in_miles_and_short_ones_in_blocks(
    app: Flask, code: str, miles: float, shown: str, blocks: str
) -> None:
    with app.test_request_context("/", headers={"Cookie": f"ui_lang={code}"}):
        assert i18n.format_distance(miles) == shown
        assert i18n.format_blocks(miles) == blocks
    assert i18n.format_distance(None) == ""


def test_outside_a_request_everything_is_english(app: Flask) -> None:
    assert i18n.select_locale() == "en"


def test_translations_directory_holds_exactly_the_supported_languages() -> None:
    found = sorted(p.name for p in TRANSLATIONS.iterdir() if p.is_dir())
    assert found == sorted(code for code in i18n.SUPPORTED if code != "en")
    assert isinstance(TRANSLATIONS, Path)
