"""Migrations build the schema from empty and match the models."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from directory.extensions import db
from tests.conftest import PG_URL, make_app, reset_postgres


def _fresh_url(tmp_path) -> str:
    if PG_URL:
        reset_postgres(PG_URL)
        return PG_URL
    return f"sqlite:///{tmp_path}/fresh.db"


def test_migrations_apply_from_empty_and_match_the_models(tmp_path, template_database) -> None:
    app = make_app(_fresh_url(tmp_path))
    with app.app_context():
        upgrade()
        tables = set(inspect(db.engine).get_table_names())
        assert {"listings", "submissions", "audit_log", "users", "fillers"} <= tables
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": lambda obj, name, type_, *a: (
                        not (type_ == "table" and str(name).startswith("listing_rtree"))
                    )
                },
            )
            diff = compare_metadata(context, db.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(revision="base")
        assert "listings" not in set(inspect(db.engine).get_table_names())
        db.engine.dispose()
    if PG_URL:  # leave the shared template database as the other tests expect it
        from tests.conftest import build_schema

        reset_postgres(PG_URL)
        build_schema(PG_URL)
