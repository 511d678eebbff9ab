"""Security headers, and the per-request nonce that lets our own inline scripts run."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request

from directory.assets import IMMUTABLE, is_current_static_request, register_assets


def csp_nonce() -> str:
    """This request's script nonce, made on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return str(g.csp_nonce)


def tile_origin(tiles_url: str) -> str | None:
    """The scheme and host of the configured tile server, or None when tiles are off."""
    if not tiles_url:
        return None
    parts = urlsplit(tiles_url.replace("{s}", "a"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    host = parts.netloc
    if "{s}" in tiles_url:
        # Leaflet spreads tile requests over a, b, c subdomains.
        host = "*." + host.split(".", 1)[1]
    return f"{parts.scheme}://{host}"


def content_security_policy(nonce: str, tiles_url: str) -> str:
    """Our origin only, plus the tile host for images; scripts need this request's nonce."""
    img = "'self' data:"
    origin = tile_origin(tiles_url)
    if origin:
        img += f" {origin}"
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            # Leaflet positions map panes with inline style attributes.
            "style-src 'self' 'unsafe-inline'",
            f"img-src {img}",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def set_security_headers(response: Response) -> Response:
    """Add the headers every response carries."""
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(
        csp_nonce(), current_app.config.get("MAP_TILES_URL", "")
    )
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Permissions-Policy"] = (
        "geolocation=(self), camera=(), microphone=(), payment=(), interest-cohort=()"
    )
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.is_secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    if not request.path.startswith("/static/"):
        # Pages may show what someone searched for: never keep them in a shared cache
        # or in the browser's history cache.
        headers["Cache-Control"] = "no-store"
    elif response.status_code == 200 and is_current_static_request():
        # The URL names this exact content (assets.static_url): keep it for a year, so
        # a slow or metered phone fetches Leaflet once. Static files say nothing about
        # who asked for them; every site visitor gets the same ones.
        headers["Cache-Control"] = IMMUTABLE
    return response


def register_security(app: Flask) -> None:
    """Install the headers and make the nonce available to templates."""
    app.after_request(set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    register_assets(app)
