"""Places and distances: ZIP codes, neighbourhood names and "near me" points in NYC.

Geocoding uses only data that ships with the project: ZIP centroids from the `zipcodes`
package and neighbourhood centroids imported from the 2020 NTA polygons. No network
geocoder is ever called, so a search never tells a third party where someone is.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import zipcodes
from flask_babel import gettext
from geopy.distance import great_circle
from sqlalchemy import select

from directory.extensions import db
from directory.i18n import N_
from directory.models import Neighbourhood

NYC_COUNTIES = {
    "New York County": N_("Manhattan"),
    "Kings County": N_("Brooklyn"),
    "Queens County": N_("Queens"),
    "Bronx County": N_("Bronx"),
    "Richmond County": N_("Staten Island"),
}
# A box around the five boroughs, with a little margin for points near the edge.
NYC_BOUNDS = (40.45, -74.30, 40.95, -73.65)
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")


class PlaceNotFound(ValueError):
    """The place someone typed is unknown or outside NYC; the message says so kindly."""


@dataclass(frozen=True)
class Place:
    """A point to search around, with a label to show the person."""

    label: str
    latitude: float
    longitude: float
    kind: str  # "zip" | "neighbourhood" | "point"


def round_coordinate(value: float) -> float:
    """Round a coordinate to 2 decimals (about 1 km), the most precision we ever handle."""
    return round(value, 2)


def in_nyc(latitude: float, longitude: float) -> bool:
    """Whether a point lies within the box around New York City."""
    south, west, north, east = NYC_BOUNDS
    return south <= latitude <= north and west <= longitude <= east


@lru_cache(maxsize=2048)
def zip_centroid(code: str) -> tuple[float, float, str] | None:
    """(latitude, longitude, borough) of an NYC ZIP code's centroid, or None if not in NYC."""
    code = code.strip()[:5]
    if not _ZIP.match(code):
        return None
    try:
        matches = zipcodes.matching(code)
    except (TypeError, ValueError):
        return None
    for match in matches:
        borough = NYC_COUNTIES.get(match.get("county", ""))
        if borough and match.get("state") == "NY" and match.get("lat") and match.get("long"):
            # The package gives coordinates as strings.
            return float(match["lat"]), float(match["long"]), borough
    return None


def _zip_place(code: str) -> Place:
    found = zip_centroid(code)
    if found is None:
        if zipcodes.is_real(code[:5]):
            raise PlaceNotFound(gettext(
                "The ZIP code %(zip)s is outside New York City. "
                "Try a ZIP code in the five boroughs, or a neighbourhood name.", zip=code[:5]
            ))
        raise PlaceNotFound(gettext(
            "We could not find the ZIP code %(zip)s. Check the digits, or try a "
            "neighbourhood name.", zip=code[:5]
        ))
    latitude, longitude, borough = found
    return Place(gettext("ZIP %(zip)s (%(borough)s)", zip=code[:5], borough=gettext(borough)),
                 latitude, longitude, "zip")


def _fold(text: str) -> str:
    """Lower-case, strip accents and punctuation, collapse spaces: for forgiving matches."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", " ", text.lower())
    return " ".join(text.split())


def _aliases(name: str) -> list[str]:
    """A neighbourhood name and its parts: "Mott Haven-Port Morris" is also "Port Morris"."""
    parts = [name, *re.split(r"-|\(|\)|/|,", name)]
    return [alias for alias in (_fold(p) for p in parts) if len(alias) >= 3]


def find_neighbourhood(text: str) -> Neighbourhood | None:
    """The neighbourhood a typed name means: exact, then prefix, then a close spelling."""
    wanted = _fold(text)
    if len(wanted) < 3:
        return None
    rows = db.session.execute(select(Neighbourhood)).scalars().all()
    by_alias: dict[str, Neighbourhood] = {}
    for row in rows:
        for alias in _aliases(row.name):
            by_alias.setdefault(alias, row)
    if wanted in by_alias:
        return by_alias[wanted]
    prefixed = sorted(alias for alias in by_alias if alias.startswith(wanted))
    if prefixed:
        return by_alias[prefixed[0]]
    close = difflib.get_close_matches(wanted, list(by_alias), n=1, cutoff=0.75)
    if close:
        return by_alias[close[0]]
    # A typo near the start of a longer name: compare with prefixes of the same length.
    heads = {alias[: len(wanted)]: alias for alias in sorted(by_alias, reverse=True)}
    close = difflib.get_close_matches(wanted, list(heads), n=1, cutoff=0.8)
    return by_alias[heads[close[0]]] if close else None


def neighbourhood_names() -> list[str]:
    """Every neighbourhood name, sorted, for suggestions in the search form."""
    return sorted(db.session.execute(select(Neighbourhood.name)).scalars().all())


def _point_place(latitude: float, longitude: float) -> Place:
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise PlaceNotFound(gettext("That location does not look right. Try a ZIP code instead."))
    latitude, longitude = round_coordinate(latitude), round_coordinate(longitude)
    if not in_nyc(latitude, longitude):
        raise PlaceNotFound(gettext(
            "Your location seems to be outside New York City. Try a ZIP code or a "
            "neighbourhood name."
        ))
    return Place(gettext("your location (about 1 km)"), latitude, longitude, "point")


def resolve_place(near: str, latitude: float | None, longitude: float | None) -> Place | None:
    """Turn what the person gave (a point, a ZIP or a name) into a Place; None if nothing."""
    if latitude is not None or longitude is not None:
        if latitude is None or longitude is None:
            raise PlaceNotFound(gettext("Your location came through incomplete. Try a ZIP code."))
        return _point_place(latitude, longitude)
    near = (near or "").strip()
    if not near:
        return None
    if _ZIP.match(near):
        return _zip_place(near)
    if near.isdigit():
        raise PlaceNotFound(gettext("A ZIP code has five digits, like 10011."))
    found = find_neighbourhood(near)
    if found is None:
        raise PlaceNotFound(gettext(
            "We could not find a neighbourhood by that name. Try another spelling, a "
            "nearby neighbourhood, or a ZIP code."
        ))
    # The neighbourhood's name is published data, kept as it is; the borough is translated.
    return Place(f"{found.name} ({gettext(found.borough)})", found.latitude, found.longitude,
                 "neighbourhood")


def distance_miles(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance in miles between two points."""
    return float(great_circle((lat1, lng1), (lat2, lng2)).miles)
