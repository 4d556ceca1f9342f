"""Queries on the gazetteer file: what its rows mean and the lookups the geocoders make.

The file is written by ``build.py`` and found (or built) by ``store.py``; everything here
only reads it. Ranking rules that are baked into the file at build time (US_PREFERENCE)
are defined here too, next to the ones applied when reading (ALTERNATE_DOMINANCE).
"""

from __future__ import annotations

import difflib
import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..geomath import box_around, distance_km
from ..vocabulary import Precision
from .place import Place
from .text import PLUS4_RE, ZIP_PLUS4_RE, ZIP_RE

# Results for an ambiguous name ("Birmingham", "Springfield") are ordered by population,
# and US places count this many times their population: the directory is for patients in
# the US, so someone in Alabama typing "Birmingham" lands at home, with the English city one
# tap away. A capital of the world still comes first ("Paris" is France): no US namesake is
# within a tenth of its size. The builder multiplies it into each entry's score.
US_PREFERENCE = 10.0
# An alternate-name match ("Bombay" -> Mumbai) is shown next to exact-name matches only
# when it is this many times bigger than all of them; otherwise "Victoria" would offer
# Hong Kong (formerly "Victoria") ahead of Victoria, BC.
ALTERNATE_DOMINANCE = 100.0
# Two results of one kind in one region closer than this are one place to a person.
SAME_SPOT_KM = 5.0

Constraint = tuple[str, str]  # (country, admin1 or "" for the whole country)

# Sovereign states that nevertheless use US ZIP codes.
ZIP_COUNTRIES = frozenset({"FM", "MH", "PW"})
# geonames admin1 codes that we can show by name (others are opaque numbers).
GB_NATIONS = {"ENG": "England", "SCT": "Scotland", "WLS": "Wales", "NIR": "Northern Ireland"}

_COUNTY_RE = re.compile(r" (?:county|parish|borough)$")
# Page cache per connection (KiB). Lookups touch a handful of B-tree pages and the OS
# keeps the file in its own cache, shared by all workers; SQLite's default (2 MB per
# connection, one connection per thread) would be most of a worker's extra memory.
_PAGE_CACHE_KIB = 512


def read_only_uri(path: Path) -> str:
    # immutable=1: the file is never written after it has been renamed into place (a
    # rebuild is a new file), so SQLite may skip all locking and change detection. That
    # also makes a connection inherited across fork() harmless: it holds no locks.
    return f"{path.as_uri()}?mode=ro&immutable=1"


# The columns that make an Entry, in its field order; every entry query selects them.
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

EntryRow = tuple[str, float, float, str, str, str, float, int, int]


@dataclass(slots=True)
class Entry:
    """A named place in the offline index (a city or a region/country)."""

    name: str
    lat: float
    lon: float
    country: str
    admin1: str  # US state / CA province / GB nation code, raw geonames code elsewhere
    kind: str  # Precision.CITY or Precision.REGION
    score: float
    in_grid: bool = True  # used for "near <city>" labels
    id: int = -1  # row id in the file; the builder's list position

    @classmethod
    def from_row(cls, row: EntryRow) -> Entry:
        name, lat, lon, country, admin1, kind, score, in_grid, idx = row
        return cls(name, lat, lon, country, admin1, kind, score, bool(in_grid), idx)

    @property
    def label(self) -> str:
        if self.kind == Precision.CITY:
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


def same_spot(a: Entry, b: Entry) -> bool:
    return (
        a.kind == b.kind
        and a.country == b.country
        and a.admin1 == b.admin1
        and distance_km(a.lat, a.lon, b.lat, b.lon) < SAME_SPOT_KM
    )


def _city_label(name: str, country: str, admin1: str) -> str:
    if country == "US":
        return f"{name}, {admin1}, US" if admin1 else f"{name}, US"
    if country == "GB" and admin1 in GB_NATIONS:
        return f"{name}, {GB_NATIONS[admin1]}, GB"
    if country == "CA" and admin1:
        return f"{name}, {admin1}, CA"
    return f"{name}, {country}"


# The R*Tree keeps coordinates as 32-bit floats (about 1e-5 degrees at 180), so a point
# just inside a box's edge may be stored just outside it; the margin keeps it in.
_BOX_MARGIN_DEG = 0.01


def _boxes_around(lat: float, lon: float, km: float) -> list[tuple[float, float, float, float]]:
    """(lat_lo, lat_hi, lon_lo, lon_hi) boxes that together contain the circle of ``km``:
    geomath's box, widened by the margin and split in two where it crosses the antimeridian
    (the R*Tree has no wrapping boxes)."""
    box = box_around(lat, lon, km)
    south, north = box.south - _BOX_MARGIN_DEG, box.north + _BOX_MARGIN_DEG
    width = (box.east - box.west) % 360.0 or 360.0
    if width + 2 * _BOX_MARGIN_DEG >= 360.0:  # near a pole: every longitude
        return [(south, north, -180.0, 180.0)]
    west, east = box.west - _BOX_MARGIN_DEG, box.east + _BOX_MARGIN_DEG
    if west < -180.0:
        west += 360.0
    if east > 180.0:
        east -= 360.0
    if west > east:  # the circle crosses the antimeridian
        return [(south, north, west, 180.0), (south, north, -180.0, east)]
    return [(south, north, west, east)]


def satisfies(entry: Entry, constraints: Iterable[list[Constraint]]) -> bool:
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


class Gazetteer:
    """Read-only queries on the gazetteer file; one per process, shared by its threads.

    Each thread gets its own connection, opened on first use, so nothing is shared
    between threads and nothing opened before fork() is used after it. Only the few
    hundred qualifiers ("al", "usa", "england"), which every query consults many times,
    are held in memory; the suggestion vocabulary follows on first use (~0.6 MB).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._uri = read_only_uri(path)
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
        if state in ZIP_COUNTRIES:
            country, region = state, None
        else:
            country, region = "US", f"US-{state}"
        return Place(
            lat=lat,
            lon=lon,
            label=f"{city}, {state} {code}",
            precision=Precision.POSTAL_CODE,
            country=country,
            region=region,
            postal_code=code,
        )

    def named(self, key: str) -> list[Entry]:
        """Entries whose primary name (or US state code) folds to ``key``, in index order."""
        rows = self._connection().execute(_NAME_SQL, (key,)).fetchall()
        return [Entry.from_row(row) for row in rows]

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

    def lookup(self, key: str, constraints: list[list[Constraint]]) -> list[Entry]:
        """Entries named ``key`` that meet the constraints, best first.

        Tiers: exact names and US state codes first, then country codes ("DE" is
        Delaware before it is Germany for our users), then geonames alternate names, but
        only when nothing else matched (or see ALTERNATE_DOMINANCE), because alternates
        are noisy.
        """
        tiers: dict[int, int] = {}
        entries: dict[int, Entry] = {}
        alternates: list[Entry] = []
        # Rows arrive by tier, so every name and code is in `tiers` before the first
        # alternate is looked at.
        for row in self._connection().execute(_KEY_SQL, (key,)):
            tier, entry = row[0], Entry.from_row(row[1:])
            if entry.id in tiers or not satisfies(entry, constraints):
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
        regions = [entries[i] for i in tiers if entries[i].kind == Precision.REGION]
        if regions:
            # A city named like the region it lies in ("New York", "Québec", "Singapore")
            # is listed before that region: the more specific reading, region still next.
            for idx in tiers:
                city = entries[idx]
                for region in regions:
                    if (
                        city.kind == Precision.CITY
                        and city.country == region.country
                        and region.admin1 in ("", city.admin1)
                    ):
                        scores[idx] = max(scores[idx], region.score * 1.01)
        return [entries[i] for i in sorted(tiers, key=lambda i: (tiers[i], -scores[i]))]

    def match(self, parts: list[str]) -> list[Entry]:
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
        if len(tokens) >= 2 and PLUS4_RE.fullmatch(tokens[-1]) and ZIP_RE.fullmatch(tokens[-2]):
            tokens.pop()
        if not tokens or not ZIP_RE.fullmatch(tokens[-1]):
            return None
        code = tokens.pop()
        rest = parts[:-1] + ([" ".join(tokens)] if tokens else [])
        return code, rest

    def extract_leading_zip(self, parts: list[str]) -> tuple[str, list[str]] | None:
        """A ZIP typed first ("35233 Birmingham", "98101, Seattle WA"), and the rest."""
        if not parts:
            return None
        tokens = parts[0].split()
        if not tokens or not ZIP_PLUS4_RE.fullmatch(tokens[0]):
            return None
        rest = ([" ".join(tokens[1:])] if len(tokens) > 1 else []) + list(parts[1:])
        return tokens[0][:5], rest

    def nearest(self, lat: float, lon: float, max_km: float) -> tuple[Entry, float] | None:
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
                    distance = distance_km(lat, lon, city_lat, city_lon)
                    # Ties go to the lower id, as they did in the in-memory grid.
                    if distance <= radius and (best is None or (distance, idx) < best):
                        best = (distance, idx)
            if best is not None:
                row = conn.execute(_ENTRY_SQL, (best[1],)).fetchone()
                return Entry.from_row(row), best[0]
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
