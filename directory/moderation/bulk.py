"""Listings written from a file (`flask --app wsgi import`): an import is a moderation action,
run by a named moderator, and every change it makes is in the audit trail with the file's
name. The caller (directory/imports.py) reads and checks the rows and holds the transaction;
these functions make each change and its audit entry together."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from ..extensions import db
from ..listings import apply_data, flag_data, to_data
from ..models import (
    FlagType,
    Kind,
    Listing,
    ListingSource,
    ReliabilityFlag,
    User,
    utcnow,
)
from .audit import record
from .errors import ModerationError

Key = tuple[str, str]  # (source, source_id)


def operator(username: str) -> User:
    """The active moderator account an import runs as (`--as NAME`)."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        raise ModerationError(f"There is no active moderator account {username!r} (--as).")
    return user


def import_reason(file: str) -> str:
    return f"Imported from {file}"


def create_listing(
    kind: Kind,
    data: dict[str, Any],
    *,
    is_sample: bool,
    actor: User,
    file: str,
) -> Listing:
    listing = Listing(kind=kind, is_sample=is_sample)
    apply_data(listing, data)
    db.session.add(listing)
    db.session.flush()
    record(
        "import_new",
        actor=actor,
        listing=listing,
        after=to_data(listing),
        reason=import_reason(file),
    )
    return listing


def update_listing(
    listing: Listing,
    changes: dict[str, Any],
    *,
    actor: User | str,
    reason: str,
    action: str = "import_update",
) -> None:
    """Set the changed fields (only those) and record what they were. `actor` is a moderator,
    or the label of an unattended import (the NPI registry's); `action` names the change in
    the audit trail (a volunteer's call writes "call_answers")."""
    current = to_data(listing)
    before = {k: current[k] for k in changes}
    apply_data(listing, changes)
    after = {k: v for k, v in to_data(listing).items() if k in changes}
    who: dict[str, Any] = {"actor": actor} if isinstance(actor, User) else {"actor_label": actor}
    record(action, **who, listing=listing, before=before, after=after, reason=reason)


def _same(flag: ReliabilityFlag, data: dict[str, Any]) -> bool:
    return flag_data(flag) == data


def add_flags(
    listing: Listing,
    flags: list[dict[str, Any]],
    *,
    actor: User,
    file: str,
    supersede: bool = False,
) -> int:
    """Add each flag (flag_data's shape) the listing does not carry yet; returns how many were
    added. With `supersede` (a curated list's newer edition), the same source's older flags of
    the same type are taken off first: the list of May 2026 replaces the list of 2025."""
    added = 0
    for data in flags:
        if any(_same(f, data) for f in listing.flags):
            continue
        flag_type = FlagType(data["type"])
        as_of = date.fromisoformat(data["as_of"])  # imports.py wrote it as YYYY-MM-DD
        if supersede:
            for old in [
                f
                for f in listing.flags
                if f.type == flag_type and f.source == data["source"] and f.as_of < as_of
            ]:
                remove_flag(old, actor=actor, reason=f"Superseded by {file}")
        flag = ReliabilityFlag(
            type=flag_type,
            label=data["label"],
            source=data["source"],
            as_of=as_of,
            url=data.get("url"),
            created_by_id=actor.id,
        )
        listing.flags.append(flag)
        db.session.flush()
        record(
            "flag_add",
            actor=actor,
            listing=listing,
            after=flag_data(flag),
            reason=import_reason(file),
        )
        added += 1
    return added


def remove_flag(flag: ReliabilityFlag, *, actor: User, reason: str) -> None:
    listing = flag.listing
    before = flag_data(flag)
    listing.flags.remove(flag)
    record("flag_remove", actor=actor, listing=listing, before=before, reason=reason)


def drop_off_list(
    flag_type: FlagType, source: str, as_of: date, on_list: set[int], *, actor: User, file: str
) -> int:
    """A list's newer edition without a listing: its flags from the older editions go (the
    list no longer vouches for it). Returns how many flags were taken off."""
    stale = [
        flag
        for flag in db.session.scalars(
            select(ReliabilityFlag).where(
                ReliabilityFlag.type == flag_type,
                ReliabilityFlag.source == source,
                ReliabilityFlag.as_of < as_of,
            )
        )
        if flag.listing_id not in on_list
    ]
    for flag in stale:
        remove_flag(flag, actor=actor, reason=f"Not on {source}'s list of {as_of}: {file}")
    return len(stale)


def note_sources(
    listing: Listing,
    keys: list[Key],
    *,
    actor: User,
    file: str,
    as_of: date | None,
    data: dict[str, Any],
) -> None:
    """Remember the listing under each outside key, with the values this file gave it; a key
    the listing did not have yet is an audited change (it decides what later imports update)."""
    added = []
    for source, source_id in keys:
        row = db.session.scalar(
            select(ListingSource).where(
                ListingSource.source == source, ListingSource.source_id == source_id
            )
        )
        if row is None:
            row = ListingSource(listing_id=listing.id, source=source, source_id=source_id)
            db.session.add(row)
            added.append({"source": source, "source_id": source_id})
        row.file = file[:200]
        row.as_of = as_of
        row.data = data
        row.last_seen_at = utcnow()
    if added:
        record(
            "source_add",
            actor=actor,
            listing=listing,
            after={"sources": added},
            reason=import_reason(file),
        )
