"""SQLite set up for several workers: WAL, foreign keys, a busy timeout, and BEGIN IMMEDIATE
for writes so that concurrent writers queue instead of failing."""

import sqlite3

import pytest
from sqlalchemy import select, text

from directory.db import BUSY_TIMEOUT_MS, writing
from directory.extensions import db
from directory.models import Listing
from tests.conftest import PG_URL

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="SQLite behaviour; PostgreSQL run active")


def _path() -> str:
    return db.engine.url.database


def test_pragmas(app) -> None:
    conn = db.session.connection()
    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS


def test_writes_take_the_write_lock_at_begin_and_reads_do_not(app) -> None:
    other = sqlite3.connect(_path(), timeout=0, isolation_level=None)
    db.session.execute(select(Listing.id)).all()  # a read: a deferred transaction
    other.execute("BEGIN IMMEDIATE")  # so another writer can still get the lock
    other.execute("ROLLBACK")
    with writing():
        # Before this block has written anything, the lock is already ours.
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # released at commit
    other.execute("ROLLBACK")
    other.close()


def test_writing_rolls_back_everything_on_error(app) -> None:
    with pytest.raises(RuntimeError), writing():
        db.session.add(Listing(kind="pharmacy", name="Half-written", country="US"))
        db.session.flush()
        raise RuntimeError("boom")
    assert db.session.scalar(select(Listing).where(Listing.name == "Half-written")) is None


def test_foreign_keys_are_enforced(app) -> None:
    with pytest.raises(Exception, match="FOREIGN KEY"):
        db.session.execute(
            text(
                "INSERT INTO verifications (listing_id, verified_on, method, created_at) "
                "VALUES (424242, '2026-01-01', 'phone', '2026-01-01')"
            )
        )
        db.session.commit()
    db.session.rollback()
