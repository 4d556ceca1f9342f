"""directory.geocoding: offline lookups, input handling, and the online fall-back.

No test touches the internet: "online" tests talk to a closed local port or to a tiny
Nominatim look-alike served from a thread on 127.0.0.1.
"""

import json
import logging
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from geopy.location import Location

from directory import geocoding
from directory.geocoding import (
    MAX_QUERY_LENGTH,
    PRECISIONS,
    GeocodeInputError,
    Geocoding,
    OfflineGeocoder,
    Place,
    get_offline,
    parse_coordinates,
)


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
    # Population order (with a small US preference): the GB city is far bigger.
    assert found[0].country == "GB"
    assert found[1].region == "US-AL"


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
# Loading once
# ---------------------------------------------------------------------------------------


def test_singleton_and_shared_data(offline: OfflineGeocoder) -> None:
    assert get_offline() is get_offline() is offline
    assert OfflineGeocoder()._index is offline._index
    assert Geocoding().offline is offline


def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real_build = geocoding._build_index

    def counting_build() -> Any:
        calls.append(1)
        return real_build()

    monkeypatch.setattr(geocoding, "_INDEX", None)  # restored after the test
    monkeypatch.setattr(geocoding, "_build_index", counting_build)
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
    assert calls == [1]
    assert results == ["Birmingham, AL 35233"] * 8


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


NOMINATIM_BIRMINGHAM = {
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
