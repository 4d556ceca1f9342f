"""What pages say about a listing, worked out from its stored fields: one home for each rule
(staleness, the filler verdict, what a distance is measured to, the address line, the slug),
read by the ORM model, by search result cards and by the SQL that filters on the same rule."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Any

from .vocabulary import Guidance, Kind, Precision

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
    kind: Kind
    name: str
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str
    verified_on: date | None
    geo_precision: Precision | None
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
    def worst_filler_guidance(self) -> Guidance | None:
        """None when the fillers are unknown, so the page can say so rather than imply 'fine'."""
        if not self.fillers_known:
            return None
        order = [Guidance.FINE, Guidance.CAUTION, Guidance.ADVISED_AGAINST]
        return max((f.guidance for f in self.fillers), key=order.index, default=Guidance.FINE)

    @property
    def fillers_advised_against(self) -> list[Any]:
        return [f for f in self.fillers if f.guidance == Guidance.ADVISED_AGAINST]

    @property
    def pin_is_approximate_to(self) -> str | None:
        """What a distance to this listing is really measured to, when its pin is not its
        address ("0.0 mi" to a town centre looks exact); None when the pin is the address."""
        if self.geo_precision == Precision.POSTAL_CODE:
            return "ZIP code area"
        if self.geo_precision in (Precision.CITY, Precision.REGION):
            return "town centre"
        return None

    @property
    def address_line(self) -> str:
        region = self.region.removeprefix("US-") if self.region else None
        tail = " ".join(p for p in (region, self.postal_code) if p)
        parts = [p for p in (self.street, self.city, tail) if p]
        if self.country != "US":
            parts.append(self.country)
        return ", ".join(parts)
