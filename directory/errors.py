"""When the database is away (restarting, failing over, refusing connections).

A visitor gets a kind 503 in the site's layout with Retry-After, never a traceback or a
bare 500; the request's transaction is rolled back, so what was sent is not kept. The
log line names the kind of error only: no address, no path's query, nothing typed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from flask import Flask, Response, make_response, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from directory.extensions import db

# A lost or refused connection; not a constraint or a bad query, which stay 500s (bugs).
DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 10

log = logging.getLogger(__name__)


def forget_failed_transaction() -> None:
    """Roll the session back so the rest of this request may use it again."""
    with contextlib.suppress(SQLAlchemyError):
        db.session.rollback()


def log_database_error(error: Exception) -> None:
    """One line, naming the error's kind: its message may quote a query's values."""
    log.warning("database unreachable (%s): answered 503", type(error).__name__)


def with_retry_after(response: Response) -> Response:
    """Tell clients (and the proxy) when trying again makes sense."""
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def unavailable_page(kept_text: str = "") -> Response:
    """The 503 page; `kept_text` is what a person typed, handed back to copy."""
    page = render_template("error.html", code=503, error=None, kept_text=kept_text)
    return with_retry_after(make_response(page, 503))


def form_failed(error: Exception, retyped: Callable[[], ResponseReturnValue | None],
                kept_text: str) -> ResponseReturnValue:
    """A form's send met a failing database: nothing was kept, and nothing typed is lost.

    `retyped()` renders the form again with what was sent (None when the request was not
    a send); if the database is still away for that too, the 503 page hands `kept_text`
    back to copy.
    """
    forget_failed_transaction()
    log_database_error(error)
    try:
        page = retyped()
    except DATABASE_ERRORS:
        forget_failed_transaction()
        page = None
    if page is None:
        return unavailable_page(kept_text=kept_text)
    return with_retry_after(make_response(page))


def database_unavailable(error: Exception) -> Response:
    """App-wide handler for a database that cannot be reached."""
    forget_failed_transaction()
    log_database_error(error)
    return unavailable_page()


def register(app: Flask) -> None:
    """Answer every unreachable-database error with the 503 page."""
    for error_class in DATABASE_ERRORS:
        app.register_error_handler(error_class, database_unavailable)
