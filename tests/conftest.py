"""Fixtures chain settings -> app -> database -> client, with a fresh database per test.

The suite runs on SQLite by default. With TEST_DATABASE_URL pointing at a PostgreSQL
server, the same tests run there, each pytest process in a scratch database of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings as hypothesis_settings

from directory import create_app
from directory.config import Settings
from directory.extensions import db

PG_URL = os.environ.get("TEST_DATABASE_URL", "")

# Fuzz tests explore new inputs on every run on a developer's machine; CI runs the same
# derandomized examples each time, so what lands is decided by the code, not by chance.
# A case found locally is kept as an @example, which every run then tries.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


def _scratch_postgres() -> Iterator[str]:
    """Create a throwaway PostgreSQL database for this process; drop it afterwards."""
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"caremap_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI") == "true":
            raise  # Under CI a missing server is a failure, never a skip.
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    url = sa.engine.make_url(PG_URL).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The database every test of this run uses: scratch PostgreSQL or a SQLite file."""
    if PG_URL:
        yield from _scratch_postgres()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for tests: no tile server, a fixed secret, no rate limits in the way."""
    return Settings(
        env="testing",
        secret_key="test-secret-not-for-production",
        database_url=database_url,
        map_tiles_url="",
        testing=True,
        extra={
            "RATELIMIT_ENABLED": False,
            "WTF_CSRF_ENABLED": True,
            # Cheap password hashing in tests only; production keeps the strong defaults.
            "ARGON2_TIME_COST": 1,
            "ARGON2_MEMORY_COST": 8,
            "ARGON2_PARALLELISM": 1,
        },
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """An app with empty tables, dropped again after the test."""
    app = create_app(settings)
    with app.app_context():
        db.create_all()
        try:
            yield app
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def is_postgres(database_url: str) -> bool:
    """Whether this run is on PostgreSQL."""
    return database_url.startswith("postgresql")
