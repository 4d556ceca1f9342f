"""Points on the earth: the valid ranges of latitude and longitude, great-circle distance and
bounding boxes, all on geopy's mean earth radius so that every distance the directory shows
agrees with `geopy.distance.great_circle` (tests check this)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import SupportsFloat

from geopy.distance import EARTH_RADIUS

from .i18n import N_

KM_PER_MILE = 1.609344
# Whole numbers, so that every message, form attribute and schema that shows them reads
# "-90" rather than "-90.0"; comparisons with floats are the same.
LAT_RANGE = (-90, 90)
LON_RANGE = (-180, 180)
# Marked for the catalogue; translated where a person reads it (geocoding.text).
COORDINATES_MESSAGE = N_("Latitude must be between -90 and 90 and longitude between -180 and 180.")


# What float() may be given: text from a form or file, or any real number (Decimal too).
_NUMBER_LIKE = (str, bytes, SupportsFloat)


def valid_lat_lon(lat: float, lon: float) -> bool:
    """True for finite numbers inside the ranges (NaN compares false, so it is refused)."""
    return LAT_RANGE[0] <= lat <= LAT_RANGE[1] and LON_RANGE[0] <= lon <= LON_RANGE[1]


def parse_lat_lon(lat: object, lon: object) -> tuple[float, float] | None:
    """Two values as a valid (lat, lon), or None when either is not a number or out of range."""
    if not (isinstance(lat, _NUMBER_LIKE) and isinstance(lon, _NUMBER_LIKE)):
        return None
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    return (lat_f, lon_f) if valid_lat_lon(lat_f, lon_f) else None


def distance_from(lat: float, lon: float) -> Callable[[float, float], float]:
    """Great-circle distances in km from one point, on geopy's earth radius (the haversine form:
    the same number as geopy's great_circle to within 1e-9, and cheaper). The origin's terms
    are worked out once: search measures every candidate in a box from the same point."""
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt
    p1 = radians(lat)
    cos_p1 = cos(p1)

    def to(lat2: float, lon2: float) -> float:
        p2 = radians(lat2)
        s_dlat = sin((p2 - p1) / 2)
        s_dlon = sin(radians(lon2 - lon) / 2)
        a = s_dlat * s_dlat + cos_p1 * cos(p2) * s_dlon * s_dlon
        return DIAMETER * asin(sqrt(min(1.0, a)))

    return to


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return distance_from(lat1, lon1)(lat2, lon2)


DIAMETER = 2 * EARTH_RADIUS


@dataclass(frozen=True)
class Box:
    south: float
    north: float
    west: float
    east: float  # east < west means the box crosses the antimeridian


def box_around(lat: float, lon: float, km: float) -> Box:
    dlat = math.degrees(km / EARTH_RADIUS)
    south, north = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    if north >= 90.0 or south <= -90.0 or math.cos(math.radians(lat)) < 1e-6:
        return Box(south, north, -180.0, 180.0)
    # The widest longitude span of the circle is at the latitude closest to a pole.
    dlon = math.degrees(km / (EARTH_RADIUS * math.cos(math.radians(max(abs(south), abs(north))))))
    if dlon >= 180.0:
        return Box(south, north, -180.0, 180.0)
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        west += 360.0
    if east > 180.0:
        east -= 360.0
    return Box(south, north, west, east)
