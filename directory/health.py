"""Liveness and readiness, for load balancers and deploy scripts.

/healthz says the process answers. /readyz says it can serve patients: the database answers
and its schema is the one this code expects (the migrations' head), and the offline gazetteer
is open or its file is there to open. Each check is named, so a failing one says what to fix.
"""

from __future__ import annotations

import functools

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .extensions import db
from .geocoding import store
from .resources import folder


@functools.cache
def _heads() -> frozenset[str]:
    return frozenset(ScriptDirectory(str(folder("migrations"))).get_heads())


def _database() -> str | None:
    """None when ready, else what is wrong, in a sentence."""
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                current = set(
                    conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
                )
            except SQLAlchemyError:
                return "the schema is missing: run init-db"
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()
        return "cannot reach the database: " + (reason[0][:200] if reason else type(exc).__name__)
    if current != _heads():
        return (
            f"the schema is at {', '.join(sorted(current)) or 'nothing'}, the code expects "
            f"{', '.join(sorted(_heads()))}: run init-db"
        )
    return None


def _gazetteer() -> str | None:
    if store.is_available():
        return None
    return (
        f"the offline gazetteer file is missing: run init-db (expected at {store.gazetteer_path()})"
    )


def readiness() -> tuple[bool, dict[str, dict[str, str]]]:
    """(ready, {check: {"status": "ok"|"failing", "detail": ...}})."""
    checks: dict[str, dict[str, str]] = {}
    for name, check in (("database", _database), ("gazetteer", _gazetteer)):
        problem = check()
        checks[name] = (
            {"status": "ok"} if problem is None else {"status": "failing", "detail": problem}
        )
    return all(c["status"] == "ok" for c in checks.values()), checks
