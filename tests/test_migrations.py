"""The Alembic migrations build exactly the schema the models describe, and undo it.

Production databases are only ever changed by these migrations (never `create_all`), so a
model change without a migration, or a migration that cannot be undone, fails here on
SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from directory import create_app
from directory.config import Settings
from directory.extensions import db


def _drop_everything(url: str) -> None:
    """Drop every table (alembic_version included) so the database starts empty."""
    engine = sa.create_engine(url)
    try:
        existing = sa.MetaData()
        existing.reflect(engine)
        existing.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture
def empty_database_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database: a fresh SQLite file, or this run's PostgreSQL scratch database."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    _drop_everything(database_url)
    try:
        yield database_url
    finally:
        # Leave the scratch database empty for the `app` fixture of the next test.
        _drop_everything(database_url)


@pytest.fixture
def migrations_app(settings: Settings, empty_database_url: str) -> Iterator[Flask]:
    """An app on an empty database, with no tables made by `create_all`."""
    app = create_app(dataclasses.replace(settings, database_url=empty_database_url))
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


def _alembic_config(app: Flask) -> Config:
    """The Alembic configuration Flask-Migrate uses for this app."""
    config: Config = app.extensions["migrate"].migrate.get_config()
    return config


def _tables() -> set[str]:
    """The tables now in the app's database."""
    return set(sa.inspect(db.engine).get_table_names())


def _schema_differences() -> list[object]:
    """What autogenerate would change to make the database match the models."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, db.metadata))


def test_one_head() -> None:
    """Migrations form one line: two heads mean two branches that were never merged."""
    app = create_app(Settings(secret_key="unused", database_url="sqlite://", testing=True))
    with app.app_context():
        script = ScriptDirectory.from_config(_alembic_config(app))
        assert len(script.get_heads()) == 1


def test_upgrade_builds_the_models_schema(migrations_app: Flask) -> None:
    """Upgrading an empty database to head gives every model table, and nothing to add."""
    command.upgrade(_alembic_config(migrations_app), "head")

    assert set(db.metadata.tables) <= _tables()
    assert _schema_differences() == []


def test_downgrade_to_base_removes_every_table(migrations_app: Flask) -> None:
    """Downgrading to base undoes every migration; upgrading again still works."""
    config = _alembic_config(migrations_app)
    command.upgrade(config, "head")
    command.downgrade(config, "base")

    assert _tables() <= {"alembic_version"}

    command.upgrade(config, "head")
    assert _schema_differences() == []
