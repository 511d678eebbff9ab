"""Command-line tools, registered on the app."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Add the project's commands to `flask`."""
