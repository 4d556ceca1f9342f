"""Migrations build the schema from empty and match the models."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from directory.extensions import db
from directory.spatial import alembic_include
from tests.conftest import PG_URL, build_schema, make_app, reset_postgres


@pytest.fixture
def fresh(tmp_path, template_database) -> Iterator[Flask]:
    """An app in its context on an empty database. On PostgreSQL that is the shared test
    database, so it is rebuilt after as the other tests expect it."""
    if PG_URL:
        reset_postgres(PG_URL)
    app = make_app(PG_URL or f"sqlite:///{tmp_path}/fresh.db")
    with app.app_context():
        yield app
        db.engine.dispose()
    if PG_URL:
        reset_postgres(PG_URL)
        build_schema(PG_URL)


def test_migrations_apply_from_empty_and_match_the_models(fresh) -> None:
    upgrade()
    tables = set(inspect(db.engine).get_table_names())
    assert {"listings", "submissions", "audit_log", "users", "fillers"} <= tables
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": alembic_include})
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    downgrade(revision="base")
    assert "listings" not in set(inspect(db.engine).get_table_names())


def test_0004_backfills_on_curated_list_and_keeps_the_rtree_triggers(fresh) -> None:
    from sqlalchemy import text

    upgrade(revision="0003")
    with db.engine.begin() as conn:
        for listing_id, name in ((1, "Listed"), (2, "Accredited only"), (3, "No flags")):
            conn.execute(
                text(
                    "INSERT INTO listings (id, kind, name, country, status, lat, lon, "
                    "is_sample, fillers_known, mail_order, telehealth, telehealth_only, "
                    "created_at, updated_at) VALUES (:id, 'pharmacy', :name, 'US', 'open', "
                    "33.5, -86.8, false, false, false, false, false, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": listing_id, "name": name},
            )
        for listing_id, flag_type in (
            (1, "curated_list"),
            (1, "accreditation"),
            (2, "accreditation"),
        ):
            conn.execute(
                text(
                    "INSERT INTO reliability_flags (listing_id, type, label, source, as_of, "
                    "created_at) VALUES (:id, :type, 'x', 'y', '2026-01-01', CURRENT_TIMESTAMP)"
                ),
                {"id": listing_id, "type": flag_type},
            )
    upgrade()
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, on_curated_list FROM listings ORDER BY id"))
        assert [(i, bool(v)) for i, v in rows] == [(1, True), (2, False), (3, False)]
    downgrade(revision="0003")
    if db.engine.dialect.name == "sqlite":
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE listings SET lat = 40.0 WHERE id = 3"))
            # The trigger that keeps the R*Tree in step survived the batch rebuild.
            moved = conn.execute(text("SELECT min_lat FROM listing_rtree WHERE id = 3"))
            assert moved.scalar() == 40.0
    downgrade(revision="base")


def _derived_triggers() -> set[str]:
    from sqlalchemy import text

    from directory.derived import TRIGGERS

    query = (
        "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        if db.engine.dialect.name == "sqlite"
        else "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    )
    with db.engine.connect() as conn:
        return set(conn.execute(text(query)).scalars()) & set(TRIGGERS)


def test_0005_backfills_the_copies_and_its_downgrade_leaves_0004s_schema(fresh) -> None:
    from sqlalchemy import text

    from directory.derived import RANK_CURATED, TRIGGERS

    upgrade(revision="0004")
    assert _derived_triggers() == set()
    with db.engine.begin() as conn:
        # Written as 0004's application code never would: every copy missing.
        conn.execute(
            text(
                "INSERT INTO listings (id, kind, name, country, status, lat, lon, phone, "
                "is_sample, fillers_known, mail_order, telehealth, telehealth_only, "
                "on_curated_list, created_at, updated_at) VALUES (1, 'pharmacy', 'Old', "
                "'US', 'open', 33.5, -86.8, '+1 205-555-0100', false, false, true, false, "
                "false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO reliability_flags (listing_id, type, label, source, as_of, "
                "created_at) VALUES (1, 'curated_list', 'x', 'y', '2026-01-01', "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO verifications (listing_id, verified_on, method, created_at) "
                "VALUES (1, '2000-01-11', 'phone', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO listing_regions (listing_id, role, code, rank) "
                "VALUES (1, 'ships_to', 'US-AL', 0)"
            )
        )
    upgrade()
    assert _derived_triggers() == set(TRIGGERS)
    copies = "SELECT on_curated_list, CAST(verified_on AS VARCHAR(10)), phone_digits, rank "
    copies += "FROM listings JOIN listing_regions ON listing_id = id"
    with db.engine.connect() as conn:
        row = conn.execute(text(copies)).one()
    assert (bool(row[0]), *row[1:]) == (True, "2000-01-11", "2055550100", RANK_CURATED + 10)

    downgrade(revision="0004")
    assert _derived_triggers() == set()
    with db.engine.begin() as conn:
        assert conn.execute(text(copies)).one() == row  # the values stay, in step
        # No trigger writes them now: 0004's application code did.
        conn.execute(text("UPDATE listings SET phone = '(205) 555-0199' WHERE id = 1"))
        assert conn.execute(text("SELECT phone_digits FROM listings")).scalar() == "2055550100"
        if db.engine.dialect.name == "sqlite":
            conn.execute(text("UPDATE listings SET lat = 40.0 WHERE id = 1"))
            moved = conn.execute(text("SELECT min_lat FROM listing_rtree WHERE id = 1"))
            assert moved.scalar() == 40.0
    upgrade()
    assert _derived_triggers() == set(TRIGGERS)
    downgrade(revision="base")


def test_a_batch_rebuild_of_listings_keeps_every_trigger(fresh) -> None:
    """What a future migration that rebuilds `listings` on SQLite must do: without
    derived.lifted_for_batch the rename fails on the triggers of the other tables."""
    import sqlalchemy as sa
    from alembic.operations import Operations
    from sqlalchemy import text

    from directory.derived import TRIGGERS, lifted_for_batch

    upgrade()
    sqlite = db.engine.dialect.name == "sqlite"
    with db.engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        with (
            lifted_for_batch(op),
            op.batch_alter_table("listings", recreate="always" if sqlite else "auto") as batch,
        ):
            batch.add_column(sa.Column("rebuilt", sa.Integer()))
    assert _derived_triggers() == set(TRIGGERS)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO listings (id, kind, name, country, status, lat, lon, phone, "
                "is_sample, fillers_known, mail_order, telehealth, telehealth_only, "
                "on_curated_list, created_at, updated_at) VALUES (1, 'pharmacy', 'New', "
                "'US', 'open', 33.5, -86.8, '(205) 555-0100', false, false, true, false, "
                "false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        assert conn.execute(text("SELECT phone_digits FROM listings")).scalar() == "2055550100"
        if sqlite:
            assert conn.execute(text("SELECT min_lat FROM listing_rtree")).scalar() == 33.5
    downgrade(revision="base")


# Tables whose migration writes their first row (the data version behind HTTP ETags).
ROWS_FROM_MIGRATIONS = {"data_version"}


def _tables() -> dict[str, Any]:
    """Every table (but alembic's own and SQLite's R*Tree shadows), reflected."""
    from sqlalchemy import MetaData

    metadata = MetaData()
    metadata.reflect(db.engine)
    return {
        name: table
        for name, table in sorted(metadata.tables.items())
        if name not in {"alembic_version", "spatial_ref_sys"}  # PostGIS's own table
        and not name.startswith("listing_rtree")
    }


def _snapshot() -> dict[str, list[dict[str, object]]]:
    """Every row of every table, ordered."""
    from sqlalchemy import select

    rows: dict[str, list[dict[str, object]]] = {}
    with db.engine.connect() as conn:
        for name, table in _tables().items():
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]
    return rows


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    from directory.resources import folder

    script = ScriptDirectory(str(folder("migrations")))
    return [r.revision for r in script.walk_revisions()]  # head first


def test_down_and_up_again_with_data_keeps_it(fresh) -> None:
    """With listings, flags, verifications, a submission, its audit entry and an account in the
    tables: down to each earlier revision and back up to head keeps every row that the older
    schema has a place for, and down to base (dropping it all) then up again works on both
    databases."""
    from directory import seeding
    from tests import builders
    from tests.test_submit import pharmacy_form

    upgrade()
    seeding.load()  # vocabularies and the sample listings (flags, regions, fillers...)
    builders.pharmacy(flags=["curated_list"], verified_on=date(2026, 4, 2))
    builders.user("keeper")
    db.session.remove()
    client = fresh.test_client()
    assert client.post("/suggest/pharmacy", data=pharmacy_form()).status_code == 303
    before = _snapshot()
    assert before["listings"] and before["submissions"] and before["audit_log"]
    assert before["users"] and before["reliability_flags"] and before["verifications"]

    head, *older = _revisions()
    for revision in older:
        downgrade(revision=revision)
        kept = {name: table.columns.keys() for name, table in _tables().items()}
        upgrade()
        after = _snapshot()
        for table, rows in before.items():
            if table in kept:
                # A column added after `revision` is gone on the way down (and empty when it
                # comes back up); every column the older schema has keeps its values.
                def old(rs: list[dict[str, object]], cols: list[str] = kept[table]) -> list:
                    return [{c: r[c] for c in cols} for r in rs]

                assert old(after[table]) == old(rows), f"{table} changed going down to {revision}"
            elif table in ROWS_FROM_MIGRATIONS:
                # Back as its migration makes it: one row (a version that starts again is only a
                # cache miss).
                assert [r["id"] for r in after[table]] == [1], f"{table}: {after[table]}"
            else:
                assert after[table] == [], f"{table} came back from nowhere"
        before = after  # a table dropped on the way down is empty from here on

    downgrade(revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version", "spatial_ref_sys"}
    upgrade()
    assert {"listings", "submissions", "audit_log"} <= set(inspect(db.engine).get_table_names())
    after = _snapshot()
    assert all(rows == [] for table, rows in after.items() if table not in ROWS_FROM_MIGRATIONS)
    assert all(len(after[table]) == 1 for table in ROWS_FROM_MIGRATIONS)


def test_0010_backfills_the_duplicate_keys_of_existing_submissions(fresh) -> None:
    import json

    from sqlalchemy import text

    upgrade(revision="0006")
    rows = [
        (
            1,
            {"name": "The Cedar Apothecary LLC", "phone": "(205) 555-0101"},
            {"lat": 33.5, "lon": -86.8},
        ),
        (2, {"name": "Dr. Zoë Ávila", "npi": "1234567893", "phone": "+12055550100"}, None),
        (3, {"name": "", "phone": None}, {"lat": None, "lon": None}),
    ]
    with db.engine.begin() as conn:
        for sub_id, data, place in rows:
            conn.execute(
                text(
                    "INSERT INTO submissions (id, reference, type, listing_kind, data, place, "
                    "duplicates, content_hash, status, created_at) VALUES (:id, :ref, 'new', "
                    "'pharmacy', :data, :place, '[]', 'x', 'pending', CURRENT_TIMESTAMP)"
                ),
                {
                    "id": sub_id,
                    "ref": f"LDN-{sub_id}",
                    "data": json.dumps(data),
                    "place": json.dumps(place) if place is not None else None,
                },
            )
    upgrade()
    with db.engine.connect() as conn:
        got = conn.execute(
            text("SELECT id, npi, phone_digits, name_key, lat, lon FROM submissions ORDER BY id")
        ).all()
    assert [tuple(r) for r in got] == [
        (1, None, "2055550101", "cedar", 33.5, -86.8),
        (2, "1234567893", "2055550100", "zoe avila", None, None),
        (3, None, None, None, None, None),
    ]
    downgrade(revision="0006")
    columns = {c["name"] for c in inspect(db.engine).get_columns("submissions")}
    assert not columns & {"npi", "phone_digits", "name_key", "lat", "lon"}


def test_0008_stores_phones_in_e164_and_keeps_their_digits(fresh) -> None:
    import json

    from sqlalchemy import text

    upgrade(revision="0006")
    listing = (
        "INSERT INTO listings (id, kind, name, country, status, phone, is_sample, "
        "fillers_known, mail_order, telehealth, telehealth_only, on_curated_list, created_at, "
        "updated_at) VALUES (:id, 'pharmacy', 'P', :country, 'open', :phone, false, false, "
        "false, false, false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    submission = (
        "INSERT INTO submissions (id, reference, type, listing_kind, data, duplicates, "
        "content_hash, status, created_at) VALUES (:id, :ref, 'new', 'pharmacy', :data, '[]', "
        "'h', :status, CURRENT_TIMESTAMP)"
    )
    with db.engine.begin() as conn:
        for ident, country, phone in (
            (1, "US", "(205) 555-0142"),
            (2, "US", "+1 206-555-0100"),
            (3, "GB", "020 7946 0100"),
            (4, "US", "call the front desk"),
        ):
            conn.execute(text(listing), {"id": ident, "country": country, "phone": phone})
        for ident, status in ((1, "pending"), (2, "approved")):
            data = json.dumps({"name": "S", "phone": "(205) 555-0199", "country": "US"})
            conn.execute(
                text(submission),
                {"id": ident, "ref": f"LDN-AAAA{ident}", "data": data, "status": status},
            )
        conn.execute(
            text(
                "INSERT INTO listing_sources (listing_id, source, source_id, data, "
                "first_seen_at, last_seen_at) VALUES (1, 'nppes', '1234567893', :data, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"data": json.dumps({"phone": "(205) 555-0142", "country": "US"})},
        )
        digits_before = dict(conn.execute(text("SELECT id, phone_digits FROM listings")).all())
    upgrade()

    def read() -> tuple[dict, dict, dict]:
        with db.engine.connect() as conn:
            listings = {
                i: (p, d)
                for i, p, d in conn.execute(text("SELECT id, phone, phone_digits FROM listings"))
            }
            subs = {
                i: (d if isinstance(d, dict) else json.loads(d))["phone"]
                for i, d in conn.execute(text("SELECT id, data FROM submissions"))
            }
            (source,) = conn.execute(text("SELECT data FROM listing_sources")).scalars()
        return listings, subs, source if isinstance(source, dict) else json.loads(source)

    listings, subs, source = read()
    assert {i: p for i, (p, _) in listings.items()} == {
        1: "+12055550142",
        2: "+12065550100",
        3: "+442079460100",
        4: "call the front desk",  # no number: kept as written
    }
    # The database's copy for duplicate detection is the same digits as before for US
    # numbers; a foreign one written nationally now carries its country code, as the same
    # number sent in international form always did.
    digits = {i: d for i, (_, d) in listings.items()}
    assert digits == {**digits_before, 3: "442079460100"}
    assert (digits_before[1], digits_before[3]) == ("2055550142", "02079460100")
    # Pending submissions change; a decided one is history and stays as sent.
    assert subs == {1: "+12055550199", 2: "(205) 555-0199"}
    assert source["phone"] == "+12055550142"
    downgrade(revision="0006")  # keeps E.164 (the module says why)
    assert read()[0][1][0] == "+12055550142"
    downgrade(revision="base")
