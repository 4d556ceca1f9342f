"""The bench rows in PostgreSQL (with PostGIS), copied from the SQLite bench database by COPY.

`ensure_postgres(size, sqlite_file, url)` makes the database at `url` hold exactly the rows of
bench/data/bench-<size>.db: its schema is dropped and rebuilt by the real migrations and
vocabularies (through the app, as `flask init-db` and `seed` do), then every generated table is
copied row for row, derived copies included (the SQLite triggers computed them; `flask check`
finds no drift in either). Triggers and foreign keys are off during the COPY
(`session_replication_role = replica`: a superuser's setting, fine for a throwaway bench
database); the geography column is a generated column, so PostgreSQL computes it as rows go
in. Then the sequences move past the ids, and VACUUM ANALYZE gives the planner its statistics.

A marker table records what was copied (generator meta and Alembic head), so the copy is reused
while it matches. Set BENCH_DATABASE_URL (e.g. postgresql+psycopg://postgres@127.0.0.1/bench)
for `make bench` to measure both engines.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .generate import INSERTS

MARKER = "bench_copied_from"
BATCH = 20_000


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _copied(url: str) -> dict[str, Any] | None:
    import psycopg

    try:
        with psycopg.connect(_plain(url)) as conn:
            row = conn.execute(f"SELECT meta FROM {MARKER}").fetchone()
    except psycopg.Error:
        return None
    return json.loads(row[0]) if row else None


def empty_schema(url: str) -> None:
    """Drop everything in the database's public schema (PostGIS's own table with it; the
    migrations create the extension again)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def _migrate_and_seed(url: str) -> None:
    from flask_migrate import upgrade

    from directory import create_app, seeding
    from directory.extensions import db

    empty_schema(url)
    os.environ.setdefault("SECRET_KEY", "bench")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": True})
    with app.app_context():
        upgrade()
        seeding.load(samples=False)
        db.session.remove()
        db.engine.dispose()


def ensure_postgres(
    size: int,
    sqlite_file: Path,
    meta: dict[str, Any],
    url: str,
    rebuild: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    import psycopg

    wanted = {"size": size, **{k: meta.get(k) for k in ("generator_version", "schema", "seed")}}
    if not rebuild and _copied(url) == wanted:
        log(f"  PostgreSQL copy of {size:,} is up to date")
        return {"copied_now": False, **wanted}
    log(f"  copying {sqlite_file.name} into PostgreSQL by COPY")
    started = time.perf_counter()
    _migrate_and_seed(url)
    source = sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)
    counts = {}
    with psycopg.connect(_plain(url)) as conn:
        conn.execute("SET session_replication_role = replica")
        for table in INSERTS:
            cur = source.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cur.description]
            booleans = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = %s AND data_type = 'boolean'",
                    (table,),
                )
            }
            as_bool = [i for i, c in enumerate(columns) if c in booleans]
            n = 0
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                while rows := cur.fetchmany(BATCH):
                    for row in rows:
                        if as_bool:  # SQLite stores booleans as 0/1
                            row = list(row)
                            for i in as_bool:
                                if row[i] is not None:
                                    row[i] = bool(row[i])
                        copy.write_row(row)
                    n += len(rows)
            counts[table] = n
            log(f"    {table}: {n:,} rows")
        conn.execute("SET session_replication_role = origin")
        for table in INSERTS:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(max(id), 1) FROM {table}))"
                if "id" in _columns(conn, table)
                else "SELECT 1"
            )
        conn.execute(f"CREATE TABLE {MARKER} (meta text)")
        conn.execute(f"INSERT INTO {MARKER} VALUES (%s)", (json.dumps(wanted),))
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        # What README's "PostgreSQL + PostGIS" section advises after a bulk load: neighbours on
        # the same heap pages, so a search's 21 rows come from a few pages, not 21.
        conn.execute("CLUSTER listings USING ix_listings_geog")
        conn.execute("VACUUM ANALYZE")
    seconds = round(time.perf_counter() - started, 1)
    log(f"  copied in {seconds} s")
    return {"copied_now": True, "seconds": seconds, "rows": counts, **wanted}


def _columns(conn: Any, table: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        )
    }
