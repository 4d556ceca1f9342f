"""How listings come in: what the public submits (kept pending until a moderator decides) and
the seed data (published directly, with its history entry)."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import date
from typing import Any

from sqlalchemy import select

from .. import duplicates
from ..db import writing
from ..extensions import db
from ..geocoding import Geocoding
from ..listings import apply_data, parse_date, to_data
from ..models import (
    FlagType,
    Kind,
    Listing,
    ReliabilityFlag,
    Submission,
    SubmissionStatus,
    SubmissionType,
)
from .audit import record
from .upkeep import add_verification

log = logging.getLogger(__name__)

ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread over the phone


def _reference() -> str:
    return "LDN-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def content_hash(payload: dict[str, Any]) -> str:
    """The same submission sent twice (a double click, a resent form) hashes the same."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def geocode_submission(
    data: dict[str, Any], geocoding: Geocoding
) -> tuple[dict[str, Any] | None, str | None]:
    """(place, error). Never raises: a failed geocode is shown to the moderator, and the
    submission is kept regardless."""
    if data.get("telehealth_only") and not (data.get("city") or data.get("postal_code")):
        return None, "Telehealth only: no address to place on the map."
    try:
        place = geocoding.address(
            data.get("street"),
            data.get("city"),
            data.get("region"),
            data.get("postal_code"),
            data.get("country") or "US",
        )
    except Exception as exc:  # noqa: BLE001 - any geocoder failure must not lose the submission
        log.warning("Geocoding a submission failed: %s", exc)
        return None, "The address could not be looked up; set the pin by hand."
    if place is None:
        return None, "We couldn't find this address; set the pin by hand."
    return place.to_dict(), None


def _published_place(listing: Listing) -> dict[str, Any] | None:
    if listing.lat is None:
        return None
    return {
        "lat": listing.lat,
        "lon": listing.lon,
        "precision": listing.geo_precision.value if listing.geo_precision else None,
        "label": listing.address_line,
    }


def submit(
    *,
    listing_kind: Kind,
    data: dict[str, Any],
    geocoding: Geocoding,
    listing: Listing | None = None,
    problem: str | None = None,
    note: str | None = None,
    relation: str | None = None,
    email: str | None = None,
) -> tuple[Submission, bool]:
    """Store what a member of the public sent, as pending. Returns (submission, created):
    an identical pending one (a double click, a resent form) is returned, not stored again."""
    sub_type = SubmissionType.CORRECTION if listing else SubmissionType.NEW
    digest = content_hash(
        {
            "kind": listing_kind.value,
            "type": sub_type.value,
            "listing": listing.id if listing else None,
            "data": data,
            "problem": problem,
            "note": note,
        }
    )
    place: dict[str, Any] | None
    if listing is not None and all(
        data.get(k) == v for k, v in to_data(listing).items() if k in ADDRESS_FIELDS
    ):
        place, error = _published_place(listing), None
    else:
        # Outside the write transaction: an online geocoder may take seconds.
        place, error = geocode_submission(data, geocoding)
    with writing():
        existing = db.session.scalar(
            select(Submission).where(
                Submission.content_hash == digest,
                Submission.status == SubmissionStatus.PENDING,
            )
        )
        if existing is not None:
            return existing, False
        sub = Submission(
            reference=_reference(),
            type=sub_type,
            listing_kind=listing_kind,
            listing_id=listing.id if listing else None,
            problem=problem,
            data=data,
            note=note,
            submitter_relation=relation,
            submitter_email=email,
            place=place,
            geocode_error=error,
            duplicates=duplicates.find(data, place, exclude_listing=listing.id if listing else None)
            if sub_type == SubmissionType.NEW
            else [],
            content_hash=digest,
        )
        db.session.add(sub)
        db.session.flush()
        record("submitted", actor_label="public", listing=listing, submission_id=sub.id)
    return sub, True


def create_seed_listing(kind: Kind, row: dict[str, Any]) -> Listing:
    listing = Listing(kind=kind, seed_key=row["key"], is_sample=bool(row.get("sample")))
    apply_data(listing, {k: row[k] for k in row if k not in {"key", "sample", "flags"}})
    flags = list(row["flags"])
    for body in row.get("accreditation") or []:
        if any(f["type"] == FlagType.ACCREDITATION.value and body in f["label"] for f in flags):
            continue  # the seed row already carries this accreditation as a flag
        flags.append(
            {
                "type": FlagType.ACCREDITATION.value,
                "label": f"{body} accredited",
                "source": body + (" (sample)" if row.get("sample") else ""),
                "as_of": row.get("verified_on") or date.today().isoformat(),
                "url": None,
            }
        )
    for flag in flags:
        listing.flags.append(
            ReliabilityFlag(
                type=FlagType.parse(flag["type"]),
                label=flag["label"],
                source=flag["source"],
                as_of=parse_date(flag["as_of"]),
                url=flag.get("url"),
            )
        )
    db.session.add(listing)
    verified_on = parse_date(row.get("verified_on"))
    if verified_on is not None:
        add_verification(listing, verified_on, row["verified_method"], note="From the seed data")
    db.session.flush()
    record("seed", actor_label="seed", listing=listing, after=to_data(listing))
    return listing
