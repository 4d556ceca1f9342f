"""The directory in HSDS 3.0, Open Referral's Human Services Data Specification.

Each listing is one organization that offers one service at one location (README, "Open data
and HSDS", has the mapping as a table). What makes a pharmacy good for LDN (makes LDN, the
slow-release policy, fillers and their guidance, dosage forms) and a prescriber's facts
(telehealth, new patients, conditions) are `attributes` pointing at a taxonomy of our own, whose
terms are the listing fields (their labels from listings.FIELD_LABELS) and their values (from
directory/vocabulary.py and the vocabulary tables): nothing here types a value out.

Ids are UUIDs, as HSDS wants, worked out from the listing id and the object's part, so every
export gives a listing's objects the same ids (`listing_uuid`). Exports stream: listings are
read in batches by id through a session of their own that forgets each batch (`chunks`).
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import IO, Any

import orjson
from flask import current_app, has_request_context, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .extensions import db
from .listings import FIELD_LABELS, detail_url, fields_for
from .models import (
    Condition,
    DosageForm,
    Filler,
    FlagType,
    Kind,
    Listing,
    RegionRole,
    SRPolicy,
    Status,
    Term,
    vocabulary_rows,
)
from .regions import region_name

VERSION = "3.0"
# Fixed for good: every id in every export is derived from it, so changing it changes them all.
NAMESPACE = uuid.UUID("7d0c5a51-3c0e-4b8e-9f2a-6c1d3e0b9a47")
# A listing id fits in the 48 bits a listing's UUIDs end with (see listing_uuid).
_ID_BITS = 48
BATCH = 500
# CC BY 4.0: anyone, other directories included, may reuse the data with credit; no share-alike,
# so it mixes with data under other terms (SPDX identifier).
LICENCE = "CC-BY-4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by/4.0/"

STATUS = {
    Status.OPEN: "active",
    Status.TEMPORARILY_CLOSED: "temporarily closed",
    Status.CLOSED: "defunct",
}
ORGANIZATION_DESCRIPTION = {
    Kind.PHARMACY: "A compounding pharmacy listed in the LDN Directory.",
    Kind.PRESCRIBER: "A prescriber of Low Dose Naltrexone (LDN) listed in the LDN Directory.",
}
SERVICE_DESCRIPTION = {
    Kind.PHARMACY: "Compounds Low Dose Naltrexone (LDN) on prescription.",
    Kind.PRESCRIBER: "Prescribes Low Dose Naltrexone (LDN).",
}
SAMPLE_ALERT = "Sample listing: made up to show how the directory works; not a real place."

# --- ids ----------------------------------------------------------------------------------------


def _uuid5(key: str) -> bytearray:
    """uuid.uuid5(NAMESPACE, key) as bytes, without building UUID objects: an export asks for
    some 40 ids a listing, and uuid.uuid5 plus str() was a third of the export's time."""
    digest = bytearray(hashlib.sha1(NAMESPACE.bytes + key.encode(), usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    return digest[:16]


def _text(raw: bytes | bytearray) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def uuid_for(key: str) -> str:
    return _text(_uuid5(key))


@lru_cache(maxsize=64)  # a listing's objects each name its service and location
def listing_uuid(listing_id: int, part: str) -> str:
    """The id of one of a listing's objects ("service", "location", "phone", ...): uuid5 over the
    namespace and part/id, whose last 48 bits (the node, outside the version and variant bits)
    are the listing id, so /services/{id} finds its listing without a table of ids. (An id past
    2**48 keeps the plain uuid5: stable, but /services/{id} can't find it.)"""
    raw = _uuid5(f"{part}/{listing_id}")
    if 0 < listing_id < 2**_ID_BITS:
        raw[10:] = listing_id.to_bytes(6, "big")
    return _text(raw)


def listing_id_of(text: str, part: str) -> int | None:
    """The listing whose `part` has this id, or None when no listing could have it."""
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        return None
    listing_id = int.from_bytes(parsed.bytes[10:], "big")
    return listing_id if listing_uuid(listing_id, part) == str(parsed) else None


# --- the taxonomy -------------------------------------------------------------------------------

TAXONOMY_ID = uuid_for("taxonomy")
TAXONOMY = {
    "id": TAXONOMY_ID,
    "name": "LDN Directory facts",
    "description": (
        "What the LDN Directory records about a compounding pharmacy or an LDN prescriber: "
        "whether it makes LDN, its slow-release policy, fillers and their guidance, dosage "
        "forms, conditions, telehealth, new patients and reliability flags. A term's code is "
        "the directory's field name, or field/value."
    ),
    "version": VERSION,
}
# Listing fields told as attributes whose value is "true" or "false".
YES_NO = (
    "makes_ldn",
    "mail_order",
    "telehealth",
    "telehealth_only",
    "accepting_new_patients",
)
# Fields whose values are terms of their own (field/value), and where the values come from.
ENUM_FACTS: dict[str, type[Term]] = {"kind": Kind, "sr_policy": SRPolicy, "flags": FlagType}
TABLE_FACTS: dict[str, type[Filler] | type[DosageForm] | type[Condition]] = {
    "fillers": Filler,
    "dosage_forms": DosageForm,
    "conditions": Condition,
}
EXTRA_LABELS = {
    "kind": "Kind of listing",
    "flags": "Reliability flags",
    "fillers_known": "Fillers are known",
    "is_sample": "Sample listing",
}
FACT_DESCRIPTIONS = {
    "fillers": "A filler in its LDN; the attribute's value is the curated lists' guidance.",
    "flags": "A claim about the listing, with who makes it and as of when (the value).",
    "fillers_known": "Whether anyone has said which fillers it uses.",
    "is_sample": "Made up to show how the directory works: not a real place.",
}


def _label(field: str) -> str:
    return EXTRA_LABELS.get(field) or FIELD_LABELS[field]


@cache
def term_id(code: str) -> str:
    return uuid_for(f"taxonomy_term/{code}")


def _term(code: str, name: str, description: str, parent: str | None = None) -> dict[str, Any]:
    term = {
        "id": term_id(code),
        "code": code,
        "name": name,
        "description": description or name,
        "taxonomy": TAXONOMY["name"],
        "taxonomy_id": TAXONOMY_ID,
        "language": "en",
    }
    if parent:
        term["parent_id"] = term_id(parent)
    return term


def taxonomy_terms() -> list[dict[str, Any]]:
    """Every term: a field, then its values. Read from the vocabulary and its tables."""
    terms = []
    for field in (*ENUM_FACTS, *YES_NO, "fillers_known", *TABLE_FACTS, "is_sample"):
        terms.append(_term(field, _label(field), FACT_DESCRIPTIONS.get(field, "")))
        for member in ENUM_FACTS.get(field, ()):
            terms.append(_term(f"{field}/{member.value}", member.label, "", field))
        if field in TABLE_FACTS:
            rows: list[Filler | DosageForm | Condition] = vocabulary_rows(TABLE_FACTS[field])
            for row in rows:
                about = f"{row.guidance.label}. {row.why}" if isinstance(row, Filler) else ""
                terms.append(_term(f"{field}/{row.code}", row.name, about.strip(), field))
    return terms


# --- a listing as HSDS objects ------------------------------------------------------------------


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """HSDS fields are typed (a string is never null): a value nobody knows is left out."""
    return {k: v for k, v in data.items() if v is not None and v != []}


def _timestamp(moment: datetime | None) -> str | None:
    return f"{moment.isoformat(timespec='milliseconds')}Z" if moment else None


def _attribute(listing: Listing, key: str, code: str, value: str | None) -> dict[str, Any]:
    service_id = listing_uuid(listing.id, "service")
    return _compact(
        {
            "id": uuid_for(f"attribute/{listing.id}/{key}"),
            "link_id": service_id,
            "link_type": "service_description",
            "link_entity": "service",
            "taxonomy_term_id": term_id(code),
            "value": value,
        }
    )


def attributes(listing: Listing) -> list[dict[str, Any]]:
    fields = fields_for(listing.kind)
    found = [_attribute(listing, "kind", f"kind/{listing.kind.value}", None)]
    for field in YES_NO:
        value = getattr(listing, field)
        if field in fields and value is not None:
            found.append(_attribute(listing, field, field, "true" if value else "false"))
    if listing.sr_policy is not None and "sr_policy" in fields:
        code = f"sr_policy/{listing.sr_policy.value}"
        found.append(_attribute(listing, "sr_policy", code, None))
    if "fillers" in fields:
        known = "true" if listing.fillers_known else "false"
        found.append(_attribute(listing, "fillers_known", "fillers_known", known))
    for field in TABLE_FACTS:
        if field not in fields:
            continue
        for row in getattr(listing, field):
            value = row.guidance.value if isinstance(row, Filler) else None
            code = f"{field}/{row.code}"
            found.append(_attribute(listing, code, code, value))
    for flag in listing.flags:
        said = f"{flag.label} ({flag.source}, as of {flag.as_of.isoformat()})"
        if flag.url:
            said += f" {flag.url}"
        code = f"flags/{flag.type.value}"
        found.append(_attribute(listing, f"flag/{flag.id}", code, said))
    if listing.is_sample:
        found.append(_attribute(listing, "is_sample", "is_sample", "true"))
    return found


def organization(listing: Listing) -> dict[str, Any]:
    org_id = listing_uuid(listing.id, "organization")
    identifiers = []
    if listing.npi:
        identifiers.append(
            {
                "id": listing_uuid(listing.id, "npi"),
                "organization_id": org_id,
                "identifier_type": "US National Provider Identifier (NPI)",
                "identifier": listing.npi,
            }
        )
    return _compact(
        {
            "id": org_id,
            "name": listing.practice or listing.name,
            "description": ORGANIZATION_DESCRIPTION[listing.kind],
            "email": listing.email,
            "website": listing.website,
            # Persistent, unlike the page's address, whose slug follows the name: this one
            # redirects to it.
            "uri": url_for(f"public.{listing.kind.value}", listing_id=listing.id, _external=True),
            "organization_identifiers": identifiers,
        }
    )


def _address(listing: Listing) -> list[dict[str, Any]]:
    if not (listing.street and listing.city):
        return []
    return [
        {
            "id": listing_uuid(listing.id, "address"),
            "location_id": listing_uuid(listing.id, "location"),
            "address_1": listing.street,
            "city": listing.city,
            "state_province": (listing.region or "").removeprefix("US-"),
            "postal_code": listing.postal_code or "",
            "country": listing.country,
            "address_type": "physical",
        }
    ]


def location(listing: Listing) -> dict[str, Any]:
    """Where to go; a telehealth-only prescriber has no such place (only where it is based,
    which stays private, as on its page), so its location is virtual: its website."""
    virtual = listing.telehealth_only
    pin = listing.has_public_pin
    precision = listing.geo_precision
    return _compact(
        {
            "id": listing_uuid(listing.id, "location"),
            "location_type": "virtual" if virtual else "physical",
            "url": listing.website if virtual else None,
            "organization_id": listing_uuid(listing.id, "organization"),
            "name": listing.practice or listing.name,
            "description": f"Map pin: {precision.label}." if pin and precision else None,
            "latitude": listing.lat if pin else None,
            "longitude": listing.lon if pin else None,
            "addresses": [] if virtual else _address(listing),
        }
    )


def _description(listing: Listing) -> str:
    parts = [SERVICE_DESCRIPTION[listing.kind]]
    if listing.kind == Kind.PRESCRIBER:
        who = ", ".join(p for p in (listing.credentials, listing.specialty) if p)
        parts += [who and f"{who}.", listing.dosing_notes or ""]
    elif listing.sr_policy is not None:
        parts.append(f"{listing.sr_policy.label}.")
    return " ".join(p for p in parts if p)


def service_fields(listing: Listing) -> dict[str, Any]:
    """The service's own fields (no lists): what /services lists."""
    return _compact(
        {
            "id": listing_uuid(listing.id, "service"),
            "organization_id": listing_uuid(listing.id, "organization"),
            "name": listing.name,
            "description": _description(listing),
            "url": detail_url(listing, _external=True),
            "email": listing.email,
            "status": STATUS[listing.status],
            "fees_description": listing.price_notes,
            "assured_date": listing.verified_on.isoformat() if listing.verified_on else None,
            "alert": SAMPLE_ALERT if listing.is_sample else None,
            "last_modified": _timestamp(listing.updated_at),
        }
    )


def service_area(listing: Listing, role: RegionRole, code: str) -> dict[str, Any]:
    return {
        "id": listing_uuid(listing.id, f"service_area/{role.value}/{code}"),
        "service_id": listing_uuid(listing.id, "service"),
        "name": region_name(code),
        "description": f"{role.label} {region_name(code)} ({code}).",
    }


def service_at_location_fields(listing: Listing) -> dict[str, Any]:
    return {
        "id": listing_uuid(listing.id, "service_at_location"),
        "service_id": listing_uuid(listing.id, "service"),
        "location_id": listing_uuid(listing.id, "location"),
    }


def service(listing: Listing, terms: Mapping[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole service, with everything it links to: /services/{id} and the exports. With
    `terms` (taxonomy_terms() by id, read once for many listings) each attribute carries its
    term, as /services/{id} gives it; the exports list the terms once instead (they were
    two thirds of an exported service)."""
    phones = []
    if listing.phone:
        phones.append(
            {
                "id": listing_uuid(listing.id, "phone"),
                "service_id": listing_uuid(listing.id, "service"),
                "number": listing.phone,
                "type": "voice",
            }
        )
    # Where a pharmacy ships and where a prescriber is licensed.
    areas = [service_area(listing, r, code) for r in RegionRole for code in listing.region_codes(r)]
    at_location = service_at_location_fields(listing) | {"location": location(listing)}
    linked = attributes(listing)
    if terms is not None:
        linked = [a | {"taxonomy_term": terms[a["taxonomy_term_id"]]} for a in linked]
    return _compact(
        service_fields(listing)
        | {
            "phones": phones,
            "service_areas": areas,
            "service_at_locations": [at_location],
            "attributes": linked,
            "organization": organization(listing),
        }
    )


def terms_by_id() -> dict[str, dict[str, Any]]:
    return {term["id"]: term for term in taxonomy_terms()}


# --- reading listings in batches ----------------------------------------------------------------


def _ids_of(items: Iterable[int | Listing]) -> Iterator[int]:
    for item in items:
        yield item if isinstance(item, int) else item.id


def batches(items: Iterable[int | Listing] | None = None) -> Iterator[list[Listing]]:
    """Listings in id order, BATCH at a time: every listing, or those given (ids or objects).

    A session of its own, emptied after each batch, so memory stays flat however many there
    are, and the caller's session (its objects, its transaction) is left alone."""
    with Session(db.engine) as session:
        if items is None:
            last = 0
            while True:
                query = select(Listing).where(Listing.id > last).order_by(Listing.id)
                found = list(session.scalars(query.limit(BATCH)))
                if not found:
                    return
                yield found
                last = found[-1].id
                session.expunge_all()
        else:
            ids = _ids_of(items)
            while chunk := [i for _, i in zip(range(BATCH), ids, strict=False)]:
                query = select(Listing).where(Listing.id.in_(chunk)).order_by(Listing.id)
                yield list(session.scalars(query))
                session.expunge_all()


def services(items: Iterable[int | Listing] | None = None) -> Iterator[dict[str, Any]]:
    for batch in batches(items):
        for listing in batch:
            yield service(listing)


# --- the export files ---------------------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def dataset_header() -> dict[str, Any]:
    return {
        "hsds_version": VERSION,
        "publisher": "LDN Directory",
        "license": LICENCE,
        "license_url": LICENCE_URL,
        "attribution": "LDN Directory contributors",
    }


def chunks(items: Iterable[int | Listing] | None = None) -> Iterator[str]:
    """The dataset as one JSON document, in pieces: the taxonomy, then every service fully
    nested (as /services/{id} gives it), one piece per service."""
    head = dataset_header() | {"taxonomies": [TAXONOMY], "taxonomy_terms": taxonomy_terms()}
    yield _json(head)[:-1] + ',"services":['
    separator = "\n"
    for one in services(items):
        yield separator + _json(one)
        separator = ",\n"
    yield "\n]}\n"


def lines(items: Iterable[int | Listing] | None = None) -> Iterator[str]:
    """JSON lines: one fully nested service a line (HSDA's `format=ndjson`); the taxonomy is
    at /api/hsds/v3/taxonomy_terms and in the JSON document."""
    for one in services(items):
        yield _json(one) + "\n"


def write(listings: Iterable[int | Listing] | None, out: IO[str]) -> int:
    """The HSDS JSON document for these listings (None: every listing) to `out`; returns how
    many services it holds. Listing pages are linked by absolute URL: outside a request, the
    app's test request context gives them (http://localhost/ unless SERVER_NAME is set)."""
    if not has_request_context():
        with current_app.test_request_context():
            return write(listings, out)
    pieces = 0
    for piece in chunks(listings):
        out.write(piece)
        pieces += 1
    return pieces - 2  # the head and the tail hold no service


# --- the HSDS API's pages -----------------------------------------------------------------------

MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 50
MAX_PAGE = 1_000_000
_DIGITS = re.compile(r"[0-9]{1,7}", re.ASCII)


class PagingError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Paging:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Paging:
        """`page` (1 to MAX_PAGE) and `per_page` (1 to MAX_PER_PAGE) from a query string; a
        PagingError names the first that is wrong."""
        bounds = {"page": (MAX_PAGE, cls.page), "per_page": (MAX_PER_PAGE, cls.per_page)}
        values = {}
        for name, (most, default) in bounds.items():
            text = args.get(name, "").strip()
            if not text:
                values[name] = default
                continue
            if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= most:
                raise PagingError(name, f"{name} must be a whole number from 1 to {most:,}.")
            values[name] = int(text)
        return cls(**values)


def _own(hsds_object: dict[str, Any]) -> dict[str, Any]:
    """An object's one-to-one fields, as HSDS list pages give them."""
    return {k: v for k, v in hsds_object.items() if not isinstance(v, list)}


def page_of(paging: Paging, shape: str) -> dict[str, Any]:
    """One page of the HSDS list envelope, in id order. `shape` is "service" (a service's own
    fields and its organization's) or "service_at_location" (with its service and location)."""
    total = db.session.scalar(select(func.count(Listing.id))) or 0
    ids = db.session.scalars(
        select(Listing.id)
        .order_by(Listing.id)
        .offset((paging.page - 1) * paging.per_page)
        .limit(paging.per_page)
    ).all()
    contents = []
    for batch in batches(ids):
        for listing in batch:
            if shape == "service":
                item = service_fields(listing) | {"organization": _own(organization(listing))}
            else:
                item = service_at_location_fields(listing) | {
                    "service": service_fields(listing),
                    "location": _own(location(listing)),
                }
            contents.append(item)
    return envelope(paging, total, contents)


def envelope(paging: Paging, total: int, contents: list[dict[str, Any]]) -> dict[str, Any]:
    """HSDA's list response (the Page of its OpenAPI document) around one page's contents."""
    pages = max(1, math.ceil(total / paging.per_page))
    return {
        "total_items": total,
        "total_pages": pages,
        "page_number": paging.page,
        "size": len(contents),
        "first_page": paging.page == 1,
        "last_page": paging.page >= pages,
        "empty": not contents,
        "contents": contents,
    }


def terms_page(paging: Paging) -> dict[str, Any]:
    terms = taxonomy_terms()
    start = (paging.page - 1) * paging.per_page
    return envelope(paging, len(terms), terms[start : start + paging.per_page])


def taxonomies_page(paging: Paging) -> dict[str, Any]:
    return envelope(paging, 1, [TAXONOMY] if paging.page == 1 else [])


def one_service(text: str) -> dict[str, Any] | None:
    """/services/{id}: the whole service, or None for an id that is no listing's."""
    listing_id = listing_id_of(text, "service")
    listing = db.session.get(Listing, listing_id) if listing_id else None
    return service(listing, terms_by_id()) if listing else None
