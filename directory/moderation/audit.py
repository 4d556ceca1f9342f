"""The audit trail: every change to published data and every decision, written in the same
transaction as the change it records, so the history can never disagree with the data."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Select, select

from .. import dataversion
from ..csvcells import csv_safe
from ..extensions import db
from ..models import AuditEntry, Listing, User

CSV_COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "listing_id",
    "submission_id",
    "reason",
    "before",
    "after",
)


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
    public: bool = True,
) -> AuditEntry:
    """Add an entry in the current transaction. `public=False` for what changes nothing the
    public sees (a suggestion waiting for a moderator): cached pages stay valid, and on
    PostgreSQL concurrent submissions don't queue for the one data_version row's lock."""
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
    if public:
        # What was audited changed what someone may see: cached pages are stale from now on.
        dataversion.bump()
    return entry


def history(listing_id: int) -> list[AuditEntry]:
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.listing_id == listing_id)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        )
    )


def submission_history(submission_id: int) -> list[AuditEntry]:
    """What happened to one submission: sent, then decided (and by whom, on what)."""
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.submission_id == submission_id)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        )
    )


@dataclass(frozen=True)
class AuditFilters:
    """What an admin narrows the log to; None means any."""

    action: str | None = None
    actor: str | None = None
    listing_id: int | None = None
    since: date | None = None


def _query(filters: AuditFilters) -> Select[AuditEntry]:
    stmt = select(AuditEntry)
    if filters.action:
        stmt = stmt.where(AuditEntry.action == filters.action)
    if filters.actor:
        stmt = stmt.where(AuditEntry.actor_label == filters.actor)
    if filters.listing_id is not None:
        stmt = stmt.where(AuditEntry.listing_id == filters.listing_id)
    if filters.since is not None:
        stmt = stmt.where(AuditEntry.at >= datetime.combine(filters.since, time.min))
    return stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


@dataclass(frozen=True)
class AuditLog:
    entries: list[AuditEntry]
    actions: list[str]  # every action the log holds, for the filter's choices


def audit_log(filters: AuditFilters, limit: int = 100) -> AuditLog:
    """The newest `limit` entries that match, newest first."""
    entries = list(db.session.scalars(_query(filters).limit(limit)))
    actions = db.session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))
    return AuditLog(entries, list(actions))


def _json_cell(value: dict[str, Any] | None) -> str:
    return csv_safe(json.dumps(value, sort_keys=True) if value else "")


def _rows(entries: Iterable[AuditEntry]) -> Iterable[list[Any]]:
    yield list(CSV_COLUMNS)
    for e in entries:
        yield [
            e.id,
            e.at.isoformat(timespec="seconds"),
            csv_safe(e.actor_label),
            csv_safe(e.action),
            e.listing_id or "",
            e.submission_id or "",
            csv_safe(e.reason or ""),
            _json_cell(e.before),
            _json_cell(e.after),
        ]


def audit_csv(filters: AuditFilters) -> str:
    """Every matching entry as CSV, with formula-safe cells (a reason typed as =HYPERLINK(...)
    must stay text when an admin opens the file in a spreadsheet)."""
    out = io.StringIO()
    csv.writer(out).writerows(_rows(db.session.scalars(_query(filters))))
    return out.getvalue()
