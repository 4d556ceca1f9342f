"""Possible duplicates of a submitted listing: same NPI, same phone, or a similar name nearby.

Found when something is submitted and shown to the moderator; never used to drop anything.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Any

from sqlalchemy import Select, String, event, literal, or_, select, union_all

from . import geomath, spatial
from .extensions import db
from .listings import phone_digits
from .models import Listing, Submission, SubmissionStatus

NEARBY_KM = 1.0
NAME_SIMILARITY = 0.75
# Words every pharmacy shares say nothing about whether two names are the same place.
_COMMON = re.compile(
    r"\b(the|pharmacy|pharmacies|compounding|apothecary|rx|inc|llc|ltd|co|dr|md|do|np|sample)\b"
)


def name_key(name: str) -> str:
    # Accents folded ("Zoë" is "Zoe") and letters of every script kept: an ASCII-only key made
    # every Cyrillic, Greek or CJK name empty, so such names never matched anything.
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[\W_]+", " ", text)
    return " ".join(_COMMON.sub(" ", text).split())


def similar_names(a: str, b: str) -> bool:
    return similar_keys(name_key(a), name_key(b))


def similar_keys(ka: str | None, kb: str | None) -> bool:
    """Two name keys (name_key) are the same name, or close enough to be worth a look."""
    if not ka or not kb:
        return False
    if ka == kb:
        return True
    matcher = difflib.SequenceMatcher(None, ka, kb)
    # The quick ratios are upper bounds of ratio(): most pairs are told apart without it.
    return (
        matcher.real_quick_ratio() >= NAME_SIMILARITY
        and matcher.quick_ratio() >= NAME_SIMILARITY
        and matcher.ratio() >= NAME_SIMILARITY
    )


def submission_keys(data: dict[str, Any], place: dict[str, Any] | None) -> dict[str, Any]:
    """What find() asks about a submission, as stored in its own indexed columns."""
    npi = data.get("npi")
    lat: Any = (place or {}).get("lat")
    lon: Any = (place or {}).get("lon")
    located = isinstance(lat, int | float) and isinstance(lon, int | float)
    return {
        # An NPI is ten digits (the forms check it); anything else can never equal one.
        "npi": npi if isinstance(npi, str) and 0 < len(npi) <= 10 else None,
        "phone_digits": phone_digits(data.get("phone")) or None,
        "name_key": name_key(data.get("name") or "") or None,
        "lat": float(lat) if located else None,
        "lon": float(lon) if located else None,
    }


@event.listens_for(Submission, "before_insert")
@event.listens_for(Submission, "before_update")
def _store_keys(_mapper: Any, _connection: Any, sub: Submission) -> None:
    # On every write, whichever code wrote it (the public forms, the NPI registry's import,
    # tests), so the keys never disagree with the submission's data and place.
    for column, value in submission_keys(sub.data or {}, sub.place).items():
        setattr(sub, column, value)


_NEAR = "similar name within 1 km"


def _pending_part(reason: str) -> Select[Any]:
    # The columns every part of find()'s one read of the queue gives: id, why, and what the
    # nearby part needs to compare (the other parts' lat, lon and key go unused).
    stmt: Select[Any] = select(
        Submission.id,
        literal(reason, String()).label("reason"),
        Submission.lat,
        Submission.lon,
        Submission.name_key,
    )  # type: ignore[assignment]  # five columns, typed by each part's use
    return stmt


def _pending_near(lat: float, lon: float) -> Select[Any]:
    # A box a little larger than the circle (the exact distance is checked after), read
    # through ix_submissions_status_lat_lon as directory/spatial.py reads listings.
    box = geomath.box_around(lat, lon, NEARBY_KM * 1.01)
    across = box.west > box.east  # the box crosses the 180th meridian
    return _pending_part(_NEAR).where(
        Submission.status == SubmissionStatus.PENDING,
        Submission.lat.between(box.south, box.north),
        or_(Submission.lon >= box.west, Submission.lon <= box.east)
        if across
        else Submission.lon.between(box.west, box.east),
    )


def find(
    data: dict[str, Any],
    place: dict[str, Any] | None,
    *,
    exclude_listing: int | None = None,
    exclude_submission: int | None = None,
) -> list[dict[str, Any]]:
    """Listings and pending submissions that may be the same place: each by an index, so the
    cost does not grow with the queue."""
    found: dict[tuple[str, int], list[str]] = {}

    def add(kind: str, ident: int, reason: str) -> None:
        if (kind == "listing" and ident == exclude_listing) or (
            kind == "submission" and ident == exclude_submission
        ):
            return
        reasons = found.setdefault((kind, ident), [])
        if reason not in reasons:
            reasons.append(reason)

    keys = submission_keys(data, place)
    npi, digits, key = keys["npi"], keys["phone_digits"], keys["name_key"]
    lat, lon = keys["lat"], keys["lon"]
    pending = Submission.status == SubmissionStatus.PENDING
    if npi:
        for ident in db.session.scalars(select(Listing.id).where(Listing.npi == npi)):
            add("listing", ident, "same NPI")
    if digits:
        for ident in db.session.scalars(select(Listing.id).where(Listing.phone_digits == digits)):
            add("listing", ident, "same phone")
    if lat is not None and lon is not None and key:
        for ident, other in spatial.named_within(lat, lon, NEARBY_KM, limit=50):
            if similar_keys(key, name_key(other)):
                add("listing", ident, "similar name within 1 km")
    # Pending submissions, each reason added in the same order for one submission as listings'.
    # One statement (UNION ALL: each part still reads its own index), one round trip.
    parts: list[Select[Any]] = []
    if npi:
        parts.append(_pending_part("same NPI").where(Submission.npi == npi, pending))
    if digits:
        parts.append(_pending_part("same phone").where(Submission.phone_digits == digits, pending))
    if lat is not None and lon is not None and key:
        parts.append(_pending_near(lat, lon))
    by_sub: dict[int, set[str]] = {}
    queued: Any = db.session.execute(union_all(*parts)) if parts else ()
    for ident, reason, olat, olon, okey in queued:
        if reason != _NEAR:
            by_sub.setdefault(ident, set()).add(reason)
        elif (
            olat is not None
            and olon is not None
            and geomath.distance_km(lat, lon, olat, olon) <= NEARBY_KM
            and similar_keys(key, okey)
        ):
            by_sub.setdefault(ident, set()).add(_NEAR)
    for ident in sorted(by_sub):
        for reason in ("same NPI", "same phone", "similar name within 1 km"):
            if reason in by_sub[ident]:
                add("submission", ident, reason)
    return [
        {"type": kind, "id": ident, "reasons": reasons}
        for (kind, ident), reasons in sorted(found.items())
    ]
