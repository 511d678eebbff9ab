"""Cache-busting URLs for our own static files, so phones keep them for a year.

`static_url("css/site.css")` is `/static/css/site.css?v=<hash>`, the hash taken from the
file's content. A request that carries the file's current hash gets
`Cache-Control: public, max-age=31536000, immutable` (see security.py): a phone on a slow
or metered connection downloads Leaflet once, not on every page. When a file changes, its
hash and so its URL change, and the next page asks for the new one. A request with a
stale or missing hash gets Flask's default (revalidate every time), never a year.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, Response, current_app, request, url_for

HASH_LENGTH = 12  # hex digits of SHA-256: plenty to tell versions of one file apart
YEAR = 31_536_000
IMMUTABLE = f"public, max-age={YEAR}, immutable"
STYLESHEET = "css/site.css"

# (path, size, mtime) -> hash. The stat is cheap, and it keeps `flask run`'s edits visible.
_hashes: dict[tuple[str, int, int], str] = {}


def file_hash(path: Path) -> str | None:
    """A short hash of a file's content, or None if it is not a file."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    cached = _hashes.get(key)
    if cached is None:
        cached = hashlib.sha256(path.read_bytes()).hexdigest()[:HASH_LENGTH]
        _hashes[key] = cached
    return cached


def _static_path(app: Flask, filename: str) -> Path | None:
    """The file under the static folder a URL names, or None (also for ../ escapes)."""
    if not app.static_folder:
        return None
    root = Path(app.static_folder).resolve()
    path = (root / filename).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def static_url(filename: str) -> str:
    """The URL of a static file, with its content hash so it can be cached for a year."""
    path = _static_path(current_app, filename)
    digest = file_hash(path) if path else None
    if digest is None:
        return url_for("static", filename=filename)
    return url_for("static", filename=filename, v=digest)


def versioned(url: str) -> str:
    """A /static/... URL made by url_for, with its content hash added (others unchanged)."""
    prefix = url_for("static", filename="")
    if not url.startswith(prefix) or "?" in url:
        return url
    return static_url(url[len(prefix):])


def is_current_static_request() -> bool:
    """Whether this request is for a static file and carries that file's current hash."""
    if request.endpoint != "static" or not request.view_args:
        return False
    wanted = request.args.get("v", "")
    if len(wanted) != HASH_LENGTH:
        return False
    path = _static_path(current_app, str(request.view_args.get("filename", "")))
    return path is not None and file_hash(path) == wanted


def preload_stylesheet(response: Response) -> Response:
    """Name the site's stylesheet in a `Link: rel=preload` header on every page.

    The browser then asks for it as soon as the page's headers arrive, instead of after
    the first part of the page has come in: on slow 3G that is the difference between a
    first paint under 1.5 s and over it (bench/pages.py).
    """
    if response.mimetype == "text/html" and request.endpoint != "static":
        response.headers.add("Link", f"<{static_url(STYLESHEET)}>; rel=preload; as=style")
    return response


def register_assets(app: Flask) -> None:
    """Make static_url() available to templates; preload the stylesheet on pages."""
    app.jinja_env.globals["static_url"] = static_url
    app.after_request(preload_stylesheet)
