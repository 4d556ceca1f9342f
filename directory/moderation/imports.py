"""Applying the NPI registry's file (directory/nppes.py reads it) to the published listings.

An import is a moderation action by a named operator: every change it makes has an audit
entry naming the file. What it may change is narrow. A pharmacy new to the directory is
published as "not yet confirmed that it makes LDN". For a pharmacy it listed before, the
registry's fields (name, address, phone) are updated only while the listing still holds what
the last import gave it (ListingSource.data); once a moderator has edited them, the registry's
change waits in the queue as a correction. LDN facts (makes LDN, slow-release, fillers, flags)
are never touched. A deactivated NPI closes a listing nobody has confirmed, and puts a
confirmed one in the queue as a problem report.

Work is committed in batches, each one transaction: a run that is stopped leaves whole batches
behind, and running it again carries on (what is done is then unchanged).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import or_, select, update

from .. import nppes
from ..db import writing
from ..extensions import db
from ..forms.listing import ListingRules
from ..geocoding.offline import get_offline
from ..listings import apply_data, phone_digits, to_data
from ..models import (
    Kind,
    Listing,
    ListingSource,
    Status,
    Submission,
    SubmissionType,
    utcnow,
)
from ..vocabulary import Precision, Problem, SRPolicy
from .audit import record
from .bulk import update_listing
from .submissions import _reference, content_hash

OPERATOR = "nppes-import"
REGISTRY_FIELDS = ("name", "street", "city", "region", "postal_code", "country", "phone")
PIN_FIELDS = ("lat", "lon", "geo_precision")
# What ListingSource.data holds for this registry: the registry's fields and the pin placed
# from them, as last given to the listing.
SOURCE_FIELDS = REGISTRY_FIELDS + PIN_FIELDS
# What a new pharmacy from the registry is published with besides the registry's fields:
# nothing is known about its LDN yet.
NEW_PHARMACY: dict[str, Any] = {
    "status": Status.OPEN.value,
    "makes_ldn": None,
    "sr_policy": SRPolicy.UNKNOWN.value,
    "fillers": None,
    "dosage_forms": [],
    "mail_order": False,
    "ships_to": [],
    "website": None,
    "email": None,
    "price_notes": None,
}
EXAMPLES_KEPT = 10  # line numbers kept per skip reason: the report stays small on any file
CHANGES_KEPT = 1000  # changes kept for --dry-run's list
_PIN_CACHE_SIZE = 50_000
REFRESH_BATCH = 2000

SKIP_NOT_PHARMACY = "not an organization with the compounding-pharmacy taxonomy"
SKIP_DEACTIVATED = "deactivated in the registry and not listed here"
SKIP_STATE = "outside the chosen states"
SKIP_MALFORMED = "malformed row"
SKIP_REACTIVATED = "reactivated in the registry after the listing was closed: left to moderators"
SKIP_NO_LONGER = "no longer a compounding pharmacy in the registry: listing left as it is"
SKIP_REFUSED = "refused by the listing rules"
SKIP_REPEATED = "the same NPI again later in the file"


@dataclass
class Skipped:
    count: int = 0
    examples: list[str] = field(default_factory=list)  # "line 12" or "line 12: why"


@dataclass
class Report:
    file: str
    file_date: date
    dry_run: bool
    rows: int = 0
    found: int = 0  # compounding pharmacies in the file (in any state)
    new: int = 0
    linked: int = 0  # already listed here (same phone or NPI): the registry entry attached
    updated: int = 0
    queued: int = 0  # registry changes to moderator-edited listings, now corrections
    closed: int = 0
    problems: int = 0  # confirmed listings deactivated in the registry: problem reports
    unchanged: int = 0
    skipped: dict[str, Skipped] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # one line per change, the first ones
    changes_total: int = 0

    def skip(self, reason: str, line: int, detail: str = "") -> None:
        entry = self.skipped.setdefault(reason, Skipped())
        entry.count += 1
        if len(entry.examples) < EXAMPLES_KEPT:
            entry.examples.append(f"line {line}: {detail}" if detail else f"line {line}")

    def change(self, text: str) -> None:
        self.changes_total += 1
        if len(self.changes) < CHANGES_KEPT:
            self.changes.append(text)

    @property
    def skipped_total(self) -> int:
        return sum(s.count for s in self.skipped.values())

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        return (
            f"{self.rows} rows read, {self.found} compounding pharmacies: "
            f"{verb}new {self.new}, linked {self.linked}, updated {self.updated}, "
            f"queued {self.queued + self.problems}"
            f" ({self.queued} corrections, {self.problems} problem reports), "
            f"closed {self.closed}, unchanged {self.unchanged}, skipped {self.skipped_total}."
        )


@dataclass
class Held:
    """A listing this registry gave the directory, as the import needs it."""

    source_id: int
    listing_id: int
    data: dict[str, Any]
    as_of: date | None
    deactivated_on: date | None
    makes_ldn: bool | None
    status: Status
    region: str | None


def held_listings() -> dict[str, Held]:
    """NPI -> the listing it gave: a few tens of thousands at most, read once per run."""
    rows = db.session.execute(
        select(
            ListingSource.source_id,
            ListingSource.id,
            ListingSource.listing_id,
            ListingSource.data,
            ListingSource.as_of,
            ListingSource.deactivated_on,
            Listing.makes_ldn,
            Listing.status,
            Listing.region,
        )
        .join(Listing, Listing.id == ListingSource.listing_id)
        .where(ListingSource.source == nppes.SOURCE)
    )
    return {npi: Held(*rest) for npi, *rest in rows}


@dataclass
class _Step:
    row: nppes.RegistryRow
    values: dict[str, Any]  # registry fields and pin, as ListingSource.data keeps them
    held: Held | None = None


class RegistryImport:
    """One run over one file: feed it what nppes.scan() yields, then finish()."""

    def __init__(
        self,
        file: str,
        file_date: date,
        *,
        operator: str = OPERATOR,
        states: Iterable[str] = (),
        dry_run: bool = False,
        batch_size: int = 500,
    ) -> None:
        self.operator = operator
        self.states = frozenset(s.upper() for s in states)
        self.dry_run = dry_run
        self.batch_size = batch_size
        self.report = Report(file, file_date, dry_run)
        self.reason = f"NPPES file {file} of {file_date.isoformat()}"
        self.rules = ListingRules()
        self.held = held_listings()
        db.session.rollback()  # the read above must not hold a transaction open between batches
        self.seen: set[str] = set()
        self._batch: list[_Step] = []
        self._refresh: list[int] = []  # sources seen unchanged in a file of another date
        self._pins: dict[tuple[Any, ...], dict[str, Any]] = {}

    @property
    def held_npis(self) -> set[bytes]:
        return {npi.encode() for npi in self.held}

    # --- deciding, row by row (no writes) -----------------------------------------------------

    def _in_states(self, *states: str | None) -> bool:
        if not self.states:
            return True
        return any(s and s.upper().removeprefix("US-") in self.states for s in states)

    def _pin(self, values: dict[str, Any]) -> dict[str, Any]:
        postal_code, city, region = values["postal_code"], values["city"], values["region"]
        country = values["country"] or "US"
        key = (postal_code, city, region, country)
        pin = self._pins.get(key)
        if pin is None:
            place = get_offline().address(None, city, region, postal_code, country)
            pin = {
                "lat": place.lat if place else None,
                "lon": place.lon if place else None,
                "geo_precision": place.precision if place else None,
            }
            if len(self._pins) >= _PIN_CACHE_SIZE:
                self._pins.clear()
            self._pins[key] = pin
        return pin

    def feed(self, item: nppes.RegistryRow | nppes.Malformed) -> None:
        if isinstance(item, nppes.Malformed):
            self.report.skip(SKIP_MALFORMED, item.line, item.reason)
            return
        row = item
        if row.compounding:
            self.report.found += 1
        if row.npi in self.seen:
            self.report.skip(SKIP_REPEATED, row.line)
            return
        self.seen.add(row.npi)
        held = self.held.get(row.npi)
        if held is None:
            self._plan_new(row)
        else:
            self._plan_held(row, held)
        # Provenance dates are refreshed in batches too: one UPDATE of every unchanged pharmacy
        # in the country would bind more ids than a statement takes.
        if len(self._batch) >= self.batch_size or len(self._refresh) >= REFRESH_BATCH:
            self._flush()

    def _plan_new(self, row: nppes.RegistryRow) -> None:
        if not row.compounding:
            self.report.skip(SKIP_NOT_PHARMACY, row.line)
        elif row.deactivated_on:
            self.report.skip(SKIP_DEACTIVATED, row.line)
        elif not self._in_states(row.state):
            self.report.skip(SKIP_STATE, row.line)
        else:
            values = {**row.values, **self._pin(row.values)}
            errors = self.rules.errors(Kind.PHARMACY, {**NEW_PHARMACY, **values})
            if errors:
                self._refused(row, errors)
            else:
                self._batch.append(_Step(row, values))

    def _refused(self, row: nppes.RegistryRow, errors: dict[str, list[str]]) -> None:
        detail = "; ".join(f"{key}: {' '.join(msgs)}" for key, msgs in sorted(errors.items()))
        self.report.skip(SKIP_REFUSED, row.line, f"NPI {row.npi}: {detail}")

    def _plan_held(self, row: nppes.RegistryRow, held: Held) -> None:
        if not self._in_states(held.region, row.state):
            self.report.skip(SKIP_STATE, row.line)
            return
        if row.deactivated_on:
            if held.deactivated_on is not None or held.status == Status.CLOSED:
                self.report.unchanged += 1
            else:
                self._batch.append(_Step(row, {}, held))
            return
        if held.deactivated_on is not None:
            self.report.skip(SKIP_REACTIVATED, row.line, f"NPI {row.npi}")
            return
        if not row.compounding:
            self.report.skip(SKIP_NO_LONGER, row.line, f"NPI {row.npi}")
            return
        address = ("street", "city", "region", "postal_code", "country")
        if all(row.values[f] == held.data.get(f) for f in address):
            pin = {f: held.data.get(f) for f in PIN_FIELDS}  # same address: same pin
        else:
            pin = self._pin(row.values)
        values = {**row.values, **pin}
        if values == held.data:
            self.report.unchanged += 1
            if held.as_of != self.report.file_date:
                self._refresh.append(held.source_id)
            return
        self._batch.append(_Step(row, values, held))

    # --- writing, a batch at a time ------------------------------------------------------------

    def finish(self) -> Report:
        self._flush()
        return self.report

    def _flush(self) -> None:
        if not (self._batch or self._refresh):
            return
        if self.dry_run:
            self._apply()
            db.session.rollback()
        else:
            with writing():
                self._apply()
        self._batch.clear()
        self._refresh.clear()

    def _apply(self) -> None:
        new = [s for s in self._batch if s.held is None]
        listed = self._already_listed(new)
        self._link([(s, listed[s.row.npi]) for s in new if s.row.npi in listed])
        self._publish([s for s in new if s.row.npi not in listed])
        for step in self._batch:
            if step.held is not None:
                self._change(step, step.held)
        if self._refresh and not self.dry_run:
            db.session.execute(
                update(ListingSource)
                .where(ListingSource.id.in_(self._refresh))
                .values(**self._seen_now())
                .execution_options(synchronize_session=False)
            )

    def _seen_now(self) -> dict[str, Any]:
        return {
            "file": self.report.file[:200],
            "as_of": self.report.file_date,
            "last_seen_at": utcnow(),
        }

    def _already_listed(self, steps: list[_Step]) -> dict[str, int]:
        """NPI -> a pharmacy the directory lists already with this phone number or NPI (from
        a person's suggestion or a curated list): the registry entry joins that listing
        rather than publishing an unconfirmed twin of it next to it."""
        if not steps:
            return {}
        by_phone = {phone_digits(s.values["phone"]): s.row.npi for s in steps}
        by_phone.pop(None, None)
        npis = [s.row.npi for s in steps]
        from_registry = select(ListingSource.listing_id).where(ListingSource.source == nppes.SOURCE)
        rows = db.session.execute(
            select(Listing.id, Listing.phone_digits, Listing.npi)
            .where(
                Listing.kind == Kind.PHARMACY,
                Listing.is_sample.is_(False),  # made-up numbers: no real pharmacy's twin
                or_(Listing.phone_digits.in_(list(by_phone)), Listing.npi.in_(npis)),
                Listing.id.not_in(from_registry),
            )
            .order_by(Listing.id)
        )
        found: dict[str, int] = {}
        for listing_id, digits, npi in rows:
            for key in (npi if npi in npis else None, by_phone.get(digits)):
                if key is not None:
                    found.setdefault(key, listing_id)
        return found

    def _link(self, pairs: list[tuple[_Step, int]]) -> None:
        for step, listing_id in pairs:
            self.report.linked += 1
            self.report.change(f"link NPI {step.row.npi} to listing {listing_id}")
            if self.dry_run:
                continue
            listing = db.session.get(Listing, listing_id)
            if listing is None:
                continue
            before = {"npi": listing.npi}
            if not listing.npi:
                listing.npi = step.row.npi
            source = self._source(listing, step)
            record(
                "import_link",
                actor_label=self.operator,
                listing=listing,
                before=before,
                after={"npi": step.row.npi, "registry": step.values},
                reason=f"{self.reason}: the same pharmacy (phone or NPI); its listing is kept "
                "as moderators left it.",
            )
            db.session.flush()
            self.held[step.row.npi] = Held(
                source.id,
                listing.id,
                step.values,
                source.as_of,
                None,
                listing.makes_ldn,
                listing.status,
                listing.region,
            )

    def _source(self, listing: Listing, step: _Step) -> ListingSource:
        source = ListingSource(
            listing_id=listing.id,
            source=nppes.SOURCE,
            source_id=step.row.npi,
            data=step.values,
            **self._seen_now(),
        )
        db.session.add(source)
        return source

    def _publish(self, steps: list[_Step]) -> None:
        for step in steps:
            self.report.new += 1
            self.report.change(f"add NPI {step.row.npi}, {step.values['name']}")
        if self.dry_run or not steps:
            return
        listings = []
        for step in steps:
            listing = Listing(kind=Kind.PHARMACY, npi=step.row.npi)
            apply_data(listing, {**NEW_PHARMACY, **step.values})
            db.session.add(listing)
            listings.append(listing)
        db.session.flush()  # one round of inserts for the batch, and their ids
        sources = []
        for step, listing in zip(steps, listings, strict=True):
            record(
                "import_new",
                actor_label=self.operator,
                listing=listing,
                after=to_data(listing),
                reason=self.reason,
            )
            sources.append(self._source(listing, step))
        db.session.flush()
        for step, source in zip(steps, sources, strict=True):
            self.held[step.row.npi] = Held(
                source.id,
                source.listing_id,
                step.values,
                source.as_of,
                None,
                None,
                Status.OPEN,
                None,
            )

    def _change(self, step: _Step, held: Held) -> None:
        listing = db.session.get(Listing, held.listing_id)
        source = db.session.get(ListingSource, held.source_id)
        if listing is None or source is None:  # removed since the run began
            return
        if step.row.deactivated_on:
            self._deactivated(step.row, listing, source)
            return
        current = {f: to_data(listing).get(f) for f in SOURCE_FIELDS}
        if current != held.data:
            self._queue_correction(step, listing, source, current)
            return
        changed = {f: v for f, v in step.values.items() if current.get(f) != v}
        errors = self.rules.errors(Kind.PHARMACY, {**to_data(listing), **changed})
        if errors:
            self._refused(step.row, errors)
            return
        self.report.updated += 1
        self.report.change(f"update NPI {step.row.npi}: {', '.join(sorted(changed))}")
        if self.dry_run:
            return
        update_listing(listing, changed, actor=self.operator, reason=self.reason)
        self._remember(source, step.values)

    def _remember(self, source: ListingSource, values: dict[str, Any]) -> None:
        source.data = values
        for name, value in self._seen_now().items():
            setattr(source, name, value)
        self.held[source.source_id].data = values

    def _queue_correction(
        self, step: _Step, listing: Listing, source: ListingSource, current: dict[str, Any]
    ) -> None:
        """A moderator has edited the listing since the last import: the registry's new values
        go to the queue, for a moderator to take or leave."""
        proposed = {
            f: v
            for f, v in step.values.items()
            if f in REGISTRY_FIELDS and v != source.data.get(f) and v != current.get(f)
        }
        if not proposed:  # the registry now agrees with the moderator, or changed only the pin
            self.report.unchanged += 1
            if not self.dry_run:
                self._remember(source, step.values)
            return
        self.report.queued += 1
        self.report.change(
            f"queue a correction of NPI {step.row.npi}: {', '.join(sorted(proposed))}"
        )
        if self.dry_run:
            return
        pin = {f: step.values.get(f) for f in PIN_FIELDS}
        place = (
            {
                "lat": pin["lat"],
                "lon": pin["lon"],
                "precision": pin["geo_precision"] or Precision.POSTAL_CODE.value,
                "label": ", ".join(str(step.values[f] or "") for f in ("city", "postal_code")),
            }
            if pin["lat"] is not None
            else None
        )
        note = (
            f"The NPI registry has new details for this pharmacy ({self.reason}). A moderator "
            "has edited the listing since the last import, so they were not applied."
        )
        self._submit(listing, proposed, note, Problem.WRONG_DETAILS, place, "import_queued")
        self._remember(source, step.values)

    def _deactivated(self, row: nppes.RegistryRow, listing: Listing, source: ListingSource) -> None:
        when = row.deactivated_on
        assert when is not None
        if listing.makes_ldn is True:
            self.report.problems += 1
            self.report.change(
                f"report NPI {row.npi} as deactivated on {when} (confirmed: not closed)"
            )
            if not self.dry_run:
                note = (
                    f"Deactivated in the NPI registry on {when.isoformat()} ({self.reason}). "
                    "This pharmacy is confirmed to make LDN, so it was not closed: please check."
                )
                self._submit(listing, {}, note, Problem.CLOSED, None, "import_problem_report")
        elif listing.status != Status.CLOSED:
            self.report.closed += 1
            self.report.change(f"close NPI {row.npi}, deactivated on {when}")
            if not self.dry_run:
                before = {"status": listing.status.value}
                apply_data(listing, {"status": Status.CLOSED.value})
                record(
                    "import_close",
                    actor_label=self.operator,
                    listing=listing,
                    before=before,
                    after={"status": Status.CLOSED.value},
                    reason=f"Deactivated in the NPI registry on {when.isoformat()} "
                    f"({self.reason}).",
                )
        else:
            self.report.unchanged += 1
        if not self.dry_run:
            source.deactivated_on = when
            for name, value in self._seen_now().items():
                setattr(source, name, value)
            self.held[row.npi].deactivated_on = when

    def _submit(
        self,
        listing: Listing,
        data: dict[str, Any],
        note: str,
        problem: Problem,
        place: dict[str, Any] | None,
        action: str,
    ) -> None:
        sub = Submission(
            reference=_reference(),
            type=SubmissionType.CORRECTION,
            listing_kind=listing.kind,
            listing_id=listing.id,
            problem=problem.value,
            data=data,
            note=note,
            place=place,
            duplicates=[],
            content_hash=content_hash(
                {"listing": listing.id, "data": data, "note": note, "source": nppes.SOURCE}
            ),
        )
        db.session.add(sub)
        db.session.flush()
        record(
            action,
            actor_label=self.operator,
            listing=listing,
            submission_id=sub.id,
            after=data or None,
            reason=note,
        )
