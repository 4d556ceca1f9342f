"""The moderators' to-do list: pending submissions, oldest first, a page at a time, and
listings due for a fresh check. Counts are counted by the database, never by loading rows:
the queue stays one quick page with 10,000 submissions waiting."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, case, cast, func, or_, select

from ..extensions import db
from ..facts import fresh_since
from ..models import Listing, Status, Submission, SubmissionStatus, SubmissionType

QUEUE_PAGE = 50
# Counting every unverified listing of a million-listing directory takes a scan; past this
# many the queue says "1,000 or more", which is all a moderator needs to know (counting
# 10,000 took 140 ms at 1M listings: each row is read for its status).
DUE_COUNT_CAP = 1_000


def _waiting() -> ColumnElement[bool]:
    return Submission.status == SubmissionStatus.PENDING


def pending(limit: int = QUEUE_PAGE, offset: int = 0) -> list[Submission]:
    return list(
        db.session.scalars(
            select(Submission)
            .where(_waiting())
            .order_by(Submission.created_at, Submission.id)
            .limit(limit)
            .offset(offset)
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
    """How many submissions wait, of each sort, in one query; and how many listings are due
    (counted up to DUE_COUNT_CAP)."""
    # Compared as text, not parsed: an empty list is stored as '[]' on both databases, and
    # parsing 10,000 JSON documents was most of the count's time.
    has_duplicates = cast(Submission.duplicates, String).not_in(["[]", "null"])
    row = db.session.execute(
        select(
            func.count(),
            func.count(case((Submission.type == SubmissionType.NEW, 1))),
            func.count(case((Submission.type == SubmissionType.CORRECTION, 1))),
            func.count(case((has_duplicates, 1))),
        ).where(_waiting())
    ).one()
    due = db.session.scalar(
        select(func.count()).select_from(
            select(Listing.id).where(_due()).limit(DUE_COUNT_CAP).subquery()
        )
    )
    return {
        "pending": row[0],
        "new": row[1],
        "corrections": row[2],
        "duplicates": row[3],
        "reverify": due or 0,
        "reverify_capped": int((due or 0) >= DUE_COUNT_CAP),
    }


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue: its submissions, the counts, and where the page sits."""

    submissions: list[Submission]
    counts: dict[str, int]
    page: int
    pages: int

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def queue_page(page: int = 1, per_page: int | None = None) -> QueuePage:
    """Page `page` (from 1) of the pending submissions, oldest first, QUEUE_PAGE to a page. A
    page past the end shows the last one."""
    per_page = per_page or QUEUE_PAGE
    counts = queue_counts()
    pages = max(1, -(-counts["pending"] // per_page))
    page = min(max(1, page), pages)
    return QueuePage(pending(per_page, (page - 1) * per_page), counts, page, pages)
