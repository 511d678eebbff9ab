"""Rate limiting without tracking: keys are hashes under a random secret of the day, shared
by workers through Redis, and the site keeps serving (and limiting) when Redis is down.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask

from directory import create_app
from directory.config import Settings
from directory.extensions import db
from directory.privacy import (
    SECRET_KEY_PREFIX,
    EphemeralStore,
    address_pepper,
    ephemeral_store,
    hash_address,
    rate_limit_key,
    utc_day,
)
from tests.factories import make_clinic

ADDRESS = "203.0.113.9"  # TEST-NET-3: documentation only
OTHER = "203.0.113.10"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_uri() -> Iterator[str]:
    """A throwaway Redis server of our own on a free port (skipped if Redis is not here)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 (a fixed local binary, fixed arguments)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_keys_are_hashes_that_change_with_the_secret_not_the_address_in_disguise() -> None:
    pepper = address_pepper("app secret")
    one = hash_address(ADDRESS, b"a" * 32, pepper)
    assert re.fullmatch(r"[0-9a-f]{32}", one)
    assert hash_address(ADDRESS, b"a" * 32, pepper) == one
    assert hash_address(OTHER, b"a" * 32, pepper) != one
    assert hash_address(ADDRESS, b"b" * 32, pepper) != one
    # The day's secret alone (all a copy of Redis holds) does not give the key back.
    assert hash_address(ADDRESS, b"a" * 32, address_pepper("another app")) != one
    assert hash_address(ADDRESS, b"a" * 32, b"") != one
    assert ADDRESS not in one


def test_each_day_gets_a_fresh_random_secret_and_yesterdays_is_forgotten() -> None:
    store = EphemeralStore("memory://")
    monday = store.day_secret("2026-11-23", 3600)
    assert store.day_secret("2026-11-23", 3600) == monday
    assert len(monday) == 32
    tuesday = store.day_secret("2026-11-24", 3600)
    assert tuesday != monday
    # Monday's secret is gone from memory: Monday's keys can no longer be recomputed.
    assert list(store._local) == ["2026-11-24"]
    assert monday not in store._local.values()


def test_the_same_app_secret_does_not_give_the_same_keys(settings: Settings, app: Flask) -> None:
    """Keys do not derive from SECRET_KEY: holding it does not let anyone test addresses."""
    keys = []
    for _ in range(2):
        other = create_app(settings)  # same SECRET_KEY, a new process's memory
        with other.test_request_context(environ_base={"REMOTE_ADDR": ADDRESS}):
            keys.append(rate_limit_key())
            assert rate_limit_key() == keys[-1]
        with other.test_request_context(environ_base={"REMOTE_ADDR": OTHER}):
            assert rate_limit_key() != keys[-1]
    assert keys[0] != keys[1]


def test_workers_share_the_days_secret_through_redis_and_it_expires(redis_uri: str) -> None:
    import redis

    first, second = EphemeralStore(redis_uri), EphemeralStore(redis_uri)
    day = utc_day()
    assert first.shared
    assert first.day_secret(day, 3600) == second.day_secret(day, 3600)
    client = redis.Redis.from_url(redis_uri)
    ttl = client.ttl(SECRET_KEY_PREFIX + day)
    assert 0 < ttl <= 3600
    # A used form token is refused by every worker.
    assert first.first_use("form:abc", 60)
    assert not second.first_use("form:abc", 60)
    assert second.first_use("form:def", 60)
    assert 0 < client.ttl("caremap:used:form:abc") <= 60
    # Nothing in Redis holds an address.
    for key in client.keys("*"):
        assert ADDRESS.encode() not in key + (client.get(key) or b"")


def test_with_redis_the_app_uses_the_shared_secret(settings: Settings, redis_uri: str) -> None:
    import redis

    shared = create_app(replace(settings, ratelimit_storage_uri=redis_uri))
    with shared.test_request_context(environ_base={"REMOTE_ADDR": ADDRESS}):
        key = rate_limit_key()
        secret = redis.Redis.from_url(redis_uri).get(SECRET_KEY_PREFIX + utc_day())
        assert secret is not None
        pepper = address_pepper(shared.config["SECRET_KEY"])
        assert key == hash_address(ADDRESS, bytes.fromhex(secret.decode()), pepper)


def test_a_dead_redis_falls_back_to_memory_and_the_site_still_limits(
    settings: Settings, app: Flask
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    dead = create_app(replace(
        settings, ratelimit_storage_uri="redis://127.0.0.1:1/0", search_rate_limit="2 per minute",
        extra={**settings.extra, "RATELIMIT_ENABLED": True, "REVIEW_MIN_SECONDS": 0},
    ))
    client = dead.test_client()
    env = {"REMOTE_ADDR": ADDRESS}
    codes = [client.get("/clinics", environ_base=env).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.get(f"/clinics/{slug}", environ_base=env).status_code == 200
    # The review form works too, and its one-use check falls back to memory.
    html = client.get(f"/clinics/{slug}/review", environ_base=env).get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    token = re.search(r'name="form_token" value="([^"]+)"', html)
    assert csrf
    assert token
    data = {"csrf_token": csrf.group(1), "form_token": token.group(1), "respect": "4"}
    assert client.post(f"/clinics/{slug}/review", data=data, environ_base=env).status_code == 200
    assert client.post(f"/clinics/{slug}/review", data=data, environ_base=env).status_code == 409
    with dead.app_context():
        assert ephemeral_store().shared  # configured for Redis, serving from memory


def test_too_many_reviews_get_a_kind_429_that_keeps_the_text(
    settings: Settings, app: Flask
) -> None:
    slug = make_clinic().slug
    db.session.commit()
    limited = create_app(replace(settings, extra={
        **settings.extra, "RATELIMIT_ENABLED": True, "REVIEW_MIN_SECONDS": 0,
        "REVIEW_RATE_LIMIT": "2 per hour", "WITHDRAW_RATE_LIMIT": "3 per hour"}))
    client = limited.test_client()
    env = {"REMOTE_ADDR": ADDRESS}

    def send(text: str) -> tuple[int, str]:
        html = client.get(f"/clinics/{slug}/review", environ_base=env).get_data(as_text=True)
        data = {
            "csrf_token": re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                                    html).group(1),  # type: ignore[union-attr]
            "form_token": re.search(r'name="form_token" value="([^"]+)"',
                                    html).group(1),  # type: ignore[union-attr]
            "text": text,
        }
        response = client.post(f"/clinics/{slug}/review", data=data, environ_base=env)
        return response.status_code, response.get_data(as_text=True)

    # Forms sent back for a correction do not count; stored reviews do.
    assert send("x" * 1001)[0] == 400
    assert send("first")[0] == 200
    assert send("second")[0] == 200
    status, html = send("third, kept for later")
    assert status == 429
    assert "third, kept for later" in html
    assert "Please wait an hour" in html
    # Another address is not affected.
    assert client.get(f"/clinics/{slug}/review",
                      environ_base={"REMOTE_ADDR": OTHER}).status_code == 200

    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert found
    csrf = found.group(1)
    statuses = [client.post("/reviews/withdraw", data={"csrf_token": csrf, "code": "no such"},
                            environ_base=env).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    page = client.post("/reviews/withdraw", data={"csrf_token": csrf, "code": "no such"},
                       environ_base=env).get_data(as_text=True)
    assert "Please slow down" in page
    assert "Too many tries" in page
