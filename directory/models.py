"""The data model.

Published listings (pharmacies and prescribers) live in `listings`; what the public sends lives in
`submissions` until a moderator acts on it (directory/moderation/ is the only code that turns
one into the other). Vocabularies (fillers, dosage forms, conditions, US states) are tables loaded
from seeds/, so moderators and tests share one source of truth for codes and their guidance.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    event,
    false,
    inspect,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session, relationship
from sqlalchemy.orm.attributes import get_history
from werkzeug.security import check_password_hash

from .derived import RANK_CURATED, RANK_EPOCH
from .extensions import Base, db
from .facts import ListingFacts, slugify
from .vocabulary import (
    CallOutcome,
    FlagType,
    Guidance,
    Kind,
    Precision,
    Problem,
    RegionRole,
    Relation,
    Role,
    SRPolicy,
    Status,
    SubmissionStatus,
    SubmissionType,
    Term,
    VerifyMethod,
)

__all__ = [  # re-exported: models, their values and what is derived from them travel together
    "CallOutcome",
    "ListingFacts",
    "slugify",
    "RANK_CURATED",
    "RANK_EPOCH",
    "FlagType",
    "Guidance",
    "Kind",
    "Precision",
    "RegionRole",
    "Role",
    "SRPolicy",
    "Status",
    "SubmissionStatus",
    "SubmissionType",
    "VerifyMethod",
]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# db.Model is Base with Flask-SQLAlchemy's query and table-name conveniences; type checkers only
# see the dynamic attribute, so they are shown the declarative base it derives from.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


def _enum(cls: type[Term], length: int = 24) -> Any:
    # Stored as VARCHAR with the enum's values (not names), no native enum type, so adding a value
    # is a code change rather than an ALTER TYPE on PostgreSQL.
    return db.Enum(
        cls,
        native_enum=False,
        length=length,
        values_callable=lambda e: e.values(),
        validate_strings=True,
    )


# --- vocabularies -----------------------------------------------------------------------------


class Filler(Model):
    __tablename__ = "fillers"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    guidance: Mapped[Guidance] = mapped_column(_enum(Guidance))
    why: Mapped[str] = mapped_column(Text, default="")


class DosageForm(Model):
    __tablename__ = "dosage_forms"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))


class Condition(Model):
    __tablename__ = "conditions"
    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))


class Region(Model):
    """US states (code US-XX). Countries are ISO 3166-1 codes and need no table."""

    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))


listing_fillers = Table(
    "listing_fillers",
    db.metadata,
    Column("listing_id", ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True),
    Column("filler_code", ForeignKey("fillers.code"), primary_key=True),
)
listing_dosage_forms = Table(
    "listing_dosage_forms",
    db.metadata,
    Column("listing_id", ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True),
    Column("dosage_form_code", ForeignKey("dosage_forms.code"), primary_key=True),
    Index("ix_listing_dosage_forms_code", "dosage_form_code"),
)
listing_conditions = Table(
    "listing_conditions",
    db.metadata,
    Column("listing_id", ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True),
    Column("condition_code", ForeignKey("conditions.code"), primary_key=True),
    Index("ix_listing_conditions_code", "condition_code"),
)


# What the call list filters on (moderation/calls.py), carried in its indexes.
CALL_LIST_COLUMNS = ("status", "verified_on", "kind", "makes_ldn")


# --- listings ---------------------------------------------------------------------------------


class Listing(ListingFacts, Model):
    """A published pharmacy or prescriber. One table for both so search, the audit trail and
    the API share one id space; kind-specific columns are nullable."""

    __tablename__ = "listings"
    __table_args__ = (
        Index("ix_listings_lat_lon", "lat", "lon"),
        Index("ix_listings_npi", "npi"),
        Index("ix_listings_phone_digits", "phone_digits"),
        Index("ix_listings_verified_on", "verified_on"),
        # The call list's order, walked without sorting, with every column its filters read,
        # so a page and its count never visit the table (moderation/calls.py).
        Index("ix_listings_call_order", "confirmed_nearby", "id", *CALL_LIST_COLUMNS),
        Index(
            "ix_listings_call_order_region", "region", "confirmed_nearby", "id", *CALL_LIST_COLUMNS
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[Kind] = mapped_column(_enum(Kind, 12), index=True)
    name: Mapped[str] = mapped_column(String(200))
    street: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(80))  # US-XX, or a subdivision name abroad
    postal_code: Mapped[str | None] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2), default="US")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    geo_precision: Mapped[Precision | None] = mapped_column(_enum(Precision, 16))
    phone: Mapped[str | None] = mapped_column(String(40))
    # Digits only, for duplicate detection across "(206) 555-0100" and "+1 206 555 0100".
    phone_digits: Mapped[str | None] = mapped_column(String(20))
    website: Mapped[str | None] = mapped_column(String(300))
    email: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[Status] = mapped_column(_enum(Status, 20), default=Status.OPEN, index=True)
    verified_on: Mapped[date | None] = mapped_column(Date)  # latest Verification (derived.py)
    is_sample: Mapped[bool] = mapped_column(Boolean, default=False)
    seed_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    # Pharmacy
    makes_ldn: Mapped[bool | None] = mapped_column(Boolean)
    sr_policy: Mapped[SRPolicy | None] = mapped_column(_enum(SRPolicy, 16))
    fillers_known: Mapped[bool] = mapped_column(Boolean, default=False)
    price_notes: Mapped[str | None] = mapped_column(String(500))
    mail_order: Mapped[bool] = mapped_column(Boolean, default=False)

    # Prescriber
    credentials: Mapped[str | None] = mapped_column(String(60))
    specialty: Mapped[str | None] = mapped_column(String(120))
    practice: Mapped[str | None] = mapped_column(String(200))
    telehealth: Mapped[bool] = mapped_column(Boolean, default=False)
    telehealth_only: Mapped[bool] = mapped_column(Boolean, default=False)
    npi: Mapped[str | None] = mapped_column(String(10))
    accepting_new_patients: Mapped[bool | None] = mapped_column(Boolean)
    dosing_notes: Mapped[str | None] = mapped_column(String(1000))

    # True while a curated_list flag is on the listing: the search's "reliable" filter reads
    # this instead of probing reliability_flags for every candidate. Kept by a trigger
    # (derived.py), like phone_digits, verified_on and ListingRegion.rank.
    on_curated_list: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # True while a confirmed pharmacy (moderation/calls.py: is_confirmed_pharmacy) is within
    # 25 miles: the call list puts the listings without one first. Kept at every commit that
    # changes a listing or verification (moderation/nearby.py), rebuilt by refresh_nearby().
    confirmed_nearby: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    fillers: Mapped[list[Filler]] = relationship(
        secondary=listing_fillers, order_by=Filler.code, lazy="selectin"
    )
    dosage_forms: Mapped[list[DosageForm]] = relationship(
        secondary=listing_dosage_forms, order_by=DosageForm.code, lazy="selectin"
    )
    conditions: Mapped[list[Condition]] = relationship(
        secondary=listing_conditions, order_by=Condition.code, lazy="selectin"
    )
    regions: Mapped[list[ListingRegion]] = relationship(
        back_populates="listing", cascade="all, delete-orphan", lazy="selectin"
    )
    flags: Mapped[list[ReliabilityFlag]] = relationship(
        back_populates="listing",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="ReliabilityFlag.id",
    )
    verifications: Mapped[list[Verification]] = relationship(
        back_populates="listing",
        cascade="all, delete-orphan",
        order_by="Verification.verified_on.desc()",
    )

    def region_codes(self, role: RegionRole) -> list[str]:
        return sorted(r.code for r in self.regions if r.role == role)

    @property
    def ships_to(self) -> list[str]:
        return self.region_codes(RegionRole.SHIPS_TO)

    @property
    def licensed_in(self) -> list[str]:
        return self.region_codes(RegionRole.LICENSED_IN)

    def set_regions(self, role: RegionRole, codes: list[str]) -> None:
        keep = [r for r in self.regions if r.role != role]
        self.regions = keep + [ListingRegion(role=role, code=c) for c in sorted(set(codes))]

    def flags_of(self, flag_type: FlagType) -> list[ReliabilityFlag]:
        return [f for f in self.flags if f.type == flag_type]

    @property
    def reach_rank(self) -> int:
        """Order of the "also available" section: on a curated list first, then the most
        recently verified. Higher is better. The database stores it on the listing's region
        rows (derived.rank_sql); this reads the flags and the date the ORM holds, so tests can
        hold the two together."""
        curated = any(f.type == FlagType.CURATED_LIST for f in self.flags)
        days = self.verified_on.toordinal() - RANK_EPOCH if self.verified_on else 0
        return (RANK_CURATED if curated else 0) + max(days, 0)


class ListingRegion(Model):
    """A US state (US-XX) or a country (ISO2) a pharmacy ships to or a prescriber is licensed in."""

    __tablename__ = "listing_regions"
    # "Who reaches Alabama, best first": walking this index in order answers the "also
    # available" section without sorting every listing that ships there.
    __table_args__ = (Index("ix_listing_regions_reach_rank", "role", "code", "rank", "listing_id"),)
    listing_id: Mapped[int] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[RegionRole] = mapped_column(_enum(RegionRole, 12), primary_key=True)
    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    # A copy of the listing's reach_rank, kept by a trigger (derived.py).
    rank: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    listing: Mapped[Listing] = relationship(back_populates="regions")


class ReliabilityFlag(Model):
    """A claim about a listing with who makes it and as of when: never a permanent truth."""

    __tablename__ = "reliability_flags"
    __table_args__ = (Index("ix_flags_listing_type", "listing_id", "type"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    type: Mapped[FlagType] = mapped_column(_enum(FlagType, 20))
    label: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(200))
    as_of: Mapped[date] = mapped_column(Date)
    url: Mapped[str | None] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    listing: Mapped[Listing] = relationship(back_populates="flags")


class Verification(Model):
    """A moderator (or the seed data) confirmed the listing's details: when, how, by whom."""

    __tablename__ = "verifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), index=True
    )
    verified_on: Mapped[date] = mapped_column(Date)
    method: Mapped[VerifyMethod] = mapped_column(_enum(VerifyMethod, 12))
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    listing: Mapped[Listing] = relationship(back_populates="verifications")
    moderator: Mapped[User | None] = relationship()


# --- people and process -----------------------------------------------------------------------


class User(UserMixin, Model):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(_enum(Role, 12), default=Role.MODERATOR)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped on password change or deactivation; part of the session so old sessions stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)

    def set_password(self, password: str) -> None:
        # The rule's home imports this module, so it is looked up when first needed.
        from .moderation.accounts import check_credentials, hash_password

        check_credentials(password=password)  # a ValueError when the rules refuse it
        self.password_hash = hash_password(password)
        self.session_version = (self.session_version or 0) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Submission(Model):
    """What a member of the public sent: a new listing or a correction / problem report.

    Stored whole and never shown publicly. `data` holds the typed values as submitted (the same
    keys as Listing's public fields); `place` the geocode result at submit time.
    """

    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_status_created", "status", "created_at"),
        # Each lookup of a submission asks for pending ones, so status is in every index: with
        # it, SQLite (which has no statistics unless ANALYZE runs) picks the right index by
        # itself; without it, it picked the status-first box index for every lookup, reading
        # every pending row (10k pending: 50 ms a submission instead of 0.1).
        Index("ix_submissions_content_hash", "content_hash", "status"),
        # Duplicate detection's lookups (directory/duplicates.py): by NPI, by phone, and the
        # pending ones inside a box around a point.
        Index("ix_submissions_npi", "npi", "status"),
        Index("ix_submissions_phone_digits", "phone_digits", "status"),
        Index("ix_submissions_status_lat_lon", "status", "lat", "lon"),
        Index("ix_submissions_client_status", "client_hash", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    type: Mapped[SubmissionType] = mapped_column(_enum(SubmissionType, 12))
    listing_kind: Mapped[Kind] = mapped_column(_enum(Kind, 12))
    listing_id: Mapped[int | None] = mapped_column(ForeignKey("listings.id"), index=True)
    problem: Mapped[str | None] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    submitter_relation: Mapped[str | None] = mapped_column(String(40))
    submitter_email: Mapped[str | None] = mapped_column(String(200))  # private: moderators only
    place: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    geocode_error: Mapped[str | None] = mapped_column(String(300))
    duplicates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    # A keyed hash (HMAC with SECRET_KEY) of the sender's address, never the address itself:
    # enough to count one sender's pending submissions, useless to anyone reading the table.
    client_hash: Mapped[str | None] = mapped_column(String(64))
    # Copies of what duplicate detection compares, from `data` and `place`, written by
    # directory/duplicates.py whenever a submission is written, so it can ask indexed
    # questions instead of reading every pending submission's JSON.
    npi: Mapped[str | None] = mapped_column(String(10))
    phone_digits: Mapped[str | None] = mapped_column(String(40))  # the form allows 40 characters
    name_key: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    status: Mapped[SubmissionStatus] = mapped_column(
        _enum(SubmissionStatus, 12), default=SubmissionStatus.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str | None] = mapped_column(Text)

    listing: Mapped[Listing | None] = relationship()
    handled_by: Mapped[User | None] = relationship()

    @property
    def problem_term(self) -> Problem | None:
        return Problem.parse(self.problem) if self.problem else None

    @property
    def relation_term(self) -> Relation | None:
        return Relation.parse(self.submitter_relation) if self.submitter_relation else None


# What each audit action says in the log, its filter and the histories.
ACTION_WORDS = {
    "submitted": "sent by the public",
    "approve_new": "published a new listing",
    "approve_correction": "applied a correction",
    "resolve_close": "closed the listing on a problem report",
    "resolve_not_ldn": "marked as not making LDN on a problem report",
    "reject": "rejected a submission",
    "merge": "merged a submission into the listing",
    "verify": "checked the details",
    "flag_add": "added a reliability flag",
    "flag_remove": "removed a reliability flag",
    "status": "changed open or closed",
    "pin": "moved the map pin",
    "seed": "loaded from the sample data",
}


class AuditEntry(Model):
    """Append-only record of every change to published data and every moderation decision."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_listing", "listing_id", "at"),
        Index("ix_audit_at", "at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(80))  # kept even if the account goes
    action: Mapped[str] = mapped_column(String(40))
    listing_id: Mapped[int | None] = mapped_column(ForeignKey("listings.id"))
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id"))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)

    # Read only, for the reference the log and the histories show.
    submission: Mapped[Submission | None] = relationship(viewonly=True)

    @staticmethod
    def words(action: str) -> str:
        """An action as the log's table, its filter and a listing's history all show it."""
        return ACTION_WORDS.get(action) or action.replace("_", " ")

    @property
    def action_words(self) -> str:
        return self.words(self.action)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _audit_is_append_only(_mapper: object, _connection: object, _target: object) -> None:
    raise RuntimeError("The audit log is append-only.")


class ListingSource(Model):
    """Where a listing's data came from outside the public form: a registry row or a curated
    list's entry, by that source's own key. Imports find their listing by it (a re-import
    updates instead of duplicating), keep the values they last wrote (so a change in the source
    is told apart from a moderator's edit) and show provenance ("In the NPI registry as a
    compounding pharmacy, file of 2026-11-09")."""

    __tablename__ = "listing_sources"
    __table_args__ = (
        db.UniqueConstraint("source", "source_id", name="uq_listing_sources_key"),
        Index("ix_listing_sources_listing", "listing_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(40))  # "nppes", or a curated list's short name
    source_id: Mapped[str] = mapped_column(String(80))  # the NPI, or the list's own id
    file: Mapped[str | None] = mapped_column(String(200))  # the file last imported from
    as_of: Mapped[date | None] = mapped_column(Date)  # the date of that file
    # The source's values as last imported (name, address, phone, ...): what the listing was
    # given, to compare the next file with.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deactivated_on: Mapped[date | None] = mapped_column(Date)  # gone from the source
    listing: Mapped[Listing] = relationship()


class CallClaim(Model):
    """A volunteer is calling this listing: others see who, until `expires_at`. One row per
    listing (the primary key), taken by an atomic insert or conditional update, so two
    volunteers racing for one listing can't both hold it."""

    __tablename__ = "call_claims"
    listing_id: Mapped[int] = mapped_column(
        ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True
    )
    moderator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    moderator: Mapped[User] = relationship()


class CallAttempt(Model):
    """One call and how it ended. Moderators only: "no answer" never shows to patients."""

    __tablename__ = "call_attempts"
    __table_args__ = (
        Index("ix_call_attempts_listing", "listing_id", "at"),
        Index("ix_call_attempts_outcome_at", "outcome", "at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    listing_id: Mapped[int] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"))
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[CallOutcome] = mapped_column(_enum(CallOutcome, 16))
    note: Mapped[str | None] = mapped_column(String(500))
    moderator: Mapped[User | None] = relationship()


class DataVersion(Model):
    """One row: a number that every change to public data raises (directory/dataversion.py).
    HTTP caches validate against it, so it lives in the database all app servers share."""

    __tablename__ = "data_version"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class GeocodeCacheEntry(Model):
    """Answers from an online geocoder, kept so we ask each question once (hits and misses)."""

    __tablename__ = "geocode_cache"
    __table_args__ = (db.UniqueConstraint("provider", "query", name="uq_geocode_cache"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    query: Mapped[str] = mapped_column(String(300))
    result: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --- named queries ----------------------------------------------------------------------------


def public_listing(listing_id: int) -> Listing | None:
    """A listing as the public may see it: closed listings keep their page (people bookmark
    them) but say so; there is nothing unpublished in this table to hide."""
    return db.session.get(Listing, listing_id)


def vocabulary_rows(
    model: type[Filler] | type[DosageForm] | type[Condition] | type[Region],
) -> list:
    return list(db.session.scalars(select(model).order_by(model.name)))


# --- copies the database keeps ----------------------------------------------------------------

# Written by triggers (derived.py), never by Python: after a flush that could have changed them,
# the session forgets the values it holds, and the next read loads what the database wrote.
DERIVED_ON_LISTING = ("on_curated_list", "verified_on", "phone_digits")
_STALE = "derived_stale_listing_ids"


def _listing_key(listing_id: int) -> tuple:
    return inspect(Listing).identity_key_from_primary_key((listing_id,))


@event.listens_for(Session, "after_flush")
def _note_listings_with_derived_changes(session: Session, _context: object) -> None:
    stale: set[int] = session.info.setdefault(_STALE, set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Listing):
            stale.add(obj.id)
        elif isinstance(obj, ReliabilityFlag | Verification | ListingRegion):
            # The listing it belongs to now, and the one it left if it was moved.
            moved_from = get_history(obj, "listing_id").deleted or ()
            stale.update(i for i in (obj.listing_id, *moved_from) if i is not None)


@event.listens_for(Session, "after_flush_postexec")
def _forget_derived_values(session: Session, _context: object) -> None:
    for listing_id in session.info.pop(_STALE, set()):
        listing = session.identity_map.get(_listing_key(listing_id))
        if not isinstance(listing, Listing):
            continue
        session.expire(listing, DERIVED_ON_LISTING)
        if "regions" in listing.__dict__:  # loaded: don't load it just to expire it
            for region in listing.regions:
                session.expire(region, ["rank"])


@event.listens_for(Listing.flags, "append")
@event.listens_for(Listing.flags, "remove")
@event.listens_for(Listing.verifications, "append")
@event.listens_for(Listing.verifications, "remove")
def _forget_before_the_flush(listing: Listing, *_args: object) -> None:
    """A flag or verification added to a loaded listing: reading on_curated_list or
    verified_on next flushes it and loads the value the trigger wrote."""
    session = object_session(listing)
    if session is not None and listing in session and not inspect(listing).pending:
        session.expire(listing, ["on_curated_list", "verified_on"])
