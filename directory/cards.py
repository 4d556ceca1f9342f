"""Search results as cards: what a result shows, read without the ORM.

A results page shows up to 20 listings and 20 "also available" ones. Loading those as ORM
objects with their five related collections cost ten times as much as finding them, so a
result is a `Card`: the listing's own columns plus its flags and vocabulary terms, read by
three statements that are built once and only get new ids each time. `Card` shares its
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

from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Select,
    bindparam,
    literal,
    literal_column,
    null,
    select,
    union_all,
)

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


def _terms(vocab: str, link_code: Any, model: Any, guidance: Any = None) -> Rows:
    """(listing id, vocabulary, code, name, guidance) for one link table of the listings."""
    link = link_code.table
    return (
        select(
            link.c.listing_id,
            literal(vocab),
            model.code,
            model.name,
            null() if guidance is None else guidance,
        )
        .join(model, model.code == link_code)
        .where(link.c.listing_id.in_(IDS))
    )


@cache
def _statements() -> tuple[Rows, Rows, CompoundSelect[*tuple[Any, ...]]]:
    columns = [getattr(Listing, name) for name in COLUMN_NAMES]
    listings = select(*columns).where(Listing.id.in_(IDS))
    flags = (
        select(
            ReliabilityFlag.listing_id,
            ReliabilityFlag.type,
            ReliabilityFlag.label,
            ReliabilityFlag.source,
            ReliabilityFlag.as_of,
            ReliabilityFlag.url,
        )
        .where(ReliabilityFlag.listing_id.in_(IDS))
        .order_by(ReliabilityFlag.listing_id, ReliabilityFlag.id)
    )
    # One round trip for the three vocabularies and the regions; the first SELECT's column
    # types (a plain string for the second column, an Enum for guidance) apply to all rows.
    fillers = _terms("filler", listing_fillers.c.filler_code, Filler, Filler.guidance)
    forms = _terms("dosage_form", listing_dosage_forms.c.dosage_form_code, DosageForm)
    conditions = _terms("condition", listing_conditions.c.condition_code, Condition)
    regions = select(
        ListingRegion.listing_id,
        ListingRegion.role,  # "ships_to" or "licensed_in"
        ListingRegion.code,
        ListingRegion.code,
        null(),
    ).where(ListingRegion.listing_id.in_(IDS))
    # By code, as the relationships on Listing order them.
    terms = union_all(fillers, forms, conditions, regions).order_by(literal_column("code"))
    return listings, flags, terms


def load(ids: Iterable[int]) -> dict[int, Card]:
    """Cards for the given listing ids (any that no longer exist are left out)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    listings, flags, terms = _statements()
    values = {"ids": wanted}
    cards = {row[0]: Card(*row) for row in db.session.execute(listings, values)}
    # .get: three statements are three snapshots on SQLite; a listing deleted between them
    # (and its id reused) must not break the page.
    for listing_id, *flag in db.session.execute(flags, values):
        if (card := cards.get(listing_id)) is not None:
            card.flags.append(Flag(*flag))
    for listing_id, vocab, code, name, guidance in db.session.execute(terms, values):
        if (card := cards.get(listing_id)) is None:
            continue
        if vocab == "filler":
            card.fillers.append(Term(code, name, guidance))
        elif vocab == "dosage_form":
            card.dosage_forms.append(Term(code, name))
        elif vocab == "condition":
            card.conditions.append(Term(code, name))
        elif vocab == RegionRole.SHIPS_TO:
            card.ships_to.append(code)
        else:
            card.licensed_in.append(code)
    return cards


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
