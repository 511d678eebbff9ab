"""Alembic environment for Flask-Migrate: runs migrations against the app's database."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

config = context.config

# Only the `flask db` command line sets up logging from alembic.ini. Inside the app and the
# tests, logging stays as the app configured it; disable_existing_loggers=False keeps the
# app's own loggers (the path-only access log among them) working after a migration.
if config.config_file_name is not None and not current_app.testing:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")


def get_engine():
    """The Flask-SQLAlchemy engine of the current app."""
    return current_app.extensions["migrate"].db.engine


def get_engine_url():
    """The engine's URL with its password, escaped for configparser."""
    return get_engine().url.render_as_string(hide_password=False).replace("%", "%%")


config.set_main_option("sqlalchemy.url", get_engine_url())
target_db = current_app.extensions["migrate"].db


def get_metadata():
    """The models' metadata, which autogenerate compares the database with."""
    if hasattr(target_db, "metadatas"):
        return target_db.metadatas[None]
    return target_db.metadata


def run_migrations_offline():
    """Emit the migration as SQL on stdout, without a database connection."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url, target_metadata=get_metadata(), literal_binds=True, render_as_batch=True
    )

    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    """Run the migrations on a live connection, in one transaction."""

    def process_revision_directives(context, revision, directives):
        # Autogenerate writes no empty revision when the models did not change.
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    if conf_args.get("process_revision_directives") is None:
        conf_args["process_revision_directives"] = process_revision_directives
    # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead,
    # and is a plain ALTER on PostgreSQL, so one migration serves both.
    conf_args.setdefault("render_as_batch", True)
    conf_args.setdefault("compare_type", True)

    connectable = get_engine()

    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=get_metadata(), **conf_args)

        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
