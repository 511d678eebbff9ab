"""Maps: every asset from our origin, no tile request when tiles are off, data inert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from directory import maps
from directory.config import PROJECT_ROOT
from directory.geo import Place
from directory.maps import Pin, UnsafeMapAsset, render_map, script_json

HOSTILE = "<script>alert(1)</script> ${alert(1)} `tick` \"double\" 'single' \\ \u2028 </SCRIPT"
TILES = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


def clinic_data(script: str) -> dict[str, object]:
    """The JSON that CareMap.addClinics receives in a rendered map script."""
    found = re.search(r"CareMap\.addClinics\(\w+, \w+, (\{.*\})\);", script)
    assert found, script
    return json.loads(found.group(1))


def test_script_json_is_inert_in_an_inline_script_and_round_trips() -> None:
    text = script_json({"name": HOSTILE})
    for dangerous in ("<", ">", "`", "${", "'", "\u2028"):
        assert dangerous not in text
    assert json.loads(text) == {"name": HOSTILE}


def test_a_hostile_clinic_name_is_inert_in_the_map_script() -> None:
    pin = Pin(HOSTILE, 40.74, -74.0, "/clinics/x", address=HOSTILE, distance="0.4 mi",
              open_now=True)
    parts = render_map([pin], tiles_url=TILES, attribution="&copy; OpenStreetMap")
    assert "</script" not in parts.script.lower()
    assert "<script" not in parts.script.lower()
    assert "`" not in parts.script
    assert "${" not in parts.script
    data = clinic_data(parts.script)
    clinic = data["clinics"][0]  # type: ignore[index]
    assert clinic["name"] == HOSTILE
    assert clinic["address"] == HOSTILE
    assert clinic["url"] == "/clinics/x"


@pytest.mark.parametrize("name", ["{{ 7*7 }}", "{% if 1 %}x{% endif %}", "{{ unclosed",
                                  "{#", "{{ config.items() }}"])
def test_template_syntax_in_a_name_is_neither_run_nor_an_error_on_the_server(name: str) -> None:
    # branca renders each element's script as a Jinja template: a clinic name holding
    # template syntax once ran on the server ("{{7*7}}" showed as 49) or gave a 500.
    pin = Pin(name, 40.74, -74.0, "/clinics/x", address=name, distance="0.4 mi",
              open_now=True)
    parts = render_map([pin], tiles_url="", attribution="")
    clinic = clinic_data(parts.script)["clinics"][0]  # type: ignore[index]
    assert clinic["name"] == name
    assert clinic["address"] == name


def test_every_asset_is_ours_and_exists_and_nothing_comes_from_a_cdn() -> None:
    parts = render_map([Pin("A", 40.74, -74.0, "/clinics/a")], tiles_url=TILES,
                       attribution="&copy; OpenStreetMap")
    urls = [*parts.css, *parts.js]
    assert urls == [
        "/static/vendor/leaflet/leaflet.css",
        "/static/vendor/leaflet.markercluster/MarkerCluster.css",
        "/static/vendor/leaflet.markercluster/MarkerCluster.Default.css",
        "/static/vendor/leaflet/leaflet.js",
        "/static/vendor/leaflet.markercluster/leaflet.markercluster.js",
        "/static/js/clinic-map.js",
    ]
    for url in urls:
        assert (PROJECT_ROOT / url.lstrip("/")).is_file(), url
    everything = " ".join([*urls, parts.script]).lower()
    for word in ("cdn", "bootstrap", "jquery", "fontawesome", "awesome", "googleapis"):
        assert word not in everything
    # The only outside address left is the tile template the operator configured.
    assert re.findall(r"https?://[^\"'\s]+", parts.script) == [TILES]


def test_vendored_libraries_keep_their_licences_and_marker_images() -> None:
    vendor = PROJECT_ROOT / "static" / "vendor"
    assert "BSD" in (vendor / "leaflet" / "LICENSE").read_text() or (
        "Redistribution" in (vendor / "leaflet" / "LICENSE").read_text())
    assert "Permission is hereby granted" in (
        vendor / "leaflet.markercluster" / "LICENSE").read_text()
    for image in ("marker-icon.png", "marker-icon-2x.png", "marker-shadow.png"):
        assert (vendor / "leaflet" / "images" / image).is_file()
    # Leaflet finds its marker images relative to its stylesheet, i.e. on our origin.
    assert "url(images/marker-icon.png)" in (vendor / "leaflet" / "leaflet.css").read_text()


def test_without_tiles_there_is_no_tile_layer_and_the_map_has_a_max_zoom() -> None:
    parts = render_map([Pin("A", 40.74, -74.0, "/a"), Pin("B", 40.75, -74.01, "/b")],
                       tiles_url="")
    assert "tileLayer" not in parts.script
    assert "http" not in parts.script
    # MarkerCluster needs a maximum zoom when no tile layer sets one.
    assert '"maxZoom": 18' in parts.script
    assert "L.markerClusterGroup" in parts.script
    assert "fitBounds" in parts.script


def test_with_tiles_the_configured_server_and_attribution_are_used() -> None:
    parts = render_map([Pin("A", 40.74, -74.0, "/a")], tiles_url=TILES,
                       attribution="&copy; OpenStreetMap contributors")
    assert f'L.tileLayer(\n                "{TILES}"' in parts.script
    assert "\\u0026copy; OpenStreetMap contributors" in parts.script


def test_tiles_are_added_after_the_final_view_so_no_unseen_tiles_are_fetched() -> None:
    parts = render_map([Pin("A", 40.74, -74.0, "/a"), Pin("B", 40.60, -74.10, "/b")],
                       tiles_url=TILES, attribution="OSM")
    assert '"animate": false' in parts.script
    assert parts.script.index("fitBounds") < parts.script.index("L.tileLayer")


def test_a_single_clinic_map_has_no_cluster_and_centres_on_the_search_place() -> None:
    place = Place("ZIP 10011 (Manhattan)", 40.7402, -73.9996, "zip")
    one = render_map([Pin("A", 40.74, -74.0, "/a")], cluster=False, zoom=16)
    assert "markerClusterGroup" not in one.script
    assert not any("markercluster" in url for url in [*one.css, *one.js])
    around = render_map([Pin("A", 40.76, -74.0, "/a")], centre=place)
    assert clinic_data(around.script)["centre"] == {"lat": 40.7402, "lng": -73.9996}
    # The searched place stays plain data: its label (which can hold a typed name) is not sent.
    assert "10011" not in around.script


def test_a_map_asset_from_another_origin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # If a folium upgrade added a CDN asset we did not override, rendering must fail loudly.
    monkeypatch.setattr(maps, "_own_assets", lambda m, cluster, static: None)
    with pytest.raises(UnsafeMapAsset):
        render_map([Pin("A", 40.74, -74.0, "/a")])


def test_the_popup_script_builds_text_nodes_never_html() -> None:
    source = Path(PROJECT_ROOT / "static" / "js" / "clinic-map.js").read_text()
    assert "textContent" in source
    code = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code
