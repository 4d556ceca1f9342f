"""The offline geocoder: answers from the gazetteer file only, so the directory works
without any network access. geopy-compatible, so it can stand in for an online service."""

from __future__ import annotations

import os
import threading
from typing import Any

from geopy.geocoders.base import DEFAULT_SENTINEL, Geocoder
from geopy.location import Location
from geopy.point import Point

from ..vocabulary import Precision
from .gazetteer import Constraint, Entry, Gazetteer, same_spot, satisfies
from .place import GeocodeInputError, Place
from .store import get_index
from .text import (
    ZIP_RE,
    check_lat_lon,
    clean_query,
    coordinates_label,
    fold,
    fold_parts,
    parse_coordinates,
    parse_coordinates_safe,
)

# A browser location is labelled "near <city>" only when a city is at most this far away;
# farther than that the name would mislead more than it helps.
NEAR_CITY_KM = 50.0


def _location(place: Place) -> Location:
    return Location(place.label, (place.lat, place.lon), place.to_dict())


class OfflineGeocoder(Geocoder):
    """geopy-compatible geocoder backed by the bundled ZIP and geonames data.

    ``geocode(query, exactly_one=True)`` returns a :class:`geopy.location.Location` whose
    ``raw`` is ``Place.to_dict()`` (a list when ``exactly_one=False``), or None when the
    query is unknown. ``reverse((lat, lon))`` returns the nearest city within 50 km.
    Instances are cheap: they all share one lazily opened, process-wide gazetteer.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def _index(self) -> Gazetteer:
        return get_index()

    def preload(self) -> None:
        """Open the gazetteer now (building the file if it is missing) instead of on the
        first search; e.g. in a background thread as a worker starts."""
        get_index()

    # -- geopy interface -------------------------------------------------------------

    def geocode(
        self,
        query: str,
        *,
        exactly_one: bool = True,
        timeout: Any = DEFAULT_SENTINEL,
        limit: int | None = None,
    ) -> Location | list[Location] | None:
        del timeout  # accepted for geopy compatibility; nothing here can time out
        found = self.places(query, limit=1 if exactly_one else (limit or 5))
        if not found:
            return None
        return _location(found[0]) if exactly_one else [_location(p) for p in found]

    def reverse(
        self,
        query: Any,
        *,
        exactly_one: bool = True,
        timeout: Any = DEFAULT_SENTINEL,
    ) -> Location | list[Location] | None:
        del timeout
        point = Point(query)
        lat, lon = check_lat_lon(point.latitude, point.longitude)
        hit = self._index.nearest(lat, lon, NEAR_CITY_KM)
        if hit is None:
            return None
        location = _location(hit[0].to_place())
        return location if exactly_one else [location]

    # -- what the app uses -----------------------------------------------------------

    def places(self, query: str, limit: int = 5) -> list[Place]:
        """Places matching ``query``, best first; [] when unknown.

        Raises GeocodeInputError for empty, over-long or unreadable input and for
        out-of-range coordinates.
        """
        text = clean_query(query)
        coordinates = parse_coordinates(text)
        if limit < 1:
            return []
        if coordinates is not None:
            return [self._coordinates_place(*coordinates)]
        index = self._index
        parts = fold_parts(text)
        if not parts:
            return []  # only symbols/emoji: nothing we could look up
        zip_hit = index.extract_zip(parts)
        if zip_hit is not None:
            code, rest = zip_hit
            place = index.zip_place(code)
            if place is not None:
                if not rest:
                    return [place]
                # "Berlin, Germany 10115" is a German postcode that happens to be a valid
                # NY ZIP: trust the ZIP only if the rest of the text agrees on the state
                # (or says nothing we recognise, like a street line).
                named = index.match(rest)
                if not named or self._agrees(place, named):
                    return [place]
                return self._to_places(named, limit)
            parts = rest  # unknown ZIP: maybe the rest of the text is still useful
        else:
            lead = index.extract_leading_zip(parts)
            if lead is not None and lead[1]:
                # "35233 Birmingham": the ZIP, if the rest names a place in its state. A
                # five-digit house number ("12345 Main St, Seattle") names another state's
                # ZIP and falls through to the address.
                place = index.zip_place(lead[0])
                if place is not None and self._agrees(place, index.match(lead[1])):
                    return [place]
        return self._to_places(index.match(parts), limit)

    @staticmethod
    def _agrees(place: Place, named: list[Entry]) -> bool:
        """The rest of the text names a place in the ZIP's state ("Springfield 62701" has an
        Illinois Springfield among its matches), and its best match is not abroad: "10115
        Berlin" is a German postcode, though New York has a ZIP 10115 and a town Berlin."""
        if not named or named[0].country != place.country:
            return False
        state = place.region[3:] if place.region else ""
        return any(
            entry.country == place.country and entry.admin1 in ("", state) for entry in named
        )

    def suggestions(self, query: str, limit: int = 5) -> list[str]:
        """Labels of places whose names are spelled like the query ("Birmingam").

        Meant for a "did you mean" line, so invalid input yields [] instead of an error.
        """
        try:
            text = clean_query(query)
        except GeocodeInputError:
            return []
        if limit < 1 or parse_coordinates_safe(text) is not None:
            return []
        index = self._index
        parts = fold_parts(text)
        # (name to correct, constraints from the parts/tokens after it)
        readings: list[tuple[str, list[list[Constraint]]]] = []
        for i in range(len(parts)):
            constraints: list[list[Constraint]] = []
            for qualifier in parts[i + 1 :]:
                chain = index.qualifier_chain(qualifier.split())
                constraints.extend(chain or [])
            tokens = parts[i].split()
            # "pittsburg pa" is more likely "Pittsburgh" + "PA" than a name of its own.
            for end in range(len(tokens) - 1, 0, -1):
                chain = index.qualifier_chain(tokens[end:])
                if chain:
                    readings.append((" ".join(tokens[:end]), constraints + chain))
            readings.append((parts[i], constraints))
        # House numbers and postcodes are never misspelled place names; and a few
        # readings are enough (each may scan the whole vocabulary, ~10 ms).
        readings = [r for r in readings if not any(ch.isdigit() for ch in r[0])][:4]
        labels: list[str] = []
        for name, constraints in readings:
            for key in index.close_names(name, n=limit * 2):
                entries = [e for e in index.named(key) if satisfies(e, constraints)]
                entries.sort(key=lambda e: -e.score)
                for entry in entries:
                    label = entry.label
                    if label not in labels:
                        labels.append(label)
            if labels:
                break
        return labels[:limit]

    def nearest_city(self, lat: float, lon: float) -> Place | None:
        """Label a raw position: the point stays as given, named "near <closest city>".

        None when no known city is within 50 km.
        """
        lat, lon = check_lat_lon(lat, lon)
        hit = self._index.nearest(lat, lon, NEAR_CITY_KM)
        if hit is None:
            return None
        entry = hit[0]
        return Place(
            lat=lat,
            lon=lon,
            label=f"near {entry.short_label()}",
            precision=Precision.COORDINATES,
            country=entry.country,
            region=entry.region_code(),
        )

    # -- helpers ---------------------------------------------------------------------

    def _coordinates_place(self, lat: float, lon: float) -> Place:
        return self.nearest_city(lat, lon) or Place(
            lat=lat,
            lon=lon,
            label=coordinates_label(lat, lon),
            precision=Precision.COORDINATES,
            country="",
        )

    def _to_places(self, found: list[Entry], limit: int) -> list[Place]:
        entries: list[Entry] = []
        for entry in found:
            # Two names for one spot ("New York" and USPS's "Nyc") are one place to a person
            # choosing where they are: keep the better-ranked one.
            if not any(same_spot(entry, kept) for kept in entries):
                entries.append(entry)
            if len(entries) == limit:
                break
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry.label] = counts.get(entry.label, 0) + 1
        # Labels must tell results apart; geonames has e.g. several "San Fernando, PH".
        return [
            entry.to_place(
                f"{entry.label} ({entry.lat:.2f}, {entry.lon:.2f})"
                if counts[entry.label] > 1
                else None
            )
            for entry in entries
        ]

    def _lookup_city(self, city: str, constraints: list[list[Constraint]]) -> Place | None:
        key = fold(city)
        if not key:
            return None
        cities = [e for e in self._index.lookup(key, constraints) if e.kind == Precision.CITY]
        return cities[0].to_place() if cities else None

    def address(
        self,
        street: str | None,
        city: str | None,
        region: str | None,
        postal_code: str | None,
        country: str,
    ) -> Place | None:
        """Offline part of :meth:`Geocoding.address`: US ZIP, else city; never a street."""
        del street  # no street data offline; the point is the ZIP or city centre
        index = self._index
        country_key = fold(country or "")
        country_constraints = index.country_quals.get(country_key)
        if not country_constraints:
            # An unknown country must not fall back to "anywhere": a listing pinned to
            # Paris, France instead of Paris, Narnia is worse than no pin at all.
            return None
        constraints: list[list[Constraint]] = [country_constraints]
        if region:
            region_chain = index.qualifier_chain(fold(region).split())
            # Regions we do not know (e.g. "Bavaria") are ignored rather than fatal.
            if region_chain:
                narrowed = [
                    [c for c in options if any(c[0] == cc for cc, _ in country_constraints)]
                    for options in region_chain
                ]
                if all(narrowed):
                    constraints += narrowed
        zip_place = None
        is_us = any(c[0] == "US" for c in country_constraints)
        if is_us and postal_code:
            digits = fold(postal_code).split()
            if digits and ZIP_RE.fullmatch(digits[0]):
                zip_place = index.zip_place(digits[0])
        if zip_place is not None:
            state = zip_place.region[3:] if zip_place.region else ""
            region_ok = len(constraints) == 1 or any(
                admin1 in ("", state) for options in constraints[1:] for _, admin1 in options
            )
            if region_ok:
                return zip_place
        if city:
            found = self._lookup_city(city, constraints)
            if found is not None:
                return found
        # The ZIP disagreed with the state but the city was not found either: the ZIP is
        # still the most specific thing we have.
        return zip_place


_OFFLINE: OfflineGeocoder | None = None
_OFFLINE_LOCK = threading.Lock()


def get_offline() -> OfflineGeocoder:
    """The process-wide offline geocoder (its data is loaded on first use, once)."""
    global _OFFLINE
    geocoder = _OFFLINE
    if geocoder is None:
        with _OFFLINE_LOCK:
            geocoder = _OFFLINE
            if geocoder is None:
                geocoder = _OFFLINE = OfflineGeocoder()
    return geocoder


def _after_fork_in_child() -> None:
    # A thread of the parent may have held this lock at fork(); in the child that thread
    # does not exist and would never release it.
    global _OFFLINE_LOCK
    _OFFLINE_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
