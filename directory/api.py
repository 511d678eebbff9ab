"""Partner data: the read-only JSON API, versioned under /api/v1."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("api", __name__)


def register_commands(app: Flask) -> None:
    """Add this audience's command-line tools to `flask`."""
