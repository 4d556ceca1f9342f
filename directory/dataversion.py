"""The version of the public data: one number in the database that every change raises.

HTTP responses built from the data carry it in their ETag (directory/httpcache.py), so a
browser or proxy that sends back an ETag of an older version gets the new page, and one that
sends the current ETag gets a 304 without the search being run. It lives in the database, not
in a process, so every worker and every app server answers the same.

bump() runs in the transaction of the change it follows (audit.record calls it, and every change
to published data writes an audit entry; seeding calls it too), so a rollback takes it back and
a reader never sees the new version before the new data.
"""

from __future__ import annotations

from sqlalchemy import text

from .extensions import db

# An upsert, so a database whose row went missing (a TRUNCATE) starts again rather than stalls.
_BUMP = text(
    "INSERT INTO data_version (id, version) VALUES (1, 1) "
    "ON CONFLICT (id) DO UPDATE SET version = data_version.version + 1"
)
_CURRENT = text("SELECT version FROM data_version WHERE id = 1")


def bump() -> None:
    """Say that public data changed, in the current transaction."""
    db.session.execute(_BUMP)


def current() -> int:
    return db.session.execute(_CURRENT).scalar() or 0
