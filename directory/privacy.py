"""Everything that touches the client's address lives here, and nothing else reads it.

The address is used for one thing only, rate limiting, and only as a keyed hash whose
key changes every day, so a stored limiter key cannot be turned back into an address
or linked to the same person's keys on another day. Access logs carry the method,
path (no query string) and status, never the address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import UTC, datetime

from flask import current_app, request


def _daily_key(secret: str, day: str) -> bytes:
    """Derive the day's hashing key from the app secret, so it changes every UTC day."""
    return hmac.new(secret.encode(), f"rate-limit:{day}".encode(), hashlib.sha256).digest()


def hash_address(address: str, secret: str, day: str) -> str:
    """Keyed hash of a client address for one day; irreversible without the secret."""
    digest = hmac.new(_daily_key(secret, day), address.encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def rate_limit_key() -> str:
    """Flask-Limiter key function: the day's keyed hash of the client address."""
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    address = request.remote_addr or "unknown"
    return hash_address(address, current_app.config["SECRET_KEY"], day)


class PathOnlyAccessLog:
    """Logs each request as method, path and status: no address, no query, no time of day."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def __call__(self, method: str, path: str, status: int) -> None:
        self.logger.info("%s %s %s", method, path, status)


# Werkzeug starts each line about a request with "ADDRESS - - [DATE TIME]".
_WERKZEUG_REQUEST_LINE = re.compile(r"^\S+ - - \[")


class _DropWerkzeugRequestLines(logging.Filter):
    """Drops werkzeug's lines about a request, which carry the address, time and request."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep a record only if it is not about one request."""
        return not _WERKZEUG_REQUEST_LINE.match(str(record.msg))


def quiet_werkzeug_access_log() -> None:
    """Silence werkzeug's access log and its error lines about malformed requests."""
    logger = logging.getLogger("werkzeug")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropWerkzeugRequestLines) for f in logger.filters):
        logger.addFilter(_DropWerkzeugRequestLines())
