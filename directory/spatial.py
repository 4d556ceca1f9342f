"""Nearest-first radius queries over listing coordinates, without full scans.

SQLite keeps a copy of every listing's point in an R*Tree virtual table (`listing_rtree`),
maintained by triggers on `listings`, and is asked for the points inside a bounding box. The box
starts small and widens until it holds enough results, so a search in a dense city touches a few
hundred rows, not the whole table.

PostgreSQL needs PostGIS: `listings.geog` is a geography point that the database computes from
lat/lon (a generated column, migration 0011) with a GiST index, and one KNN query (`<->`, nearest
first, bounded by the circle's box) reads just the rows a page and the count need. The column is not
in the models (SQLite has no such type); ALEMBIC_SKIPS keeps autogenerate from dropping it.

Distances are great-circle distances on geopy's mean earth radius, the same numbers
`geopy.distance.great_circle` gives (tests check this), computed by geomath.distance_from
because calling geopy per candidate costs ten times as much.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    Select,
    SQLColumnExpression,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from .extensions import db
from .geomath import DIAMETER, Box, box_around, distance_from, distance_km
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

# PostgreSQL: the point every search reads, computed by the database from lat/lon so no write
# path can forget it. Geography, not geometry: distances on the sphere, across the antimeridian
# and near the poles, in metres.
POSTGIS_EXTENSION = "postgis"
PG_POINT_DDL = [
    "CREATE EXTENSION IF NOT EXISTS postgis",
    """ALTER TABLE listings ADD COLUMN geog geography(Point, 4326) GENERATED ALWAYS AS (
         CASE WHEN lat IS NOT NULL AND lon IS NOT NULL
              THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography END) STORED""",
    "CREATE INDEX ix_listings_geog ON listings USING gist (geog)",
]
PG_POINT_DROP_DDL = [
    "DROP INDEX IF EXISTS ix_listings_geog",
    "ALTER TABLE listings DROP COLUMN IF EXISTS geog",
]


def alembic_include(obj: object, name: str | None, type_: str, reflected: bool, *_: Any) -> bool:
    """Alembic's include_object: what the spatial indexes add outside the models (the R*Tree's
    tables, PostGIS's spatial_ref_sys, the geography column and its index) is left alone."""
    if type_ == "table":
        return not (str(name).startswith("listing_rtree") or name == "spatial_ref_sys")
    if type_ == "column" and name == "geog" and reflected:
        return False
    return not (type_ == "index" and name == "ix_listings_geog")


class PostGISMissing(RuntimeError):
    pass


def require_postgis(engine: Engine, extension: str | None = None) -> None:
    """On PostgreSQL, refuse to run without PostGIS on the server: search cannot work without
    it. An unreachable database is left to the first request (and /readyz) to report."""
    if engine.dialect.name != "postgresql":
        return
    name = extension or POSTGIS_EXTENSION
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = :name"), {"name": name}
            ).first()
    except OperationalError:
        return
    finally:
        engine.dispose()  # no connection is carried into forked workers
    if found is None:
        raise PostGISMissing(
            f"the PostgreSQL server has no PostGIS (extension {name!r}), which search needs: "
            "install it on the database server (Debian: apt-get install postgresql-15-postgis-3, "
            "15 being the server's major version), then run `flask --app wsgi init-db`."
        )


# Small enough that in the densest metro the first box holds a page (about 80 listings per
# km box at 1M synthetic listings); sparse places widen fast by the density estimate below.
FIRST_BOX_KM = 1.5
# Counting every match in a dense metro costs more than patients gain from it: results show
# "100+" and five pages of the nearest; filters narrow the rest.
TOTAL_CAP = 100


class Criteria:
    """Conditions on `listings` for the spatial queries, with a key that names them.

    Building and compiling a SQLAlchemy statement costs more than running it on an indexed
    table, so the statements are built once per key and box shape and reused with new bound
    values. Two Criteria with the same key must hold the same clauses; `directory.search`
    builds them from the search parameters. A plain list of clauses (tests, one-off callers)
    gets no key and a fresh statement each time.
    """

    __slots__ = ("key", "clauses")

    def __init__(self, clauses: Sequence[ColumnElement[bool]], key: Hashable = None) -> None:
        self.key = key
        self.clauses = tuple(clauses)

    def __hash__(self) -> int:
        return hash(self.key) if self.key is not None else id(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Criteria):
            return NotImplemented
        if self.key is None or other.key is None:
            return self is other
        return self.key == other.key

    def __repr__(self) -> str:
        return f"Criteria(key={self.key!r}, clauses={len(self.clauses)})"


def as_criteria(conditions: Criteria | Sequence[ColumnElement[bool]]) -> Criteria:
    return conditions if isinstance(conditions, Criteria) else Criteria(conditions)


# The box's edges are bound values, so one statement serves every search with the same criteria.
SOUTH, NORTH, WEST, EAST = (bindparam(n, type_=Float) for n in ("south", "north", "west", "east"))


# The R*Tree's box columns or the listing's own point (min = max).
_Edge = SQLColumnExpression[float | None]


def _box_condition(
    wraps: bool, lat_lo: _Edge, lat_hi: _Edge, lon_lo: _Edge, lon_hi: _Edge
) -> ColumnElement[bool]:
    lat_ok = and_(lat_hi >= SOUTH, lat_lo <= NORTH)
    if not wraps:
        return and_(lat_ok, lon_hi >= WEST, lon_lo <= EAST)
    return and_(lat_ok, or_(lon_hi >= WEST, lon_lo <= EAST))


def _box_values(box: Box) -> dict[str, float]:
    return {"south": box.south, "north": box.north, "west": box.west, "east": box.east}


def _use_rtree() -> bool:
    return db.engine.dialect.name == "sqlite"


def within_box(wraps: bool) -> tuple[Any, ColumnElement[bool]]:
    """(FROM clause, WHERE clause) for listings whose R*Tree point is inside the bound box."""
    r = listing_rtree.c
    return (
        listing_rtree.join(Listing.__table__, Listing.id == r.id),
        _box_condition(wraps, r.min_lat, r.max_lat, r.min_lon, r.max_lon),
    )


@lru_cache(maxsize=512)
def _candidates_statement(
    dialect: str, wraps: bool, criteria: Criteria
) -> Select[int, float | None, float | None]:
    from_, in_box = within_box(wraps)
    return (
        select(Listing.id, Listing.lat, Listing.lon)
        .select_from(from_)
        .where(in_box, *criteria.clauses)
    )


def _candidates(box: Box, criteria: Criteria) -> Sequence[Any]:
    wraps = box.west > box.east
    if criteria.key is None:
        stmt = _candidates_statement.__wrapped__(db.engine.dialect.name, wraps, criteria)
    else:
        stmt = _candidates_statement(db.engine.dialect.name, wraps, criteria)
    return db.session.execute(stmt, _box_values(box)).all()


_ORIGIN = "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography"
# The box reaches a hair further than the radius (PostGIS's sphere and geopy's differ by 4e-8);
# the exact cut is made in Python with the distance the page shows.
_REACH_MARGIN = 1 + 1e-6


# Planner settings for the index walks that stop after a few rows (the KNN below, and the
# "also available" walks in search.py), local to the transaction and set back right after;
# one statement each way. No bitmap scans: see _nearest_postgis. No parallel workers: starting
# one took 3 ms of a 5 ms "also available" walk at 1M, for 20 rows.
_WALK_SETTINGS = text(
    # The values in effect, then the new ones: a target list is evaluated left to right.
    "SELECT current_setting('enable_bitmapscan'), "
    "current_setting('max_parallel_workers_per_gather'), "
    "set_config('enable_bitmapscan', 'off', true), "
    "set_config('max_parallel_workers_per_gather', '0', true)"
)
# Back to the values read above. (Not `reset_val FROM pg_settings`: that view lists every
# setting the server has, 0.4-0.9 ms a time, as much as the KNN walk itself at 1M.)
_SETTINGS_AGAIN = text(
    "SELECT set_config('enable_bitmapscan', :bitmap, true), "
    "set_config('max_parallel_workers_per_gather', :parallel, true)"
)


@contextmanager
def index_walk() -> Iterator[None]:
    """Run the statements inside with the planner settings for short index walks (PostgreSQL;
    nothing on SQLite)."""
    session = db.session
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    bitmap, parallel, *_ = session.execute(_WALK_SETTINGS).one()
    yield
    session.execute(_SETTINGS_AGAIN, {"bitmap": bitmap, "parallel": parallel})


@lru_cache(maxsize=512)
def _knn_statement(criteria: Criteria) -> Select[int, float | None, float | None]:
    geog: ColumnElement[Any] = literal_column("listings.geog")
    return (
        select(Listing.id, Listing.lat, Listing.lon)
        .where(
            # The box around the circle, as ST_DWithin's own index condition is written (its
            # exact test, estimated blindly, only made the planner's guess worse; Python makes
            # the exact cut). One GiST index scan answers both this and the order.
            text(f"listings.geog && _ST_Expand({_ORIGIN}, :reach_m)"),
            *criteria.clauses,
        )
        .order_by(geog.op("<->")(text(_ORIGIN)))
        .limit(bindparam("needed", type_=Integer))
    )


def _nearest_postgis(
    lat: float, lon: float, radius_km: float, criteria: Criteria, needed: int
) -> list[tuple[float, int]]:
    stmt = (
        _knn_statement(criteria)
        if criteria.key is not None
        else _knn_statement.__wrapped__(criteria)
    )
    # PostGIS underestimates how many points a box holds in a dense city (230 for 1,845 at 100k
    # listings, and 10x more so with filters), so the planner reads every point of the circle
    # by a bitmap scan and sorts them: 40 ms where walking the index nearest first and stopping
    # after LIMIT rows takes 0.5 ms. No bitmap scan for this one statement, then.
    with index_walk():
        rows = db.session.execute(
            stmt,
            {"lat": lat, "lon": lon, "reach_m": radius_km * 1000 * _REACH_MARGIN, "needed": needed},
        ).all()
    # The `needed` nearest in the box, nearest first on the sphere: any row not read is further
    # than every row read, so what lies within the radius here is complete up to `needed`.
    distance_to = distance_from(lat, lon)
    # (geog is NULL exactly when lat or lon is, so every row has both.)
    return [
        (d, i)
        for i, a, b in rows
        if a is not None and b is not None and (d := distance_to(a, b)) <= radius_km
    ]


def named_within(lat: float, lon: float, radius_km: float, limit: int) -> list[tuple[int, str]]:
    """(id, name) of the `limit` nearest listings within radius_km, nearest first: what
    duplicate detection compares. On PostgreSQL one statement (a small radius: the box's bitmap
    scan is cheap, so no SET LOCAL around it, and the names come with the points); elsewhere
    nearest() and the names by id."""
    if _use_rtree():
        hits = nearest(lat, lon, radius_km, limit=limit).hits
        if not hits:
            return []
        found = db.session.execute(
            select(Listing.id, Listing.name).where(Listing.id.in_([i for i, _ in hits]))
        )
        names = {i: name for i, name in found}
        return [(i, names[i]) for i, _ in hits if i in names]
    rows = db.session.execute(
        select(Listing.id, Listing.name, Listing.lat, Listing.lon).where(
            text(f"listings.geog && _ST_Expand({_ORIGIN}, :reach_m)")
        ),
        {"lat": lat, "lon": lon, "reach_m": radius_km * 1000 * _REACH_MARGIN},
    ).all()
    distance_to = distance_from(lat, lon)
    within = sorted(
        (d, i, name)
        for i, name, a, b in rows
        if a is not None and b is not None and (d := distance_to(a, b)) <= radius_km
    )
    return [(i, name) for _, i, name in within[:limit]]


def sql_distance_km(lat: Any, lon: Any) -> ColumnElement[float]:
    """Haversine from (lat, lon) to each listing, in the database (SQLite's math functions and
    PostgreSQL both have these); it agrees with distance_km to well under a metre at these
    ranges. `lat` and `lon` may be numbers or bound parameters."""
    p1 = func.radians(lat)
    dlat = (func.radians(Listing.lat) - p1) / 2
    dlon = (func.radians(Listing.lon) - func.radians(lon)) / 2
    a = func.sin(dlat) * func.sin(dlat) + func.cos(p1) * func.cos(
        func.radians(Listing.lat)
    ) * func.sin(dlon) * func.sin(dlon)
    # min(1, a): rounding can push `a` a hair above 1 for antipodes, and asin(>1) is an error.
    return DIAMETER * func.asin(func.sqrt(case((a > 1.0, 1.0), else_=a)))


@dataclass(frozen=True)
class Nearest:
    hits: list[tuple[int, float]]  # (listing id, km), nearest first
    total: int
    total_capped: bool


def nearest(
    lat: float,
    lon: float,
    radius_km: float,
    conditions: Criteria | Sequence[ColumnElement[bool]] = (),
    *,
    limit: int = 20,
    offset: int = 0,
    cap: int = TOTAL_CAP,
) -> Nearest:
    """Listings within radius_km of (lat, lon) that meet `conditions`, nearest first, and how
    many there are, counted up to `cap` (more shows as "cap+")."""
    criteria = as_criteria(conditions)
    # Enough for the page and for the count: once the box holds cap + 1 matches, the total is
    # known to be over the cap without counting the rest of the radius.
    needed = max(offset + limit, cap + 1)
    if not _use_rtree():
        within = _nearest_postgis(lat, lon, radius_km, criteria, needed)
        within.sort()
        page = [(listing_id, d) for d, listing_id in within[offset : offset + limit]]
        return Nearest(hits=page, total=min(len(within), cap), total_capped=len(within) > cap)
    reach = min(radius_km, FIRST_BOX_KM)
    distance_to = distance_from(lat, lon)
    while True:
        rows = _candidates(box_around(lat, lon, reach), criteria)
        # Everything within `reach` is inside the box, so this list is complete up to `reach`.
        within = []
        for listing_id, plat, plon in rows:
            d = distance_to(plat, plon)
            if d <= reach:
                within.append((d, listing_id))
        if len(within) >= needed or reach >= radius_km:
            break
        # Grow by the area we still need (a density estimate, with a margin); when the box
        # held too few points to estimate from, at least double the radius.
        growth = math.sqrt(needed / max(len(within), 1)) * 1.2
        reach = min(radius_km, reach * max(1.5 if len(within) >= 10 else 2.0, growth))
    within.sort()
    page = [(listing_id, d) for d, listing_id in within[offset : offset + limit]]
    total = len(within)
    return Nearest(hits=page, total=min(total, cap), total_capped=total > cap)


def full_scan_nearest(
    lat: float,
    lon: float,
    radius_km: float,
    conditions: Criteria | Sequence[ColumnElement[bool]] = (),
    *,
    limit: int = 20,
) -> list[tuple[int, float]]:
    """The obvious query with no index: the benchmark's baseline and the tests' oracle."""
    clauses = as_criteria(conditions).clauses
    rows = db.session.execute(
        select(Listing.id, Listing.lat, Listing.lon).where(Listing.lat.is_not(None), *clauses)
    ).all()
    hits = sorted(
        (d, i)
        for i, a, b in rows
        if a is not None and b is not None and (d := distance_km(lat, lon, a, b)) <= radius_km
    )
    return [(i, d) for d, i in hits[:limit]]
