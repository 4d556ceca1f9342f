"""A listing as plain data: the one definition of its public fields.

Seeds, submissions, moderation (diffs and the audit trail) and the API all speak this dict
shape, so a field is added in one place. Lists of codes are sorted; `fillers` is None when the
fillers are unknown, which is not the same as an empty list.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol, TypeVar

from flask import has_request_context, request, url_for
from sqlalchemy import select

from . import validation
from .extensions import db
from .models import (
    Condition,
    DosageForm,
    Filler,
    FlagType,
    Kind,
    Listing,
    ListingFacts,
    Precision,
    RegionRole,
    SRPolicy,
    Status,
)
from .vocabulary import Term

COMMON_FIELDS = (
    "name",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "lat",
    "lon",
    "geo_precision",
    "phone",
    "website",
    "email",
    "status",
)
PHARMACY_FIELDS = (
    "makes_ldn",
    "dosage_forms",
    "sr_policy",
    "fillers",
    "price_notes",
    "mail_order",
    "ships_to",
)
PRESCRIBER_FIELDS = (
    "credentials",
    "specialty",
    "practice",
    "telehealth",
    "telehealth_only",
    "licensed_in",
    "npi",
    "accepting_new_patients",
    "conditions",
    "dosing_notes",
)

FIELD_LABELS = {
    "name": "Name",
    "street": "Street address",
    "city": "City or town",
    "region": "State or region",
    "postal_code": "ZIP or postal code",
    "country": "Country",
    "lat": "Latitude",
    "lon": "Longitude",
    "geo_precision": "Map pin accuracy",
    "phone": "Phone",
    "website": "Website",
    "email": "Email",
    "status": "Open or closed",
    "makes_ldn": "Makes LDN",
    "dosage_forms": "Forms of LDN",
    "sr_policy": "Slow-release policy",
    "fillers": "Fillers",
    "price_notes": "Price notes",
    "mail_order": "Mails prescriptions",
    "ships_to": "Ships to",
    "credentials": "Credentials",
    "specialty": "Specialty",
    "practice": "Practice",
    "telehealth": "Offers telehealth",
    "telehealth_only": "Telehealth only (no office visits)",
    "licensed_in": "Licensed in",
    "npi": "NPI number",
    "accepting_new_patients": "Accepting new patients",
    "conditions": "Conditions treated with LDN",
    "dosing_notes": "Dosing approach",
}


def fields_for(kind: Kind | str) -> tuple[str, ...]:
    extra = PHARMACY_FIELDS if Kind(kind) == Kind.PHARMACY else PRESCRIBER_FIELDS
    return COMMON_FIELDS + extra


def _plain(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def to_data(listing: Listing) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in fields_for(listing.kind):
        if field == "dosage_forms":
            data[field] = [d.code for d in listing.dosage_forms]
        elif field == "conditions":
            data[field] = [c.code for c in listing.conditions]
        elif field == "fillers":
            data[field] = [f.code for f in listing.fillers] if listing.fillers_known else None
        elif field == "ships_to":
            data[field] = listing.ships_to
        elif field == "licensed_in":
            data[field] = listing.licensed_in
        else:
            data[field] = _plain(getattr(listing, field))
    return data


VocabularyItem = TypeVar("VocabularyItem", DosageForm, Condition, Filler)


def _lookup(model: type[VocabularyItem], codes: list[str]) -> list[VocabularyItem]:
    if not codes:
        return []
    found = {
        row.code: row for row in db.session.scalars(select(model).where(model.code.in_(codes)))
    }
    missing = sorted(set(codes) - set(found))
    if missing:
        raise ValueError(f"Unknown {model.__tablename__} code(s): {', '.join(missing)}")
    return [found[c] for c in sorted(set(codes))]


def apply_data(listing: Listing, data: dict[str, Any]) -> None:
    """Set the given fields on a listing; keys not in `data` are left alone."""
    enums: dict[str, type[Term]] = {
        "geo_precision": Precision,
        "status": Status,
        "sr_policy": SRPolicy,
    }
    for field in fields_for(listing.kind):
        if field not in data:
            continue
        value = data[field]
        if field == "dosage_forms":
            listing.dosage_forms = _lookup(DosageForm, value or [])
        elif field == "conditions":
            listing.conditions = _lookup(Condition, value or [])
        elif field == "fillers":
            listing.fillers_known = value is not None
            listing.fillers = _lookup(Filler, value or [])
        elif field == "ships_to":
            listing.set_regions(RegionRole.SHIPS_TO, value or [])
        elif field == "licensed_in":
            listing.set_regions(RegionRole.LICENSED_IN, value or [])
        elif field in enums:
            setattr(listing, field, enums[field](value) if value is not None else None)
        elif field == "phone":
            # One stored form (E.164) whichever way in: forms, seeds, imports, decisions.
            country = data.get("country") or listing.country or "US"
            listing.phone = validation.stored_phone(value, country)
        else:
            setattr(listing, field, value)


def phone_digits(phone: str | None) -> str | None:
    """A submitted phone's digits, to compare with listings.phone_digits (which the database
    works out by the same rule, derived.phone_digits_sql: a test holds the two together)."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch in "0123456789")
    # "+1 206 555 0100" and "(206) 555-0100" are the same US number.
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits or None


SECTIONS = {Kind.PHARMACY: "pharmacies", Kind.PRESCRIBER: "prescribers"}


def detail_url(listing: ListingFacts, *, _external: bool = False) -> str:
    """The listing's canonical page, /pharmacies/12-slug or /prescribers/12-slug.

    Built on the site root that url_for gives once per request, not by url_for per listing: a
    results page links 40 listings twice, and 80 url_for calls cost more than the search. A
    test holds this to the public.pharmacy and public.prescriber routes."""
    root: str | None
    if not has_request_context():
        root = url_for("public.home", _external=_external)
    else:
        # Kept on the request, not on `g`: an app context can outlive one request in tests.
        key = "_site_root_external" if _external else "_site_root"
        root = getattr(request, key, None)
        if root is None:
            root = url_for("public.home", _external=_external)
            setattr(request, key, root)
    return f"{root}{SECTIONS[listing.kind]}/{listing.id}-{listing.slug}"


def public_dict(listing: Listing, *, external: bool = False) -> dict[str, Any]:
    """Every public field, for the API and exports. Never includes anything a submitter sent
    privately (that lives on Submission, not here)."""
    data = to_data(listing)
    data.update(
        id=listing.id,
        kind=listing.kind.value,
        url=detail_url(listing, _external=external),
        address=listing.address_line,
        verified_on=listing.verified_on.isoformat() if listing.verified_on else None,
        needs_reconfirming=listing.is_stale,
        is_sample=listing.is_sample,
        flags=[flag_data(f) for f in listing.flags],
    )
    if not listing.has_public_pin:  # where a telehealth-only prescriber is based stays private
        data["lat"] = data["lon"] = None
    return data


class FlagFields(Protocol):
    """A reliability flag as the ORM (ReliabilityFlag) or a search card (cards.Flag) holds it."""

    @property
    def type(self) -> FlagType: ...
    @property
    def label(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def as_of(self) -> date: ...
    @property
    def url(self) -> str | None: ...


def flag_data(flag: FlagFields) -> dict[str, Any]:
    """A flag as plain data: the API, exports and the audit trail all use this shape."""
    return {
        "type": flag.type.value,
        "label": flag.label,
        "source": flag.source,
        "as_of": flag.as_of.isoformat(),
        "url": flag.url,
    }


def parse_date(value: str | date | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    text = value.strip()
    if len(text) == 7:  # "2026-05": a month, as curated lists publish them
        text += "-01"
    return date.fromisoformat(text)


def json_ld(listing: Listing) -> dict[str, Any]:
    """schema.org Pharmacy / Physician for search engines."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Pharmacy" if listing.kind == Kind.PHARMACY else "Physician",
        "name": listing.name,
        "url": detail_url(listing, _external=True),
    }
    if listing.phone:
        data["telephone"] = listing.phone
    if listing.email:
        data["email"] = listing.email
    if listing.street or listing.city:
        data["address"] = {
            "@type": "PostalAddress",
            "streetAddress": listing.street,
            "addressLocality": listing.city,
            "addressRegion": (listing.region or "").removeprefix("US-") or None,
            "postalCode": listing.postal_code,
            "addressCountry": listing.country,
        }
    if listing.has_public_pin:
        data["geo"] = {"@type": "GeoCoordinates", "latitude": listing.lat, "longitude": listing.lon}
    if listing.kind == Kind.PRESCRIBER and listing.specialty:
        data["medicalSpecialty"] = listing.specialty
    return data
