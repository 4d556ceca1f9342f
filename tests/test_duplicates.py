"""Duplicate detection by indexes: the same answers as comparing against every pending
submission (the way it was done before), at 10,000 pending, through the indexes."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from sqlalchemy import event, insert, select, text

from directory import duplicates, geomath
from directory.extensions import db
from directory.listings import phone_digits
from directory.models import Kind, Listing, Submission, SubmissionStatus, SubmissionType
from directory.moderation.submissions import content_hash
from tests import builders

WORDS = ["Magnolia", "Cedar", "Oak", "Pine", "Willow", "Birch", "Maple", "Aspen", "Elm", "Ivy"]
SUFFIXES = ["Compounding", "Pharmacy", "Apothecary", "Rx", "Compounding LLC", "Drugs"]
# 40 clusters across the US: each box around a point holds a few hundred submissions.
CENTRES = [(30.0 + (i % 8) * 2.1, -120.0 + (i // 8) * 9.0) for i in range(40)]


def _random_data(rng: random.Random, n: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
    name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(SUFFIXES)}"
    data: dict[str, Any] = {
        "name": name,
        "city": "Somewhere",
        "region": "US-AL",
        "country": "US",
        # A small pool of phones and NPIs, so the same ones come up again.
        "phone": f"(205) 555-{rng.randrange(3000):04d}" if rng.random() < 0.8 else None,
        "npi": f"{1000000000 + rng.randrange(2000)}" if rng.random() < 0.3 else None,
        "note": n,
    }
    if rng.random() < 0.1:
        return data, None  # not geocoded
    lat, lon = rng.choice(CENTRES)
    # Within about 3 km of a centre: many pairs are inside 1 km, many just outside.
    return data, {"lat": lat + rng.uniform(-0.03, 0.03), "lon": lon + rng.uniform(-0.03, 0.03)}


def _queue(count: int, seed: int = 12) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    rng = random.Random(seed)
    rows, made = [], []
    for n in range(count):
        data, place = _random_data(rng, n)
        status = SubmissionStatus.PENDING if rng.random() < 0.9 else SubmissionStatus.REJECTED
        rows.append(
            {
                "reference": f"T-{n:06d}",
                "type": SubmissionType.NEW,
                "listing_kind": Kind.PHARMACY,
                "data": data,
                "place": place,
                "duplicates": [],
                "content_hash": content_hash({"n": n}),
                "status": status,
                # A bulk insert runs no ORM events: the keys as the app writes them.
                **duplicates.submission_keys(data, place),
            }
        )
        made.append((data, place))
    db.session.execute(insert(Submission), rows)
    db.session.commit()
    return made


def _reference_find(
    data: dict[str, Any], place: dict[str, Any] | None, queue: list[Submission]
) -> list[dict[str, Any]]:
    """Every listing and every pending submission (`queue`: read once, from their JSON)
    compared in Python, as find() did before the keys were stored."""
    found: dict[tuple[str, int], list[str]] = {}

    def add(kind: str, ident: int, reason: str) -> None:
        found.setdefault((kind, ident), []).append(reason)

    npi, digits, name = data.get("npi"), phone_digits(data.get("phone")), data.get("name") or ""
    lat, lon = (place or {}).get("lat"), (place or {}).get("lon")
    for listing in db.session.scalars(select(Listing)):
        if npi and listing.npi == npi:
            add("listing", listing.id, "same NPI")
        if digits and listing.phone_digits == digits:
            add("listing", listing.id, "same phone")
        if (
            lat is not None
            and listing.lat is not None
            and geomath.distance_km(lat, lon, listing.lat, listing.lon) <= duplicates.NEARBY_KM
            and duplicates.similar_names(name, listing.name)
        ):
            add("listing", listing.id, "similar name within 1 km")
    for sub in queue:
        sent = sub.data or {}
        if npi and sent.get("npi") == npi:
            add("submission", sub.id, "same NPI")
        if digits and phone_digits(sent.get("phone")) == digits:
            add("submission", sub.id, "same phone")
        other = sub.place or {}
        if (
            lat is not None
            and other.get("lat") is not None
            and geomath.distance_km(lat, lon, other["lat"], other["lon"]) <= duplicates.NEARBY_KM
            and duplicates.similar_names(name, sent.get("name") or "")
        ):
            add("submission", sub.id, "similar name within 1 km")
    return [{"type": k, "id": i, "reasons": r} for (k, i), r in sorted(found.items())]


def test_indexed_find_agrees_with_comparing_every_pending_submission(app) -> None:
    for i, (lat, lon) in enumerate(CENTRES[:10]):
        builders.pharmacy(name=f"{WORDS[i]} {WORDS[i]} Compounding", lat=lat, lon=lon)
    _queue(10_000)
    queue = list(
        db.session.scalars(select(Submission).where(Submission.status == SubmissionStatus.PENDING))
    )
    rng = random.Random(99)
    reasons: set[str] = set()
    for n in range(150):
        data, place = _random_data(rng, 100_000 + n)
        expected = _reference_find(data, place, queue)
        assert duplicates.find(data, place) == expected, data
        reasons.update(r for d in expected for r in d["reasons"])
    # The probes did find duplicates of every kind (else the comparison proves little).
    assert reasons == {"same NPI", "same phone", "similar name within 1 km"}


def test_a_submission_across_the_180th_meridian_is_nearby(app) -> None:
    # The box around a point next to the antimeridian wraps: both sides are asked.
    db.session.add(
        Submission(
            reference="T-FIJI",
            type=SubmissionType.NEW,
            listing_kind=Kind.PHARMACY,
            data={"name": "Taveuni Compounding"},
            place={"lat": -16.8, "lon": -179.9995},
            content_hash="x",
        )
    )
    db.session.commit()
    (other,) = db.session.scalars(select(Submission.id))
    # About 110 m away, on the other side of the meridian.
    found = duplicates.find({"name": "Taveuni Pharmacy"}, {"lat": -16.8, "lon": 179.9995})
    assert found == [{"type": "submission", "id": other, "reasons": ["similar name within 1 km"]}]
    assert duplicates.find({"name": "Taveuni Pharmacy"}, {"lat": -16.8, "lon": 179.98}) == []


def _statements_of(call: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, *args) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return seen


def _index_used(conn: Any, statement: str, parameters: Any) -> str:
    """The index a statement reads `submissions` through; fails on a full scan."""
    if db.engine.dialect.name == "sqlite":
        plan = " | ".join(
            row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        )
        assert not re.search(r"\bSCAN submissions\b", plan), plan
        found = re.search(r"SEARCH submissions USING (?:COVERING )?INDEX (\w+)", plan)
    else:
        plan = " | ".join(
            row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        )
        assert "Seq Scan on submissions" not in plan, plan
        found = re.search(r"Index (?:Only )?Scan using (\w+) on submissions", plan) or re.search(
            r"Bitmap Index Scan on (\w+)", plan
        )
    assert found, plan
    return found.group(1)


def _indexes_used(conn: Any, statement: str, parameters: Any) -> list[str]:
    """Every index a statement reads `submissions` through, in plan order (a UNION ALL reads
    one per part); fails on a full scan."""
    _index_used(conn, statement, parameters)  # no full scan anywhere in it
    if db.engine.dialect.name == "sqlite":
        rows = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        pattern = r"SEARCH submissions USING (?:COVERING )?INDEX (\w+)"
    else:
        rows = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
        pattern = r"(?:Index (?:Only )?Scan using (\w+) on submissions|Bitmap Index Scan on (\w+))"
    return [next(g for g in m.groups() if g) for m in re.finditer(pattern, " | ".join(rows))]


def test_a_submission_reads_the_queue_only_through_its_indexes(app) -> None:
    from directory import moderation
    from directory.geocoding import Geocoding

    made = _queue(10_000)
    data, _place = next((d, p) for d, p in made if p and d["npi"] and d["phone"])
    if db.engine.dialect.name == "postgresql":
        # PostgreSQL's autovacuum would gather statistics soon after; SQLite gets none (no
        # ANALYZE runs in production), so the indexes must be the obvious choice without them.
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    form = {**data, "city": "Birmingham", "region": "US-AL", "postal_code": "35233"}
    statements = _statements_of(
        lambda: moderation.submit(listing_kind=Kind.PHARMACY, data=form, geocoding=Geocoding())
    )
    reads = [
        (s, p)
        for s, p in statements
        if s.lstrip().upper().startswith("SELECT") and re.search(r"\bFROM submissions\b", s)
    ]
    # The pending cap's count of the whole queue (PENDING_SUBMISSIONS_MAX; no sender's address
    # here, so no per-sender count) reads an index too; bench/security.py times it.
    # (With nearly every row pending, PostgreSQL rightly scans the table for that count.)
    caps = [(s, p) for s, p in reads if "count(" in s.lower()]
    assert len(caps) == 1
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            assert _index_used(conn, *caps[0]).startswith("ix_submissions_status")
    reads = [r for r in reads if r not in caps]
    # The resent-form check, then NPI, phone and the box in one statement (UNION ALL, one
    # round trip): never every pending submission, never their JSON.
    assert len(reads) == 2
    assert not any("submissions.data" in s or "submissions.place" in s for s, _ in reads[1:])
    with db.engine.connect() as conn:
        assert _index_used(conn, *reads[0]) == "ix_submissions_content_hash"
        assert _indexes_used(conn, *reads[1]) == [
            "ix_submissions_npi",
            "ix_submissions_phone_digits",
            "ix_submissions_status_lat_lon",
        ]


def test_keys_are_written_with_the_submission_and_follow_its_data(app) -> None:
    sub = Submission(
        reference="T-KEYS",
        type=SubmissionType.NEW,
        listing_kind=Kind.PRESCRIBER,
        data={"name": "Dr. Zoë Ávila, MD", "phone": "+1 205 555 0100", "npi": "1234567893"},
        place={"lat": 33.5, "lon": -86.8, "precision": "postal_code"},
        content_hash="x",
    )
    db.session.add(sub)
    db.session.commit()
    assert (sub.npi, sub.phone_digits, sub.name_key, sub.lat, sub.lon) == (
        "1234567893",
        "2055550100",
        "zoe avila",
        33.5,
        -86.8,
    )
    sub.data = {"name": "Elm Street Compounding", "phone": "(205) 555-0199"}
    sub.place = None
    db.session.commit()
    assert (sub.npi, sub.phone_digits, sub.name_key, sub.lat, sub.lon) == (
        None,
        "2055550199",
        "elm street",
        None,
        None,
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [("Cedar Apothecary", "The Cedar Apothecary LLC"), ("Oak Rx", "Oak Pharmacy"), ("Ab", "Xy")],
)
def test_the_quick_bounds_never_change_the_answer(a: str, b: str) -> None:
    import difflib

    ka, kb = duplicates.name_key(a), duplicates.name_key(b)
    plain = ka == kb or difflib.SequenceMatcher(None, ka, kb).ratio() >= duplicates.NAME_SIMILARITY
    assert duplicates.similar_keys(ka, kb) == plain
