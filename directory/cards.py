"""Search results as cards: what a result shows, read without the ORM.

A results page shows up to 20 listings and 20 "also available" ones. Loading those as ORM
objects with their five related collections cost ten times as much as finding them, so a
result is a `Card`: the listing's own columns plus its flags, vocabulary terms and regions
(as JSON lists, aggregated by the database), read by one statement that is built once per
database dialect and only gets new ids each time. `Card` shares its
derived facts (address line, staleness, filler verdict, slug) with `Listing` through
`ListingFacts`, so the card template renders either and the two never disagree.

The full listing, with where it ships and where its prescriber is licensed, stays on its own
page and at /api/v1/listings/<id> (`listings.public_dict`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

import orjson
from sqlalchemy import BindParameter, Select, bindparam, func, select

from .extensions import db
from .listings import detail_url, flag_data
from .models import (
    Condition,
    DosageForm,
    Filler,
    FlagType,
    Guidance,
    Kind,
    Listing,
    ListingFacts,
    ListingRegion,
    Precision,
    RegionRole,
    ReliabilityFlag,
    SRPolicy,
    Status,
    listing_conditions,
    listing_dosage_forms,
    listing_fillers,
)


@dataclass(frozen=True, slots=True)
class Term:
    """One item of a vocabulary (a filler, a dosage form, a condition) on a listing."""

    code: str
    name: str
    guidance: Guidance | None = None


@dataclass(frozen=True, slots=True)
class Flag:
    type: FlagType
    label: str
    source: str
    as_of: date
    url: str | None


@dataclass(slots=True)
class Card(ListingFacts):
    # The columns, in the order CARD_COLUMNS reads them.
    id: int
    kind: Kind
    name: str
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str
    lat: float | None
    lon: float | None
    geo_precision: Precision | None
    phone: str | None
    website: str | None
    status: Status
    verified_on: date | None
    is_sample: bool
    makes_ldn: bool | None
    sr_policy: SRPolicy | None
    fillers_known: bool
    mail_order: bool
    credentials: str | None
    specialty: str | None
    practice: str | None
    telehealth: bool
    telehealth_only: bool
    accepting_new_patients: bool | None
    # Filled from the related tables.
    flags: list[Flag] = field(default_factory=list)
    fillers: list[Term] = field(default_factory=list)
    dosage_forms: list[Term] = field(default_factory=list)
    conditions: list[Term] = field(default_factory=list)
    ships_to: list[str] = field(default_factory=list)  # pharmacies that mail: where to
    licensed_in: list[str] = field(default_factory=list)  # telehealth prescribers: where


# Filled from the related tables, not read from `listings`.
RELATED = ("flags", "fillers", "dosage_forms", "conditions", "ships_to", "licensed_in")
COLUMN_NAMES = tuple(name for name in Card.__dataclass_fields__ if name not in RELATED)
IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
# A statement of any columns (SQLAlchemy 2.1 types a SELECT by its column types).
Rows = Select[*tuple[Any, ...]]


def _json_list(dialect: str, *values: Any) -> Any:
    """An aggregate of one JSON array per row: SQLite's json_group_array or PostgreSQL's
    json_agg. Rows come back in no particular order; load() sorts them."""
    if dialect == "postgresql":
        return func.json_agg(func.json_build_array(*values))
    return func.json_group_array(func.json_array(*values))


def _related(dialect: str, *values: Any, where: Any, join: Any = None) -> Any:
    """A correlated subquery: the listing's rows of one related table as a JSON list."""
    stmt = select(_json_list(dialect, *values))
    if join is not None:
        stmt = stmt.select_from(join)
    return stmt.where(where).correlate(Listing).scalar_subquery()


@cache
def _statement(dialect: str) -> Rows:
    """One statement for the cards of a page: the columns, then the flags, fillers, dosage
    forms, conditions and regions of each listing as JSON lists (one round trip and one
    result instead of three: statements, not rows, were what reading cards cost)."""
    columns = [getattr(Listing.__table__.c, name) for name in COLUMN_NAMES]
    flag = ReliabilityFlag.__table__.c
    fillers, forms, conds = (
        listing_fillers.c,
        listing_dosage_forms.c,
        listing_conditions.c,
    )
    region = ListingRegion.__table__.c
    listing_id = Listing.__table__.c.id
    related = [
        _related(
            dialect,
            flag.id,
            flag.type,
            flag.label,
            flag.source,
            flag.as_of,
            flag.url,
            where=flag.listing_id == listing_id,
        ),
        _related(
            dialect,
            Filler.code,
            Filler.name,
            Filler.guidance,
            join=listing_fillers.join(Filler, Filler.code == fillers.filler_code),
            where=fillers.listing_id == listing_id,
        ),
        _related(
            dialect,
            DosageForm.code,
            DosageForm.name,
            join=listing_dosage_forms.join(DosageForm, DosageForm.code == forms.dosage_form_code),
            where=forms.listing_id == listing_id,
        ),
        _related(
            dialect,
            Condition.code,
            Condition.name,
            join=listing_conditions.join(Condition, Condition.code == conds.condition_code),
            where=conds.listing_id == listing_id,
        ),
        _related(dialect, region.role, region.code, where=region.listing_id == listing_id),
    ]
    return select(*columns, *related).where(listing_id.in_(IDS))


def _decoded(value: Any) -> list[Any]:
    # SQLite hands the JSON over as text; psycopg parses it; PostgreSQL's json_agg of no rows
    # is NULL.
    if value is None:
        return []
    return orjson.loads(value) if isinstance(value, str | bytes) else list(value)


_N_COLUMNS = len(COLUMN_NAMES)


def load(ids: Iterable[int]) -> dict[int, Card]:
    """Cards for the given listing ids (any that no longer exist are left out)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    session = db.session
    # The Core connection, not the session: these are plain rows, and the ORM's result
    # handling cost more than the statement.
    connection = session.connection()
    stmt = _statement(connection.dialect.name)
    cards = {}
    for row in connection.execute(stmt, {"ids": wanted}):
        card = Card(*row[:_N_COLUMNS])
        flags, fillers, forms, conditions, regions = (_decoded(v) for v in row[_N_COLUMNS:])
        # The orders the relationships on Listing give: flags by id, terms and regions by code.
        flags.sort(key=_first)
        card.flags = [
            Flag(FlagType(type_), label, source, date.fromisoformat(as_of), url)
            for _id, type_, label, source, as_of, url in flags
        ]
        card.fillers = [
            Term(code, name, Guidance(guidance)) for code, name, guidance in sorted(fillers)
        ]
        card.dosage_forms = [Term(code, name) for code, name in sorted(forms)]
        card.conditions = [Term(code, name) for code, name in sorted(conditions)]
        for role, code in sorted(regions, key=_second):
            if role == RegionRole.SHIPS_TO:
                card.ships_to.append(code)
            else:
                card.licensed_in.append(code)
        cards[card.id] = card
    return cards


def _first(item: list[Any]) -> Any:
    return item[0]


def _second(item: list[Any]) -> Any:
    return item[1]


def summary(card: Card, distance: float | None = None) -> dict[str, Any]:
    """A search result in the API: what the card shows, as plain data. `distance` is in the
    search's unit, one decimal; None in "also available"."""
    data: dict[str, Any] = {
        "id": card.id,
        "kind": card.kind.value,
        "name": card.name,
        "url": detail_url(card, _external=True),
        "distance": None if distance is None else round(distance, 1),
        "address": card.address_line,
        "street": card.street,
        "city": card.city,
        "region": card.region,
        "postal_code": card.postal_code,
        "country": card.country,
        # Where a telehealth-only prescriber is based stays private, as on the pages.
        "lat": card.lat if card.has_public_pin else None,
        "lon": card.lon if card.has_public_pin else None,
        "geo_precision": card.geo_precision.value if card.geo_precision else None,
        "phone": card.phone,
        "website": card.website,
        "status": card.status.value,
        "verified_on": card.verified_on.isoformat() if card.verified_on else None,
        "needs_reconfirming": card.is_stale,
        "is_sample": card.is_sample,
        "flags": [flag_data(f) for f in card.flags],
    }
    if card.kind == Kind.PHARMACY:
        worst = card.worst_filler_guidance
        data.update(
            makes_ldn=card.makes_ldn,
            sr_policy=card.sr_policy.value if card.sr_policy else None,
            fillers=[t.code for t in card.fillers] if card.fillers_known else None,
            filler_guidance=worst.value if worst else None,
            dosage_forms=[t.code for t in card.dosage_forms],
            mail_order=card.mail_order,
            ships_to=card.ships_to,
        )
    else:
        data.update(
            credentials=card.credentials,
            specialty=card.specialty,
            practice=card.practice,
            telehealth=card.telehealth,
            telehealth_only=card.telehealth_only,
            accepting_new_patients=card.accepting_new_patients,
            conditions=[t.code for t in card.conditions],
            licensed_in=card.licensed_in,
        )
    return data
