"""Keeping `listings.confirmed_nearby` right on every write, whatever wrote it.

Whether a listing has a confirmed pharmacy within 25 miles (calls.py) changes when a pharmacy
becomes or stops being confirmed (kind, makes_ldn, status, or a verification, whose date a
trigger copies to `verified_on`), or when a listing appears, moves or goes. Moderators'
decisions, upkeep, imports and call outcomes all do that through the ORM, so the session
notes it here instead of each of them remembering to: before each flush, the listings it is
about to touch are read once as they were before the transaction touched them; just before
the commit, they are read again in one statement (which sees what the triggers wrote), and only
those whose state changed move the marks around them. A bulk write (an import batch) with many
such changes does one set-based pass over the area they cover instead of a query for each.
"""

from __future__ import annotations

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
# Above this many changes in one transaction, one pass over the area they cover
# (calls.refresh_around: one read of the listings and pharmacies in its box) replaces a
# spatial query or two for each: an import of thousands of rows stays one pass, where a query
# per row would add seconds. A few decisions stay incremental, never reading a whole state.
BULK_MIN = 100
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


def settle(session: Session, before: dict[int, State | None]) -> None:
    """Move the marks for what changed between `before` and now."""
    after = _states(session, before)
    lost: list[tuple[int, tuple[float, float]]] = []  # a confirmed pharmacy gone from a point
    gained: list[tuple[float, float]] = []  # a confirmed pharmacy now at a point
    moved: list[int] = []  # listings new or moved: their own mark
    for listing_id, was in before.items():
        now = after.get(listing_id)
        was_at = was.point if was and was.confirmed else None
        now_at = now.point if now and now.confirmed else None
        if was_at and was_at != now_at:
            lost.append((listing_id, was_at))
        if now_at and now_at != was_at:
            gained.append(now_at)  # marks the pharmacy itself too
        elif now is not None and (was is None or was.point != now.point):
            moved.append(listing_id)
    if not (lost or gained or moved):
        return
    if len(lost) + len(gained) + len(moved) > BULK_MIN:
        points = [p for _, p in lost] + gained
        points += [s.point for i in moved if (s := after[i]).point is not None]
        unplaced = [i for i in moved if after[i].point is None]
        calls.set_marks(unplaced, False)
        if points:  # none would mean the whole table
            calls.refresh_around(points)
        return
    # Unmarking first: a pharmacy that moved is unmarked where it was, then marks where it is.
    for listing_id, (lat, lon) in lost:
        calls.unmark_around(listing_id, lat, lon)
    for lat, lon in gained:
        calls.mark_around(lat, lon)
    marks: dict[bool, list[int]] = {True: [], False: []}
    for listing_id in moved:
        point = after[listing_id].point
        marks[point is not None and calls.confirmed_near(*point)].append(listing_id)
    for value, ids in marks.items():
        calls.set_marks(ids, value)
