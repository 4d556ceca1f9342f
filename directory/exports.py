"""Open data out: every published listing as JSON lines, CSV or GeoJSON, streamed.

`records()` reads the listings in batches by id (keyset paging: each batch starts after the
last id of the one before, so batch 1,000 costs what batch 1 does) with their related rows
read per batch, and yields one plain dict per listing: the public fields of
`listings.public_dict` plus the listing's outside keys (`sources`). The writers turn that one
shape into each format as they go, so memory stays flat whatever the number of listings.
`imports.py` reads all three formats back.

A telehealth-only prescriber's coordinates are where they are based, not a place to go
(`ListingFacts.has_public_pin`), so exports leave them out.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import IO, Any

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Select,
    and_,
    bindparam,
    func,
    literal,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from . import hsds
from .cards import Flag
from .csvcells import csv_safe
from .facts import ListingFacts
from .listings import (
    COMMON_FIELDS,
    PHARMACY_FIELDS,
    PRESCRIBER_FIELDS,
    detail_url,
    fields_for,
    flag_data,
)
from .models import (
    Kind,
    Listing,
    ListingRegion,
    ListingSource,
    Precision,
    ReliabilityFlag,
    SRPolicy,
    Status,
    listing_conditions,
    listing_dosage_forms,
    listing_fillers,
)

BATCH = 1000
# A statement of any columns (SQLAlchemy 2.1 types a SELECT by its column types).
Rows = Select[*tuple[Any, ...]]

# Derived on the way out; an import reads them and ignores them.
DERIVED = ("id", "url", "address", "verified_on", "needs_reconfirming")
# Every key a record can have, in the order CSV columns are written.
COLUMNS: tuple[str, ...] = (
    ("id", "kind", "url")
    + COMMON_FIELDS
    + ("address", "verified_on", "needs_reconfirming", "is_sample")
    + PHARMACY_FIELDS
    + tuple(f for f in PRESCRIBER_FIELDS if f not in PHARMACY_FIELDS)
    + ("flags", "sources")
)
# Lists of vocabulary or region codes (joined with LIST_SEPARATOR in CSV cells).
CODE_LISTS = ("dosage_forms", "fillers", "ships_to", "licensed_in", "conditions")
# Lists of objects (a JSON array in CSV cells).
OBJECT_LISTS = ("flags", "sources")
LIST_SEPARATOR = ";"
# A pharmacy's fillers known to be none, in a CSV cell (an empty cell means "unknown").
NO_FILLERS = "none"


@dataclass(slots=True)
class Row(ListingFacts):
    """One listing's columns as read for an export, with its related rows."""

    columns: dict[str, Any]
    id: int = 0
    kind: Kind = Kind.PHARMACY
    name: str = ""
    street: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str = "US"
    lat: float | None = None
    status: Status = Status.OPEN
    verified_on: date | None = None
    geo_precision: Precision | None = None
    telehealth_only: bool = False
    makes_ldn: bool | None = None
    sr_policy: SRPolicy | None = None
    fillers_known: bool = False
    fillers: list[str] = field(default_factory=list)
    codes: dict[str, list[str]] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)


# The listing's own columns an export reads: every public field that is a column, and what
# the derived facts need.
_LIST_FIELDS = frozenset(CODE_LISTS)
_READ = tuple(
    dict.fromkeys(
        ["id", "kind", "fillers_known", "verified_on", "is_sample", "telehealth_only"]
        + [f for f in COMMON_FIELDS + PHARMACY_FIELDS + PRESCRIBER_FIELDS if f not in _LIST_FIELDS]
    )
)
# A flag's columns in the order cards.Flag takes them.
_FLAG_COLUMNS = [getattr(ReliabilityFlag, name) for name in Flag.__dataclass_fields__]
_FACTS = frozenset(Row.__dataclass_fields__) - {"columns", "fillers", "codes", "flags", "sources"}


# Each batch is the listings with ids in (LOW, HIGH]: paging by id makes that exactly the
# batch, so the related rows are read by a range on the link tables' leading column rather than
# a list of a thousand ids (binding those cost more than the reads).
LOW: BindParameter[int] = bindparam("low")
HIGH: BindParameter[int] = bindparam("high")


def _in_batch(column: Any) -> Any:
    return and_(column > LOW, column <= HIGH)


@cache
def _statements() -> tuple[Rows, CompoundSelect[*tuple[Any, ...]], Rows, Rows]:
    listings = select(*(getattr(Listing, n) for n in _READ)).where(_in_batch(Listing.id))
    links = [
        ("fillers", listing_fillers.c.filler_code),
        ("dosage_forms", listing_dosage_forms.c.dosage_form_code),
        ("conditions", listing_conditions.c.condition_code),
    ]
    parts: list[Rows] = [
        select(code.table.c.listing_id, literal(name), code).where(
            _in_batch(code.table.c.listing_id)
        )
        for name, code in links
    ]
    parts.append(
        select(ListingRegion.listing_id, ListingRegion.role, ListingRegion.code).where(
            _in_batch(ListingRegion.listing_id)
        )
    )
    flags: Rows = (
        select(ReliabilityFlag.listing_id, *_FLAG_COLUMNS)
        .where(_in_batch(ReliabilityFlag.listing_id))
        .order_by(ReliabilityFlag.listing_id, ReliabilityFlag.id)
    )
    sources: Rows = (
        select(ListingSource.listing_id, ListingSource.source, ListingSource.source_id)
        .where(_in_batch(ListingSource.listing_id))
        .order_by(ListingSource.listing_id, ListingSource.source, ListingSource.source_id)
    )
    return listings, union_all(*parts), flags, sources


def _batches(session: Session, batch: int) -> Iterator[list[Row]]:
    listings, related, flags, sources = _statements()
    conn = session.connection()
    after = 0
    while True:
        # The batch's last id, then everything up to it: the ids in between are the batch.
        last = conn.execute(
            select(Listing.id).where(Listing.id > after).order_by(Listing.id).offset(batch - 1)
        ).scalar()
        if last is None:
            last = conn.execute(select(func.max(Listing.id))).scalar()
            if last is None or last <= after:
                return
        bounds = {"low": after, "high": last}
        rows: dict[int, Row] = {}
        for values in conn.execute(listings, bounds):
            read = dict(zip(_READ, values, strict=True))
            rows[read["id"]] = Row(read, **{k: read[k] for k in _FACTS})
        for listing_id, name, code in conn.execute(related, bounds):
            rows[listing_id].codes.setdefault(str(name), []).append(code)
        for listing_id, *flag in conn.execute(flags, bounds):
            rows[listing_id].flags.append(Flag(*flag))
        for listing_id, source, source_id in conn.execute(sources, bounds):
            rows[listing_id].sources.append({"source": source, "source_id": source_id})
        after = last
        yield [rows[i] for i in sorted(rows)]


# How each field is read from a Row: a column as it is, a vocabulary value (a Term) as its
# value, or a list of codes from the related rows.
_TERMS = frozenset(("geo_precision", "status", "sr_policy"))
_PLAN = {
    kind: [
        (n, "list" if n in _LIST_FIELDS else "term" if n in _TERMS else "column")
        for n in fields_for(kind)
    ]
    for kind in Kind
}


def record(row: Row) -> dict[str, Any]:
    """A listing as its export record: `listings.public_dict`'s shape and values, plus
    `sources`, without a pin the listing's own page would not show."""
    columns = row.columns
    data: dict[str, Any] = {"id": row.id, "kind": row.kind.value, "url": detail_url(row)}
    for name, how in _PLAN[row.kind]:
        if how == "column":
            data[name] = columns[name]
        elif how == "term":
            data[name] = None if columns[name] is None else columns[name].value
        elif name == "fillers" and not row.fillers_known:
            data[name] = None
        else:
            data[name] = sorted(row.codes.get(name, []))
    if not row.has_public_pin:
        data["lat"] = data["lon"] = None
    data.update(
        address=row.address_line,
        verified_on=row.verified_on.isoformat() if row.verified_on else None,
        needs_reconfirming=row.is_stale,
        is_sample=columns["is_sample"],
        flags=[flag_data(f) for f in row.flags],
        sources=row.sources,
    )
    return data


def records(session: Session, *, batch: int = BATCH) -> Iterator[dict[str, Any]]:
    """Every published listing's export record, by id. Needs a request context (each
    record's `url` is built on the site root, as pages build it)."""
    for rows in _batches(session, batch):
        yield from (record(row) for row in rows)


# --- writers: one per format -----------------------------------------------------------------


def write_jsonl(items: Iterator[dict[str, Any]], out: IO[str]) -> int:
    count = 0
    for item in items:
        out.write(json.dumps(item, ensure_ascii=False) + "\n")
        count += 1
    return count


def csv_cell(name: str, value: Any) -> str | int | float:
    """A record's value as its CSV cell (README, "Data formats")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if name in OBJECT_LISTS:
        return json.dumps(value, ensure_ascii=False) if value else ""
    if name in CODE_LISTS:
        return LIST_SEPARATOR.join(value) if value or name != "fillers" else NO_FILLERS
    return csv_safe(str(value))


def write_csv(items: Iterator[dict[str, Any]], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for item in items:
        writer.writerow([csv_cell(name, item.get(name)) for name in COLUMNS])
        count += 1
    return count


def feature(item: dict[str, Any]) -> dict[str, Any]:
    """An RFC 7946 Feature: the point (longitude first) where the listing shows one, else a
    null geometry; every other field as a property."""
    lat, lon = item["lat"], item["lon"]
    properties = {k: v for k, v in item.items() if k not in ("lat", "lon")}
    geometry = None if lat is None or lon is None else {"type": "Point", "coordinates": [lon, lat]}
    return {"type": "Feature", "id": item["id"], "geometry": geometry, "properties": properties}


def write_geojson(items: Iterator[dict[str, Any]], out: IO[str]) -> int:
    # One Feature a line, written as it comes: the collection is never held whole.
    out.write('{"type": "FeatureCollection", "features": [\n')
    count = 0
    for item in items:
        out.write((",\n" if count else "") + json.dumps(feature(item), ensure_ascii=False))
        count += 1
    out.write("\n]}\n")
    return count


Writer = Callable[[Iterator[dict[str, Any]], IO[str]], int]

# Format name -> writer. A new format is one line here (and its reader in imports.FORMATS).
WRITERS: dict[str, Writer] = {
    "jsonl": write_jsonl,
    "csv": write_csv,
    "geojson": write_geojson,
    # HSDS reads the listings its own way (organizations, services, locations, a taxonomy).
    "hsds": lambda _records, out: hsds.write(None, out),
}
# File name endings that name a format, for `export FILE` without --format.
EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".geojson": "geojson",
    ".json": "hsds",  # one JSON document: the HSDS export (as the /data/ download names it)
}


class UnknownFormat(ValueError):
    """A format name, or a file name's ending, that names no format: one line saying so."""


def format_of(path: Path, format_name: str | None, known: Collection[str]) -> str:
    """The format to read or write a file in: the one named, or the one its ending names."""
    if format_name is not None:
        if format_name not in known:
            raise UnknownFormat(f"unknown format {format_name!r}: use {', '.join(known)}.")
        return format_name
    found = EXTENSIONS.get(path.suffix.lower())
    if found is None or found not in known:
        endings = ", ".join(e for e, f in EXTENSIONS.items() if f in known)
        raise UnknownFormat(
            f"cannot tell the format from {path.name!r}: name it {endings}, "
            f"or give --format ({', '.join(known)})."
        )
    return found


def export(session: Session, format_name: str, out: IO[str], *, batch: int = BATCH) -> int:
    """Write every published listing to `out`; returns how many."""
    return WRITERS[format_name](records(session, batch=batch), out)
