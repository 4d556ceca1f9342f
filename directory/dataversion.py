"""The version of the public data: one number in the database that every change raises.

HTTP responses built from the data carry it in their ETag (directory/httpcache.py), so a
browser or proxy that sends back an ETag of an older version gets the new page, and one that
sends the current ETag gets a 304 without the search being run. It lives in the database, not
in a process, so every worker and every app server answers the same.

bump() runs in the transaction of the change it follows (audit.record calls it, and every change
to published data writes an audit entry; seeding calls it too), so a rollback takes it back and
a reader never sees the new version before the new data. One bump per transaction is enough
(a reader sees the whole transaction or none of it), so later calls in the same transaction
write nothing: a call-list save writes three audit entries and used to bump three times.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, SessionTransaction

from .extensions import db

# An upsert, so a database whose row went missing (a TRUNCATE) starts again rather than stalls.
_BUMP = text(
    "INSERT INTO data_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = data_version.version + 1"
)
_CURRENT_SQL = "SELECT version FROM data_version WHERE id = 1"
# session.info key: the outermost transaction that has bumped already.
_BUMPED = "dataversion_bumped_in"


def bump() -> None:
    """Say that public data changed, in the current transaction (once per transaction)."""
    session = db.session()
    root = _root(session.get_transaction())
    if root is not None and session.info.get(_BUMPED) is root:
        return
    session.execute(_BUMP)
    session.info[_BUMPED] = _root(session.get_transaction())


def _root(transaction: SessionTransaction | None) -> SessionTransaction | None:
    while transaction is not None and transaction.parent is not None:
        transaction = transaction.parent
    return transaction


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction, *_: Any) -> None:
    # A savepoint rolled back takes its bump with it (and a finished outer transaction ends the
    # need for one): either way the next change must bump again.
    if session.info.get(_BUMPED) is not None and (transaction.parent is None or transaction.nested):
        session.info.pop(_BUMPED, None)


def current() -> int:
    """The version now, read on a pooled connection of its own rather than through the ORM
    session. This read is all a 304 costs, and the session's transaction, its begin and its
    rollback at teardown were over half of that. Being outside the request's own transaction
    is safe: the version is read before the page's data, so at worst the tag is older than
    the page, and the next revalidation sends the page again."""
    dbapi_error = db.engine.dialect.loaded_dbapi.Error
    try:
        return _read()
    except dbapi_error as exc:
        # A raw connection raises the driver's own errors; the app answers SQLAlchemy's (a
        # database that is down is a 503 with Retry-After, errors.py), so wrap them as the
        # engine would have.
        raise DBAPIError.instance(_CURRENT_SQL, None, exc, dbapi_error) from exc


def _read() -> int:
    raw = db.engine.raw_connection()
    # psycopg would send BEGIN before the SELECT and the pool a ROLLBACK after it: three round
    # trips for one. In autocommit the SELECT goes alone. (sqlite3 begins no transaction for a
    # SELECT, and SQLAlchemy's BEGIN listener is not on a raw connection.)
    driver = raw.driver_connection
    autocommit = db.engine.dialect.name == "postgresql"
    try:
        if autocommit:
            driver.autocommit = True  # type: ignore[union-attr]
        cursor = raw.cursor()
        cursor.execute(_CURRENT_SQL)
        row = cursor.fetchone()
        cursor.close()
    except BaseException:
        raw.invalidate()  # a connection that failed mid-read is not given to the next request
        raise
    if autocommit:
        driver.autocommit = False  # type: ignore[union-attr]
    raw.close()  # back to the pool
    return int(row[0]) if row else 0
