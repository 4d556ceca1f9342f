"""Loading seeds/: vocabularies (CSV) and sample listings (JSON lines).

Every file is read and checked whole before anything is kept, so a bad row names its file and
line and nothing lands. A listing row is checked twice: here for its shape (types, known codes,
the seed-only keys), then by the public listing form's own rules (forms.listing.ListingRules), the
same rules a person's suggestion meets. Loading is idempotent: vocabulary rows are upserted by
code, sample listings are inserted once by their `key` and never overwritten (a moderator may
have edited them since).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from . import dataversion, moderation
from .db import writing
from .extensions import db
from .forms.listing import ListingRules
from .geomath import COORDINATES_MESSAGE, valid_lat_lon
from .listings import fields_for, parse_date
from .models import (
    Condition,
    DosageForm,
    Filler,
    FlagType,
    Guidance,
    Kind,
    Listing,
    Precision,
    Region,
    SRPolicy,
    Status,
    VerifyMethod,
)
from .resources import folder

SEEDS = folder("seeds")

VOCABULARIES: list[tuple[str, type, tuple[str, ...]]] = [
    ("fillers.csv", Filler, ("code", "name", "guidance", "why")),
    ("dosage_forms.csv", DosageForm, ("code", "name")),
    ("conditions.csv", Condition, ("code", "name")),
    ("us_states.csv", Region, ("code", "name")),
]
SAMPLES = [
    ("sample_pharmacies.jsonl", Kind.PHARMACY),
    ("sample_prescribers.jsonl", Kind.PRESCRIBER),
]


class SeedError(ValueError):
    """One line that says which file and line is wrong, and how."""


@dataclass
class SeedRow:
    """A listing row that passed the shape checks, and where it came from."""

    kind: Kind
    where: str  # "path:line", for messages
    data: dict[str, Any]


@dataclass
class SeedReport:
    vocabulary_changes: dict[str, int] = field(default_factory=dict)
    listings_added: int = 0
    listings_skipped: int = 0


def read_vocabulary(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.exists():
        raise SeedError(f"{path}: file not found.")
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != columns:
            raise SeedError(
                f"{path}:1: expected columns {','.join(columns)}, got {reader.fieldnames}"
            )
        seen: set[str] = set()
        for row in reader:
            line = reader.line_num
            if None in row or any(row[c] is None for c in columns):
                raise SeedError(f"{path}:{line}: expected {len(columns)} columns.")
            values = {c: row[c].strip() for c in columns}
            if not values["code"] or not values["name"]:
                raise SeedError(f"{path}:{line}: code and name must not be empty.")
            if values["code"] in seen:
                raise SeedError(f"{path}:{line}: code {values['code']!r} appears twice.")
            if "guidance" in values and values["guidance"] not in Guidance.values():
                raise SeedError(
                    f"{path}:{line}: guidance must be {Guidance.values_text()}, "
                    f"got {values['guidance']!r}."
                )
            seen.add(values["code"])
            rows.append(values)
    return rows


_BOOL = (bool,)
_OPT_STR = (str, type(None))
_NUM = (int, float)


def _check_listing(kind: Kind, row: Any, codes: dict[str, set[str]]) -> str | None:
    """Why the row is unusable, or None."""
    if not isinstance(row, dict):
        return "each line must be one JSON object"
    required = set(fields_for(kind)) | {"key", "verified_on", "verified_method", "flags", "sample"}
    if kind == Kind.PHARMACY:
        required |= {"accreditation"}
    missing = sorted(required - set(row))
    if missing:
        return f"missing keys: {', '.join(missing)}"
    if not isinstance(row["key"], str) or not row["key"]:
        return "key must be a non-empty string"
    text_keys = ["name", "street", "city", "region", "postal_code", "phone", "website", "email"]
    if kind == Kind.PRESCRIBER:
        text_keys.append("npi")
    for key in text_keys:
        if not isinstance(row[key], _OPT_STR):
            return f"{key} must be text or null"
    if not isinstance(row["country"], str) or len(row["country"]) != 2:
        return "country must be a two-letter code"
    lat, lon = row["lat"], row["lon"]
    if lat is None and lon is None:
        pass
    elif not isinstance(lat, _NUM) or not isinstance(lon, _NUM):
        return "lat and lon must both be numbers, or both null"
    elif not valid_lat_lon(lat, lon):
        return COORDINATES_MESSAGE.rstrip(".")
    if row["geo_precision"] is not None and row["geo_precision"] not in {
        p.value for p in Precision
    }:
        return f"unknown geo_precision {row['geo_precision']!r}"
    if row["status"] not in Status.values():
        return f"unknown status {row['status']!r}"
    list_vocab = {"dosage_forms": "dosage_forms", "conditions": "conditions", "fillers": "fillers"}
    for key, vocab_name in list_vocab.items():
        if key not in row or (key == "fillers" and row[key] is None):
            continue
        if not isinstance(row[key], list):
            return f"{key} must be a list"
        unknown = sorted(set(row[key]) - codes[vocab_name])
        if unknown:
            return f"unknown {key} code(s): {', '.join(unknown)}"
    for key in ("ships_to", "licensed_in"):
        if key in row and not (
            isinstance(row[key], list) and all(isinstance(c, str) and c for c in row[key])
        ):
            return f"{key} must be a list of region codes"
    if kind == Kind.PHARMACY:
        if row["sr_policy"] not in SRPolicy.values():
            return f"unknown sr_policy {row['sr_policy']!r}"
        for key in ("makes_ldn", "mail_order"):
            if not isinstance(row[key], _BOOL):
                return f"{key} must be true or false"
    else:
        for key in ("telehealth", "telehealth_only"):
            if not isinstance(row[key], _BOOL):
                return f"{key} must be true or false"
    try:
        parse_date(row["verified_on"])
    except (TypeError, ValueError):
        return f"verified_on must be YYYY-MM-DD or null, got {row['verified_on']!r}"
    if row["verified_on"] and row["verified_method"] not in VerifyMethod.values():
        return f"verified_method must be {VerifyMethod.values_text()} when verified_on is set"
    if not isinstance(row["flags"], list):
        return "flags must be a list"
    for flag in row["flags"]:
        if not isinstance(flag, dict) or flag.get("type") not in FlagType.values():
            return f"each flag needs a type: {FlagType.values_text()}"
        if not flag.get("label") or not flag.get("source"):
            return "each flag needs a label and a source"
        try:
            parse_date(flag.get("as_of"))
        except (TypeError, ValueError):
            return f"flag as_of must be YYYY-MM or YYYY-MM-DD, got {flag.get('as_of')!r}"
    return None


def read_listings(path: Path, kind: Kind, codes: dict[str, set[str]]) -> list[SeedRow]:
    """The file's rows, each checked for its shape; the form's rules come later, in load()."""
    if not path.exists():
        raise SeedError(f"{path}: file not found.")
    rows: list[SeedRow] = []
    keys: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SeedError(f"{path}:{number}: not valid JSON ({exc.msg}).") from None
            problem = _check_listing(kind, row, codes)
            if problem is None and row["key"] in keys:
                problem = f"key {row['key']!r} appears twice"
            if problem:
                raise SeedError(f"{path}:{number}: {problem}.")
            keys.add(row["key"])
            rows.append(SeedRow(kind, f"{path}:{number}", row))
    return rows


def check_form_rules(row: SeedRow, rules: ListingRules) -> None:
    """The public form's rules, which read their choices from the vocabulary tables: run once
    this load's vocabularies are written, inside its transaction, so a failure keeps nothing."""
    errors = rules.errors(row.kind, row.data)
    if errors:
        key, messages = next(iter(errors.items()))
        raise SeedError(f"{row.where}: {key}: {messages[0].rstrip('.')}.")


def load(seeds_dir: Path = SEEDS, *, samples: bool = True) -> SeedReport:
    report = SeedReport()
    vocab_rows = {
        name: (model, read_vocabulary(seeds_dir / name, columns))
        for name, model, columns in VOCABULARIES
    }
    codes = {
        "fillers": {r["code"] for r in vocab_rows["fillers.csv"][1]},
        "dosage_forms": {r["code"] for r in vocab_rows["dosage_forms.csv"][1]},
        "conditions": {r["code"] for r in vocab_rows["conditions.csv"][1]},
    }
    listing_rows = (
        [row for name, kind in SAMPLES for row in read_listings(seeds_dir / name, kind, codes)]
        if samples
        else []
    )
    with writing():
        for name, (model, rows) in vocab_rows.items():
            changed = 0
            for values in rows:
                current = db.session.get(model, values["code"])
                if current is None:
                    db.session.add(model(**values))
                    changed += 1
                elif any(str(getattr(current, k)) != v for k, v in values.items()):
                    for k, v in values.items():
                        setattr(current, k, v)
                    changed += 1
            report.vocabulary_changes[name] = changed
        db.session.flush()
        existing = set(
            db.session.scalars(select(Listing.seed_key).where(Listing.seed_key.is_not(None)))
        )
        rules = ListingRules()
        for row in listing_rows:
            check_form_rules(row, rules)
        for row in listing_rows:
            if row.data["key"] in existing:
                report.listings_skipped += 1
                continue
            moderation.create_seed_listing(row.kind, row.data)
            report.listings_added += 1
        if report.listings_added or any(report.vocabulary_changes.values()):
            dataversion.bump()  # vocabulary labels and guidance show on public pages
    if report.listings_added:
        # Samples include confirmed pharmacies: the call list's order counts them.
        from .moderation.calls import refresh_nearby

        refresh_nearby()
    return report
