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

from sqlalchemy import func, or_, select, update

from . import duplicates
from .db import writing
from .extensions import db
from .facts import fresh_since
from .geocoding import Geocoding
from .listings import apply_data, parse_date, to_data
from .models import (
    AuditEntry,
    FlagType,
    Kind,
    Listing,
    ReliabilityFlag,
    Role,
    Status,
    Submission,
    SubmissionStatus,
    SubmissionType,
    User,
    Verification,
    VerifyMethod,
    utcnow,
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


# --- moderation decisions ---------------------------------------------------------------------


class ModerationError(Exception):
    """A decision that can't be carried out; the message is shown to the moderator."""


class AlreadyHandled(ModerationError):
    pass


def _claim(
    submission_id: int, status: SubmissionStatus, moderator: User, reason: str | None
) -> Submission:
    """Mark a pending submission handled, atomically. Of two moderators acting at once exactly
    one gets here; the other gets AlreadyHandled and nothing of theirs is applied."""
    result = db.session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.status == SubmissionStatus.PENDING)
        .values(status=status, handled_at=utcnow(), handled_by_id=moderator.id, reason=reason)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        existing = db.session.get(Submission, submission_id)
        if existing is None:
            raise ModerationError("That submission does not exist.")
        who = f" by {existing.handled_by.username}" if existing.handled_by else ""
        raise AlreadyHandled(
            f"This submission was already {existing.status.value}{who}. Nothing was changed."
        )
    sub = db.session.get(Submission, submission_id)
    assert sub is not None
    db.session.refresh(sub)
    return sub


def _pin(place: dict[str, Any] | None) -> dict[str, Any]:
    if not place or place.get("lat") is None:
        return {}
    return {
        "lat": float(place["lat"]),
        "lon": float(place["lon"]),
        "geo_precision": place.get("precision") or "city",
    }


def diff(listing: Listing, data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, published value, proposed value) for each field the proposal changes."""
    current = to_data(listing)
    return [
        (field, current.get(field), value)
        for field, value in data.items()
        if field in current and current.get(field) != value
    ]


def approve(
    submission_id: int,
    moderator: User,
    *,
    data: dict[str, Any] | None = None,
    fields: list[str] | None = None,
    pin: tuple[float, float] | None = None,
    verify_method: str | None = None,
) -> Listing:
    """Publish a new listing, or apply a correction's chosen `fields` to its listing.

    `data` replaces the submitted values (edit then approve); `pin` sets coordinates by hand.
    """
    with writing():
        sub = _claim(submission_id, SubmissionStatus.APPROVED, moderator, None)
        values = dict(data if data is not None else sub.data)
        if sub.type == SubmissionType.NEW:
            listing = Listing(kind=sub.listing_kind)
            values.setdefault("status", "open")
            values.update(_pin(sub.place))
            before = None
        else:
            listing = sub.listing
            if listing is None:
                raise ModerationError("The listing this correction is about no longer exists.")
            before = to_data(listing)
            chosen = set(fields if fields is not None else [f for f, _, _ in diff(listing, values)])
            values = {k: v for k, v in values.items() if k in chosen}
            if chosen & set(ADDRESS_FIELDS):
                values.update(_pin(sub.place))
        if pin is not None:
            values.update(lat=pin[0], lon=pin[1], geo_precision="coordinates")
        apply_data(listing, values)
        db.session.add(listing)
        db.session.flush()
        if verify_method:
            add_verification(
                listing,
                date.today(),
                verify_method,
                moderator,
                note=f"On approving {sub.reference}",
            )
        action = "approve_new" if sub.type == SubmissionType.NEW else "approve_correction"
        record(
            action,
            actor=moderator,
            listing=listing,
            submission_id=sub.id,
            before=before,
            after=to_data(listing),
        )
        return listing


def reject(submission_id: int, moderator: User, reason: str) -> Submission:
    reason = (reason or "").strip()
    if not reason:
        raise ModerationError("A reason is required to reject.")
    with writing():
        sub = _claim(submission_id, SubmissionStatus.REJECTED, moderator, reason)
        record(
            "reject",
            actor=moderator,
            listing=sub.listing,
            submission_id=sub.id,
            before={"submitted": sub.data},
            reason=reason,
        )
        return sub


def merge(submission_id: int, listing_id: int, moderator: User) -> Listing:
    """A new-listing submission turns out to be an existing listing: fill in only what the
    listing is missing, never overwrite published values."""
    with writing():
        target = db.session.get(Listing, listing_id)
        if target is None:
            raise ModerationError("There is no listing with that number.")
        sub = _claim(
            submission_id, SubmissionStatus.MERGED, moderator, f"Merged into listing {listing_id}"
        )
        if sub.listing_kind != target.kind:
            raise ModerationError(
                "A pharmacy can only be merged into a pharmacy, and a prescriber into a prescriber."
            )
        before = to_data(target)
        missing = {
            k: v
            for k, v in sub.data.items()
            if k in before and before[k] in (None, "", []) and v not in (None, "", [])
        }
        apply_data(target, missing)
        record(
            "merge",
            actor=moderator,
            listing=target,
            submission_id=sub.id,
            before=before,
            after=to_data(target),
            reason=f"Filled in: {', '.join(sorted(missing)) or 'nothing'}",
        )
        return target


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
            type=FlagType(type),
            label=label,
            source=source,
            as_of=as_of,
            url=url,
            created_by_id=moderator.id,
        )
        listing.flags.append(flag)
        db.session.flush()
        record(
            "flag_add",
            actor=moderator,
            listing=listing,
            after={
                "type": type,
                "label": label,
                "source": source,
                "as_of": as_of.isoformat(),
                "url": url,
            },
        )
        return flag


def remove_flag(listing_id: int, flag_id: int, moderator: User, reason: str) -> None:
    if not (reason or "").strip():
        raise ModerationError("A reason is required to remove a flag.")
    with writing():
        listing = _listing(listing_id)
        flag = next((f for f in listing.flags if f.id == flag_id), None)
        if flag is None:
            raise AlreadyHandled("That flag is no longer on this listing. Nothing was changed.")
        before = {
            "type": flag.type.value,
            "label": flag.label,
            "source": flag.source,
            "as_of": flag.as_of.isoformat(),
        }
        listing.flags.remove(flag)
        record("flag_remove", actor=moderator, listing=listing, before=before, reason=reason)


def set_status(listing_id: int, moderator: User, status: str, reason: str) -> Listing:
    if not (reason or "").strip():
        raise ModerationError("A reason is required to change the status.")
    with writing():
        listing = _listing(listing_id)
        before = {"status": listing.status.value}
        if before["status"] == status:
            raise ModerationError("The listing already has that status.")
        apply_data(listing, {"status": status})
        record(
            "status",
            actor=moderator,
            listing=listing,
            before=before,
            after={"status": status},
            reason=reason,
        )
        return listing


def set_pin(listing_id: int, moderator: User, lat: float, lon: float) -> Listing:
    with writing():
        listing = _listing(listing_id)
        before = {
            "lat": listing.lat,
            "lon": listing.lon,
            "geo_precision": listing.geo_precision.value if listing.geo_precision else None,
        }
        apply_data(listing, {"lat": lat, "lon": lon, "geo_precision": "coordinates"})
        record(
            "pin",
            actor=moderator,
            listing=listing,
            before=before,
            after={"lat": lat, "lon": lon, "geo_precision": "coordinates"},
        )
        return listing


def _listing(listing_id: int) -> Listing:
    listing = db.session.get(Listing, listing_id)
    if listing is None:
        raise ModerationError("There is no listing with that number.")
    return listing


# --- the queue --------------------------------------------------------------------------------


def pending(limit: int = 200) -> list[Submission]:
    return list(
        db.session.scalars(
            select(Submission)
            .where(Submission.status == SubmissionStatus.PENDING)
            .order_by(Submission.created_at, Submission.id)
            .limit(limit)
        )
    )


def due_for_reverification(limit: int = 50) -> list[Listing]:
    cutoff = fresh_since()
    return list(
        db.session.scalars(
            select(Listing)
            .where(
                Listing.status != Status.CLOSED,
                or_(Listing.verified_on.is_(None), Listing.verified_on < cutoff),
            )
            .order_by(Listing.verified_on.asc().nulls_first(), Listing.id)
            .limit(limit)
        )
    )


def queue_counts() -> dict[str, int]:
    subs = pending(limit=10_000)
    cutoff = fresh_since()
    due = db.session.scalar(
        select(func.count())
        .select_from(Listing)
        .where(
            Listing.status != Status.CLOSED,
            or_(Listing.verified_on.is_(None), Listing.verified_on < cutoff),
        )
    )
    return {
        "new": sum(1 for s in subs if s.type == SubmissionType.NEW),
        "corrections": sum(1 for s in subs if s.type == SubmissionType.CORRECTION),
        "duplicates": sum(1 for s in subs if s.duplicates),
        "reverify": due or 0,
    }


def history(listing_id: int) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.listing_id == listing_id)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        )
    )


# --- accounts ---------------------------------------------------------------------------------


def save_account(
    username: str,
    password: str,
    role: Role | None,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    create_only: bool = False,
) -> tuple[User, bool]:
    """Create an account, or (unless create_only) reset an existing one's password and role.
    Returns (user, created)."""
    username = username.strip()
    if not 1 <= len(username) <= 60:
        raise ModerationError("The name must be 1 to 60 characters.")
    if len(password) < User.MIN_PASSWORD_LENGTH:
        raise ModerationError(f"Passwords need at least {User.MIN_PASSWORD_LENGTH} characters.")
    with writing():
        user = db.session.scalar(select(User).where(User.username == username))
        created = user is None
        if user is None:
            user = User(username=username, password_hash="", session_version=0)
            db.session.add(user)
        elif create_only:
            raise ModerationError("That name is taken.")
        if role is not None or created:
            user.role = role or Role.MODERATOR
        user.set_password(password)  # also ends the account's existing sessions
        db.session.flush()
        record(
            "account_created" if created else "password_reset",
            actor=actor,
            actor_label=actor_label,
            after={"username": username, "role": user.role.value},
        )
    return user, created


def set_account_active(user_id: int, active: bool, *, actor: User) -> None:
    with writing():
        user = db.session.get(User, user_id)
        if user is None:
            raise ModerationError("There is no such account.")
        user.active = active
        user.session_version += 1  # ends the account's sessions
        record(
            "account_activated" if active else "account_deactivated",
            actor=actor,
            after={"username": user.username},
        )
