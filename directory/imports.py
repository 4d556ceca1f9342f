"""Curated lists and bulk edits in (`flask --app wsgi import FILE`): CSV, JSON lines and GeoJSON
with the fields of the exports (directory/exports.py), so an export imports back unchanged.

Each row is read into a record (the exports' shape), checked for its shape, then by the public
form's own rules (`forms.listing.ListingRules`), matched to a listing by an outside key
(`source` + `source_id`, kept in `ListingSource`) or by NPI, and written through
`moderation.bulk` as the named moderator, audited with the file's name. A refused row is
reported with its line and reason and the others go in; a file that cannot be read as its
format (a JSON syntax error, missing CSV columns) stops the import with nothing written, as
the whole file is one transaction.

The exports' `id`, `url` and derived fields are read and ignored: a file from another copy of
the directory must never overwrite listings by number. `by_id` says the file is this
directory's own export, edited (a bulk edit): then each row updates the listing of its id.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from sqlalchemy import and_, or_, select

from . import geomath, validation
from .csvcells import csv_unsafe
from .db import writing
from .exports import (
    CODE_LISTS,
    COLUMNS,
    DERIVED,
    LIST_SEPARATOR,
    NO_FILLERS,
    OBJECT_LISTS,
    UnknownFormat,
    format_of,
)
from .extensions import db
from .forms.listing import ListingRules
from .geocoding.app import geocoder
from .listings import fields_for, parse_date, to_data
from .models import FlagType, Kind, Listing, ListingSource, Precision, SRPolicy, Status, User
from .moderation import bulk, submissions
from .vocabulary import Term

# Columns a hand-written file may use for one outside key, beside the exports' `sources`.
KEY_COLUMNS = ("source", "source_id")
REQUIRED = ("kind", "name")
KNOWN = frozenset(COLUMNS) | frozenset(KEY_COLUMNS)
BOOLEANS = ("makes_ldn", "mail_order", "telehealth", "telehealth_only", "accepting_new_patients")
NUMBERS = ("lat", "lon")
REGION_LISTS = ("ships_to", "licensed_in")
TERMS: dict[str, type[Term]] = {"geo_precision": Precision, "status": Status, "sr_policy": SRPolicy}
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")
FLUSH_EVERY = 500


class ImportFailure(ValueError):
    """The file as a whole cannot be imported: one line naming the problem."""


class Refused(ValueError):
    """One row is refused: the reason, in words."""


@dataclass
class Report:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    flagged: int = 0
    unflagged: int = 0  # curated-list flags taken off: not on the list's newer edition
    kept_off_list: bool = False  # rows were refused, so no flags were taken off
    refused: list[tuple[str, str]] = field(default_factory=list)  # (where, reason)

    @property
    def rows(self) -> int:
        return self.new + self.updated + self.unchanged + len(self.refused)

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.new} new, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.flagged} flags added, "
            + (f"{self.unflagged} flags removed, " if self.unflagged else "")
            + f"{len(self.refused)} refused."
            + (
                " Flags of listings missing from the list were kept: fix the refused rows and"
                " import it again to take them off."
                if self.kept_off_list
                else ""
            )
        )


@dataclass(frozen=True)
class CuratedList:
    """The file is a curated list: each listing on it gets this flag."""

    source: str
    as_of: date
    url: str | None = None

    def flag(self) -> dict[str, Any]:
        return {
            "type": FlagType.CURATED_LIST.value,
            "label": f"On {self.source}",
            "source": self.source,
            "as_of": self.as_of.isoformat(),
            "url": self.url,
        }


# --- reading the formats: each yields (where, record) ----------------------------------------

Rows = Iterator[tuple[str, Any]]


def _csv_value(name: str, cell: str) -> Any:
    """A CSV cell as the value a JSON record would hold (exports.csv_cell, reversed)."""
    if name in CODE_LISTS:
        if name == "fillers" and cell in ("", NO_FILLERS):
            return None if cell == "" else []
        return [c.strip() for c in cell.split(LIST_SEPARATOR) if c.strip()]
    if name in OBJECT_LISTS:
        if not cell:
            return []
        try:
            return json.loads(cell)
        except json.JSONDecodeError:
            raise Refused(f"{name} must be a JSON array") from None
    if cell == "":
        return None
    if name in BOOLEANS or name in ("is_sample", "needs_reconfirming"):
        lowered = cell.strip().lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else cell
    if name in NUMBERS:
        try:
            return float(cell)
        except ValueError:
            return cell
    return csv_unsafe(cell)


def read_csv(fh: IO[str]) -> Rows:
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImportFailure("the file is empty.") from None
    except csv.Error as exc:
        raise ImportFailure(f"line 1: not valid CSV ({exc}).") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFailure(f"missing required column(s): {', '.join(missing)}.")
    unknown = [c for c in header if c not in KNOWN]
    if unknown:
        raise ImportFailure(f"unknown column(s): {', '.join(unknown)}.")
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailure(f"line {reader.line_num}: not valid CSV ({exc}).") from None
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield f"line {start}", Refused(f"{len(cells)} cells for {len(header)} columns")
            continue
        try:
            yield f"line {start}", {n: _csv_value(n, c) for n, c in zip(header, cells, strict=True)}
        except Refused as exc:
            yield f"line {start}", exc


def read_jsonl(fh: IO[str]) -> Rows:
    for number, text in enumerate(fh, start=1):
        if not text.strip():
            continue
        try:
            yield f"line {number}", json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFailure(f"line {number}: not valid JSON ({exc.msg}).") from None


def read_geojson(fh: IO[str]) -> Rows:
    # A FeatureCollection is one JSON value: read whole (curated lists are small; CSV and JSON
    # lines stream).
    try:
        collection = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ImportFailure(f"line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list) or collection.get("type") != "FeatureCollection":
        raise ImportFailure("not a GeoJSON FeatureCollection (no features list).")
    for number, item in enumerate(features, start=1):
        where = f"feature {number}"
        properties = item.get("properties") if isinstance(item, dict) else None
        if not isinstance(properties, dict):
            yield where, Refused("a Feature needs its properties")
            continue
        geometry = item.get("geometry")
        lat = lon = None
        if isinstance(geometry, dict) and geometry.get("type") == "Point":
            coordinates = geometry.get("coordinates")
            if isinstance(coordinates, list) and len(coordinates) >= 2:
                lon, lat = coordinates[0], coordinates[1]
        elif geometry is not None:
            yield where, Refused("the geometry must be a Point or null")
            continue
        yield where, {**properties, "lat": lat, "lon": lon}


Reader = Callable[[IO[str]], Rows]
# Format name -> reader (the same names as exports.WRITERS).
READERS: dict[str, Reader] = {"jsonl": read_jsonl, "csv": read_csv, "geojson": read_geojson}


# --- a record as a listing's data ------------------------------------------------------------


@dataclass
class Parsed:
    kind: Kind
    data: dict[str, Any]  # the listing fields the row gives
    flags: list[dict[str, Any]] | None  # None: the row says nothing about flags
    keys: list[bulk.Key]
    is_sample: bool
    has_pin: bool  # False: the file has no lat/lon (a hand-written list): look it up
    id: int | None  # the listing number in the directory the file was exported from


def _text(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value.strip() or None if isinstance(value, str) else None
    raise Refused(f"{name} must be text")


def _check_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in BOOLEANS:
        if not isinstance(value, bool):
            raise Refused(f"{name} must be true or false")
        return value
    if name in NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Refused(f"{name} must be a number")
        return float(value)
    if name in TERMS:
        if TERMS[name].parse(value) is None:
            raise Refused(f"{name} must be {TERMS[name].values_text()}")
        return value
    if name in CODE_LISTS:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise Refused(f"{name} must be a list of codes")
        codes = {c.strip() for c in value if c.strip()}
        # Region codes are upper-case ("US-WA", "GB"), as the form stores them.
        return sorted({c.upper() for c in codes} if name in REGION_LISTS else codes)
    return _text(name, value)


def _flags(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Refused("flags must be a list")
    flags = []
    for item in value:
        if not isinstance(item, dict) or FlagType.parse(item.get("type")) is None:
            raise Refused(f"each flag needs a type: {FlagType.values_text()}")
        label, source = _text("a flag's label", item.get("label")), item.get("source")
        if not label or not isinstance(source, str) or not source.strip():
            raise Refused("each flag needs a label and a source")
        url = _text("a flag's url", item.get("url"))
        if len(label) > 200 or len(source) > 200 or len(url or "") > 300:
            raise Refused("a flag's label and source are at most 200 characters, its url 300")
        try:
            as_of = parse_date(item.get("as_of"))
        except (TypeError, ValueError):
            as_of = None
        if as_of is None:
            raise Refused(
                f"a flag's as_of must be YYYY-MM or YYYY-MM-DD, not {item.get('as_of')!r}"
            )
        flags.append(
            {
                "type": item["type"],
                "label": label,
                "source": source.strip(),
                "as_of": as_of.isoformat(),
                "url": url,
            }
        )
    return flags


def _keys(record: dict[str, Any], default_source: str | None) -> list[bulk.Key]:
    keys: list[bulk.Key] = []
    for item in record.get("sources") or []:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("source"), str)
            and isinstance(item.get("source_id"), str | int)
            and item["source"].strip()
        ):
            raise Refused("each of sources needs a source and a source_id")
        keys.append((item["source"].strip(), str(item["source_id"]).strip()))
    source_id = record.get("source_id")
    if source_id is not None and str(source_id).strip():
        source = _text("source", record.get("source")) or default_source
        if not source:
            raise Refused("source_id needs a source (a source column, or --source NAME)")
        keys.append((source, str(source_id).strip()))
    for source, source_id in keys:
        if len(source) > 40 or len(source_id) > 80 or not source_id:
            raise Refused("a source is at most 40 characters and its source_id 1 to 80")
    return list(dict.fromkeys(keys))


def parse(record: Any, default_source: str | None = None) -> Parsed:
    """A record's listing data, flags and keys, checked for their types (not yet for the
    form's rules, which need the listing it updates)."""
    if not isinstance(record, dict):
        raise Refused("each row must be one JSON object")
    unknown = sorted(set(record) - KNOWN)
    if unknown:
        raise Refused(f"unknown field(s): {', '.join(unknown)}")
    kind = Kind.parse(record.get("kind"))
    if kind is None:
        raise Refused(f"kind must be {Kind.values_text()}")
    own = fields_for(kind)
    for name in sorted(set(record) & set(COLUMNS) - set(own) - set(DERIVED) - {"kind"}):
        if name not in (*OBJECT_LISTS, "is_sample") and record[name] not in (None, [], ""):
            raise Refused(f"{name} is not a field of a {kind.value}")
    data = {name: _check_value(name, record[name]) for name in own if name in record}
    lat, lon = data.get("lat"), data.get("lon")
    if (lat is None) != (lon is None):
        raise Refused("lat and lon must both be numbers, or both empty")
    if lat is not None and lon is not None and not geomath.valid_lat_lon(lat, lon):
        raise Refused(geomath.COORDINATES_MESSAGE.rstrip("."))
    # Stored as the registry writes it (digits only); a value the rule refuses is left for the
    # form's message. Phones are kept as the file writes them, so an export comes back as it was.
    if data.get("npi"):
        try:
            data["npi"] = validation.normalise_npi(data["npi"])
        except ValueError:
            pass
    is_sample = record.get("is_sample")
    if is_sample is not None and not isinstance(is_sample, bool):
        raise Refused("is_sample must be true or false")
    return Parsed(
        kind=kind,
        data=data,
        flags=_flags(record["flags"]) if "flags" in record else None,
        keys=_keys(record, default_source),
        is_sample=bool(is_sample),
        has_pin="lat" in record or "lon" in record,
        id=validation.parse_id(str(record["id"])) if record.get("id") is not None else None,
    )


# --- writing ---------------------------------------------------------------------------------


def _defaults(kind: Kind) -> dict[str, Any]:
    """A new listing's fields before the row's: empty, or the column's default where the
    column may not be empty (status, country, the yes/no facts)."""
    data: dict[str, Any] = {}
    columns = Listing.__table__.c
    for name in fields_for(kind):
        column = columns.get(name)
        if name in CODE_LISTS:
            data[name] = None if name == "fillers" else []
        elif column is not None and not column.nullable and column.default is not None:
            value = getattr(column.default, "arg", None)
            data[name] = value.value if isinstance(value, Term) else value
        else:
            data[name] = None
    return data


def _match(parsed: Parsed, by_id: bool) -> Listing | None:
    if by_id:
        own = db.session.get(Listing, parsed.id) if parsed.id is not None else None
        if own is None:
            raise Refused("--by-id: its id is not a listing here")
        return own
    if parsed.keys:
        ids = set(
            db.session.scalars(
                select(ListingSource.listing_id).where(
                    or_(
                        *(
                            and_(ListingSource.source == s, ListingSource.source_id == i)
                            for s, i in parsed.keys
                        )
                    )
                )
            )
        )
        if len(ids) > 1:
            raise Refused(f"its keys name different listings ({', '.join(map(str, sorted(ids)))})")
        if ids:
            return db.session.get(Listing, ids.pop())
    npi = parsed.data.get("npi")
    if npi:
        found = list(db.session.scalars(select(Listing).where(Listing.npi == npi).limit(2)))
        if len(found) > 1:
            raise Refused(f"NPI {npi} is on more than one listing")
        if found:
            return found[0]
    return None


def _place(data: dict[str, Any]) -> dict[str, Any]:
    place, _error = submissions.geocode_submission(data, geocoder())
    if place is None:
        return {}
    return {"lat": place["lat"], "lon": place["lon"], "geo_precision": place["precision"]}


class _Importer:
    def __init__(
        self,
        actor: User,
        file: str,
        default_source: str | None,
        curated: CuratedList | None,
        by_id: bool,
    ) -> None:
        self.actor = actor
        self.by_id = by_id
        self.file = file
        self.default_source = default_source
        self.curated = curated
        self.report = Report()
        self.on_list: set[int] = set()  # listings the file names, refused rows included
        self.rules = ListingRules()

    def row(self, record: Any) -> None:
        parsed = parse(record, self.default_source)
        if self.curated and not parsed.keys:
            raise Refused("a curated list's row needs a source_id (its key on the list)")
        listing = _match(parsed, self.by_id)
        if listing is not None:
            self.on_list.add(listing.id)
        if listing is not None and listing.kind != parsed.kind:
            raise Refused(f"its key names listing {listing.id}, a {listing.kind.value}")
        current = to_data(listing) if listing else _defaults(parsed.kind)
        merged = {**current, **parsed.data}
        if not parsed.has_pin and not merged.get("telehealth_only"):
            address_changed = any(
                merged.get(k) != current.get(k) for k in submissions.ADDRESS_FIELDS
            )
            if listing is None or address_changed:
                merged.update(_place(merged))
        # The form reads its choices from the vocabulary tables: without autoflush, those
        # reads don't each write out the rows before (a flush per query was half the time).
        with db.session.no_autoflush:
            errors = self.rules.errors(parsed.kind, merged)
        if errors:
            name, messages = next(iter(errors.items()))
            raise Refused(f"{name}: {messages[0].rstrip('.')}")
        # Compared and stored in the one form phones take (E.164), however the file wrote it.
        if merged.get("phone"):
            merged["phone"] = validation.stored_phone(merged["phone"], merged.get("country"))
        flags = list(parsed.flags or [])
        if self.curated:
            flags.append(self.curated.flag())
        if listing is None:
            listing = bulk.create_listing(
                parsed.kind, merged, is_sample=parsed.is_sample, actor=self.actor, file=self.file
            )
            self.on_list.add(listing.id)
            self.report.new += 1
        else:
            changes = {k: v for k, v in merged.items() if v != current[k]}
            if changes:
                bulk.update_listing(
                    listing, changes, actor=self.actor, reason=bulk.import_reason(self.file)
                )
                self.report.updated += 1
            else:
                self.report.unchanged += 1
        self.report.flagged += bulk.add_flags(
            listing, flags, actor=self.actor, file=self.file, supersede=self.curated is not None
        )
        if parsed.keys:
            bulk.note_sources(
                listing,
                parsed.keys,
                actor=self.actor,
                file=self.file,
                as_of=self.curated.as_of if self.curated else None,
                data=parsed.data,
            )

    def rows(self, rows: Rows, progress: Callable[[], None]) -> Report:
        for number, (where, record) in enumerate(rows, start=1):
            try:
                if isinstance(record, Refused):
                    raise record
                # Every refusal is raised before the row writes anything.
                self.row(record)
            except Refused as exc:
                self.report.refused.append((where, str(exc)))
            if number % FLUSH_EVERY == 0:
                # Written rows are flushed and let go, so memory stays flat over a long file.
                db.session.flush()
                db.session.expunge_all()
                db.session.add(self.actor)
            progress()
        # Only a list read whole says who is off it: a refused row (a typo in its kind, say)
        # might be a listing still on the list, which must not lose its flag.
        self.report.kept_off_list = bool(self.curated and self.report.refused)
        if self.curated and not self.report.refused:
            self.report.unflagged = bulk.drop_off_list(
                FlagType.CURATED_LIST,
                self.curated.source,
                self.curated.as_of,
                self.on_list,
                actor=self.actor,
                file=self.file,
            )
        return self.report


class _Counting(io.RawIOBase):
    """Counts the bytes read through it, for a progress bar over the file's size."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n or 0


def run(
    path: Path,
    *,
    actor: User,
    format_name: str | None = None,
    default_source: str | None = None,
    curated: CuratedList | None = None,
    by_id: bool = False,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Import the file as `actor`; with `dry_run`, every check runs and nothing is kept.
    `progress` is told the bytes read so far after each row. Raises ImportFailure (nothing
    written) when the file cannot be read as its format."""
    try:
        reader = READERS[format_of(path, format_name, READERS)]
    except UnknownFormat as exc:
        raise ImportFailure(str(exc)) from None
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise ImportFailure(f"cannot read {path}: {exc.strerror or exc}.") from None
    importer = _Importer(actor, path.name, default_source, curated, by_id)
    with raw:
        counting = _Counting(raw)
        text = io.TextIOWrapper(io.BufferedReader(counting), encoding="utf-8-sig", newline="")

        def tell() -> None:
            if progress is not None:
                progress(counting.count)

        try:
            if dry_run:
                try:
                    return importer.rows(reader(text), tell)
                finally:
                    db.session.rollback()
            with writing():
                return importer.rows(reader(text), tell)
        except UnicodeDecodeError:
            raise ImportFailure(f"{path.name} is not UTF-8 text.") from None
        except OSError as exc:
            raise ImportFailure(f"cannot read {path}: {exc.strerror or exc}.") from None
