"""Keeping published listings true: verification, reliability flags, open or closed, the pin.
Callers look the listing up first (`get_listing`), so these refuse only what a moderator can
fix."""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from .. import geomath
from ..db import writing
from ..extensions import db
from ..listings import apply_data, flag_data
from ..models import (
    FlagType,
    Listing,
    ReliabilityFlag,
    Status,
    Submission,
    User,
    Verification,
    VerifyMethod,
)
from ..vocabulary import Precision, Term
from .audit import record
from .errors import AlreadyHandled, ModerationError, NotFound

T = TypeVar("T", bound=Term)


def known(term: type[T], value: str) -> T:
    """The member of `term` for a value, or a ModerationError naming what was refused."""
    member = term.parse(value)
    if member is None:
        raise ModerationError(f"{value!r} is not one of: {', '.join(term.values())}.")
    return member


def get_listing(listing_id: int) -> Listing:
    listing = db.session.get(Listing, listing_id)
    if listing is None:
        raise NotFound(f"There is no listing number {listing_id}.")
    return listing


def get_submission(submission_id: int) -> Submission:
    sub = db.session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(f"There is no submission number {submission_id}.")
    return sub


def _listing(listing_id: int) -> Listing:
    # Inside a decision a missing listing is a refusal the moderator reads, not a 404.
    try:
        return get_listing(listing_id)
    except NotFound:
        raise ModerationError("There is no listing with that number.") from None


def add_verification(
    listing: Listing,
    verified_on: date,
    method: VerifyMethod | str,
    moderator: User | None = None,
    note: str | None = None,
) -> Verification:
    v = Verification(
        verified_on=verified_on, method=known(VerifyMethod, method), moderator=moderator, note=note
    )
    # The listing's verified_on follows its newest verification by a database trigger
    # (directory/derived.py); appending expires the stale copy so the next read sees it.
    listing.verifications.append(v)
    return v


def mark_verified(
    listing_id: int, moderator: User, method: str, on: date, note: str | None = None
) -> Listing:
    if on > date.today():
        raise ModerationError("The date can't be in the future.")
    with writing():
        listing = _listing(listing_id)
        before = {"verified_on": listing.verified_on.isoformat() if listing.verified_on else None}
        add_verification(listing, on, method, moderator, note)
        record(
            "verify",
            actor=moderator,
            listing=listing,
            before=before,
            after={
                "verified_on": listing.verified_on.isoformat() if listing.verified_on else None,
                "method": method,
                "date": on.isoformat(),
            },
            reason=note,
        )
        return listing


def add_flag(
    listing_id: int,
    moderator: User,
    *,
    type: str,
    label: str,
    source: str,
    as_of: date,
    url: str | None = None,
) -> ReliabilityFlag:
    with writing():
        listing = _listing(listing_id)
        flag = ReliabilityFlag(
            type=known(FlagType, type),
            label=label,
            source=source,
            as_of=as_of,
            url=url,
            created_by_id=moderator.id,
        )
        listing.flags.append(flag)
        db.session.flush()
        record("flag_add", actor=moderator, listing=listing, after=flag_data(flag))
        return flag


def remove_flag(listing_id: int, flag_id: int, moderator: User, reason: str) -> None:
    if not (reason or "").strip():
        raise ModerationError("A reason is required to remove a flag.")
    with writing():
        listing = _listing(listing_id)
        flag = next((f for f in listing.flags if f.id == flag_id), None)
        if flag is None:
            raise AlreadyHandled("That flag is no longer on this listing. Nothing was changed.")
        before = flag_data(flag)
        listing.flags.remove(flag)
        record("flag_remove", actor=moderator, listing=listing, before=before, reason=reason)


def set_status(listing_id: int, moderator: User, status: str, reason: str) -> Listing:
    if not (reason or "").strip():
        raise ModerationError("A reason is required to change the status.")
    new = known(Status, status)
    with writing():
        listing = _listing(listing_id)
        before = {"status": listing.status.value}
        if listing.status == new:
            raise ModerationError("The listing already has that status.")
        apply_data(listing, {"status": new.value})
        record(
            "status",
            actor=moderator,
            listing=listing,
            before=before,
            after={"status": new.value},
            reason=reason,
        )
        return listing


def check_pin(lat: float, lon: float) -> None:
    if not geomath.valid_lat_lon(lat, lon):
        raise ModerationError(geomath.COORDINATES_MESSAGE)


def set_pin(listing_id: int, moderator: User, lat: float, lon: float) -> Listing:
    check_pin(lat, lon)
    after = {"lat": lat, "lon": lon, "geo_precision": Precision.COORDINATES.value}
    with writing():
        listing = _listing(listing_id)
        before = {
            "lat": listing.lat,
            "lon": listing.lon,
            "geo_precision": listing.geo_precision.value if listing.geo_precision else None,
        }
        apply_data(listing, after)
        record("pin", actor=moderator, listing=listing, before=before, after=after)
        return listing
