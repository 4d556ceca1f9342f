"""How listings come in: what the public submits (kept pending until a moderator decides) and
the seed data (published directly, with its history entry)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import func, literal, select

from .. import duplicates
from ..db import writing
from ..extensions import db
from ..geocoding import Geocoding
from ..i18n import N_
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
from .errors import ModerationError
from .upkeep import add_verification

log = logging.getLogger(__name__)

ADDRESS_FIELDS = ("street", "city", "region", "postal_code", "country")
REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread over the phone


class SubmissionsPaused(ModerationError):
    """Too many submissions wait for a moderator, from this sender or from everyone: a flood
    from many addresses must not bury the queue. The message is for the person sending."""


# English here (it is compared and logged); the form translates it when it shows it.
PAUSED_FOR_SENDER = N_(
    "You have sent many suggestions that are still waiting for a moderator, so we can't take "
    "more from you just now. Please try again in a few days, once they have been looked at. "
    "What you typed is still in the form below."
)
PAUSED_FOR_EVERYONE = N_(
    "So many suggestions are waiting for a moderator that new ones are paused for now. "
    "Please try again in a few days. What you typed is still in the form below."
)


def client_hash(address: str | None) -> str | None:
    """HMAC-SHA256 of the sender's address, keyed with SECRET_KEY. An IPv6 address counts as
    its /64 network, which one household or server usually holds whole."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
        text = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
    except ValueError:
        text = address
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _check_pending_cap(sender: str | None) -> None:
    """Raise SubmissionsPaused at PENDING_SUBMISSIONS_PER_ADDRESS for this sender or
    PENDING_SUBMISSIONS_MAX in all; both counted in SQL on indexes, in one statement (one
    round trip: each count a subquery on its own index)."""
    pending = Submission.status == SubmissionStatus.PENDING
    total = select(func.count()).select_from(Submission).where(pending).scalar_subquery()
    mine = (
        select(func.count())
        .select_from(Submission)
        .where(pending, Submission.client_hash == sender)
        .scalar_subquery()
        if sender is not None
        else literal(0)
    )
    row = db.session.execute(select(mine, total)).one()
    per_sender = int(current_app.config.get("PENDING_SUBMISSIONS_PER_ADDRESS", 20))
    if sender is not None and (row[0] or 0) >= per_sender:
        raise SubmissionsPaused(PAUSED_FOR_SENDER)
    if (row[1] or 0) >= int(current_app.config.get("PENDING_SUBMISSIONS_MAX", 20000)):
        raise SubmissionsPaused(PAUSED_FOR_EVERYONE)


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
    client_address: str | None = None,
) -> tuple[Submission, bool]:
    """Store what a member of the public sent, as pending. Returns (submission, created):
    an identical pending one (a double click, a resent form) is returned, not stored again.
    Raises SubmissionsPaused when too many wait already (see _check_pending_cap)."""
    sender = client_hash(client_address)
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
        _check_pending_cap(sender)
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
            client_hash=sender,
        )
        db.session.add(sub)
        db.session.flush()
        # Pending, so nothing public changed: the data version (and every ETag) stays.
        record(
            "submitted", actor_label="public", listing=listing, submission_id=sub.id, public=False
        )
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
