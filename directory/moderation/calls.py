"""The volunteers' call list: published listings nobody has confirmed (or not for a year),
claimed one at a time so two volunteers never call the same place, and each call's outcome
written to the listing through the same audited paths as every other change.

Order: listings with no confirmed pharmacy within 25 miles come first, because a patient
there has nowhere known to go. Whether one is near is kept on the listing
(`listings.confirmed_nearby`), so the list is read in index order without measuring distances.
Every write keeps it at its commit (moderation/nearby.py calls mark_around, unmark_around,
confirmed_near or refresh_around here); `refresh_nearby()` works it out again from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Select,
    UnaryExpression,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import operators

from ..db import writing
from ..extensions import db
from ..facts import fresh_since
from ..geomath import EARTH_RADIUS, KM_PER_MILE, box_around, distance_from
from ..listings import to_data
from ..models import (
    CallAttempt,
    CallClaim,
    CallOutcome,
    Kind,
    Listing,
    Status,
    User,
    VerifyMethod,
    utcnow,
)
from ..spatial import listing_rtree, sql_distance_km
from ..vocabulary import CallDue
from .audit import record
from .bulk import update_listing
from .errors import ModerationError
from .upkeep import add_verification, get_listing

NEARBY_MILES = 25
NEARBY_KM = NEARBY_MILES * KM_PER_MILE
CLAIM_MINUTES = 30
PAGE_SIZE = 20
# Counting every listing left in a 1M directory costs more than the list itself; this far
# past the page asked for the count stops and says "+" (the progress page counts them all).
COUNT_CAP = 2_000


# --- what is on the list ----------------------------------------------------------------------


@dataclass(frozen=True)
class CallFilters:
    region: str | None = None  # US-XX
    kind: Kind | None = None
    due: CallDue | None = None
    page: int = 1


def is_confirmed_pharmacy(listing: Listing) -> bool:
    """A pharmacy someone has checked and that makes LDN: what "a confirmed pharmacy nearby"
    means for the list's order."""
    return confirmed(listing.kind, listing.makes_ldn, listing.status, listing.verified_on)


def confirmed(
    kind: Kind | None, makes_ldn: bool | None, status: Status | None, verified_on: date | None
) -> bool:
    # is_confirmed_pharmacy's rule on bare column values (moderation/nearby.py reads rows).
    return (
        kind == Kind.PHARMACY
        and makes_ldn is True
        and status != Status.CLOSED
        and verified_on is not None
    )


def _confirmed_pharmacy_sql() -> list[ColumnElement[bool]]:
    # The same rule as is_confirmed_pharmacy, as clauses (a test holds the two together).
    return [
        Listing.kind == Kind.PHARMACY,
        Listing.makes_ldn.is_(True),
        Listing.status != Status.CLOSED,
        Listing.verified_on.is_not(None),
    ]


def _due(due: CallDue | None, today: date | None) -> ColumnElement[bool]:
    since = fresh_since(today)
    verified_on = _unindexed(Listing.verified_on)
    if due == CallDue.NEVER:
        return verified_on.is_(None)
    if due == CallDue.STALE:
        return verified_on < since
    # Any: also a pharmacy checked lately whose LDN answer is still unknown.
    return or_(
        verified_on.is_(None),
        verified_on < since,
        and_(_unindexed(Listing.kind) == Kind.PHARMACY, Listing.makes_ldn.is_(None)),
    )


def _where(filters: CallFilters, today: date | None) -> list[ColumnElement[bool]]:
    clauses = [_unindexed(Listing.status) != Status.CLOSED, _due(filters.due, today)]
    if filters.kind is not None:
        clauses.append(_unindexed(Listing.kind) == filters.kind)
    if filters.region:
        clauses.append(Listing.region == filters.region)
    return clauses


def _live_claims(now: datetime) -> Any:
    return (
        select(CallClaim.listing_id, CallClaim.expires_at, User.username)
        .join(User, User.id == CallClaim.moderator_id)
        .where(CallClaim.expires_at > now)
        .subquery()
    )


@dataclass(frozen=True)
class CallItem:
    id: int
    kind: Kind
    name: str
    city: str | None
    region: str | None
    phone: str | None
    verified_on: date | None
    confirmed_nearby: bool
    held_by: str | None
    held_until: datetime | None
    last_outcome: CallOutcome | None
    last_called: datetime | None


@dataclass(frozen=True)
class CallPage:
    items: list[CallItem]
    total: int  # up to COUNT_CAP
    capped: bool
    page: int
    pages: int


def _last_attempt(column: Any) -> Any:
    return (
        select(column)
        .where(CallAttempt.listing_id == Listing.id)
        .order_by(CallAttempt.at.desc(), CallAttempt.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def _walk(stmt: Select[Any], filters: CallFilters) -> Select[Any]:
    """Read the list from its own index (models.Listing: ix_listings_call_order, with the
    region first when filtering by state). SQLAlchemy has no SQLite index hint, so the
    filters name their columns as `+column` there (_unindexed), which SQLite's planner reads
    as "no index for this term": without that it takes the `kind` or `verified_on` index and
    then sorts or looks up every row (80 ms instead of 1 at 100k listings). PostgreSQL plans
    from its statistics."""
    return stmt


def _unindexed(column: Any) -> Any:
    if db.engine.dialect.name != "sqlite":
        return column
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _ordered(stmt: Select[Any]) -> Select[Any]:
    # Index order: nobody confirmed nearby first, then oldest first.
    return stmt.order_by(Listing.confirmed_nearby, Listing.id)


def call_list(
    filters: CallFilters, *, today: date | None = None, now: datetime | None = None
) -> CallPage:
    now = now or utcnow()
    where = _where(filters, today)
    page = max(filters.page, 1)
    # Counted up to COUNT_CAP past the page asked for, so "Next" always leads somewhere.
    cap = (page - 1) * PAGE_SIZE + COUNT_CAP
    counted = (
        db.session.scalar(
            select(func.count()).select_from(
                _walk(select(Listing.id).where(*where), filters).limit(cap + 1).subquery()
            )
        )
        or 0
    )
    total = min(counted, cap)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(page, pages)
    ids = list(
        db.session.scalars(
            _ordered(_walk(select(Listing.id).where(*where), filters))
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
    )
    claims = _live_claims(now)
    rows = db.session.execute(
        select(
            Listing.id,
            Listing.kind,
            Listing.name,
            Listing.city,
            Listing.region,
            Listing.phone,
            Listing.verified_on,
            Listing.confirmed_nearby,
            claims.c.username,
            claims.c.expires_at,
            _last_attempt(CallAttempt.outcome),
            _last_attempt(CallAttempt.at),
        )
        .where(Listing.id.in_(ids))
        .outerjoin(claims, claims.c.listing_id == Listing.id)
    ).all()
    # Two queries: the page's ids in index order, then their rows by primary key (one query
    # joining the two let SQLite walk the whole index again to sort them).
    position = {listing_id: n for n, listing_id in enumerate(ids)}
    items = sorted((CallItem(*row) for row in rows), key=lambda item: position[item.id])
    return CallPage(items, total, counted > cap, page, pages)


# --- claims -----------------------------------------------------------------------------------


def _rowcount(stmt: Any) -> int:
    result = cast(CursorResult[Any], db.session.connection().execute(stmt))
    return result.rowcount


def _take(listing_id: int, user: User, now: datetime) -> bool:
    """Hold the listing for CLAIM_MINUTES; False when someone else holds it. One statement
    decides each way (an insert that does nothing on a conflict, then an update that only
    matches an expired or own claim), so a race has exactly one winner on both databases."""
    expires = now + timedelta(minutes=CLAIM_MINUTES)
    values = {
        "listing_id": listing_id,
        "moderator_id": user.id,
        "claimed_at": now,
        "expires_at": expires,
    }
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(CallClaim).values(**values).on_conflict_do_nothing()
    if _rowcount(insert) == 1:
        return True
    taken = (
        update(CallClaim)
        .where(
            CallClaim.listing_id == listing_id,
            or_(CallClaim.expires_at <= now, CallClaim.moderator_id == user.id),
        )
        .values(moderator_id=user.id, claimed_at=now, expires_at=expires)
    )
    return _rowcount(taken) == 1


@dataclass(frozen=True)
class Holder:
    username: str
    until: datetime


def holder(listing_id: int, now: datetime | None = None) -> Holder | None:
    row = db.session.execute(
        select(User.username, CallClaim.expires_at)
        .join(User, User.id == CallClaim.moderator_id)
        .where(CallClaim.listing_id == listing_id, CallClaim.expires_at > (now or utcnow()))
    ).first()
    return Holder(row[0], row[1]) if row else None


def _busy(listing_id: int, now: datetime) -> ModerationError:
    held = holder(listing_id, now)
    who = held.username if held else "Another volunteer"
    return ModerationError(f"{who} is calling this one now. Nothing was changed.")


def claim(listing_id: int, user: User, now: datetime | None = None) -> Listing:
    """Hold a listing for this volunteer, or a ModerationError naming who holds it."""
    now = now or utcnow()
    with writing():
        listing = get_listing(listing_id)
        if not _take(listing.id, user, now):
            raise _busy(listing.id, now)
        return listing


def release(listing_id: int, user: User) -> None:
    with writing():
        db.session.execute(
            delete(CallClaim).where(
                CallClaim.listing_id == listing_id, CallClaim.moderator_id == user.id
            )
        )


def claim_next(
    filters: CallFilters, user: User, *, skip: Sequence[int] = (), now: datetime | None = None
) -> int | None:
    """Claim the first listing on the list (same filters) that nobody else holds; its id, or
    None when the list is done. A lost race moves on to the next one."""
    now = now or utcnow()
    passed = set(skip)
    for _ in range(10):
        others = select(CallClaim.listing_id).where(
            CallClaim.expires_at > now, CallClaim.moderator_id != user.id
        )
        stmt = _ordered(
            _walk(
                select(Listing.id).where(*_where(filters, now.date()), Listing.id.not_in(others)),
                filters,
            )
        )
        if passed:
            stmt = stmt.where(Listing.id.not_in(passed))
        next_id = db.session.scalar(stmt.limit(1))
        if next_id is None:
            return None
        with writing():
            if _take(next_id, user, now):
                return next_id
        passed.add(next_id)
    return None


def attempts(listing_id: int, limit: int = 10) -> list[CallAttempt]:
    """The listing's latest calls, newest first (moderators only)."""
    return list(
        db.session.scalars(
            select(CallAttempt)
            .where(CallAttempt.listing_id == listing_id)
            .order_by(CallAttempt.at.desc(), CallAttempt.id.desc())
            .limit(limit)
        )
    )


# --- recording a call -------------------------------------------------------------------------


def record_call(
    listing_id: int,
    user: User,
    outcome: CallOutcome,
    *,
    answers: dict[str, Any] | None = None,
    note: str | None = None,
    today: date | None = None,
    now: datetime | None = None,
) -> Listing:
    """Write how a call ended. Confirmed: the answers become the listing's facts (only the
    fields that changed, audited), with a phone verification dated today. Doesn't make or
    prescribe LDN, and closed: the listing leaves search, also verified today. No answer: an
    attempt only; it stays on the list and patients see nothing. The volunteer must hold the
    listing (or its claim must have run out with nobody else taking it)."""
    today = today or date.today()
    now = now or utcnow()
    with writing():
        listing = get_listing(listing_id)
        if not _take(listing.id, user, now):
            raise _busy(listing.id, now)
        reason = f"Phone call by {user.username}" + (f": {note}" if note else "")
        changes: dict[str, Any] = {}
        if outcome == CallOutcome.CONFIRMED:
            changes = dict(answers or {})
        elif outcome == CallOutcome.CLOSED:
            changes = {"status": Status.CLOSED.value}
        current = to_data(listing)
        # The form asks about US states; countries abroad already listed stay.
        if changes.get("mail_order") or "licensed_in" in changes:
            for key in ("ships_to", "licensed_in"):
                if key in changes:
                    abroad = {c for c in current.get(key) or [] if not c.startswith("US-")}
                    changes[key] = sorted(set(changes[key]) | abroad)
        changes = {k: v for k, v in changes.items() if current.get(k) != v}
        if changes:
            update_listing(listing, changes, actor=user, reason=reason, action="call_answers")
        if outcome in (CallOutcome.CONFIRMED, CallOutcome.NO_LDN):
            _set_makes_ldn(listing, outcome == CallOutcome.CONFIRMED, user, reason)
        if outcome != CallOutcome.NO_ANSWER:
            before = listing.verified_on
            add_verification(listing, today, VerifyMethod.PHONE, user, note)
            record(
                "verify",
                actor=user,
                listing=listing,
                before={"verified_on": before.isoformat() if before else None},
                after={"method": VerifyMethod.PHONE.value, "date": today.isoformat()},
                reason=reason,
            )
        db.session.add(
            CallAttempt(
                listing_id=listing.id, moderator_id=user.id, at=now, outcome=outcome, note=note
            )
        )
        record(
            "call",
            actor=user,
            listing=listing,
            after={"outcome": outcome.value},
            reason=note,
        )
        db.session.execute(delete(CallClaim).where(CallClaim.listing_id == listing.id))
        # confirmed_nearby follows at commit (moderation/nearby.py), as for every other write.
        return listing


def _set_makes_ldn(listing: Listing, makes: bool, user: User, reason: str) -> None:
    # A pharmacy's makes_ldn is one of its public fields (update_listing audits it); a
    # prescriber's says whether they prescribe it, which search reads the same way.
    if listing.makes_ldn is makes:
        return
    if listing.kind == Kind.PHARMACY:
        update_listing(
            listing, {"makes_ldn": makes}, actor=user, reason=reason, action="call_answers"
        )
        return
    before = {"prescribes_ldn": listing.makes_ldn}
    listing.makes_ldn = makes
    record(
        "call_answers",
        actor=user,
        listing=listing,
        before=before,
        after={"prescribes_ldn": makes},
        reason=reason,
    )


# --- "a confirmed pharmacy within 25 miles" ---------------------------------------------------


def _rtree_ids(lat: float, lon: float, km: float) -> Select[Any]:
    # SQLite: the ids of listings in the box around (lat, lon), from the R*Tree.
    box = box_around(lat, lon, km)
    r = listing_rtree.c
    lon_ok = (
        or_(r.max_lon >= box.west, r.min_lon <= box.east)
        if box.west > box.east  # across the 180th meridian
        else and_(r.max_lon >= box.west, r.min_lon <= box.east)
    )
    return select(r.id).where(r.max_lat >= box.south, r.min_lat <= box.north, lon_ok)


def _in_box(lat: float, lon: float, km: float) -> ColumnElement[bool]:
    if db.engine.dialect.name == "sqlite":
        return Listing.id.in_(_rtree_ids(lat, lon, km))
    box = box_around(lat, lon, km)
    wraps = box.west > box.east
    lon_in = (
        or_(Listing.lon >= box.west, Listing.lon <= box.east)
        if wraps
        else Listing.lon.between(box.west, box.east)
    )
    return and_(Listing.lat.between(box.south, box.north), lon_in)


# mark_nearby on SQLite: below this many unmarked listings in the whole directory, walking them
# (ix_listings_call_order starts with confirmed_nearby) beats looking up every listing in the
# 25-mile box (18,000 in a dense metro of the 1M bench: 6.5 ms against 0.1).
UNMARKED_WALK_MAX = 20_000


def _few_unmarked() -> bool:
    unmarked = select(Listing.id).where(Listing.confirmed_nearby.is_(False))
    counted = db.session.scalar(
        select(func.count()).select_from(unmarked.limit(UNMARKED_WALK_MAX).subquery())
    )
    return (counted or 0) < UNMARKED_WALK_MAX


def mark_nearby(pharmacy: Listing) -> int:
    """A pharmacy became confirmed: everything within 25 miles now has one nearby."""
    if pharmacy.lat is None or pharmacy.lon is None:
        return 0
    return mark_around(pharmacy.lat, pharmacy.lon)


def mark_around(lat: float, lon: float) -> int:
    """A confirmed pharmacy is now at (lat, lon): mark everything within 25 miles."""
    in_box = _in_box(lat, lon, NEARBY_KM)
    if db.engine.dialect.name == "sqlite" and _few_unmarked():
        # Once most of a directory is marked (a campaign under way), walk the few unmarked
        # listings from the index and check each against the box's ids, instead of looking
        # up every listing in the box: `+id` keeps SQLite from driving the query by the box.
        in_box = _unindexed(Listing.id).in_(_rtree_ids(lat, lon, NEARBY_KM))
    return _rowcount(
        update(Listing)
        .where(
            in_box,
            Listing.confirmed_nearby.is_(False),
            sql_distance_km(lat, lon) <= NEARBY_KM,
        )
        .values(confirmed_nearby=True)
        .execution_options(synchronize_session=False)
    )


def unmark_nearby(pharmacy: Listing) -> int:
    """A confirmed pharmacy no longer is: its neighbours keep the mark only if another
    confirmed pharmacy is within 25 miles of them."""
    if pharmacy.lat is None or pharmacy.lon is None:
        return 0
    return unmark_around(pharmacy.id, pharmacy.lat, pharmacy.lon)


def unmark_around(pharmacy_id: int, lat: float, lon: float) -> int:
    """The confirmed pharmacy `pharmacy_id` was at (lat, lon) and no longer counts there
    (unconfirmed, closed, moved or deleted): unmark its neighbours left with none nearby."""
    marked = db.session.execute(
        select(Listing.id, Listing.lat, Listing.lon).where(
            _in_box(lat, lon, NEARBY_KM),
            Listing.confirmed_nearby.is_(True),
            sql_distance_km(lat, lon) <= NEARBY_KM,
        )
    ).all()
    if not marked:
        return 0
    others = db.session.execute(
        select(Listing.lat, Listing.lon).where(
            _in_box(lat, lon, 2 * NEARBY_KM), Listing.id != pharmacy_id, *_confirmed_pharmacy_sql()
        )
    ).all()
    points = [(p, q) for p, q in others if p is not None and q is not None]
    lonely = [
        i
        for i, a, b in marked
        if a is not None
        and b is not None
        and not any(distance_from(a, b)(p, q) <= NEARBY_KM for p, q in points)
    ]
    if lonely:
        db.session.execute(
            update(Listing)
            .where(Listing.id.in_(lonely))
            .values(confirmed_nearby=False)
            .execution_options(synchronize_session=False)
        )
    return len(lonely)


# Cells of the grid refresh_nearby sorts confirmed pharmacies into, in degrees.
_CELL = 0.5


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _CELL), math.floor(lon / _CELL) % round(360 / _CELL)


@lru_cache(maxsize=64)
def _offsets(reach_lat: int, reach_lon: int) -> list[tuple[int, int]]:
    cells = [
        (di, dj)
        for di in range(-reach_lat, reach_lat + 1)
        for dj in range(-reach_lon, reach_lon + 1)
    ]
    return sorted(cells, key=lambda c: (c[0] / reach_lat) ** 2 + (c[1] / reach_lon) ** 2)


@dataclass(frozen=True)
class Box:
    """South, north, west and east edges in degrees, not across the 180th meridian."""

    south: float
    north: float
    west: float
    east: float

    def holds(self) -> list[ColumnElement[bool]]:
        return [
            Listing.lat.between(self.south, self.north),
            Listing.lon.between(self.west, self.east),
        ]


def _areas(points: Sequence[tuple[float, float]]) -> tuple[Box, Box] | None:
    """The box holding every listing within 25 miles of the points, and the one holding every
    pharmacy that can reach those (50 miles); None near a pole or the 180th meridian, where a
    box would be wrong."""
    if not points:
        return None
    dlat = math.degrees(NEARBY_KM / EARTH_RADIUS)
    lats, lons = [p for p, _ in points], [q for _, q in points]
    widest = max(abs(min(lats)), abs(max(lats))) + 2 * dlat
    if widest >= 89:
        return None
    dlon = math.degrees(NEARBY_KM / (EARTH_RADIUS * math.cos(math.radians(widest))))
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    if west - 2 * dlon < -180 or east + 2 * dlon > 180:
        return None
    listings = Box(south - dlat, north + dlat, west - dlon, east + dlon)
    return listings, Box(south - 2 * dlat, north + 2 * dlat, west - 2 * dlon, east + 2 * dlon)


def _should_be_marked(
    batch: int, areas: tuple[Box, Box] | None = None
) -> Iterator[tuple[int, bool, bool]]:
    """(listing id, stored mark, computed mark) for every listing with a point (or only those
    in `areas`' first box): the mark worked out from scratch, in Python over a grid rather
    than one spatial query per confirmed pharmacy (with 400k of them, the 1M bench database,
    that would take hours); each listing is read once."""
    listing_box: list[ColumnElement[bool]] = areas[0].holds() if areas else []
    pharmacy_box: list[ColumnElement[bool]] = areas[1].holds() if areas else []
    grid: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for lat, lon in db.session.execute(
        select(Listing.lat, Listing.lon).where(
            *_confirmed_pharmacy_sql(),
            Listing.lat.is_not(None),
            Listing.lon.is_not(None),
            *pharmacy_box,
        )
    ):
        if lat is not None and lon is not None:  # the query says so; the types don't
            grid.setdefault(_cell(lat, lon), []).append((lat, lon))
    reach_lat = math.ceil(math.degrees(NEARBY_KM / EARTH_RADIUS) / _CELL)
    rows = db.session.execute(
        select(Listing.id, Listing.lat, Listing.lon, Listing.confirmed_nearby).where(*listing_box),
        execution_options={"yield_per": batch},
    )
    for listing_id, lat, lon, stored in rows:
        if lat is None or lon is None:
            yield listing_id, bool(stored), False
            continue
        i, j = _cell(lat, lon)
        cos = max(math.cos(math.radians(min(abs(lat) + reach_lat * _CELL, 89.9))), 1e-6)
        reach_lon = min(math.ceil(math.degrees(NEARBY_KM / (EARTH_RADIUS * cos)) / _CELL), 360)
        distance_to = distance_from(lat, lon)
        # Nearest cells first: in a city the listing's own cell answers at once, where a
        # far corner holds thousands of pharmacies all just out of reach.
        near = any(
            distance_to(p, q) <= NEARBY_KM
            for di, dj in _offsets(reach_lat, reach_lon)
            for p, q in grid.get((i + di, (j + dj) % round(360 / _CELL)), ())
        )
        yield listing_id, bool(stored), near


def refresh_nearby(batch: int = 5000) -> int:
    """Work `confirmed_nearby` out again for every listing; returns how many are marked."""
    with writing():
        near = [i for i, _stored, computed in _should_be_marked(batch) if computed]
        db.session.execute(
            update(Listing)
            .where(Listing.confirmed_nearby.is_(True))
            .values(confirmed_nearby=False)
            .execution_options(synchronize_session=False)
        )
        set_marks(near, True, batch)
    return len(near)


def refresh_around(points: Sequence[tuple[float, float]], batch: int = 5000) -> bool:
    """Work the mark out again, inside the caller's transaction, for every listing within 25
    miles of any of `points`: a bulk write's one set-based pass instead of a query per
    listing. False (nothing done) when the points reach a pole or the 180th meridian, where
    the box around them would be wrong."""
    areas = _areas(points)
    if areas is None:
        return False
    wrong: dict[bool, list[int]] = {True: [], False: []}
    for listing_id, stored, computed in _should_be_marked(batch, areas):
        if stored != computed:
            wrong[computed].append(listing_id)
    for value, ids in wrong.items():
        set_marks(ids, value, batch)
    return True


def set_marks(ids: Sequence[int], value: bool, batch: int = 5000) -> None:
    for start in range(0, len(ids), batch):
        db.session.execute(
            update(Listing)
            .where(Listing.id.in_(ids[start : start + batch]))
            .values(confirmed_nearby=value)
            .execution_options(synchronize_session=False)
        )


def confirmed_near(lat: float, lon: float) -> bool:
    """Whether a confirmed pharmacy is within 25 miles of (lat, lon): the mark of a listing
    new there, or moved there."""
    found = db.session.scalar(
        select(Listing.id)
        .where(
            _in_box(lat, lon, NEARBY_KM),
            *_confirmed_pharmacy_sql(),
            sql_distance_km(lat, lon) <= NEARBY_KM,
        )
        .limit(1)
    )
    return found is not None


def nearby_drift(batch: int = 5000) -> list[int]:
    """The listings whose stored `confirmed_nearby` differs from what refresh_nearby() would
    write (`flask check` reports them): reads every listing once, writes nothing. Every ORM
    write keeps the mark (moderation/nearby.py), so drift means a write outside it (raw SQL);
    `flask refresh-call-list` puts it right."""
    return [i for i, stored, computed in _should_be_marked(batch) if stored != computed]


# --- progress ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateProgress:
    region: str | None
    left: int
    confirmed_this_week: int

    @property
    def is_us_state(self) -> bool:
        """A US state (the call list filters by those); other regions are named abroad."""
        return bool(self.region and self.region.startswith("US-"))


@dataclass(frozen=True)
class Progress:
    week_starts: date
    confirmed_this_week: int
    left: int
    by_state: list[StateProgress]


def progress(today: date | None = None) -> Progress:
    """Confirmed since Monday and left to confirm, overall and by state, counted in SQL."""
    today = today or date.today()
    monday = today - timedelta(days=today.weekday())
    since = datetime.combine(monday, datetime.min.time())
    left_rows = db.session.execute(
        select(Listing.region, func.count())
        .where(*_where(CallFilters(), today))
        .group_by(Listing.region)
    ).all()
    done_rows = db.session.execute(
        select(Listing.region, func.count(func.distinct(CallAttempt.listing_id)))
        .join(Listing, Listing.id == CallAttempt.listing_id)
        .where(CallAttempt.outcome == CallOutcome.CONFIRMED, CallAttempt.at >= since)
        .group_by(Listing.region)
    ).all()
    left = {region: n for region, n in left_rows}
    done = {region: n for region, n in done_rows}
    states = sorted(set(left) | set(done), key=lambda r: (r is None, r or ""))
    return Progress(
        week_starts=monday,
        confirmed_this_week=sum(done.values()),
        left=sum(left.values()),
        by_state=[StateProgress(r, left.get(r, 0), done.get(r, 0)) for r in states],
    )
