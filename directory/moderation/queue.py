"""The moderators' to-do list: pending submissions, oldest first, and listings due for a
fresh check."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, or_, select

from ..extensions import db
from ..facts import fresh_since
from ..models import Listing, Status, Submission, SubmissionStatus, SubmissionType


def pending(limit: int = 200) -> list[Submission]:
    return list(
        db.session.scalars(
            select(Submission)
            .where(Submission.status == SubmissionStatus.PENDING)
            .order_by(Submission.created_at, Submission.id)
            .limit(limit)
        )
    )


def _due() -> ColumnElement[bool]:
    return (Listing.status != Status.CLOSED) & or_(
        Listing.verified_on.is_(None), Listing.verified_on < fresh_since()
    )


def due_for_reverification(limit: int = 50) -> list[Listing]:
    return list(
        db.session.scalars(
            select(Listing)
            .where(_due())
            .order_by(Listing.verified_on.asc().nulls_first(), Listing.id)
            .limit(limit)
        )
    )


def queue_counts() -> dict[str, int]:
    subs = pending(limit=10_000)
    due = db.session.scalar(select(func.count()).select_from(Listing).where(_due()))
    return {
        "new": sum(1 for s in subs if s.type == SubmissionType.NEW),
        "corrections": sum(1 for s in subs if s.type == SubmissionType.CORRECTION),
        "duplicates": sum(1 for s in subs if s.duplicates),
        "reverify": due or 0,
    }
