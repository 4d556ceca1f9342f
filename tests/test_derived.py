"""The copies the database keeps (directory/derived.py): every trigger on whichever database the
suite runs on, written to through raw SQL (never the ORM), and `flask --app wsgi check`."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from sqlalchemy import Connection, String, select, text

from directory import derived
from directory.extensions import db
from directory.listings import phone_digits
from directory.models import RANK_CURATED, FlagType, Listing, VerifyMethod
from directory.validation import format_phone, normalise_phone
from tests import builders

CURATED = FlagType.CURATED_LIST.value
ACCREDITATION = FlagType.ACCREDITATION.value


def _insert_listing(conn: Connection, phone: str | None = None, **columns: object) -> int:
    values = {
        "kind": "pharmacy",
        "name": "Raw",
        "country": "US",
        "status": "open",
        "lat": 33.5,
        "lon": -86.8,
        "is_sample": False,
        "fillers_known": False,
        "mail_order": True,
        "telehealth": False,
        "telehealth_only": False,
        "created_at": "2026-01-01 00:00:00",
        "updated_at": "2026-01-01 00:00:00",
        "phone": phone,
        **columns,
    }
    names = ", ".join(values)
    binds = ", ".join(f":{n}" for n in values)
    return conn.execute(
        text(f"INSERT INTO listings ({names}) VALUES ({binds}) RETURNING id"), values
    ).scalar_one()


def _flag(conn: Connection, listing_id: int, flag_type: str = CURATED) -> int:
    return conn.execute(
        text(
            "INSERT INTO reliability_flags (listing_id, type, label, source, as_of, created_at) "
            "VALUES (:id, :type, 'x', 'y', '2026-01-01', '2026-01-01') RETURNING id"
        ),
        {"id": listing_id, "type": flag_type},
    ).scalar_one()


def _verify(conn: Connection, listing_id: int, on: date) -> int:
    return conn.execute(
        text(
            "INSERT INTO verifications (listing_id, verified_on, method, created_at) "
            "VALUES (:id, :on, :method, '2026-01-01') RETURNING id"
        ),
        {"id": listing_id, "on": on, "method": VerifyMethod.PHONE.value},
    ).scalar_one()


def _region(conn: Connection, listing_id: int, code: str = "US-AL") -> None:
    conn.execute(
        text(
            "INSERT INTO listing_regions (listing_id, role, code, rank) VALUES (:id, :role, :c, 7)"
        ),
        {"id": listing_id, "role": "ships_to", "c": code},
    )


def _row(conn: Connection, listing_id: int) -> tuple[bool, date | None, str | None]:
    curated, verified, digits = conn.execute(
        text("SELECT on_curated_list, verified_on, phone_digits FROM listings WHERE id = :id"),
        {"id": listing_id},
    ).one()
    if isinstance(verified, str):  # SQLite hands back the stored text
        verified = date.fromisoformat(verified)
    return bool(curated), verified, digits


def _ranks(conn: Connection, listing_id: int) -> set[int]:
    rows = conn.execute(
        text("SELECT rank FROM listing_regions WHERE listing_id = :id"), {"id": listing_id}
    )
    return set(rows.scalars())


def _days(day: date) -> int:
    return (day - date(2000, 1, 1)).days


def test_flags_keep_on_curated_list_and_the_rank(app) -> None:
    with db.engine.begin() as conn:
        listing = _insert_listing(conn)
        _region(conn, listing)
        _region(conn, listing, "US-GA")
        assert _row(conn, listing)[0] is False and _ranks(conn, listing) == {0}
        accreditation = _flag(conn, listing, ACCREDITATION)
        assert _row(conn, listing)[0] is False
        curated = _flag(conn, listing)
        assert _row(conn, listing)[0] is True and _ranks(conn, listing) == {RANK_CURATED}
        # A second curated flag and the loss of one of the two: still curated.
        second = _flag(conn, listing)
        conn.execute(text("DELETE FROM reliability_flags WHERE id = :id"), {"id": second})
        assert _row(conn, listing)[0] is True
        # Changing its type, then moving it to another listing.
        conn.execute(
            text("UPDATE reliability_flags SET type = :t WHERE id = :id"),
            {"t": ACCREDITATION, "id": curated},
        )
        assert _row(conn, listing)[0] is False and _ranks(conn, listing) == {0}
        conn.execute(
            text("UPDATE reliability_flags SET type = :t WHERE id = :id"),
            {"t": CURATED, "id": accreditation},
        )
        other = _insert_listing(conn)
        _region(conn, other)
        conn.execute(
            text("UPDATE reliability_flags SET listing_id = :o WHERE id = :id"),
            {"o": other, "id": accreditation},
        )
        assert _row(conn, listing)[0] is False and _row(conn, other)[0] is True
        assert _ranks(conn, other) == {RANK_CURATED}
        conn.execute(text("DELETE FROM reliability_flags WHERE listing_id = :o"), {"o": other})
        assert _row(conn, other)[0] is False and _ranks(conn, other) == {0}


def test_verifications_keep_verified_on_and_the_rank(app) -> None:
    old, new = date(2025, 3, 1), date(2026, 2, 1)
    with db.engine.begin() as conn:
        listing = _insert_listing(conn)
        _region(conn, listing)
        _flag(conn, listing)
        latest = _verify(conn, listing, new)
        # Back-dated entries don't regress the date: it is the latest, not the last written.
        earlier = _verify(conn, listing, old)
        assert _row(conn, listing)[1] == new
        assert _ranks(conn, listing) == {RANK_CURATED + _days(new)}
        conn.execute(text("DELETE FROM verifications WHERE id = :id"), {"id": latest})
        assert _row(conn, listing)[1] == old
        assert _ranks(conn, listing) == {RANK_CURATED + _days(old)}
        conn.execute(
            text("UPDATE verifications SET verified_on = :d WHERE id = :id"),
            {"d": date(1999, 6, 1), "id": earlier},
        )
        # Before 2000 counts as 0 days, never less.
        assert _row(conn, listing)[1] == date(1999, 6, 1)
        assert _ranks(conn, listing) == {RANK_CURATED}
        other = _insert_listing(conn)
        conn.execute(
            text("UPDATE verifications SET listing_id = :o WHERE id = :id"),
            {"o": other, "id": earlier},
        )
        assert _row(conn, listing)[1] is None and _row(conn, other)[1] == date(1999, 6, 1)
        assert _ranks(conn, listing) == {RANK_CURATED}


def test_a_region_row_gets_its_listings_rank_whatever_it_was_written_with(app) -> None:
    day = date(2026, 1, 15)
    with db.engine.begin() as conn:
        listing = _insert_listing(conn)
        _verify(conn, listing, day)
        _region(conn, listing)  # written with rank 7
        assert _ranks(conn, listing) == {_days(day)}
        other = _insert_listing(conn)
        _flag(conn, other)
        conn.execute(
            text("UPDATE listing_regions SET listing_id = :o WHERE listing_id = :id"),
            {"o": other, "id": listing},
        )
        assert _ranks(conn, other) == {RANK_CURATED}


@pytest.mark.parametrize(
    ("phone", "digits"),
    [
        ("(206) 555-0100", "2065550100"),
        ("+1 206-555-0100", "2065550100"),
        ("+44 20 7946 0958", "442079460958"),
        ("(206) 555-0100 ext. 12", "206555010012"),
        ("12065550100", "2065550100"),
        ("112065550100", "112065550100"),
        ("ext.", None),
        # Not what normalise_phone writes, but raw SQL might: only ASCII digits count.
        ("Tél. 206/555.0100", "2065550100"),
        ("\uff12\uff10\uff16-555-0100", "5550100"),
        ("", None),
        (None, None),
    ],
)
def test_the_phone_keeps_phone_digits(app, phone: str | None, digits: str | None) -> None:
    with db.engine.begin() as conn:
        listing = _insert_listing(conn, phone, phone_digits="999")
        assert _row(conn, listing)[2] == digits
        conn.execute(
            text("UPDATE listings SET phone = :p WHERE id = :id"), {"p": "", "id": listing}
        )
        assert _row(conn, listing)[2] is None
        conn.execute(
            text("UPDATE listings SET phone = :p WHERE id = :id"), {"p": phone, "id": listing}
        )
        assert _row(conn, listing)[2] == digits == phone_digits(phone)


def _normalised_phones() -> set[str]:
    """What normalise_phone stores (E.164, ";ext=" for an extension), and those numbers as
    format_phone shows them, for an example number of every type in every region."""
    phones = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)
            for raw in (e164, f"{e164} ext. 1234"):
                for country in ("US", region):
                    try:
                        stored = normalise_phone(raw, country)
                    except ValueError:
                        continue
                    # E.164 as stored now, and as pages show it: the form phones had before
                    # migration 0008, which a listing may still hold if it didn't parse.
                    phones.update((stored, format_phone(stored)))
    return phones


def test_sql_and_python_agree_on_every_stored_phone(app) -> None:
    """Submissions are compared by listings.phone_digits(); listings by the database's copy."""
    phones = sorted(_normalised_phones())
    assert len(phones) > 1000
    assert {ch for p in phones for ch in p if not ch.isdigit()} >= set(" ()+-;=")
    assert all(len(p) <= Listing.__table__.c.phone.type.length for p in phones)
    assert isinstance(Listing.__table__.c.phone.type, String)
    assert Listing.__table__.c.phone.type.length == derived.PHONE_LENGTH
    sql = derived.phone_digits_sql(db.engine.dialect.name, ":phone")
    with db.engine.connect() as conn:
        disagree = [
            p
            for p in phones
            if conn.execute(text(f"SELECT {sql}"), {"phone": p}).scalar() != phone_digits(p)
        ]
    assert disagree == []


def test_the_stored_rank_is_the_models_reach_rank(app) -> None:
    """The rank formula lives in SQL (derived.rank_sql); Listing.reach_rank, the tests' oracle
    for "also available", must give the same numbers."""
    today = date.today()
    built = [
        builders.pharmacy(
            mail_order=True,
            ships_to=["US-AL", "US-GA"],
            flags=flags,
            verified_on=day,
        )
        for flags in ([], ["curated_list"], ["accreditation"])
        for day in (None, today, today - timedelta(days=9000), date(1998, 1, 1))
    ]
    db.session.expire_all()
    for listing in built:
        assert {r.rank for r in listing.regions} == {listing.reach_rank}, listing.name


def test_the_orm_sees_what_the_triggers_wrote(app) -> None:
    """Nothing in Python writes the copies: a listing read in the same session after a change
    shows the database's value, whether or not anything was committed."""
    from directory.models import ReliabilityFlag, Verification

    listing = builders.pharmacy(phone="+1 205-555-0199", mail_order=True, ships_to=["US-AL"])
    assert listing.phone_digits == "2055550199"
    listing.phone = "(205) 555-0142"
    db.session.flush()
    assert listing.phone_digits == "2055550142"
    # What moderation.add_verification does, with no copy of the date written by Python.
    listing.verifications.append(Verification(verified_on=date(2026, 3, 1), method="phone"))
    assert listing.verified_on == date(2026, 3, 1)
    listing.flags.append(
        ReliabilityFlag(type=FlagType.CURATED_LIST, label="x", source="y", as_of=date(2026, 1, 1))
    )
    assert listing.on_curated_list is True
    assert [r.rank for r in listing.regions] == [RANK_CURATED + _days(date(2026, 3, 1))]
    # Moved to another listing by its foreign key alone: both listings change.
    other = builders.pharmacy()
    assert other.verified_on is None
    listing.verifications[0].listing_id = other.id
    db.session.flush()
    assert listing.verified_on is None and other.verified_on == date(2026, 3, 1)
    assert [r.rank for r in listing.regions] == [RANK_CURATED]
    db.session.delete(other.verifications[0])
    db.session.flush()
    assert other.verified_on is None


def test_two_writers_changing_one_listings_flags_leave_it_right(app) -> None:
    """One transaction takes the listing's only curated flag away while another adds one: the
    second must count the flags after the first commits, not as its snapshot showed them."""
    with db.engine.begin() as conn:
        listing = _insert_listing(conn)
        first = _flag(conn, listing)
    engine = db.engine  # the thread has no app context
    removing = engine.connect()
    removing.begin()
    removing.execute(text("DELETE FROM reliability_flags WHERE id = :id"), {"id": first})

    def add() -> None:
        with engine.begin() as adding:
            _flag(adding, listing)

    with ThreadPoolExecutor(max_workers=1) as pool:
        added = pool.submit(add)
        time.sleep(0.3)  # the adder is now waiting for the listing (or the database) lock
        removing.commit()
        removing.close()
        added.result(timeout=30)
    with db.engine.connect() as conn:
        assert _row(conn, listing)[0] is True


# --- flask --app wsgi check -------------------------------------------------------------------


def test_check_is_clean_on_the_sample_data(seeded, runner) -> None:
    db.session.commit()
    result = runner.invoke(args=["check"])
    assert result.exit_code == 0, result.output
    assert "Every stored copy agrees with its source." in result.output
    for copy in (
        "listings.on_curated_list",
        "listings.verified_on",
        "listing_regions.rank",
        "listings.phone_digits",
    ):
        assert f"{copy}: 0 out of step" in result.output


def _drift(copy: str, runner) -> str:
    db.session.commit()
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1, result.output
    assert "stored values differ from their source" in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(f"{copy}:")]
    assert len(lines) == 1, result.output
    others = [
        line
        for line in result.output.splitlines()
        if "out of step" in line and not line.startswith(f"{copy}:")
    ]
    assert all(": 0 out of step" in line for line in others), result.output
    return lines[0]


@pytest.mark.parametrize(
    ("copy", "statement"),
    [
        ("listings.on_curated_list", "UPDATE listings SET on_curated_list = NOT on_curated_list"),
        ("listings.verified_on", "UPDATE listings SET verified_on = '2001-01-01'"),
        ("listings.phone_digits", "UPDATE listings SET phone_digits = '1'"),
        ("listing_regions.rank", "UPDATE listing_regions SET rank = rank + 1"),
    ],
)
def test_check_reports_a_copy_written_by_hand(seeded, runner, copy: str, statement: str) -> None:
    if copy == "listing_regions.rank":
        key, chosen = "listing_id", "SELECT DISTINCT listing_id FROM listing_regions"
    else:
        # Listings that reach no region, so no rank is built on the wrong copy.
        key = "id"
        chosen = "SELECT id FROM listings WHERE id NOT IN (SELECT listing_id FROM listing_regions)"
    first, second = db.session.execute(text(f"{chosen} ORDER BY 1 LIMIT 2")).scalars()
    table = "listing_regions" if key == "listing_id" else "listings"
    rows = db.session.execute(
        text(f"SELECT count(*) FROM {table} WHERE {key} IN (:a, :b)"), {"a": first, "b": second}
    ).scalar_one()
    db.session.execute(text(f"{statement} WHERE {key} IN (:a, :b)"), {"a": first, "b": second})
    line = _drift(copy, runner)
    assert line.startswith(f"{copy}: {rows} out of step (e.g. ") and line.endswith(")")
    examples = line.removesuffix(")").split("(e.g. ")[1].split(", ")
    assert len(examples) == min(rows, derived.EXAMPLES)
    # Region rows are named listing/role/code.
    assert {e.split("/")[0] for e in examples} <= {str(first), str(second)}


NEARBY = "listings.confirmed_nearby (fix: refresh-call-list)"


def test_check_reports_the_call_lists_nearby_mark_out_of_step(seeded, runner) -> None:
    from directory.moderation import calls

    db.session.commit()
    assert f"{NEARBY}: 0 out of step" in runner.invoke(args=["check"]).output
    first = db.session.scalars(select(Listing.id).order_by(Listing.id)).first()
    db.session.execute(
        text("UPDATE listings SET confirmed_nearby = NOT confirmed_nearby WHERE id = :id"),
        {"id": first},
    )
    assert _drift(NEARBY, runner) == f"{NEARBY}: 1 out of step (e.g. {first})"
    # What the line says to run puts it right.
    calls.refresh_nearby()
    db.session.commit()
    assert runner.invoke(args=["check"]).exit_code == 0


def test_check_reports_an_rtree_out_of_step(seeded, runner) -> None:
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's point is a generated column (PostGIS): never out of step")
    first = db.session.scalars(select(Listing.id).order_by(Listing.id)).first()
    db.session.execute(text("DELETE FROM listing_rtree WHERE id = :id"), {"id": first})
    assert _drift("listing_rtree", runner) == f"listing_rtree: 1 out of step (e.g. {first})"
    db.session.execute(text("INSERT INTO listing_rtree VALUES (:id, 1, 1, 2, 2)"), {"id": first})
    assert _drift("listing_rtree", runner) == f"listing_rtree: 1 out of step (e.g. {first})"


def test_check_is_in_the_readmes_commands_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "| `flask --app wsgi check` |" in readme


def test_a_listing_stored_in_e164_keeps_the_digits_it_had(app) -> None:
    """Migration 0008 stores phones in E.164: the database's copy (duplicate detection) is
    the same ten digits of a US number as before, and a foreign number keeps its code."""
    us = builders.pharmacy(phone="(205) 555-0142")
    uk = builders.pharmacy(phone="+44 20 7946 0100", country="GB", region=None, postal_code=None)
    db.session.commit()
    db.session.expire_all()
    assert (us.phone, us.phone_digits) == ("+12055550142", "2055550142")
    assert (uk.phone, uk.phone_digits) == ("+442079460100", "442079460100")
