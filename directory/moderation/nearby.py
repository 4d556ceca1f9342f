"""Keeping `listings.confirmed_nearby` right on every write, whatever wrote it.

Whether a listing has a confirmed pharmacy within 25 miles (calls.py) changes when a pharmacy
becomes or stops being confirmed (kind, makes_ldn, status, or a verification, whose date a
trigger copies to `verified_on`), or when a listing appears, moves or goes. Moderators'
decisions, upkeep, imports and call outcomes all do that through the ORM, so the session
notes it here instead of each of them remembering to: before each flush, the listings it is
about to touch are read once as they were before the transaction touched them; just before
the commit, they are read again in one statement (which sees what the triggers wrote), and only
those whose state changed move the marks around them. Where a bulk write (an import) makes
many changes in one area, one set-based pass over that area replaces a query for each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_sqlalchemy.session import Session
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.orm.attributes import get_history

from ..models import Listing, Verification
from . import calls

# What decides whether a listing is a confirmed pharmacy, or where it is (verified_on is the
# trigger's, so a Verification added, changed or removed stands for it).
TRACKED = ("kind", "makes_ldn", "status", "lat", "lon")
# Changes whose points share one cell of this many degrees, at least AREA_MIN of them, are
# settled by one pass over the area they cover (calls.refresh_around: one read of the
# listings and pharmacies in its box) instead of a spatial query or two for each: an import of
# thousands of rows in one city stays a few passes. Scattered changes (a registry file's new
# pharmacies across the country) stay one indexed query each: one box around them all would
# be the whole table, 44 s at 1M listings, for every batch.
CELL_DEGREES = 1.0
AREA_MIN = 25
_BEFORE = "nearby_before"  # session.info: listing id -> its State before this transaction
_CHUNK = 5000  # ids per IN (...), well under both databases' bound-parameter limits


@dataclass(frozen=True)
class State:
    confirmed: bool
    lat: float | None
    lon: float | None

    @property
    def point(self) -> tuple[float, float] | None:
        return (self.lat, self.lon) if self.lat is not None and self.lon is not None else None


def _states(session: Session, ids: Iterable[int]) -> dict[int, State]:
    wanted = sorted(ids)
    found: dict[int, State] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = session.connection().execute(
            select(
                Listing.id,
                Listing.kind,
                Listing.makes_ldn,
                Listing.status,
                Listing.verified_on,
                Listing.lat,
                Listing.lon,
            ).where(Listing.id.in_(wanted[start : start + _CHUNK]))
        )
        for listing_id, kind, makes_ldn, status, verified_on, lat, lon in rows:
            found[listing_id] = State(
                calls.confirmed(kind, makes_ldn, status, verified_on), lat, lon
            )
    return found


def _persistent_id(obj: Any) -> int | None:
    # The primary key without loading anything (None for a listing not inserted yet).
    identity = inspect(obj).identity if obj is not None else None
    return identity[0] if identity else None


def _touched(session: Session) -> set[int]:
    """Ids of listings already in the database that this flush may change the state of."""
    ids: set[int] = set()
    for obj in session.deleted:
        if isinstance(obj, Listing):
            ids.add(_persistent_id(obj) or 0)
    for obj in session.dirty:
        if isinstance(obj, Listing):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in TRACKED):
                ids.add(_persistent_id(obj) or 0)
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Verification):
            ids.update(i for i in get_history(obj, "listing_id").sum() if i is not None)
            if "listing" in obj.__dict__:  # appended to a listing: the key is set at the flush
                ids.add(_persistent_id(obj.__dict__["listing"]) or 0)
    ids.discard(0)
    return ids


@event.listens_for(Session, "before_flush")
def _remember_before(session: Session, _context: object, _instances: object) -> None:
    before: dict[int, State | None] = session.info.setdefault(_BEFORE, {})
    new = _touched(session) - before.keys()
    if new:
        found = _states(session, new)
        for listing_id in new:
            before[listing_id] = found.get(listing_id)


@event.listens_for(Session, "after_flush")
def _remember_new(session: Session, _context: object) -> None:
    # Listings inserted by this flush had no state before (their ids exist only now).
    before: dict[int, State | None] = session.info.setdefault(_BEFORE, {})
    for obj in session.new:
        if isinstance(obj, Listing):
            before.setdefault(obj.id, None)


@event.listens_for(Session, "before_commit")
def _settle_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    # The commit flushes only after this hook; flushing now lets the last changes count too
    # (a listing inserted by it is noted only then).
    session.flush()
    before = session.info.pop(_BEFORE, None)
    if before:
        settle(session, before)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:
        session.info.pop(_BEFORE, None)


@dataclass(frozen=True)
class Change:
    listing_id: int
    point: tuple[float, float]
    lost: bool  # a confirmed pharmacy gone from this point (unconfirmed, moved or deleted)
    gained: bool  # a confirmed pharmacy now at this point (it marks itself too)
    # Otherwise the listing is new here or moved here: its own mark.

    @property
    def cell(self) -> tuple[int, int]:
        lat, lon = self.point
        return math.floor(lat / CELL_DEGREES), math.floor(lon / CELL_DEGREES)


def _changes(
    before: dict[int, State | None], after: dict[int, State]
) -> tuple[list[Change], list[int]]:
    """What moved between before and now, and the listings now without a point."""
    changes: list[Change] = []
    unplaced: list[int] = []
    for listing_id, was in before.items():
        now = after.get(listing_id)
        was_at = was.point if was and was.confirmed else None
        now_at = now.point if now and now.confirmed else None
        if was_at and was_at != now_at:
            changes.append(Change(listing_id, was_at, lost=True, gained=False))
        if now_at and now_at != was_at:
            changes.append(Change(listing_id, now_at, lost=False, gained=True))
        elif now is not None and (was is None or was.point != now.point):
            if now.point is None:
                unplaced.append(listing_id)
            else:
                changes.append(Change(listing_id, now.point, lost=False, gained=False))
    return changes, unplaced


def settle(session: Session, before: dict[int, State | None]) -> None:
    """Move the marks for what changed between `before` and now. Every step writes only true
    marks worked out from the committed-to-be state, so their order cannot matter for the
    result, only for the work (unmarking first: a pharmacy that moved is unmarked where it
    was, then marks where it is)."""
    changes, unplaced = _changes(before, _states(session, before))
    calls.set_marks(unplaced, False)
    by_cell: dict[tuple[int, int], list[Change]] = {}
    for change in changes:
        by_cell.setdefault(change.cell, []).append(change)
    one_by_one: list[Change] = []
    for group in by_cell.values():
        if len(group) < AREA_MIN or not calls.refresh_around([c.point for c in group]):
            one_by_one.extend(group)
    for change in one_by_one:
        if change.lost:
            calls.unmark_around(change.listing_id, *change.point)
    for change in one_by_one:
        if change.gained:
            calls.mark_around(*change.point)
    own: dict[bool, list[int]] = {True: [], False: []}
    for change in one_by_one:
        if not (change.lost or change.gained):
            own[calls.confirmed_near(*change.point)].append(change.listing_id)
    for value, ids in own.items():
        calls.set_marks(ids, value)
