"""Nearest-first radius queries (directory/spatial.py) against geopy and a full-scan oracle."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from geopy.distance import great_circle
from sqlalchemy import Float, bindparam, delete, insert, select

from directory import geomath, spatial
from directory.extensions import db
from directory.models import Kind, Listing, Status
from tests.conftest import PG_URL

# The bounding box that widens is SQLite's (R*Tree); PostgreSQL asks PostGIS for the nearest.
rtree_only = pytest.mark.skipif(bool(PG_URL), reason="R*Tree boxes: SQLite only")
postgis_only = pytest.mark.skipif(not PG_URL, reason="PostGIS: needs TEST_DATABASE_URL")


def insert_points(points: Iterable[tuple[float, float]], **fields: object) -> list[int]:
    """Bare listings at the given points, many at a time (the search only needs lat/lon)."""
    rows = [
        {
            "kind": Kind.PHARMACY,
            "name": f"Point {i}",
            "country": "US",
            "lat": lat,
            "lon": lon,
            **fields,
        }
        for i, (lat, lon) in enumerate(points)
    ]
    if not rows:
        return []
    ids = db.session.scalars(insert(Listing).returning(Listing.id), rows).all()
    db.session.commit()
    return list(ids)


def clear() -> None:
    db.session.execute(delete(Listing))
    db.session.commit()


def destination(lat: float, lon: float, km: float, bearing: float) -> tuple[float, float]:
    point = great_circle(kilometers=km).destination((lat, lon), bearing)
    return point.latitude, point.longitude


def oracle(lat: float, lon: float, radius_km: float, conditions=()) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]
    return spatial.full_scan_nearest(lat, lon, radius_km, conditions, limit=10**6)


def random_points(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """A dense cluster (a city), a looser ring (suburbs) and a sparse scatter (the region)."""
    points = []
    for _ in range(n):
        roll = rng.random()
        spread_km = 3 if roll < 0.4 else (30 if roll < 0.8 else 400)
        points.append(destination(47.6, -122.3, rng.uniform(0, spread_km), rng.uniform(0, 360)))
    return points


# --- distances --------------------------------------------------------------------------------


def test_distance_agrees_with_geopy_great_circle() -> None:
    rng = random.Random(7)
    pairs = [
        (
            (rng.uniform(-90, 90), rng.uniform(-180, 180)),
            (rng.uniform(-90, 90), rng.uniform(-180, 180)),
        )
        for _ in range(500)
    ]
    pairs += [
        ((-16.8, 179.9), (-16.8, -179.9)),  # across the antimeridian: short, not 359.8 degrees
        ((89.9, 0.0), (89.9, 180.0)),  # over the pole
        ((-89.9, 45.0), (-89.9, -135.0)),
        ((0.0, 0.0), (0.0, 180.0)),  # antipodes
        ((33.5, -86.8), (33.5, -86.8)),
    ]
    for a, b in pairs:
        expected = great_circle(a, b).km
        assert geomath.distance_km(*a, *b) == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_antimeridian_distance_is_short() -> None:
    km = geomath.distance_km(-16.8, 179.9, -16.8, -179.9)
    assert km == pytest.approx(great_circle((-16.8, 179.9), (-16.8, -179.9)).km, rel=1e-3)
    assert km < 25


@pytest.mark.parametrize("center_lat", [-89.99, -85, -60, -10, 0, 33.5, 70, 84.5, 89.99])
@pytest.mark.parametrize("center_lon", [-179.99, -86.8, 0, 179.99])
@pytest.mark.parametrize("radius_km", [1, 40, 804.672])
def test_box_holds_the_whole_circle(center_lat: float, center_lon: float, radius_km: float) -> None:
    box = geomath.box_around(center_lat, center_lon, radius_km)
    for bearing in range(0, 360, 5):
        lat, lon = destination(center_lat, center_lon, radius_km * 0.999, bearing)
        assert box.south <= lat <= box.north, (bearing, lat, box)
        if box.west <= box.east:
            assert box.west <= lon <= box.east, (bearing, lon, box)
        else:  # crosses the antimeridian
            assert lon >= box.west or lon <= box.east, (bearing, lon, box)


def test_box_across_the_antimeridian_wraps() -> None:
    box = geomath.box_around(-16.8, 179.95, 30)
    assert box.east < box.west  # the documented "crosses" shape
    assert box.west < 179.95 and -180 < box.east < -179.5


# --- the query against the full-scan oracle ---------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nearest_equals_full_scan_for_random_points(app, seed: int) -> None:
    rng = random.Random(seed)
    insert_points(random_points(rng, 350))
    for _ in range(25):
        lat, lon = destination(47.6, -122.3, rng.uniform(0, 60), rng.uniform(0, 360))
        radius = rng.choice([0.5, 2, 5, 16.09344, 40, 80.4672, 300, 804.672])
        expected = oracle(lat, lon, radius)
        for offset in (0, 20, 40, 100):
            found = spatial.nearest(lat, lon, radius, limit=20, offset=offset, cap=10**6)
            assert found.hits == expected[offset : offset + 20], (lat, lon, radius, offset)
            assert found.total == len(expected)
            assert found.total_capped is False


def test_pages_continue_each_other(app) -> None:
    rng = random.Random(11)
    insert_points(random_points(rng, 200))
    lat, lon, radius = 47.61, -122.33, 50.0
    page1 = spatial.nearest(lat, lon, radius, limit=20, offset=0, cap=10**6)
    page2 = spatial.nearest(lat, lon, radius, limit=20, offset=20, cap=10**6)
    assert len(page1.hits) == 20 and len(page2.hits) == 20
    assert page1.total == page2.total == len(oracle(lat, lon, radius))
    ids = [i for i, _ in page1.hits + page2.hits]
    assert len(set(ids)) == 40  # nothing repeated, nothing skipped:
    assert page1.hits + page2.hits == oracle(lat, lon, radius)[:40]
    assert page1.hits[-1][1] <= page2.hits[0][1]


def test_conditions_are_applied_like_the_oracle(app) -> None:
    rng = random.Random(5)
    insert_points(random_points(rng, 120))
    insert_points(random_points(rng, 120), kind=Kind.PRESCRIBER)
    only_prescribers = [Listing.kind == Kind.PRESCRIBER]
    expected = oracle(47.6, -122.3, 100, only_prescribers)
    assert expected  # the seeded points put prescribers within 100 km
    found = spatial.nearest(47.6, -122.3, 100, only_prescribers, limit=500)
    assert found.hits == expected
    kinds = set(
        db.session.scalars(
            db.select(Listing.kind).where(Listing.id.in_([i for i, _ in found.hits]))
        )
    )
    assert kinds == {Kind.PRESCRIBER}


def test_listings_without_coordinates_are_never_found(app) -> None:
    insert_points([(None, None)])  # type: ignore[list-item]
    (inside,) = insert_points([(47.6, -122.3)])
    found = spatial.nearest(47.6, -122.3, 804.672, limit=50)
    assert [i for i, _ in found.hits] == [inside] and found.total == 1


# --- radius edges -----------------------------------------------------------------------------


def test_just_inside_is_found_and_just_outside_is_not(app) -> None:
    center = (33.5062, -86.8003)
    # Either side of the first box, a mile in km, and the largest radius (500 mi).
    first = spatial.FIRST_BOX_KM
    for radius_km in (0.5, first * 0.95, first * 1.05, 16.09344, 100, 804.672):
        inside, outside = [], []
        for bearing in range(0, 360, 45):
            inside.append(destination(*center, radius_km * 0.999, bearing))
            outside.append(destination(*center, radius_km * 1.001, bearing + 10))
        inside_ids = insert_points(inside)
        insert_points(outside)
        found = spatial.nearest(*center, radius_km, limit=100)
        assert sorted(i for i, _ in found.hits) == sorted(inside_ids), radius_km
        assert found.total == len(inside_ids)
        for _listing_id, km in found.hits:
            assert km == pytest.approx(radius_km * 0.999, rel=1e-3)
        clear()


# --- the total cap ----------------------------------------------------------------------------


def test_total_is_capped_when_the_first_box_holds_more_than_the_cap(app) -> None:
    rng = random.Random(3)
    # Cap + 5 listings within the first box: it already holds more than the cap, so the rest
    # of the 10 km radius is never read.
    first = spatial.FIRST_BOX_KM
    insert_points(
        destination(40.0, -75.0, rng.uniform(0, first), rng.uniform(0, 360))
        for _ in range(spatial.TOTAL_CAP + 5)
    )
    found = spatial.nearest(40.0, -75.0, 10, limit=20)
    assert found.total == spatial.TOTAL_CAP
    assert found.total_capped is True
    assert found.hits == oracle(40.0, -75.0, 10)[:20]


def test_total_is_capped_when_the_box_covers_the_radius(app) -> None:
    rng = random.Random(4)
    cap = spatial.TOTAL_CAP
    insert_points(
        destination(40.0, -75.0, rng.uniform(0, 2), rng.uniform(0, 360)) for _ in range(cap + 1)
    )
    found = spatial.nearest(40.0, -75.0, 3, limit=20, offset=cap - 20)
    assert found.total == cap and found.total_capped is True
    assert found.hits == oracle(40.0, -75.0, 3)[cap - 20 : cap]


@rtree_only
def test_total_is_capped_after_the_box_widened_past_non_matching_rows(app) -> None:
    """Half the points fail the conditions, so the box must widen several times before it
    holds cap + 1 matches; the total, the cap and every page still agree with the oracle."""
    rng = random.Random(12)
    points = [
        destination(40.0, -75.0, 8 * rng.random() ** 0.5, rng.uniform(0, 360)) for _ in range(600)
    ]
    insert_points(points[:300], status=Status.OPEN)
    insert_points(points[300:], status=Status.CLOSED)
    conditions = [Listing.status != Status.CLOSED]
    expected = oracle(40.0, -75.0, 25, conditions)
    assert len(expected) == 300
    boxes: list[int] = []
    original = spatial._candidates

    def counting(box, criteria):  # type: ignore[no-untyped-def]
        boxes.append(1)
        return original(box, criteria)

    spatial._candidates = counting
    try:
        cap = spatial.TOTAL_CAP
        for offset in (0, cap - 20):
            found = spatial.nearest(40.0, -75.0, 25, conditions, limit=20, offset=offset)
            assert (found.total, found.total_capped) == (cap, True)
            assert found.hits == expected[offset : offset + 20]
    finally:
        spatial._candidates = original
    assert len(boxes) >= 4  # it did widen, more than once per search


def test_exactly_the_cap_is_not_capped(app) -> None:
    rng = random.Random(6)
    cap = spatial.TOTAL_CAP
    insert_points(
        destination(40.0, -75.0, rng.uniform(0, 2), rng.uniform(0, 360)) for _ in range(cap)
    )
    for radius in (3, 10):
        found = spatial.nearest(40.0, -75.0, radius, limit=20)
        assert (found.total, found.total_capped) == (cap, False)


def test_sql_distance_agrees_with_python_distances(app) -> None:
    """The database's haversine (used by "also available" to start where the radius ends)
    draws the same circles as the Python distance the list is sorted by."""
    rng = random.Random(9)
    insert_points(random_points(rng, 300))
    origin = (bindparam("lat", type_=Float), bindparam("lon", type_=Float))
    for radius in (5, 25, 60, 250):
        inside = db.session.scalars(
            select(Listing.id).where(spatial.sql_distance_km(*origin) <= radius),
            {"lat": 47.6, "lon": -122.3},
        ).all()
        assert sorted(inside) == sorted(i for i, _ in oracle(47.6, -122.3, radius))
    rows = db.session.execute(
        select(Listing.lat, Listing.lon, spatial.sql_distance_km(47.6, -122.3))
    ).all()
    for lat, lon, km in rows:
        assert km == pytest.approx(geomath.distance_km(47.6, -122.3, lat, lon), abs=1e-6)


# --- the edges of the map ---------------------------------------------------------------------


def test_search_across_the_antimeridian(app) -> None:
    west_of_line = insert_points([(-16.8, 179.9)])[0]
    east_of_line = insert_points([(-16.8, -179.9)])[0]
    insert_points([(-16.8, 179.0), (-16.8, -179.0)])  # about 96 km away: outside 30 km
    for lon in (179.95, -179.95, 180.0, -180.0):
        found = spatial.nearest(-16.8, lon, 30, limit=20)
        assert {i for i, _ in found.hits} == {west_of_line, east_of_line}, lon
        for listing_id, km in found.hits:
            other = (-16.8, 179.9) if listing_id == west_of_line else (-16.8, -179.9)
            assert km == pytest.approx(great_circle((-16.8, lon), other).km, rel=1e-3)
        assert found.hits == oracle(-16.8, lon, 30)


def test_search_near_a_pole(app) -> None:
    for pole in (90.0, -90.0):
        sign = 1 if pole > 0 else -1
        ring = [(sign * 89.8, float(lon)) for lon in range(-180, 180, 30)]
        ring_ids = insert_points(ring)
        insert_points([(sign * 89.0, 0.0), (sign * 89.0, 120.0)])  # about 100 km from the pole
        # From just off the pole, every point of the ring is within 50 km whatever its longitude.
        found = spatial.nearest(sign * 89.9, 45.0, 50, limit=50)
        assert sorted(i for i, _ in found.hits) == sorted(ring_ids), pole
        assert found.hits == oracle(sign * 89.9, 45.0, 50)
        # From the pole itself.
        found = spatial.nearest(pole, 0.0, 25, limit=50)
        assert sorted(i for i, _ in found.hits) == sorted(ring_ids), pole
        clear()


def test_random_circles_near_poles_and_the_antimeridian(app) -> None:
    rng = random.Random(21)
    centers = [
        (rng.choice([1, -1]) * rng.uniform(75, 89.99), rng.uniform(-180, 180)) for _ in range(12)
    ] + [(rng.uniform(-60, 60), rng.choice([179.99, -179.99, 179.5, -179.5])) for _ in range(12)]
    for lat, lon in centers:
        radius = rng.choice([10, 100, 804.672])
        inside = [destination(lat, lon, radius * 0.999, rng.uniform(0, 360)) for _ in range(12)]
        outside = [destination(lat, lon, radius * 1.001, rng.uniform(0, 360)) for _ in range(12)]
        inside_ids = set(insert_points(inside))
        outside_ids = set(insert_points(outside))
        found = {i for i, _ in spatial.nearest(lat, lon, radius, limit=1000).hits}
        assert inside_ids <= found, (lat, lon, radius)
        assert not (outside_ids & found), (lat, lon, radius)
        clear()


@rtree_only
def test_bounding_box_keeps_the_query_small(app, monkeypatch) -> None:
    """Not a full scan: a search in a dense city reads the city, not the whole table."""
    rng = random.Random(8)
    insert_points(random_points(rng, 600))
    seen: list[int] = []
    original = spatial._candidates

    def counting(box, conditions):  # type: ignore[no-untyped-def]
        rows = original(box, conditions)
        seen.append(len(rows))
        return rows

    monkeypatch.setattr(spatial, "_candidates", counting)
    found = spatial.nearest(47.6, -122.3, 804.672, limit=20)
    assert found.hits == oracle(47.6, -122.3, 804.672)[:20]
    assert seen and max(seen) < 400


# --- PostGIS ----------------------------------------------------------------------------------


@postgis_only
def test_the_database_keeps_the_geography_point(app) -> None:
    from sqlalchemy import text, update

    (listing_id,) = insert_points([(47.6, -122.3)])
    point = text("SELECT ST_Y(geog::geometry), ST_X(geog::geometry) FROM listings WHERE id = :i")
    assert db.session.execute(point, {"i": listing_id}).one() == pytest.approx((47.6, -122.3))
    db.session.execute(update(Listing).where(Listing.id == listing_id).values(lat=None))
    assert db.session.execute(point, {"i": listing_id}).one() == (None, None)
    db.session.execute(update(Listing).where(Listing.id == listing_id).values(lat=10.0))
    assert db.session.execute(point, {"i": listing_id}).one() == pytest.approx((10.0, -122.3))


@postgis_only
def test_postgis_search_reads_the_gist_index_nearest_first(app) -> None:
    """One index scan that stops after LIMIT rows, not a scan of the table."""
    from sqlalchemy import text

    rng = random.Random(8)
    insert_points(random_points(rng, 2000))
    db.session.execute(text("ANALYZE listings"))
    stmt = spatial._knn_statement.__wrapped__(spatial.Criteria([Listing.status != Status.CLOSED]))
    compiled = stmt.compile(db.engine, compile_kwargs={"literal_binds": False})
    values = {"lat": 47.6, "lon": -122.3, "reach_m": 40_000.0, "needed": 101}
    conn = db.session.connection()
    conn.execute(spatial._WALK_SETTINGS)  # as _nearest_postgis runs it
    plan = "\n".join(
        conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.construct_params(values)).scalars()
    )
    assert "ix_listings_geog" in plan and "Seq Scan" not in plan, plan
    assert found_hits_match(47.6, -122.3, 40)


def test_index_walk_settings_last_only_as_long_as_the_walk(app) -> None:
    """The planner settings for short index walks are set back afterwards, in the same
    transaction, to what the connection had (not left for whatever runs next)."""
    from sqlalchemy import text

    if db.engine.dialect.name != "postgresql":
        pytest.skip("planner settings: PostgreSQL only")
    names = ("enable_bitmapscan", "max_parallel_workers_per_gather")

    def settings() -> list[str]:
        return [db.session.execute(text(f"SHOW {name}")).scalar_one() for name in names]

    before = settings()
    with spatial.index_walk():
        assert settings() == ["off", "0"]
    assert settings() == before
    spatial.nearest(47.6, -122.3, 40)
    assert settings() == before
    # What was in effect before the walk comes back, even when it is not the default.
    db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 1"))
    with spatial.index_walk():
        assert settings() == ["off", "0"]
    assert settings() == [before[0], "1"]


def found_hits_match(lat: float, lon: float, radius_km: float) -> bool:
    return spatial.nearest(lat, lon, radius_km, limit=20).hits == oracle(lat, lon, radius_km)[:20]


def test_postgis_missing_stops_the_app_with_a_line_saying_how_to_install_it(
    monkeypatch,
) -> None:
    """A server without PostGIS cannot be made here, so the check is pointed at an extension
    no server has: the same query and the same message."""
    if not PG_URL:
        pytest.skip("PostGIS check: needs TEST_DATABASE_URL")
    from tests.conftest import make_app

    monkeypatch.setattr(spatial, "POSTGIS_EXTENSION", "postgis_that_is_not_there")
    with pytest.raises(SystemExit) as stopped:
        make_app(PG_URL)
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("LDN Directory cannot start:")
    assert "apt-get install postgresql-15-postgis-3" in message
    assert "postgis_that_is_not_there" in message
