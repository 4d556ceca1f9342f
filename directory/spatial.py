"""Nearest-first radius queries over listing coordinates, without full scans.

SQLite keeps a copy of every listing's point in an R*Tree virtual table (`listing_rtree`),
maintained by triggers on `listings`; PostgreSQL uses the (lat, lon) b-tree index. Both are
asked for the points inside a bounding box. The box starts small and widens until it holds
enough results, so a search in a dense city touches a few hundred rows, not the whole table.

Distances are great-circle distances on geopy's mean earth radius, the same numbers
`geopy.distance.great_circle` gives (tests check this), computed inline because calling geopy
per candidate costs ten times as much.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from geopy.distance import EARTH_RADIUS
from sqlalchemy import Column, Float, Integer, MetaData, Table, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from .extensions import db
from .models import Listing

# Its own MetaData so Alembic's autogenerate never tries to create or drop it as a plain table.
rtree_metadata = MetaData()
listing_rtree = Table(
    "listing_rtree",
    rtree_metadata,
    Column("id", Integer, primary_key=True),
    Column("min_lat", Float),
    Column("max_lat", Float),
    Column("min_lon", Float),
    Column("max_lon", Float),
)

SQLITE_RTREE_DDL = [
    """CREATE VIRTUAL TABLE IF NOT EXISTS listing_rtree
       USING rtree(id, min_lat, max_lat, min_lon, max_lon)""",
    """CREATE TRIGGER IF NOT EXISTS listings_rtree_insert AFTER INSERT ON listings
       WHEN new.lat IS NOT NULL AND new.lon IS NOT NULL
       BEGIN INSERT INTO listing_rtree VALUES (new.id, new.lat, new.lat, new.lon, new.lon); END""",
    """CREATE TRIGGER IF NOT EXISTS listings_rtree_update AFTER UPDATE OF lat, lon ON listings
       BEGIN
         DELETE FROM listing_rtree WHERE id = old.id;
         INSERT INTO listing_rtree SELECT new.id, new.lat, new.lat, new.lon, new.lon
           WHERE new.lat IS NOT NULL AND new.lon IS NOT NULL;
       END""",
    """CREATE TRIGGER IF NOT EXISTS listings_rtree_delete AFTER DELETE ON listings
       BEGIN DELETE FROM listing_rtree WHERE id = old.id; END""",
    # Rows that existed before the index (e.g. after a batch migration rebuilt `listings`).
    """INSERT OR REPLACE INTO listing_rtree
       SELECT id, lat, lat, lon, lon FROM listings WHERE lat IS NOT NULL AND lon IS NOT NULL""",
]

KM_PER_MILE = 1.609344
# Small enough that in the densest metro the first box holds a page (about 80 listings per
# km box at 1M synthetic listings); sparse places widen fast by the density estimate below.
FIRST_BOX_KM = 1.0
# Counting every match in a dense metro costs more than patients gain from it: results show
# "100+" and five pages of the nearest; filters narrow the rest.
TOTAL_CAP = 100


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """geopy's great_circle formula, inline."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dlon = math.radians(lon2 - lon1)
    sin_p1, cos_p1, sin_p2, cos_p2 = math.sin(p1), math.cos(p1), math.sin(p2), math.cos(p2)
    cos_dl, sin_dl = math.cos(dlon), math.sin(dlon)
    d = math.atan2(
        math.sqrt((cos_p2 * sin_dl) ** 2 + (cos_p1 * sin_p2 - sin_p1 * cos_p2 * cos_dl) ** 2),
        sin_p1 * sin_p2 + cos_p1 * cos_p2 * cos_dl,
    )
    return EARTH_RADIUS * d


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


def _box_condition(box: Box, lat_lo, lat_hi, lon_lo, lon_hi) -> ColumnElement[bool]:  # type: ignore[no-untyped-def]
    lat_ok = and_(lat_hi >= box.south, lat_lo <= box.north)
    if box.west <= box.east:
        return and_(lat_ok, lon_hi >= box.west, lon_lo <= box.east)
    return and_(lat_ok, or_(lon_hi >= box.west, lon_lo <= box.east))


def _use_rtree() -> bool:
    return db.engine.dialect.name == "sqlite"


def _candidates(box: Box, conditions: Sequence[ColumnElement[bool]]):  # type: ignore[no-untyped-def]
    if _use_rtree():
        r = listing_rtree.c
        stmt = (
            select(Listing.id, Listing.lat, Listing.lon)
            .select_from(listing_rtree.join(Listing.__table__, Listing.id == r.id))
            .where(_box_condition(box, r.min_lat, r.max_lat, r.min_lon, r.max_lon), *conditions)
        )
    else:
        stmt = select(Listing.id, Listing.lat, Listing.lon).where(
            Listing.lat.is_not(None),
            _box_condition(box, Listing.lat, Listing.lat, Listing.lon, Listing.lon),
            *conditions,
        )
    return db.session.execute(stmt).all()


def sql_distance_km(lat: float, lon: float) -> ColumnElement[float]:
    # Haversine, for counting in the database. Both SQLite (math functions) and PostgreSQL
    # have these; it agrees with distance_km to well under a metre at these ranges.
    p1 = math.radians(lat)
    dlat = (func.radians(Listing.lat) - p1) / 2
    dlon = (func.radians(Listing.lon) - math.radians(lon)) / 2
    a = func.sin(dlat) * func.sin(dlat) + math.cos(p1) * func.cos(
        func.radians(Listing.lat)
    ) * func.sin(dlon) * func.sin(dlon)
    return (
        2
        * EARTH_RADIUS
        * func.asin(func.sqrt(func.min(1.0, a) if _use_rtree() else func.least(1.0, a)))
    )


def count_within(
    lat: float, lon: float, radius_km: float, conditions: Sequence[ColumnElement[bool]], cap: int
) -> int:
    box = box_around(lat, lon, radius_km)
    if _use_rtree():
        r = listing_rtree.c
        inner = (
            select(Listing.id)
            .select_from(listing_rtree.join(Listing.__table__, Listing.id == r.id))
            .where(_box_condition(box, r.min_lat, r.max_lat, r.min_lon, r.max_lon), *conditions)
        )
    else:
        inner = select(Listing.id).where(
            Listing.lat.is_not(None),
            _box_condition(box, Listing.lat, Listing.lat, Listing.lon, Listing.lon),
            *conditions,
        )
    inner = inner.where(sql_distance_km(lat, lon) <= radius_km).limit(cap)
    return db.session.scalar(select(func.count()).select_from(inner.subquery())) or 0


@dataclass(frozen=True)
class Nearest:
    hits: list[tuple[int, float]]  # (listing id, km), nearest first
    total: int
    total_capped: bool


def nearest(
    lat: float,
    lon: float,
    radius_km: float,
    conditions: Sequence[ColumnElement[bool]] = (),
    *,
    limit: int = 20,
    offset: int = 0,
    cap: int = TOTAL_CAP,
) -> Nearest:
    """Listings within radius_km of (lat, lon) that meet `conditions`, nearest first."""
    needed = offset + limit
    reach = min(radius_km, FIRST_BOX_KM)
    while True:
        rows = _candidates(box_around(lat, lon, reach), conditions)
        # Everything within `reach` is inside the box, so this list is complete up to `reach`.
        within = []
        for listing_id, plat, plon in rows:
            d = distance_km(lat, lon, plat, plon)
            if d <= reach:
                within.append((d, listing_id))
        if len(within) >= needed or reach >= radius_km:
            break
        # Grow by the area we still need (density estimate), at least doubling the radius.
        growth = math.sqrt(needed / max(len(within), 1)) * 1.2
        reach = min(radius_km, reach * max(2.0, growth))
    within.sort()
    page = [(listing_id, d) for d, listing_id in within[offset : offset + limit]]
    if reach >= radius_km:
        total = len(within)
    else:
        total = count_within(lat, lon, radius_km, conditions, cap + 1)
    return Nearest(hits=page, total=min(total, cap), total_capped=total > cap)


def full_scan_nearest(
    lat: float,
    lon: float,
    radius_km: float,
    conditions: Sequence[ColumnElement[bool]] = (),
    *,
    limit: int = 20,
) -> list[tuple[int, float]]:
    """The obvious query with no index: the benchmark's baseline and the tests' oracle."""
    rows = db.session.execute(
        select(Listing.id, Listing.lat, Listing.lon).where(Listing.lat.is_not(None), *conditions)
    ).all()
    hits = sorted((d, i) for i, a, b in rows if (d := distance_km(lat, lon, a, b)) <= radius_km)
    return [(i, d) for d, i in hits[:limit]]
