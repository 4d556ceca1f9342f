"""Database plumbing: SQLite settings and the one way to write.

SQLite needs three things to behave under several workers: WAL (readers never block the writer),
a busy timeout (a writer waits for the lock instead of failing at once) and BEGIN IMMEDIATE for
transactions that will write. A deferred transaction that reads first and writes later can fail
with "database is locked" no matter the timeout, because SQLite cannot upgrade a stale snapshot;
taking the write lock at BEGIN makes concurrent writers queue. Reads stay deferred so searches
from many workers run side by side.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from .extensions import db

_immediate: contextvars.ContextVar[bool] = contextvars.ContextVar("immediate", default=False)

BUSY_TIMEOUT_MS = 10_000


def configure_engine(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (the driver's own
        # implicit BEGIN is always deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _immediate.get() else "BEGIN")


@contextmanager
def writing() -> Iterator[None]:
    """Run the block as one write transaction: commit at the end, roll back on any error.

    Any read-only transaction the request had open is ended first so the write starts fresh
    with the write lock (SQLite) and sees the latest data.
    """
    session = db.session()
    if session.in_transaction():
        session.commit()
    token = _immediate.set(True)
    try:
        session.connection()  # begins now, so the write lock is taken before the first read
        yield
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        _immediate.reset(token)
