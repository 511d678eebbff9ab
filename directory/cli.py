"""Command-line tools, registered on the app."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext

from directory.config import PROJECT_ROOT
from directory.extensions import db
from directory.importer import ImportFailed, run_import

DEFAULT_DATA_DIR = PROJECT_ROOT / "data" / "raw"


def register(app: Flask) -> None:
    """Add the project's commands to `flask`: the importer here, the rest per audience."""
    from directory import api, moderation, reviews

    app.cli.add_command(import_clinics)
    for audience in (reviews, moderation, api):
        audience.register_commands(app)


@click.command("import-clinics")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Folder holding the seed files described in data/SOURCES.md.",
)
@click.option("--dry-run", is_flag=True, help="Read, merge and compare, then roll back.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every merged and rejected row, with its reason, to this file.",
)
@with_appcontext
def import_clinics(data_dir: Path, dry_run: bool, report_path: Path | None) -> None:
    """Import the seed clinic data in one transaction, committed here or not at all."""
    try:
        report = run_import(data_dir, db.session())
    except ImportFailed as exc:
        db.session.rollback()
        raise click.ClickException(f"import failed, nothing was changed: {exc}") from exc
    except BaseException:
        db.session.rollback()
        raise
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    for line in report.lines():
        click.echo(line)
    if dry_run:
        click.echo("dry run: nothing was saved")
    if report_path is not None:
        report_path.write_text("\n".join(report.full_lines()) + "\n", encoding="utf-8")
        click.echo(f"full report written to {report_path}")
