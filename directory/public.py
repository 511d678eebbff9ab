"""Pages for a person looking for care: search, results, clinic pages, about, safety."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("public", __name__)
