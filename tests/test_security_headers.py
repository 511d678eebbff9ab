"""Security headers on every page, graded the way the Mozilla HTTP Observatory grades a site.

Every GET route comes from the app's url_map, with a real URL built from synthetic data
(a clinic, reviews, a suggestion, moderators), so a page added later is checked without
anyone remembering to list it. Pages are fetched as deployed: production settings behind
one trusted proxy that says the request came over HTTPS; and also straight over HTTPS, and
over plain HTTP (where HSTS must not be sent).

Every clinic, review, suggestion and account here is synthetic, made only in the test
database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from flask import Flask, g, url_for
from flask.testing import FlaskClient
from werkzeug.datastructures import Headers
from werkzeug.test import TestResponse
from werkzeug.wrappers import Response

from directory import create_app
from directory.config import Settings
from directory.extensions import db
from directory.models import PUBLISHED, Location, Moderator, Review, Suggestion
from directory.reviews import new_review
from directory.suggestions import new_suggestion
from tests.factories import make_clinic, make_review
from tests.moderation_helpers import cheap_hashing, make_admin, sign_in, token

SIX_MONTHS = 15_768_000  # seconds: the Observatory's threshold for a passing HSTS max-age
# What the Observatory sends to test CORS: another site's origin.
FOREIGN_ORIGIN = "https://observatory.invalid"
# TEST-NET-3: documentation only, never a real person.
BEHIND_PROXY = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_FOR": "203.0.113.20"}
REVIEW_TEXT = "Synthetic published review: quick and kind"
PENDING_TEXT = "Synthetic pending review that only moderators read"
# Pages with data in their query string, besides each route's bare URL.
EXTRA_URLS = ["/clinics?near=10011", "/moderation/suggestions?kind=new_clinic",
              "/api/v1/clinics?near=10011"]
PRIVATE_REFERRER = {"no-referrer", "same-origin", "strict-origin",
                    "strict-origin-when-cross-origin"}
UNSAFE_REFERRER = {"no-referrer-when-downgrade", "origin", "origin-when-cross-origin",
                   "unsafe-url"}
# Sources that let any script run: the Observatory treats them all like 'unsafe-inline'.
UNSAFE_SOURCES = {"'unsafe-inline'", "data:", "*", "http:", "https:", "ftp:"}


# --- a small mirror of the Observatory --------------------------------------------------


@dataclass
class Grade:
    """One page's Observatory-style result: each test's outcome and modifier, the score."""

    results: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def score(self) -> int:
        """100 plus penalties; bonuses count only when the score without them is >= 90."""
        base = 100 + sum(modifier for _, modifier in self.results.values() if modifier < 0)
        bonus = sum(modifier for _, modifier in self.results.values() if modifier > 0)
        return base + (bonus if base >= 90 else 0)

    @property
    def failures(self) -> dict[str, str]:
        """The tests that cost points."""
        return {test: outcome for test, (outcome, modifier) in self.results.items()
                if modifier < 0}


def parse_csp(header: str | None) -> dict[str, list[str]] | None:
    """A CSP header as {directive: sources}; None when missing or malformed (a directive
    given twice, which browsers resolve by ignoring the second)."""
    if not header:
        return None
    policy: dict[str, list[str]] = {}
    for part in header.split(";"):
        # Directive names and keywords are case-insensitive; a nonce is not.
        words = part.split()
        if not words:
            continue
        name = words[0].lower()
        if name in policy:
            return None
        policy[name] = [w if w[:7].lower() == "'nonce-" else w.lower() for w in words[1:]]
    return policy


def _csp_test(headers: Headers) -> tuple[str, int]:
    policy = parse_csp(headers.get("Content-Security-Policy"))
    if not headers.get("Content-Security-Policy"):
        return "csp-not-implemented", -25
    if policy is None:
        return "csp-header-invalid", -25
    default = policy.get("default-src", [])
    active = [policy.get(name, default) for name in ("script-src", "object-src")]
    if any(set(sources) & UNSAFE_SOURCES or any(s.startswith("http://") for s in sources)
           for sources in active):
        return "csp-implemented-with-unsafe-inline", -20
    if any("'unsafe-eval'" in sources for sources in active):
        return "csp-implemented-with-unsafe-eval", -10
    passive = [policy.get(name, default) for name in ("img-src", "media-src", "style-src")]
    if any(s == "http:" or s.startswith("http://") for sources in passive for s in sources):
        return "csp-implemented-with-insecure-scheme-in-passive-content-only", -10
    if default == ["'none'"]:
        return "csp-implemented-with-no-unsafe-default-src-none", 10
    if "'unsafe-inline'" in policy.get("style-src", default):
        return "csp-implemented-with-unsafe-inline-in-style-src-only", 0
    return "csp-implemented-with-no-unsafe", 0


def parse_cookie(header: str) -> tuple[str, dict[str, str]]:
    """A Set-Cookie header as its name and {lower-case attribute: value}."""
    first, *attributes = header.split(";")
    flags = {}
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        flags[key.lower()] = value
    return first.split("=", 1)[0].strip(), flags


def _is_session_cookie(name: str) -> bool:
    # The Observatory's guess at which cookies hold a sign-in.
    return any(word in name.lower() for word in ("sess", "login", "auth"))


def _cookies_test(headers: Headers, hsts: bool) -> tuple[str, int]:
    cookies = [parse_cookie(header) for header in headers.getlist("Set-Cookie")]
    if not cookies:
        return "cookies-not-found", 0
    outcomes: list[tuple[str, int]] = []
    for name, flags in cookies:
        session = _is_session_cookie(name)
        samesite = flags.get("samesite", "").lower()
        if samesite and samesite not in ("strict", "lax", "none"):
            outcomes.append(("cookies-samesite-flag-invalid", -20))
        if "csrf" in name.lower() and not samesite:
            outcomes.append(("cookies-anticsrf-without-samesite-flag", -20))
        if session and "httponly" not in flags:
            outcomes.append(("cookies-session-without-httponly-flag", -30))
        if "secure" not in flags:
            if session:
                outcomes.append(("cookies-session-without-secure-flag-but-protected-by-hsts",
                                 -10) if hsts else ("cookies-session-without-secure-flag", -40))
            else:
                outcomes.append(("cookies-without-secure-flag-but-protected-by-hsts", -5)
                                if hsts else ("cookies-without-secure-flag", -20))
    if outcomes:
        return min(outcomes, key=lambda outcome: outcome[1])
    if all(flags.get("samesite") for _, flags in cookies):
        return "cookies-secure-with-httponly-sessions-and-samesite", 5
    return "cookies-secure-with-httponly-sessions", 0


def _cors_test(headers: Headers) -> tuple[str, int]:
    allowed = headers.get("Access-Control-Allow-Origin")
    credentials = headers.get("Access-Control-Allow-Credentials", "").lower() == "true"
    if allowed is None:
        return "cross-origin-resource-sharing-not-implemented", 0
    if allowed in ("*", FOREIGN_ORIGIN) and credentials:
        return "cross-origin-resource-sharing-implemented-with-universal-access", -50
    if allowed == "*":
        return "cross-origin-resource-sharing-implemented-with-public-access", 0
    return "cross-origin-resource-sharing-implemented-with-restricted-access", 0


def _referrer_test(headers: Headers) -> tuple[str, int]:
    header = headers.get("Referrer-Policy")
    if header is None:
        return "referrer-policy-not-implemented", 0
    # Browsers use the last policy they understand in a list.
    known = [v.strip().lower() for v in header.split(",")
             if v.strip().lower() in PRIVATE_REFERRER | UNSAFE_REFERRER]
    if not known:
        return "referrer-policy-header-invalid", -5
    if known[-1] in PRIVATE_REFERRER:
        return "referrer-policy-private", 5
    return "referrer-policy-unsafe", -5


def hsts_max_age(headers: Headers) -> int | None:
    """The Strict-Transport-Security max-age, or None when absent or unreadable."""
    found = re.search(r"(?:^|;)\s*max-age=\"?(\d+)\"?", headers.get("Strict-Transport-Security",
                                                                   ""), re.IGNORECASE)
    return int(found.group(1)) if found else None


def _hsts_test(headers: Headers) -> tuple[str, int]:
    if "Strict-Transport-Security" not in headers:
        return "hsts-not-implemented", -20
    max_age = hsts_max_age(headers)
    if max_age is None:
        return "hsts-header-invalid", -20
    if max_age < SIX_MONTHS:
        return "hsts-implemented-max-age-less-than-six-months", -10
    return "hsts-implemented-max-age-at-least-six-months", 0


class _Scripts(HTMLParser):
    """Collects every <script> element's attributes and inline event-handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str]] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "script":
            self.scripts.append(values)
        self.handlers += [f"<{tag} {name}>" for name in values if name.startswith("on")]


def scripts_of(html: str) -> _Scripts:
    """The page's scripts and inline handlers."""
    parser = _Scripts()
    parser.feed(html)
    return parser


def _sri_test(html: str, host: str) -> tuple[str, int]:
    sources = [s["src"] for s in scripts_of(html).scripts if s.get("src")]
    if not sources:
        return "sri-not-implemented-but-no-scripts-loaded", 0
    external = [(src, urlsplit(src)) for src in sources if urlsplit(src).netloc not in ("", host)]
    if not external:
        return "sri-not-implemented-but-all-scripts-loaded-from-secure-origin", 0
    if any(parts.scheme != "https" for _, parts in external):
        return "sri-not-implemented-and-external-scripts-not-loaded-securely", -50
    with_integrity = {s["src"] for s in scripts_of(html).scripts if s.get("integrity")}
    if all(src in with_integrity for src, _ in external):
        return "sri-implemented-and-external-scripts-loaded-securely", 5
    return "sri-not-implemented-but-external-scripts-loaded-securely", -5


def _nosniff_test(headers: Headers) -> tuple[str, int]:
    value = headers.get("X-Content-Type-Options")
    if value is None:
        return "x-content-type-options-not-implemented", -5
    if value.strip().lower() != "nosniff":
        return "x-content-type-options-header-invalid", -5
    return "x-content-type-options-nosniff", 0


def _frame_test(headers: Headers) -> tuple[str, int]:
    policy = parse_csp(headers.get("Content-Security-Policy")) or {}
    if policy.get("frame-ancestors") in (["'none'"], ["'self'"]):
        return "x-frame-options-implemented-via-csp", 5
    value = headers.get("X-Frame-Options")
    if value is None:
        return "x-frame-options-not-implemented", -20
    if value.strip().upper() in ("DENY", "SAMEORIGIN"):
        return "x-frame-options-sameorigin-or-deny", 0
    return "x-frame-options-header-invalid", -20


def observatory_grade(response: Response, host: str) -> Grade:
    """Grade an HTTPS HTML response as the Mozilla HTTP Observatory would.

    Mirrored tests, with the Observatory's own outcome names and modifiers:
    content-security-policy, cookies, cross-origin-resource-sharing, referrer-policy,
    strict-transport-security, subresource-integrity, x-content-type-options and
    x-frame-options. Not mirrored: redirection (HTTP to HTTPS on port 80 is the reverse
    proxy's job, out of the app's reach), the HSTS preload bonus (it reads the browsers'
    preload list) and cross-origin-resource-policy (informational, scores nothing).
    """
    headers = response.headers
    hsts = "Strict-Transport-Security" in headers
    return Grade({
        "content-security-policy": _csp_test(headers),
        "cookies": _cookies_test(headers, hsts),
        "cross-origin-resource-sharing": _cors_test(headers),
        "referrer-policy": _referrer_test(headers),
        "strict-transport-security": _hsts_test(headers),
        "subresource-integrity": _sri_test(response.get_data(as_text=True), host),
        "x-content-type-options": _nosniff_test(headers),
        "x-frame-options": _frame_test(headers),
    })


# --- our own rules, stricter than the Observatory ----------------------------------------


def house_rules(response: Response, path: str, https: bool) -> list[str]:
    """What this site promises on top of the Observatory's grade; [] when all is kept."""
    headers = response.headers
    problems = []
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if headers.get("Referrer-Policy") != "no-referrer":
        problems.append("Referrer-Policy is not no-referrer")
    if headers.get("X-Frame-Options", "DENY") != "DENY":
        problems.append("X-Frame-Options is set but not DENY")
    if "X-Powered-By" in headers or re.search(r"\d", headers.get("Server", "")):
        problems.append("a server or framework version leaks")
    if https and (hsts_max_age(headers) or 0) < SIX_MONTHS:
        problems.append("no HSTS of six months or more over HTTPS")
    if not https and "Strict-Transport-Security" in headers:
        problems.append("HSTS sent over plain HTTP")
    if path.startswith("/static/"):
        return problems
    if "no-store" not in headers.get("Cache-Control", ""):
        problems.append("a page without Cache-Control: no-store")
    if response.mimetype == "text/html":
        problems += _csp_rules(response)
    return problems


def _csp_rules(response: Response) -> list[str]:
    policy = parse_csp(response.headers.get("Content-Security-Policy"))
    if policy is None:
        return ["no readable Content-Security-Policy"]
    problems = []
    script = policy.get("script-src", [])
    nonces = [s[len("'nonce-"):-1] for s in script if s.startswith("'nonce-")]
    if not script or any(s != "'self'" and not s.startswith(("'nonce-", "'sha256-"))
                         for s in script):
        problems.append(f"script-src allows more than our origin and a nonce: {script}")
    if policy.get("default-src") not in (["'none'"], ["'self'"]):
        problems.append(f"default-src is not restrictive: {policy.get('default-src')}")
    for directive, allowed in (("object-src", [["'none'"]]),
                               ("frame-ancestors", [["'none'"]]),
                               ("base-uri", [["'none'"], ["'self'"]]),
                               ("form-action", [["'none'"], ["'self'"]])):
        if policy.get(directive) not in allowed:
            problems.append(f"{directive} is {policy.get(directive)}")
    found = scripts_of(response.get_data(as_text=True))
    # A script without this response's nonce would be blocked: the page would break.
    problems += [f"script without the nonce: {s}" for s in found.scripts
                 if s.get("nonce") not in nonces]
    problems += [f"inline event handler (blocked by the CSP): {h}" for h in found.handlers]
    return problems


def cookie_problems(set_cookie: str, production: bool) -> list[str]:
    """What is missing from one Set-Cookie header."""
    name, flags = parse_cookie(set_cookie)
    problems = []
    if "httponly" not in flags:
        problems.append(f"{name}: no HttpOnly")  # no script of ours reads a cookie
    if flags.get("samesite", "").lower() not in ("strict", "lax"):
        problems.append(f"{name}: no SameSite Strict or Lax")
    if production and "secure" not in flags:
        problems.append(f"{name}: no Secure in production")
    return problems


# --- the app, its data, and every GET URL ------------------------------------------------


@dataclass
class World:
    """Synthetic data, so that every route with a parameter has something to show."""

    clinic: Location
    published: Review
    pending: Review
    suggestion: Suggestion
    admin: Moderator


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Production settings behind one trusted reverse proxy, as deployed."""
    return replace(cheap_hashing(settings), env="production", trusted_proxies=1)


@pytest.fixture
def world(app: Flask) -> World:
    """A clinic with a published and a pending review, a suggestion and an admin."""
    clinic = make_clinic("Synthetic Header Clinic", walk_in=True)
    published = make_review(clinic, status=PUBLISHED, text=REVIEW_TEXT, respect=5)
    pending, _ = new_review(clinic.id, {"respect": 2, "text": PENDING_TEXT})
    suggestion = new_suggestion("correction", clinic.id, {"phone": "(212) 555-0177"}, None,
                                None)
    world = World(clinic, published, pending, suggestion, make_admin())
    db.session.commit()
    return world


def get_urls(app: Flask, world: World) -> list[str]:
    """A real URL for every rule that answers GET, plus a few with query strings."""
    values: dict[str, object] = {
        "slug": world.clinic.slug, "ref": world.clinic.id, "path": "v1/nothing-here",
        "code": "es", "filename": "css/site.css", "review_id": world.pending.id,
        "suggestion_id": world.suggestion.id, "location_id": world.clinic.id,
    }
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" in (rule.methods or set()):
                missing = set(rule.arguments) - set(values)
                assert not missing, f"{rule.rule}: give {missing} a value in get_urls"
                urls.append(url_for(rule.endpoint, **{a: values[a] for a in rule.arguments}))
    return sorted(set(urls)) + EXTRA_URLS


def fetch(client: FlaskClient, url: str, base_url: str | None = None) -> TestResponse:
    """GET a URL as a fresh request: no nonce or form token left over from the last one."""
    g.pop("csp_nonce", None)
    g.pop("csrf_token", None)
    response = client.get(url, headers={"Origin": FOREIGN_ORIGIN}, base_url=base_url)
    response.get_data()  # read a streamed download to its end, as a browser would
    response.close()
    return response


@contextmanager
def second_app(settings: Settings) -> Iterator[Flask]:
    """Another app over the same test database, with other settings."""
    other = create_app(settings)
    try:
        yield other
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def check_every_page(client: FlaskClient, urls: list[str], https: bool,
                     base_url: str | None = None) -> tuple[set[str], dict[str, object]]:
    """Fetch each URL (production settings); the cookie names seen, and {url: problems}."""
    host = urlsplit(base_url or "http://localhost").netloc
    cookies: set[str] = set()
    bad: dict[str, object] = {}
    for url in urls:
        response = fetch(client, url, base_url)
        assert response.status_code < 500, url
        problems = house_rules(response, urlsplit(url).path, https)
        for header in response.headers.getlist("Set-Cookie"):
            cookies.add(parse_cookie(header)[0])
            problems += cookie_problems(header, production=True)
        if https and response.mimetype == "text/html":
            grade = observatory_grade(response, host)
            if grade.failures or grade.score < 100:
                problems.append(f"score {grade.score}: {grade.failures}")
        if problems:
            bad[url] = problems
    return cookies, bad


# --- the tests -------------------------------------------------------------------------


def test_every_page_scores_perfectly_behind_the_https_proxy(
    app: Flask, world: World
) -> None:
    urls = get_urls(app, world)
    visitor = app.test_client()
    visitor.environ_base.update(BEHIND_PROXY)
    cookies, bad = check_every_page(visitor, urls, https=True)
    assert bad == {}
    # Signed in, the moderation pages themselves (anonymous, they are redirects).
    moderator = app.test_client()
    moderator.environ_base.update(BEHIND_PROXY)
    response = sign_in(moderator, world.admin)
    assert response.status_code == 302
    signed_in_cookies = {parse_cookie(h)[0]: h for h in response.headers.getlist("Set-Cookie")}
    assert cookie_problems(signed_in_cookies["session"], production=True) == []
    assert "SameSite=Strict" in signed_in_cookies["session"]
    moderation = [url for url in urls if url.startswith("/moderation/")]
    pages = [fetch(moderator, url) for url in moderation]
    assert sum(page.status_code == 200 for page in pages) >= len(moderation) - 1
    _, bad = check_every_page(moderator, moderation, https=True)
    assert bad == {}
    # The language cookie and the session cookie were both seen, and both checked.
    assert {"session", "ui_lang"} <= cookies


def test_every_page_sends_hsts_straight_over_https(settings: Settings, world: World) -> None:
    with second_app(replace(settings, trusted_proxies=0)) as direct:
        client = direct.test_client()
        urls = get_urls(direct, world)
        with direct.app_context():
            _, bad = check_every_page(client, urls, https=True,
                                      base_url="https://caremap.invalid")
    assert bad == {}


def test_hsts_is_never_sent_over_plain_http(app: Flask, settings: Settings,
                                            world: World) -> None:
    client = app.test_client()
    _, bad = check_every_page(client, get_urls(app, world), https=False)
    assert bad == {}
    # Without a trusted proxy, a client cannot claim HTTPS for itself.
    with second_app(replace(settings, trusted_proxies=0)) as direct, direct.app_context():
        spoofing = direct.test_client()
        spoofing.environ_base.update(BEHIND_PROXY)
        assert "Strict-Transport-Security" not in fetch(spoofing, "/").headers


def test_forms_work_over_https_though_no_referrer_is_sent(app: Flask, world: World) -> None:
    """Referrer-Policy: no-referrer means browsers send no Referer, even to us; a CSRF
    check that insists on one would refuse every form over HTTPS."""
    client = app.test_client()
    client.environ_base.update(BEHIND_PROXY)
    assert "Strict-Transport-Security" in fetch(client, "/").headers  # seen as HTTPS
    response = sign_in(client, world.admin)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert fetch(client, "/moderation/").status_code == 200
    visitor = app.test_client()
    visitor.environ_base.update(BEHIND_PROXY)
    response = visitor.post("/reviews/withdraw", data={
        "csrf_token": token(visitor, "/reviews/withdraw"), "code": "not a real code at all"})
    assert response.status_code == 404  # the form was read: no such code


def test_static_assets_and_api_answers_are_nosniff(app: Flask, world: World) -> None:
    client = app.test_client()
    client.environ_base.update(BEHIND_PROXY)
    urls = ["/static/css/site.css", "/static/js/quick-exit.js", "/static/js/map-loader.js",
            "/api/v1/clinics", f"/api/v1/clinics/{world.clinic.id}", "/api/v1/openapi.json",
            "/api/v1/hsds.json", "/api/v1/no-such-thing"]
    for url in urls:
        response = fetch(client, url)
        assert response.status_code in (200, 404), url
        assert response.headers.get("X-Content-Type-Options") == "nosniff", url
        assert house_rules(response, urlsplit(url).path, https=True) == [], url
        if url.startswith("/api/"):
            assert response.mimetype in ("application/json", "application/problem+json"), url
            assert _cors_test(response.headers)[1] >= 0, url


def test_the_grader_fails_weak_headers() -> None:
    """The mirror is only worth its pass if it can fail: a weak response loses points."""
    weak = Response("<script src='http://cdn.invalid/x.js'></script>", mimetype="text/html",
                    headers={
        "Content-Security-Policy": "default-src *; script-src 'self' 'unsafe-inline'",
        "Set-Cookie": "session=abc; Path=/",
        "Referrer-Policy": "unsafe-url",
        "Strict-Transport-Security": "max-age=300",
        "X-Frame-Options": "ALLOW-FROM https://other.invalid",
        "Access-Control-Allow-Origin": FOREIGN_ORIGIN,
        "Access-Control-Allow-Credentials": "true",
    })
    grade = observatory_grade(weak, "localhost")
    assert grade.failures == {
        "content-security-policy": "csp-implemented-with-unsafe-inline",
        "cookies": "cookies-session-without-httponly-flag",
        "cross-origin-resource-sharing":
            "cross-origin-resource-sharing-implemented-with-universal-access",
        "referrer-policy": "referrer-policy-unsafe",
        "strict-transport-security": "hsts-implemented-max-age-less-than-six-months",
        "subresource-integrity": "sri-not-implemented-and-external-scripts-not-loaded-securely",
        "x-content-type-options": "x-content-type-options-not-implemented",
        "x-frame-options": "x-frame-options-header-invalid",
    }
    assert grade.score < 0
    assert len(house_rules(weak, "/", https=True)) >= 6
