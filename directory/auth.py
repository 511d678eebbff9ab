"""Moderator sign-in: argon2 passwords, TOTP second factor, lockout, and short sessions.

Moderator accounts are a target (see the threat model): whoever holds one decides what the
public reads. So a password alone never signs in, a code works once, repeated failures lock
the account until an admin unlocks it, and a session dies after a short idle time, on
sign-out everywhere, or when the account is disabled.
"""

from __future__ import annotations

import base64
import functools
import hmac
import io
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, redirect, session, url_for
from sqlalchemy import func, select

from directory.extensions import db
from directory.models import ADMIN, MODERATOR, Moderator

P = ParamSpec("P")
R = TypeVar("R")

# Argon2id parameters by default are RFC 9106's "low memory" choice (3 passes, 64 MiB,
# 4 lanes); tests make them cheap through the same config keys.
DEFAULT_ARGON2 = {"ARGON2_TIME_COST": 3, "ARGON2_MEMORY_COST": 65536, "ARGON2_PARALLELISM": 4}
DEFAULT_MAX_FAILED_LOGINS = 5
DEFAULT_IDLE_MINUTES = 15
DEFAULT_SESSION_HOURS = 8
MIN_PASSWORD_LENGTH = 12
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{2,39}")
TOTP_ISSUER = "CareMap NYC"

# Session keys. The session is Flask's signed cookie: it carries ids and times, no secret.
_ID, _VERSION, _SEEN, _STARTED = "moderator_id", "moderator_version", "seen", "started"


class SignInFailed(Exception):
    """A sign-in that did not succeed; `reason` is for the audit log, never for the page."""

    def __init__(self, reason: str, moderator: Moderator | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.moderator = moderator


class InvalidAccountDetails(ValueError):
    """A username or password that cannot be used for an account."""


# --- passwords -------------------------------------------------------------------------


def password_hasher() -> PasswordHasher:
    """An argon2id hasher with this app's cost parameters."""
    config = current_app.config
    return PasswordHasher(
        time_cost=int(config.get("ARGON2_TIME_COST", DEFAULT_ARGON2["ARGON2_TIME_COST"])),
        memory_cost=int(config.get("ARGON2_MEMORY_COST", DEFAULT_ARGON2["ARGON2_MEMORY_COST"])),
        parallelism=int(config.get("ARGON2_PARALLELISM", DEFAULT_ARGON2["ARGON2_PARALLELISM"])),
    )


def hash_password(password: str) -> str:
    """The argon2id hash of a password (salted; parameters are stored in the hash)."""
    return password_hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash."""
    try:
        return password_hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _burn_a_hash(password: str) -> None:
    """Spend the time of one verification, so unknown and disabled accounts answer no
    faster than real ones and a stopwatch cannot tell which usernames exist."""
    hasher = password_hasher()
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    dummies: dict[tuple[int, int, int], str] = current_app.extensions.setdefault(
        "caremap_dummy_hashes", {}
    )
    if key not in dummies:
        dummies[key] = hasher.hash(secrets.token_hex(16))
    verify_password(dummies[key], password)


def check_new_password(password: str) -> None:
    """Refuse a password too short to resist guessing."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidAccountDetails(
            f"Use a password of at least {MIN_PASSWORD_LENGTH} characters."
        )


def normalise_username(username: str) -> str:
    """A username as stored: trimmed and lower-case."""
    return username.strip().lower()


def check_new_username(username: str) -> str:
    """The normalised username, or an error if it is malformed or taken."""
    name = normalise_username(username)
    if not USERNAME_PATTERN.fullmatch(name):
        raise InvalidAccountDetails(
            "Use 3 to 40 lower-case letters, digits, dots, dashes or underscores."
        )
    if find_moderator(name) is not None:
        raise InvalidAccountDetails("That username is taken.")
    return name


# --- accounts --------------------------------------------------------------------------


@dataclass(frozen=True)
class NewAccount:
    """A just-created account and its TOTP set-up, shown once and never again."""

    moderator: Moderator
    totp_secret: str
    totp_uri: str


def find_moderator(username: str) -> Moderator | None:
    """The moderator with this username, if any."""
    name = normalise_username(username)
    if not USERNAME_PATTERN.fullmatch(name):
        # No account has such a name, and one with a NUL byte would make PostgreSQL
        # refuse the query (a 500 on the sign-in form).
        return None
    return db.session.execute(
        select(Moderator).where(func.lower(Moderator.username) == name)
    ).scalar_one_or_none()


def create_moderator(username: str, password: str, role: str = MODERATOR) -> NewAccount:
    """Add a moderator with a fresh TOTP secret; flushed, not committed."""
    if role not in (MODERATOR, ADMIN):
        raise InvalidAccountDetails("Unknown role.")
    name = check_new_username(username)
    check_new_password(password)
    secret = pyotp.random_base32()
    moderator = Moderator(
        username=name, password_hash=hash_password(password), totp_secret=secret, role=role,
        active=True, session_version=1, last_totp_step=0, failed_logins=0,
    )
    db.session.add(moderator)
    db.session.flush()
    return NewAccount(moderator, secret, totp_uri(name, secret))


def totp_uri(username: str, secret: str) -> str:
    """The otpauth:// URI an authenticator app reads (from a QR code or typed)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def disable_moderator(moderator: Moderator) -> None:
    """Stop an account signing in, and end its open sessions."""
    moderator.active = False
    moderator.session_version += 1


def unlock_moderator(moderator: Moderator) -> None:
    """Clear the failed sign-in count of a locked account."""
    moderator.failed_logins = 0


def change_password(moderator: Moderator, current: str, new: str) -> None:
    """Replace the password after checking the current one; ends other sessions."""
    if not verify_password(moderator.password_hash, current):
        raise InvalidAccountDetails("The current password is not right.")
    check_new_password(new)
    moderator.password_hash = hash_password(new)
    moderator.session_version += 1


def max_failed_logins() -> int:
    """How many failures in a row lock an account."""
    return int(current_app.config.get("MODERATOR_MAX_FAILED_LOGINS", DEFAULT_MAX_FAILED_LOGINS))


def is_locked(moderator: Moderator) -> bool:
    """Whether repeated failures have locked the account."""
    return moderator.failed_logins >= max_failed_logins()


# --- second factor ---------------------------------------------------------------------


def totp_step(moderator: Moderator, code: str, now: float) -> int | None:
    """The time step (within one step either side) whose code this is, or None."""
    code = "".join(code.split())
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(moderator.totp_secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def authenticate(username: str, password: str, code: str, now: float | None = None) -> Moderator:
    """The moderator these details sign in, or SignInFailed; counts failures, never commits.

    The password is always checked, even for unknown, disabled or locked accounts, so the
    time taken reveals nothing; the reason goes to the audit log, never to the page.
    """
    now = time.time() if now is None else now
    moderator = find_moderator(username)
    if moderator is None:
        _burn_a_hash(password)
        raise SignInFailed("unknown account", None)
    if not moderator.active or is_locked(moderator):
        _burn_a_hash(password)
        raise SignInFailed("disabled" if not moderator.active else "locked", moderator)
    if not verify_password(moderator.password_hash, password):
        _count_failure(moderator)
        raise SignInFailed("wrong password", moderator)
    step = totp_step(moderator, code, now)
    if step is None:
        _count_failure(moderator)
        raise SignInFailed("wrong code", moderator)
    if step <= moderator.last_totp_step:
        # A code seen on a screen or in a phishing page must not work a second time.
        _count_failure(moderator)
        raise SignInFailed("code already used", moderator)
    moderator.last_totp_step = step
    moderator.failed_logins = 0
    if password_hasher().check_needs_rehash(moderator.password_hash):
        moderator.password_hash = hash_password(password)
    return moderator


def _count_failure(moderator: Moderator) -> None:
    """One more failure towards the lock."""
    moderator.failed_logins += 1


# --- sessions --------------------------------------------------------------------------


def idle_seconds() -> int:
    """How long a session may sit unused."""
    return 60 * int(current_app.config.get("MODERATOR_IDLE_MINUTES", DEFAULT_IDLE_MINUTES))


def max_session_seconds() -> int:
    """How long a session may last however busy, before signing in again."""
    return 3600 * int(current_app.config.get("MODERATOR_SESSION_HOURS", DEFAULT_SESSION_HOURS))


def start_session(moderator: Moderator, now: float | None = None) -> None:
    """Sign this browser in as the moderator, replacing whatever the session held."""
    now = time.time() if now is None else now
    _clear_session()
    # Not permanent: the cookie ends with the browser and is never written to disk with
    # an expiry date; the idle and total limits below end it sooner.
    session.permanent = False
    session[_ID] = moderator.id
    session[_VERSION] = moderator.session_version
    session[_STARTED] = int(now)
    session[_SEEN] = int(now)


def end_session() -> None:
    """Sign this browser out."""
    _clear_session()


def _clear_session() -> None:
    """Empty the session, and forget the form token cached for it in this request."""
    session.clear()
    # Flask-WTF keeps the request's CSRF token in `g`; its raw half was just cleared from
    # the session, so a form rendered with it afterwards would always fail.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)


def sign_out_everywhere(moderator: Moderator) -> None:
    """End every session of this moderator, on every device, including this one."""
    moderator.session_version += 1
    end_session()


def current_moderator(now: float | None = None) -> Moderator | None:
    """The signed-in, active moderator of this request, or None (ending a stale session)."""
    # Worked out afresh on each call, never cached in `g`: a cached answer could outlive a
    # sign-out or a disable within the same app context.
    now = time.time() if now is None else now
    moderator = _session_moderator(now)
    if moderator is None:
        if _ID in session:
            end_session()
    else:
        session[_SEEN] = int(now)
    return moderator


def _session_moderator(now: float) -> Moderator | None:
    """The moderator the session names, if the session is still valid."""
    moderator_id = session.get(_ID)
    if not isinstance(moderator_id, int):
        return None
    seen, started = session.get(_SEEN, 0), session.get(_STARTED, 0)
    if now - seen > idle_seconds() or now - started > max_session_seconds():
        return None
    moderator = db.session.get(Moderator, moderator_id)
    if moderator is None or not moderator.active:
        return None
    if session.get(_VERSION) != moderator.session_version:
        return None
    return moderator


def moderator_required(view: Callable[P, R]) -> Callable[P, R]:
    """Let only signed-in moderators (any role) in; others go to the sign-in page."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        if current_moderator() is None:
            return redirect(url_for("moderation.login"))  # type: ignore[return-value]
        return view(*args, **kwargs)

    return wrapped


def admin_required(view: Callable[P, R]) -> Callable[P, R]:
    """Let only signed-in admins in: others sign in first, or are refused (403)."""

    @functools.wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        moderator = current_moderator()
        if moderator is None:
            return redirect(url_for("moderation.login"))  # type: ignore[return-value]
        if moderator.role != ADMIN:
            abort(403)
        return view(*args, **kwargs)

    return wrapped


# --- showing a new TOTP secret ---------------------------------------------------------


def qr_text(uri: str) -> str | None:
    """The URI as a QR code drawn in text for a terminal, or None without `qrcode`."""
    try:
        import qrcode  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    code = qrcode.QRCode(border=2)
    code.add_data(uri)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


def qr_data_uri(uri: str) -> str | None:
    """The URI as a QR code image in a data: URI (no request leaves the page), or None."""
    try:
        import qrcode  # type: ignore[import-untyped,import-not-found,unused-ignore]
        import qrcode.image.svg  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return None
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathFillImage, border=2)
    svg = image.to_string()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")
