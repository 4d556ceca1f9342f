"""What pages say about a listing, worked out from its stored fields: one home for each rule
(staleness, open or closed, the filler verdict and its tone, whether the pin is public, what a
distance is measured to, the address line, the slug), read by the ORM model, by search result
cards, by templates (which compare no values themselves) and by the SQL that filters on the
same rule."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Any

from .i18n import N_
from .vocabulary import Guidance, Kind, Precision, SRPolicy, Status, Tone

# "Call to confirm" after this long without a verification.
STALE_AFTER = timedelta(days=365)


def is_stale(verified_on: date | None, today: date | None = None) -> bool:
    return verified_on is None or (today or date.today()) - verified_on > STALE_AFTER


def fresh_since(today: date | None = None) -> date:
    """The earliest verification date that is not stale: SQL filters on `verified_on >=` it."""
    return (today or date.today()) - STALE_AFTER


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:60].rstrip("-") or "listing"


class ListingFacts:
    """What pages say about a listing, worked out from its fields. Shared by the ORM model and
    by the lighter cards that search results are built from (directory/cards.py), so a result
    and the listing's own page never disagree."""

    __slots__ = ()
    id: int
    kind: Kind
    name: str
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str
    lat: float | None
    status: Status
    verified_on: date | None
    geo_precision: Precision | None
    telehealth_only: bool
    makes_ldn: bool | None
    sr_policy: SRPolicy | None
    fillers_known: bool
    fillers: Any

    @property
    def slug(self) -> str:
        return slugify(self.name)

    @property
    def is_pharmacy(self) -> bool:
        return self.kind == Kind.PHARMACY

    @property
    def is_stale(self) -> bool:
        return is_stale(self.verified_on)

    @property
    def is_open(self) -> bool:
        return self.status == Status.OPEN

    @property
    def is_closed(self) -> bool:
        return self.status == Status.CLOSED

    @property
    def is_temporarily_closed(self) -> bool:
        return self.status == Status.TEMPORARILY_CLOSED

    @property
    def has_public_pin(self) -> bool:
        """Whether pages and the map show where it is: a telehealth-only prescriber's
        coordinates are where they are based, not a place to go, so they stay private."""
        return self.lat is not None and not self.telehealth_only

    @property
    def makes_ldn_tone(self) -> Tone:
        if self.makes_ldn is None:
            return Tone.UNKNOWN
        return Tone.GOOD if self.makes_ldn else Tone.BAD

    @property
    def may_make_slow_release(self) -> bool:
        """Any known policy but immediate-release only, or an unknown one: the page repeats
        the curated lists' advice against slow-release LDN."""
        return self.sr_policy is not None and self.sr_policy != SRPolicy.IR_ONLY

    @property
    def worst_filler_guidance(self) -> Guidance | None:
        """None when the fillers are unknown, so the page can say so rather than imply 'fine'."""
        if not self.fillers_known:
            return None
        order = [Guidance.FINE, Guidance.CAUTION, Guidance.ADVISED_AGAINST]
        return max((f.guidance for f in self.fillers), key=order.index, default=Guidance.FINE)

    @property
    def filler_tone(self) -> Tone:
        """The filler verdict's tone: the worst filler's, or unknown when nobody has said."""
        worst = self.worst_filler_guidance
        return Tone.UNKNOWN if worst is None else worst.tone

    @property
    def fillers_advised_against(self) -> list[Any]:
        return [f for f in self.fillers if f.guidance == Guidance.ADVISED_AGAINST]

    @property
    def pin_is_approximate_to(self) -> str | None:
        """What a distance to this listing is really measured to, when its pin is not its
        address ("0.0 mi" to a town centre looks exact); None when the pin is the address."""
        if self.geo_precision == Precision.POSTAL_CODE:
            return N_("ZIP code area")
        if self.geo_precision in (Precision.CITY, Precision.REGION):
            return N_("town centre")
        return None

    @property
    def address_line(self) -> str:
        region = self.region.removeprefix("US-") if self.region else None
        tail = " ".join(p for p in (region, self.postal_code) if p)
        parts = [p for p in (self.street, self.city, tail) if p]
        if self.country != "US":
            parts.append(self.country)
        return ", ".join(parts)
