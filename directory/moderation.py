"""The listing lifecycle: the only code that creates or changes published listings.

Every function here writes an audit entry in the same transaction as the change it records,
so the history can never disagree with the data. Callers wrap calls in `db.writing()`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import date
from typing import Any

from sqlalchemy import select

from . import duplicates
from .db import writing
from .extensions import db
from .geocoding import Geocoding
from .listings import apply_data, parse_date, to_data
from .models import (
    AuditEntry,
    FlagType,
    Kind,
    Listing,
    ReliabilityFlag,
    Submission,
    SubmissionStatus,
    SubmissionType,
    User,
    Verification,
    VerifyMethod,
)

log = logging.getLogger(__name__)

ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread over the phone


def record(
    action: str,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    listing: Listing | None = None,
    submission_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor_id=actor.id if actor else None,
        actor_label=actor.username if actor else (actor_label or "system"),
        action=action,
        listing_id=listing.id if listing else None,
        submission_id=submission_id,
        before=before,
        after=after,
        reason=reason,
    )
    db.session.add(entry)
    return entry


def add_verification(
    listing: Listing,
    verified_on: date,
    method: VerifyMethod | str,
    moderator: User | None = None,
    note: str | None = None,
) -> Verification:
    v = Verification(
        verified_on=verified_on, method=VerifyMethod(method), moderator=moderator, note=note
    )
    listing.verifications.append(v)
    # The listing's date follows its newest verification; back-dated entries don't regress it.
    if listing.verified_on is None or verified_on > listing.verified_on:
        listing.verified_on = verified_on
    return v


def create_seed_listing(kind: Kind, row: dict[str, Any]) -> Listing:
    listing = Listing(kind=kind, seed_key=row["key"], is_sample=bool(row.get("sample")))
    apply_data(listing, {k: row[k] for k in row if k not in {"key", "sample", "flags"}})
    flags = list(row["flags"])
    for body in row.get("accreditation") or []:
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
                type=FlagType(flag["type"]),
                label=flag["label"],
                source=flag["source"],
                as_of=parse_date(flag["as_of"]),
                url=flag.get("url"),
            )
        )
    db.session.add(listing)
    if row.get("verified_on"):
        add_verification(
            listing,
            parse_date(row["verified_on"]),  # type: ignore[arg-type]
            row["verified_method"],
            note="From the seed data",
        )
    db.session.flush()
    record("seed", actor_label="seed", listing=listing, after=to_data(listing))
    return listing


# --- submissions from the public --------------------------------------------------------------


def _reference() -> str:
    return "LDN-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))


def _content_hash(payload: dict[str, Any]) -> str:
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
    content_hash = _content_hash(
        {
            "kind": listing_kind.value,
            "type": sub_type.value,
            "listing": listing.id if listing else None,
            "data": data,
            "problem": problem,
            "note": note,
        }
    )
    if listing is not None and all(
        data.get(k) == v for k, v in to_data(listing).items() if k in ADDRESS_FIELDS
    ):
        place = (
            {
                "lat": listing.lat,
                "lon": listing.lon,
                "precision": listing.geo_precision.value if listing.geo_precision else None,
                "label": listing.address_line,
            }
            if listing.lat is not None
            else None
        )
        error = None
    else:
        # Outside the write transaction: an online geocoder may take seconds.
        place, error = geocode_submission(data, geocoding)
    with writing():
        existing = db.session.scalar(
            select(Submission).where(
                Submission.content_hash == content_hash,
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
            content_hash=content_hash,
        )
        db.session.add(sub)
        db.session.flush()
        record("submitted", actor_label="public", listing=listing, submission_id=sub.id)
    return sub, True
