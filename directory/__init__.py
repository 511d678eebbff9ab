"""CareMap NYC: a directory of clinics that treat people in the sex trade with respect."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, render_template, request
from werkzeug.exceptions import HTTPException

from directory.config import PROJECT_ROOT, Settings
from directory.extensions import babel, compress, csrf, db, limiter, migrate
from directory.privacy import (
    PathOnlyAccessLog,
    expire_limits_on_the_window_grid,
    quiet_werkzeug_access_log,
)
from directory.security import register_security


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error pages, commands."""
    app = Flask(
        __name__,
        instance_path=str(PROJECT_ROOT / "instance"),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    settings = settings or Settings.from_env(Path(app.instance_path))
    app.config.from_mapping(settings.flask_config())
    app.config["SETTINGS"] = settings
    register_proxy(app, settings.trusted_proxies)
    register_extensions(app)
    register_blueprints(app)
    register_security(app)
    register_errorhandlers(app)
    register_logging(app)
    register_commands(app)
    return app


def register_proxy(app: Flask, trusted_proxies: int) -> None:
    """Behind a reverse proxy, take the client address from the proxy's header.

    Without it every visitor would share the proxy's address and so one rate-limit key.
    The address still goes nowhere but the hashed limiter key (see privacy.py).
    """
    if trusted_proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies
        )


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions to this app."""
    import directory.models  # noqa: F401  (registers the tables on db.metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    if limiter.enabled:  # a disabled limiter (tests) makes no storage
        expire_limits_on_the_window_grid(limiter.storage)
    compress.init_app(app)
    from directory.i18n import register_i18n, select_locale

    babel.init_app(app, locale_selector=select_locale,
                   default_translation_directories=str(PROJECT_ROOT / "translations"))
    register_i18n(app)


def register_blueprints(app: Flask) -> None:
    """One blueprint per audience."""
    from directory import api, community, moderation, public, reviews

    app.register_blueprint(public.bp)
    app.register_blueprint(reviews.bp)
    app.register_blueprint(community.bp)
    app.register_blueprint(moderation.bp, url_prefix="/moderation")
    app.register_blueprint(api.bp, url_prefix="/api/v1")


def register_errorhandlers(app: Flask) -> None:
    """Friendly pages for every error, in the site's own layout."""

    def render_error(error: HTTPException) -> tuple[str, int]:
        code = error.code or 500
        return render_template("error.html", code=code, error=error), code

    for code in (400, 403, 404, 405, 413, 414, 429, 431, 500):
        app.register_error_handler(code, render_error)
    from directory import errors

    errors.register(app)


def register_logging(app: Flask) -> None:
    """Replace werkzeug's access log, which records addresses and query strings."""
    quiet_werkzeug_access_log()
    logger = logging.getLogger("caremap.access")
    if not app.testing and not logging.getLogger().handlers and not logger.handlers:
        # No time stamp in the format: the time of a request is itself identifying.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    access_log = PathOnlyAccessLog(logger)

    @app.after_request
    def log_request(response):  # type: ignore[no-untyped-def]
        access_log(request.method, request.path, response.status_code)
        return response


def register_commands(app: Flask) -> None:
    """Command-line tools: `flask import-clinics`."""
    from directory.cli import register

    register(app)
