"""Decisions on what the public sent: approve (as sent, edited, or a correction's chosen
fields), resolve a problem report by doing what it reports (close the listing, mark it as not
making LDN), reject with a reason, or merge into a listing that already exists. Of two
moderators deciding at once exactly one wins (`_claim`).

Each decision returns a `Decision` whose `message` says what actually changed, worked out from
the listing before and after: a moderator is never told "it is live" when nothing moved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, select, update

from ..db import writing
from ..extensions import db
from ..listings import FIELD_LABELS, apply_data, phone_digits, to_data
from ..models import (
    Kind,
    Listing,
    Precision,
    Status,
    Submission,
    SubmissionStatus,
    SubmissionType,
    User,
    utcnow,
)
from ..vocabulary import Resolution, VerifyMethod
from .audit import record
from .errors import AlreadyHandled, ModerationError
from .submissions import ADDRESS_FIELDS
from .upkeep import add_verification, check_pin, get_submission, known


def _claim(
    submission_id: int, status: SubmissionStatus, moderator: User, reason: str | None
) -> Submission:
    """Mark a pending submission handled, atomically. Of two moderators acting at once exactly
    one gets here; the other gets AlreadyHandled and nothing of theirs is applied."""
    result = cast(
        CursorResult[Any],
        db.session.execute(
            update(Submission)
            .where(Submission.id == submission_id, Submission.status == SubmissionStatus.PENDING)
            .values(status=status, handled_at=utcnow(), handled_by_id=moderator.id, reason=reason)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount != 1:
        existing = db.session.get(Submission, submission_id)
        if existing is None:
            raise ModerationError("That submission does not exist.")
        who = f" by {existing.handled_by.username}" if existing.handled_by else ""
        raise AlreadyHandled(
            f"This submission was already {existing.status.value}{who}. Nothing was changed."
        )
    sub = get_submission(submission_id)
    db.session.refresh(sub)
    return sub


def _pin(place: dict[str, Any] | None) -> dict[str, Any]:
    if not place or place.get("lat") is None:
        return {}
    return {
        "lat": float(place["lat"]),
        "lon": float(place["lon"]),
        "geo_precision": place.get("precision") or Precision.CITY.value,
    }


def diff(listing: Listing, data: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, published value, proposed value) for each field the proposal changes."""
    current = to_data(listing)
    return [
        (field, current.get(field), value)
        for field, value in data.items()
        if field in current and _changes(field, current.get(field), value)
    ]


def _changes(field: str, published: Any, proposed: Any) -> bool:
    # Phones are stored in E.164, but a submission sent before that (or a listing not yet
    # migrated) may hold the same number written another way: the same digits are no change.
    if field == "phone":
        return phone_digits(published) != phone_digits(proposed)
    return bool(published != proposed)


def _changed_fields(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    if before is None:
        return []
    return [f for f in after if _changes(f, before.get(f), after.get(f))]


def in_search(listing: Listing) -> bool:
    """Whether searches can find the listing (search.py's base filter, in words)."""
    if listing.status == Status.CLOSED:
        return False
    return not (listing.kind == Kind.PHARMACY and listing.makes_ldn is False)


@dataclass(frozen=True)
class Decision:
    """What a decision did, for the moderator's message and the audit entry's reason."""

    submission: Submission
    listing: Listing
    changed: list[str]  # fields whose published value changed (empty for a new listing)
    created: bool = False
    resolution: Resolution | None = None
    verified: VerifyMethod | None = None

    @property
    def message(self) -> str:
        ref, name = self.submission.reference, self.listing.name
        searchable = in_search(self.listing)
        if self.created:
            text = f"Published {name} from {ref}: " + (
                "it now appears in search."
                if searchable
                else "it is listed, but closed or not making LDN, so searches don't show it."
            )
        elif self.resolution is not None and not self.changed:
            text = f"Resolved {ref}: {name} was already marked so; nothing changed."
        elif self.resolution == Resolution.CLOSE:
            text = (
                f"Closed {name} and resolved {ref}: it no longer appears in search, "
                "and its page says it has closed."
            )
        elif self.resolution == Resolution.NOT_LDN:
            text = (
                f"Marked {name} as not making LDN and resolved {ref}: "
                "it no longer appears in search."
            )
        elif self.changed:
            labels = ", ".join(FIELD_LABELS.get(f, f) for f in self.changed)
            text = f"Applied {ref} to {name}: changed {labels}."
        else:
            text = f"Resolved {ref}: nothing on {name} changed."
        if self.verified is not None:
            text += f" Recorded that you checked the details today ({self.verified.label})."
        return text


@dataclass(frozen=True)
class Review:
    """What a moderator needs to decide on one submission."""

    submission: Submission
    changes: list[tuple[str, Any, Any]]  # a correction's diff; empty for a new listing
    dup_listings: dict[int, Listing]  # possible duplicates still there, by id
    dup_subs: dict[int, Submission]


def review(submission_id: int) -> Review:
    """The submission, its diff and its possible duplicates (two queries, however many).
    Raises NotFound."""
    sub = get_submission(submission_id)

    def ids(kind: str) -> set[int]:
        return {d["id"] for d in sub.duplicates or [] if d["type"] == kind}

    listing_ids, submission_ids = ids("listing"), ids("submission")
    dup_listings = (
        {x.id: x for x in db.session.scalars(select(Listing).where(Listing.id.in_(listing_ids)))}
        if listing_ids
        else {}
    )
    dup_subs = (
        {
            x.id: x
            for x in db.session.scalars(select(Submission).where(Submission.id.in_(submission_ids)))
        }
        if submission_ids
        else {}
    )
    changes = diff(sub.listing, sub.data) if sub.listing else []
    return Review(sub, changes, dup_listings, dup_subs)


def approve(
    submission_id: int,
    moderator: User,
    *,
    data: dict[str, Any] | None = None,
    fields: list[str] | None = None,
    pin: tuple[float, float] | None = None,
    verify_method: str | None = None,
) -> Decision:
    """Publish a new listing, or apply a correction's chosen `fields` to its listing.

    `data` replaces the submitted values (edit then approve); `pin` sets coordinates by hand;
    `verify_method` also records that the moderator checked the details today.
    """
    if pin is not None:
        check_pin(*pin)
    method = known(VerifyMethod, verify_method) if verify_method else None
    with writing():
        sub = _claim(submission_id, SubmissionStatus.APPROVED, moderator, None)
        values = dict(data if data is not None else sub.data)
        listing: Listing | None
        if sub.type == SubmissionType.NEW:
            listing = Listing(kind=sub.listing_kind)
            values.setdefault("status", Status.OPEN.value)
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
            values.update(lat=pin[0], lon=pin[1], geo_precision=Precision.COORDINATES.value)
        apply_data(listing, values)
        db.session.add(listing)
        db.session.flush()
        # A new listing's submission points at what it became, for its review page's link.
        sub.listing_id = listing.id
        if method is not None:
            add_verification(
                listing, date.today(), method, moderator, note=f"On approving {sub.reference}"
            )
        after = to_data(listing)
        decision = Decision(
            sub,
            listing,
            _changed_fields(before, after),
            created=sub.type == SubmissionType.NEW,
            verified=method,
        )
        action = "approve_new" if sub.type == SubmissionType.NEW else "approve_correction"
        return _recorded(decision, action, moderator, before, after)


def _about(sub: Submission) -> str:
    """What the audit entry's reason starts with: which submission, and what it said."""
    what = sub.problem_term.label if sub.problem_term else sub.type.label
    return f"{sub.reference} ({what}). "


def _recorded(
    decision: Decision,
    action: str,
    moderator: User,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> Decision:
    """The audit entry of a decision that changed a listing: the listing's values before and
    after, and a reason that names the submission and says what the moderator was told."""
    record(
        action,
        actor=moderator,
        listing=decision.listing,
        submission_id=decision.submission.id,
        before=before,
        after=after,
        reason=_about(decision.submission) + decision.message,
    )
    return decision


def resolve(
    submission_id: int,
    moderator: User,
    resolution: Resolution | str,
    *,
    verify_method: str | None = None,
) -> Decision:
    """Do what a problem report reports, and mark the report handled, in one transaction:
    close the listing, or mark a pharmacy as not making LDN (both take it out of search)."""
    chosen = known(Resolution, resolution)
    method = known(VerifyMethod, verify_method) if verify_method else None
    with writing():
        sub = _claim(submission_id, SubmissionStatus.APPROVED, moderator, chosen.label)
        listing = sub.listing
        if sub.type != SubmissionType.CORRECTION or listing is None:
            raise ModerationError("Only a report about a published listing can be resolved so.")
        if chosen == Resolution.NOT_LDN and listing.kind != Kind.PHARMACY:
            raise ModerationError("Only a pharmacy can be marked as not making LDN.")
        before = to_data(listing)
        if chosen == Resolution.CLOSE:
            apply_data(listing, {"status": Status.CLOSED.value})
        else:
            apply_data(listing, {"makes_ldn": False})
        db.session.flush()
        if method is not None:
            add_verification(
                listing, date.today(), method, moderator, note=f"On resolving {sub.reference}"
            )
        after = to_data(listing)
        decision = Decision(
            sub, listing, _changed_fields(before, after), resolution=chosen, verified=method
        )
        return _recorded(decision, f"resolve_{chosen.value}", moderator, before, after)


def reject(submission_id: int, moderator: User, reason: str | None) -> Submission:
    """Handle a submission without changing any listing; the reason is kept in its history."""
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
            reason=_about(sub) + f"Rejected: {reason}",
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
            reason=_about(sub)
            + f"Merged into {target.name}. Filled in: "
            + (", ".join(FIELD_LABELS.get(f, f) for f in sorted(missing)) or "nothing"),
        )
        return target


def next_pending(after: int | None = None) -> int | None:
    """The submission a moderator should open next: the oldest one still waiting (skipping
    `after`, the one just decided, in case a rollback left it pending)."""
    stmt = select(Submission.id).where(Submission.status == SubmissionStatus.PENDING)
    if after is not None:
        stmt = stmt.where(Submission.id != after)
    return db.session.scalar(stmt.order_by(Submission.created_at, Submission.id).limit(1))
