"""Migrations build the schema from empty and match the models."""

from collections.abc import Iterator

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
