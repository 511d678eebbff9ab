"""Sharing an experience: leaving an anonymous review and withdrawing it with its code."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("reviews", __name__)


def register_commands(app: Flask) -> None:
    """Add this audience's command-line tools to `flask`."""
