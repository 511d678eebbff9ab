"""Maps of clinics, drawn with folium but served entirely from our own origin.

Folium's defaults load Leaflet, jQuery, Bootstrap and icon fonts from CDNs, which would
tell those hosts who looks at this directory; its full-page document also forces a
`user-scalable=no` viewport. So a map here is rendered as parts (asset URLs on our
origin, the map's id, one inline script) that our own templates place, and the only
third-party request left is the tile server the operator configured, if any.

Clinic names and addresses never enter folium's templates: folium writes popup and
tooltip text raw into JavaScript template literals. Data crosses into the script once,
as JSON escaped by `script_json`, and static/js/clinic-map.js builds popups from it
with `textContent`, never as HTML.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import folium
from branca.element import CssLink, Figure, JavascriptLink, MacroElement
from folium.elements import JSCSSMixin
from folium.plugins import MarkerCluster
from folium.template import Template

from directory.geo import Place

# Without tiles Leaflet has no zoom limits, and MarkerCluster refuses to start without a
# maximum zoom; with tiles this is also as far as OpenStreetMap's tiles go.
MAX_ZOOM = 18
MIN_ZOOM = 9
MARKER_SPACING = 64  # px; see render_map
CITY_CENTRE = (40.7128, -74.0060)

LEAFLET_JS = "vendor/leaflet/leaflet.js"
LEAFLET_CSS = "vendor/leaflet/leaflet.css"
CLUSTER_JS = "vendor/leaflet.markercluster/leaflet.markercluster.js"
CLUSTER_CSS = (
    "vendor/leaflet.markercluster/MarkerCluster.css",
    "vendor/leaflet.markercluster/MarkerCluster.Default.css",
)
CLINIC_MAP_JS = "js/clinic-map.js"

# Characters that could end a <script> element, open an HTML comment or a template
# literal substitution, or (U+2028/9) break older JavaScript parsers, as JSON escapes.
_SCRIPT_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "'": "\\u0027",
    "`": "\\u0060",
    "$": "\\u0024",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


class UnsafeMapAsset(RuntimeError):
    """A map asset would be loaded from another origin: refuse to render it."""


# A JSON string token in json.dumps output.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _no_braces(match: re.Match[str]) -> str:
    return match.group(0).replace("{", "\\u007b").replace("}", "\\u007d")


def script_json(value: Any) -> str:
    """JSON that is inert inside an inline <script>, whatever strings it holds.

    Braces inside strings are escaped too: branca compiles each element's rendered script
    as a Jinja template, so a name holding "{{ ... }}" would otherwise run on the server.
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    text = _JSON_STRING.sub(_no_braces, text)
    return "".join(_SCRIPT_ESCAPES.get(char, char) for char in text)


@dataclass(frozen=True)
class Pin:
    """One clinic on a map: plain data, never HTML."""

    name: str
    latitude: float
    longitude: float
    url: str
    address: str = ""
    distance: str = ""  # "0.4 mi", or "" when there is no place to measure from
    open_now: bool | None = None  # None when the hours are not known
    score: str = ""  # the reviews' line: "Respect score 4.2 of 5 · 7 reviews", or why none

    def as_dict(self) -> dict[str, object]:
        """The fields clinic-map.js reads."""
        return {
            "name": self.name,
            "lat": self.latitude,
            "lng": self.longitude,
            "url": self.url,
            "address": self.address,
            "distance": self.distance,
            "open": self.open_now,
            "score": self.score,
        }


@dataclass(frozen=True)
class MapParts:
    """A rendered map, in the pieces our templates place: never folium's whole page."""

    map_id: str
    css: list[str]
    js: list[str]
    script: str  # for <script nonce=...>; data inside it went through script_json


class ClinicMarkers(JSCSSMixin, MacroElement):
    """Clinic markers and their popups, added by our own script from escaped JSON."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            CareMap.addClinics({{ this.map_name }}, {{ this.layer_name }}, {{ this.data }});
        {% endmacro %}
        """
    )

    def __init__(self, map_name: str, layer_name: str, data: dict[str, object],
                 script_url: str) -> None:
        super().__init__()
        self._name = "ClinicMarkers"
        self.map_name = map_name
        self.layer_name = layer_name
        # The only way data enters the script: escaped for an inline <script>.
        self.data = script_json(data)
        self.default_js = [("caremap_clinic_map", script_url)]
        self.default_css = []


def _own_assets(m: folium.Map, cluster: MarkerCluster | None, static: str) -> None:
    """Point folium's asset lists at our vendored copies and drop what we do not use.

    jQuery, Bootstrap, Font Awesome and awesome-markers serve folium's popups and icon
    markers, neither of which we use; Leaflet and MarkerCluster are all the script needs.
    """
    m.default_js = [("leaflet", static + LEAFLET_JS)]
    m.default_css = [("leaflet_css", static + LEAFLET_CSS)]
    if cluster is not None:
        cluster.default_js = [("markerclusterjs", static + CLUSTER_JS)]
        cluster.default_css = [
            ("markerclustercss", static + CLUSTER_CSS[0]),
            ("markerclusterdefaultcss", static + CLUSTER_CSS[1]),
        ]


def _parts(m: folium.Map) -> MapParts:
    """Render the map's figure and keep only its asset URLs and its script."""
    figure = m.get_root()
    if not isinstance(figure, Figure):
        raise TypeError("a folium map always sits in a Figure")
    figure.render()
    css: list[str] = []
    js: list[str] = []
    # The header's other children (folium's viewport meta, full-page CSS, globals
    # script) are dropped on purpose: our layout owns the page.
    for child in figure.header._children.values():
        if isinstance(child, JavascriptLink):
            js.append(child.url)
        elif isinstance(child, CssLink):
            css.append(child.url)
    for url in (*css, *js):
        if not url.startswith("/") or url.startswith("//"):
            raise UnsafeMapAsset(url)
    return MapParts(map_id=m.get_name(), css=css, js=js, script=figure.script.render())


def render_map(
    pins: list[Pin],
    *,
    centre: Place | None = None,
    tiles_url: str = "",
    attribution: str = "",
    cluster: bool = True,
    zoom: int = 14,
    static: str = "/static/",
    words: dict[str, str] | None = None,
) -> MapParts:
    """A map of the pins (clustered when asked), around the search place if there is one.

    An empty `tiles_url` draws markers on a blank map and makes no tile request at all.
    `words` are the popups' own words in the page's language ("open", "closed", "unknown").
    """
    if centre is not None:
        location = (centre.latitude, centre.longitude)
    elif pins:
        location = (pins[0].latitude, pins[0].longitude)
    else:
        location = CITY_CENTRE
    m = folium.Map(location=location, zoom_start=zoom, tiles=None, control_scale=True)
    # Folium only passes max_zoom to a tile layer; the map itself needs it (see MAX_ZOOM).
    m.options["max_zoom"] = MAX_ZOOM
    m.options["min_zoom"] = MIN_ZOOM
    layer: MarkerCluster | None = None
    if cluster:
        # Points closer than a marker's height plus half a cluster icon (41 + 20 px) are
        # clustered, so no marker hides part of another: each stays a whole 24 px target
        # (WCAG 2.5.8), and the list above stays the equivalent for every one.
        layer = MarkerCluster(
            show_coverage_on_hover=False, spiderfy_on_max_zoom=True,
            max_cluster_radius=MARKER_SPACING,
        )
        layer.add_to(m)
    _own_assets(m, layer, static)
    data: dict[str, object] = {"clinics": [pin.as_dict() for pin in pins]}
    if words:
        data["words"] = dict(words)
    if centre is not None:
        data["centre"] = {"lat": centre.latitude, "lng": centre.longitude}
    markers = ClinicMarkers(
        m.get_name(), (layer or m).get_name(), data, static + CLINIC_MAP_JS
    )
    m.add_child(markers)
    points = [(pin.latitude, pin.longitude) for pin in pins]
    if centre is not None:
        points.append(location)
    if len(points) > 1:
        south = min(p[0] for p in points)
        north = max(p[0] for p in points)
        west = min(p[1] for p in points)
        east = max(p[1] for p in points)
        fit = folium.FitBounds([[south, west], [north, east]], padding=(24, 24), max_zoom=16)
        # Jump, do not animate: tiles added mid-animation are fetched for the old zoom.
        fit.options["animate"] = False
        m.add_child(fit)
    if tiles_url:
        # Added after fitBounds so the server is asked only for the tiles of the final view.
        folium.TileLayer(
            tiles=tiles_url, attr=attribution or " ", max_zoom=MAX_ZOOM, min_zoom=MIN_ZOOM,
            name="map images",
        ).add_to(m)
    return _parts(m)
