"""Moderators: sign-in with a second factor, the review queue, redaction and the audit log."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("moderation", __name__)


def register_commands(app: Flask) -> None:
    """Add this audience's command-line tools to `flask`."""
