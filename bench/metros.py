"""Fifty real US metro centres (downtown coordinates, rounded) and the continental US box.

Synthetic listings cluster around these; query points are drawn near them too.
"""

from __future__ import annotations

from typing import NamedTuple


class Metro(NamedTuple):
    name: str
    region: str  # ISO 3166-2, as listings.region stores it
    lat: float
    lon: float


METROS: tuple[Metro, ...] = (
    Metro("New York", "US-NY", 40.7128, -74.0060),
    Metro("Los Angeles", "US-CA", 34.0522, -118.2437),
    Metro("Chicago", "US-IL", 41.8781, -87.6298),
    Metro("Dallas", "US-TX", 32.7767, -96.7970),
    Metro("Houston", "US-TX", 29.7604, -95.3698),
    Metro("Washington", "US-DC", 38.9072, -77.0369),
    Metro("Philadelphia", "US-PA", 39.9526, -75.1652),
    Metro("Miami", "US-FL", 25.7617, -80.1918),
    Metro("Atlanta", "US-GA", 33.7490, -84.3880),
    Metro("Boston", "US-MA", 42.3601, -71.0589),
    Metro("Phoenix", "US-AZ", 33.4484, -112.0740),
    Metro("San Francisco", "US-CA", 37.7749, -122.4194),
    Metro("Riverside", "US-CA", 33.9806, -117.3755),
    Metro("Detroit", "US-MI", 42.3314, -83.0458),
    Metro("Seattle", "US-WA", 47.6062, -122.3321),
    Metro("Minneapolis", "US-MN", 44.9778, -93.2650),
    Metro("San Diego", "US-CA", 32.7157, -117.1611),
    Metro("Tampa", "US-FL", 27.9506, -82.4572),
    Metro("Denver", "US-CO", 39.7392, -104.9903),
    Metro("Baltimore", "US-MD", 39.2904, -76.6122),
    Metro("St. Louis", "US-MO", 38.6270, -90.1994),
    Metro("Orlando", "US-FL", 28.5383, -81.3792),
    Metro("Charlotte", "US-NC", 35.2271, -80.8431),
    Metro("San Antonio", "US-TX", 29.4241, -98.4936),
    Metro("Portland", "US-OR", 45.5152, -122.6784),
    Metro("Sacramento", "US-CA", 38.5816, -121.4944),
    Metro("Pittsburgh", "US-PA", 40.4406, -79.9959),
    Metro("Austin", "US-TX", 30.2672, -97.7431),
    Metro("Las Vegas", "US-NV", 36.1699, -115.1398),
    Metro("Cincinnati", "US-OH", 39.1031, -84.5120),
    Metro("Kansas City", "US-MO", 39.0997, -94.5786),
    Metro("Columbus", "US-OH", 39.9612, -82.9988),
    Metro("Indianapolis", "US-IN", 39.7684, -86.1581),
    Metro("Cleveland", "US-OH", 41.4993, -81.6944),
    Metro("San Jose", "US-CA", 37.3382, -121.8863),
    Metro("Nashville", "US-TN", 36.1627, -86.7816),
    Metro("Virginia Beach", "US-VA", 36.8529, -75.9780),
    Metro("Providence", "US-RI", 41.8240, -71.4128),
    Metro("Jacksonville", "US-FL", 30.3322, -81.6557),
    Metro("Milwaukee", "US-WI", 43.0389, -87.9065),
    Metro("Raleigh", "US-NC", 35.7796, -78.6382),
    Metro("Oklahoma City", "US-OK", 35.4676, -97.5164),
    Metro("Memphis", "US-TN", 35.1495, -90.0490),
    Metro("Richmond", "US-VA", 37.5407, -77.4360),
    Metro("Louisville", "US-KY", 38.2527, -85.7585),
    Metro("New Orleans", "US-LA", 29.9511, -90.0715),
    Metro("Salt Lake City", "US-UT", 40.7608, -111.8910),
    Metro("Hartford", "US-CT", 41.7658, -72.6734),
    Metro("Buffalo", "US-NY", 42.8864, -78.8784),
    Metro("Birmingham", "US-AL", 33.5186, -86.8104),
)

# Continental US as a lat/lon box (it includes some sea, Canada and Mexico; fine for load).
CONUS_SOUTH, CONUS_NORTH = 24.5, 49.0
CONUS_WEST, CONUS_EAST = -124.7, -67.0
