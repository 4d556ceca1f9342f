"""Possible duplicates of a submitted listing: same NPI, same phone, or a similar name nearby.

Found when something is submitted and shown to the moderator; never used to drop anything.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from typing import Any

from sqlalchemy import select

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
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return False
    return ka == kb or difflib.SequenceMatcher(None, ka, kb).ratio() >= NAME_SIMILARITY


def find(
    data: dict[str, Any],
    place: dict[str, Any] | None,
    *,
    exclude_listing: int | None = None,
    exclude_submission: int | None = None,
) -> list[dict[str, Any]]:
    found: dict[tuple[str, int], list[str]] = {}

    def add(kind: str, ident: int, reason: str) -> None:
        if (kind == "listing" and ident == exclude_listing) or (
            kind == "submission" and ident == exclude_submission
        ):
            return
        reasons = found.setdefault((kind, ident), [])
        if reason not in reasons:
            reasons.append(reason)

    npi = data.get("npi")
    digits = phone_digits(data.get("phone"))
    if npi:
        for ident in db.session.scalars(select(Listing.id).where(Listing.npi == npi)):
            add("listing", ident, "same NPI")
    if digits:
        for ident in db.session.scalars(select(Listing.id).where(Listing.phone_digits == digits)):
            add("listing", ident, "same phone")
    lat, lon = (place or {}).get("lat"), (place or {}).get("lon")
    name = data.get("name") or ""
    if lat is not None and lon is not None and name:
        nearby = spatial.nearest(lat, lon, NEARBY_KM, limit=50).hits
        if nearby:
            rows = db.session.execute(
                select(Listing.id, Listing.name).where(Listing.id.in_([i for i, _ in nearby]))
            )
            for ident, other in rows:
                if similar_names(name, other):
                    add("listing", ident, "similar name within 1 km")
    pending = db.session.scalars(
        select(Submission).where(Submission.status == SubmissionStatus.PENDING)
    )
    for sub in pending:
        sent: dict[str, Any] = sub.data or {}
        if npi and sent.get("npi") == npi:
            add("submission", sub.id, "same NPI")
        if digits and phone_digits(sent.get("phone")) == digits:
            add("submission", sub.id, "same phone")
        op = sub.place or {}
        if (
            lat is not None
            and lon is not None
            and op.get("lat") is not None
            and geomath.distance_km(lat, lon, op["lat"], op["lon"]) <= NEARBY_KM
            and similar_names(name, sent.get("name") or "")
        ):
            add("submission", sub.id, "similar name within 1 km")
    return [
        {"type": kind, "id": ident, "reasons": reasons}
        for (kind, ident), reasons in sorted(found.items())
    ]
