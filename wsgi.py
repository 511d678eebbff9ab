"""Entry point for gunicorn and `flask run`."""

from directory import create_app

app = create_app()
