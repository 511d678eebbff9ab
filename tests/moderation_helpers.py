"""Helpers for moderation tests: synthetic moderators, TOTP codes, signing in with forms.

Every account here is synthetic and lives only in the test database.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import replace

import pyotp
from flask import g
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from directory import auth
from directory.config import Settings
from directory.models import ADMIN, MODERATOR, Moderator

PASSWORD = "synthetic-test-password-1"
# Argon2 at its cheapest: tests check behaviour, not cost (production keeps RFC 9106's).
CHEAP_ARGON2 = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST": 8, "ARGON2_PARALLELISM": 1}
LOGIN = "/moderation/login"

_counter = itertools.count(1)
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                   r'type="hidden" name="csrf_token" value="([^"]+)"')


def cheap_hashing(settings: Settings, **extra: object) -> Settings:
    """The test settings with cheap password hashing (and any other extra keys)."""
    return replace(settings, extra={**settings.extra, **CHEAP_ARGON2, **extra})


def make_moderator(
    username: str | None = None,
    *,
    role: str = MODERATOR,
    password: str = PASSWORD,
    active: bool = True,
) -> Moderator:
    """A synthetic moderator (or admin) with a fresh TOTP secret; flushed, not committed."""
    account = auth.create_moderator(username or f"test-mod-{next(_counter)}", password, role)
    account.moderator.active = active
    return account.moderator


def make_admin(username: str | None = None) -> Moderator:
    """A synthetic admin; flushed, not committed."""
    return make_moderator(username or f"test-admin-{next(_counter)}", role=ADMIN)


def code_for(moderator: Moderator, at: float | None = None) -> str:
    """The moderator's TOTP code at a time (now by default), as their app would show it."""
    return pyotp.TOTP(moderator.totp_secret).at(time.time() if at is None else at)


def csrf_from(html: str) -> str:
    """The first CSRF token in a page."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1) or match.group(2)


def token(client: FlaskClient, page: str = LOGIN) -> str:
    """A CSRF token for this client's session, read from a page as a browser would."""
    # The test's app context outlives each request, and Flask-WTF caches the request's
    # token in `g`: drop it, as a fresh request would, or one client gets another's token.
    g.pop("csrf_token", None)
    response = client.get(page, follow_redirects=True)
    return csrf_from(response.get_data(as_text=True))


def sign_in(
    client: FlaskClient,
    moderator: Moderator,
    *,
    password: str = PASSWORD,
    code: str | None = None,
) -> TestResponse:
    """Fill in and send the sign-in form; the response is not followed."""
    username = moderator.username
    code = code_for(moderator) if code is None else code
    return client.post(LOGIN, data={
        "csrf_token": token(client), "username": username, "password": password,
        "code": code,
    })


def post(client: FlaskClient, url: str, data: dict[str, object] | None = None,
         page: str = "/moderation/") -> TestResponse:
    """Submit a form as a signed-in moderator: token from a page, then the POST."""
    return client.post(url, data={"csrf_token": token(client, page), **(data or {})})


def is_login_redirect(response: TestResponse) -> bool:
    """Whether the response sends the browser to the sign-in page."""
    return response.status_code == 302 and response.location.endswith(LOGIN)
