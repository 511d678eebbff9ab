"""Everything that touches the client's address lives here, and nothing else reads it.

The address is used for one thing only, rate limiting, and only as a keyed hash. The key
is a RANDOM secret made for one UTC day and thrown away after it, so a stored limiter key
can neither be turned back into an address (IPv4 has only 2^32 addresses: a key derived
from a long-lived secret could be brute-forced by whoever holds that secret) nor linked to
the same person's keys on another day. With Redis as the limiter's storage the day's
secret lives there (SET NX, expiring an hour after the day ends), so every worker hashes
alike; with `memory://` it lives in this process only. If Redis is unreachable, each
process falls back to a secret of its own, as Flask-Limiter falls back to in-memory limits.
The hash is also peppered with a key derived from the app's SECRET_KEY, so a copy of
Redis, which holds the day's secret, is not enough to reverse its keys.

Access logs carry the method, path (no query string) and status, never the address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from flask import current_app, request

EXTENSION_KEY = "caremap.ephemeral"
SECRET_KEY_PREFIX = "caremap:ratelimit-secret:"  # noqa: S105 (a Redis key name, not a secret)
USED_KEY_PREFIX = "caremap:used:"
# How long a worker trusts its copy of the day's shared secret before asking Redis again
# (Redis may have been restarted and hold a new one). Until then workers may hash alike
# addresses apart, loosening limits; two Redis calls a worker every 30 s keep that short.
RECHECK_SECONDS = 30.0
# After a Redis error, how long to use process memory before trying Redis again.
RETRY_SECONDS = 30.0
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")

log = logging.getLogger(__name__)


def utc_day(now: datetime | None = None) -> str:
    """The UTC day a rate-limit secret belongs to, as YYYY-MM-DD."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%d")


def seconds_left_in_day(now: datetime) -> int:
    """Whole seconds until the next UTC midnight."""
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - now).total_seconds()))


def address_pepper(app_secret: str) -> bytes:
    """A second key for address hashes, derived from the app's SECRET_KEY.

    The day's secret sits in Redis next to the keys made with it; without this pepper a
    copy of Redis alone would turn every key back into an address by trying all 2^32
    IPv4 addresses. With it, that copy also needs the app's own secret.
    """
    return hmac.new(app_secret.encode(), b"caremap.rate-limit-address.v1",
                    hashlib.sha256).digest()


def hash_address(address: str, day_secret: bytes, pepper: bytes) -> str:
    """Keyed hash of a client address under one day's secret and the app's pepper."""
    return hmac.new(day_secret, pepper + b"\0" + address.encode(),
                    hashlib.sha256).hexdigest()[:32]


class EphemeralStore:
    """Short-lived values the site needs: the day's hashing secret and one-use markers.

    Shared through Redis when the rate limiter uses Redis; otherwise (or while Redis is
    down) kept in this process's memory. Nothing here outlives a couple of days.
    """

    def __init__(self, storage_uri: str) -> None:
        self._client = None
        if storage_uri.startswith(REDIS_SCHEMES):
            import redis

            # Short timeouts: a dead Redis must cost a request milliseconds, not seconds.
            self._client = redis.Redis.from_url(
                storage_uri.replace("redis+unix://", "unix://"),
                socket_connect_timeout=0.5, socket_timeout=0.5,
            )
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._shared: dict[str, tuple[bytes, float]] = {}  # day -> (secret, recheck at)
        self._local: dict[str, bytes] = {}  # day -> secret made in this process
        self._used: dict[str, float] = {}  # marker -> expires at (monotonic)

    @property
    def shared(self) -> bool:
        """Whether values are shared through Redis (configured, not necessarily up)."""
        return self._client is not None

    def _redis(self):  # type: ignore[no-untyped-def]
        """The Redis client, unless there is none or it failed a moment ago."""
        if self._client is None or time.monotonic() < self._down_until:
            return None
        return self._client

    def _redis_failed(self, exc: Exception) -> None:
        # The exception names only the storage, never a client address.
        log.warning("shared storage unreachable, using process memory: %s", type(exc).__name__)
        self._down_until = time.monotonic() + RETRY_SECONDS

    def day_secret(self, day: str, ttl_seconds: int) -> bytes:
        """The random secret for `day`, made on first use; older days' secrets are dropped."""
        now = time.monotonic()
        cached = self._shared.get(day)
        if cached is not None and cached[1] > now:
            return cached[0]
        client = self._redis()
        if client is not None:
            key = SECRET_KEY_PREFIX + day
            try:
                # NX: the first worker to ask makes the day's secret; everyone reads that one.
                client.set(key, secrets.token_hex(32), nx=True, ex=ttl_seconds)
                value = client.get(key)
                secret = bytes.fromhex(value.decode())
            except Exception as exc:  # any storage failure: fall back, never fail the request
                self._redis_failed(exc)
            else:
                with self._lock:
                    self._shared = {day: (secret, now + RECHECK_SECONDS)}
                return secret
        with self._lock:
            if day not in self._local:
                # Forget every other day's secret: yesterday's keys become unlinkable.
                self._local = {day: secrets.token_bytes(32)}
            return self._local[day]

    def first_use(self, marker: str, ttl_seconds: int) -> bool:
        """Record `marker` as used for ttl_seconds; True only the first time it is seen."""
        client = self._redis()
        if client is not None:
            try:
                return bool(client.set(USED_KEY_PREFIX + marker, b"1", nx=True, ex=ttl_seconds))
            except Exception as exc:  # any storage failure: fall back, never fail the request
                self._redis_failed(exc)
        now = time.monotonic()
        with self._lock:
            if len(self._used) > 1000:
                self._used = {k: t for k, t in self._used.items() if t > now}
            if self._used.get(marker, 0.0) > now:
                return False
            self._used[marker] = now + ttl_seconds
            return True


def ephemeral_store() -> EphemeralStore:
    """This app's store, made on first use from its RATELIMIT_STORAGE_URI."""
    store = current_app.extensions.get(EXTENSION_KEY)
    if store is None:
        uri = str(current_app.config.get("RATELIMIT_STORAGE_URI") or "memory://")
        store = current_app.extensions.setdefault(EXTENSION_KEY, EphemeralStore(uri))
    return store  # type: ignore[no-any-return]


def rate_limit_key() -> str:
    """Flask-Limiter key function: the client address hashed under today's random secret."""
    now = datetime.now(UTC)
    # One hour past midnight, so a request that started just before it still finds it.
    secret = ephemeral_store().day_secret(utc_day(now), seconds_left_in_day(now) + 3600)
    pepper = address_pepper(str(current_app.config["SECRET_KEY"]))
    return hash_address(request.remote_addr or "unknown", secret, pepper)


# Add to a limit counter and, on its first hit, make it expire at an absolute moment.
_INCR_EXPIRE_AT = b"""
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call("expireat", KEYS[1], ARGV[1])
end
return current
"""


def window_end(now: float, window: int) -> int:
    """When a limit counter first hit at `now` expires: the first multiple of `window`
    seconds at least one whole window later (so it lasts one to two windows)."""
    return math.ceil((now + window) / window) * window


def expire_limits_on_the_window_grid(storage: object) -> None:
    """Make a Redis limiter storage's counters expire on their window's grid.

    Out of the box a counter expires exactly one window after its first hit, so its TTL
    tells whoever reads Redis the second a review (or a search) was sent; expiring on the
    grid says only which window it fell in. Counters last at least their window, so a
    limit is never looser. Applies to the fixed-window strategy (the default), the only
    one that counts with `incr`; memory storage is left alone (nobody can dump it).
    """
    from limits.storage import RedisStorage

    if not isinstance(storage, RedisStorage):
        return
    script = storage.get_connection().register_script(_INCR_EXPIRE_AT)

    def incr(key: str, expiry: int, amount: int = 1) -> int:
        end = window_end(time.time(), int(expiry))
        return int(script([storage.prefixed_key(key)], [end, amount]))

    # Replaced on this one object (made by init_app), not on the class all apps share.
    storage.incr = incr  # type: ignore[method-assign]


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
