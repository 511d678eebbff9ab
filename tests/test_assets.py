"""Static assets for slow phones: hashed URLs cached for a year, compressed; pages neither."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from directory.assets import IMMUTABLE, static_url
from tests.factories import make_clinic


def asset_urls(html: str) -> list[str]:
    """Every /static/ URL a page links or loads, the map's late-loaded ones included."""
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    for listed in re.findall(r'data-(?:css|js)="([^"]*)"', html):
        urls += listed.split()
    return urls


def test_static_url_carries_a_hash_of_the_content(app: Flask) -> None:
    with app.test_request_context():
        url = static_url("css/site.css")
        assert re.fullmatch(r"/static/css/site\.css\?v=[0-9a-f]{12}", url)
        assert static_url("css/site.css") == url
        # A file that does not exist gets a plain URL (and a 404), never a made-up hash.
        assert static_url("css/missing.css") == "/static/css/missing.css"
        assert static_url("../directory/config.py") == "/static/../directory/config.py"


def test_every_asset_on_the_public_pages_is_hashed_and_cached_for_a_year(
    client: FlaskClient
) -> None:
    clinic = make_clinic("Synthetic Asset Clinic")
    pages = ["/", "/clinics?near=10011", f"/clinics/{clinic.slug}",
             f"/clinics/{clinic.slug}/review", "/about", "/safety"]
    seen = set()
    for page in pages:
        html = client.get(page).get_data(as_text=True)
        for url in asset_urls(html):
            seen.add(url)
    assert any("leaflet.js?v=" in url for url in seen)
    for url in seen:
        assert "?v=" in url, url
        response = client.get(url.replace("&amp;", "&"))
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == IMMUTABLE, url


def test_a_stale_or_missing_hash_is_not_cached_for_a_year(client: FlaskClient) -> None:
    for url in ("/static/css/site.css", "/static/css/site.css?v=000000000000",
                "/static/css/site.css?v=short"):
        response = client.get(url)
        assert response.status_code == 200
        assert "immutable" not in response.headers.get("Cache-Control", "")


def test_pages_are_never_stored_and_never_compressed(client: FlaskClient) -> None:
    # A compressed page that reflects what was typed beside a token could leak it (BREACH).
    response = client.get("/clinics?near=10011", headers={"Accept-Encoding": "br, gzip"})
    assert response.headers["Cache-Control"] == "no-store"
    assert "Content-Encoding" not in response.headers


def test_assets_are_sent_compressed(client: FlaskClient) -> None:
    with client.application.test_request_context():
        urls = [static_url("css/site.css"), static_url("vendor/leaflet/leaflet.js")]
    for url in urls:
        plain = client.get(url).get_data()
        response = client.get(url, headers={"Accept-Encoding": "br, gzip"})
        assert response.headers["Content-Encoding"] in ("br", "gzip")
        assert len(response.get_data()) < len(plain) / 2
