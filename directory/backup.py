"""Backups of an SQLite database while the site runs, and putting one back.

Both go through SQLite's online backup API, never a file copy: a copied file can catch the
main file and its WAL at different moments, while the API copies one consistent snapshot
(it reads inside one transaction, so writers carry on and nothing they half-wrote is in it)
and writes a restore through SQLite's own locking, so the app's open connections see the old
database or the new one, never a mixture. Each result is checked with PRAGMA integrity_check
before it is kept. PostgreSQL has its own tools (pg_dump, pg_restore: README, "Backups").
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

POSTGRES_ADVICE = (
    "This database is PostgreSQL: back it up with pg_dump and restore it with pg_restore, "
    "as the README shows (Backups)."
)


class BackupError(RuntimeError):
    """What went wrong, in a sentence for the operator."""


@dataclass(frozen=True)
class Outcome:
    path: Path
    bytes: int
    seconds: float
    safety_copy: Path | None = None


def sqlite_file(database_url: str) -> Path:
    """The database file behind an SQLite URL; BackupError for any other database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(POSTGRES_ADVICE)
    if url.database in (None, "", ":memory:"):
        raise BackupError("An in-memory database has nothing to back up.")
    return Path(url.database).expanduser().resolve()


def _check(path: Path) -> None:
    """BackupError unless `path` is a sound SQLite database of this app."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (verdict,) = conn.execute("PRAGMA integrity_check").fetchone()
            has_schema = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} is not a readable SQLite database ({exc}).") from None
    if verdict != "ok":
        raise BackupError(f"{path} failed SQLite's integrity check: {verdict}")
    if not has_schema:
        raise BackupError(f"{path} is not an LDN Directory database (no alembic_version table).")


def _copy(source: sqlite3.Connection, target_path: Path) -> None:
    target = sqlite3.connect(target_path)
    try:
        # pages=-1: the whole database in one step, so one read transaction and one snapshot
        # (copied in steps, another process's write would restart the copy).
        source.backup(target, pages=-1)
    finally:
        target.close()


def backup(database: Path, out: Path, *, overwrite: bool = False) -> Outcome:
    """Copy the live database at `database` to `out`, consistently, and check the copy."""
    if not database.is_file():
        raise BackupError(f"There is no database at {database}.")
    out = out.expanduser().resolve()
    if out == database:
        raise BackupError("The backup must go to another file than the database itself.")
    if out.exists() and not overwrite:
        raise BackupError(f"{out} exists already; choose a new name or add --force.")
    if not out.parent.is_dir():
        raise BackupError(f"The folder {out.parent} does not exist.")
    # Written beside the target and renamed when complete and checked: a backup that stops
    # half-way (disk full, killed) never leaves a file that looks like a good backup.
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    started = time.perf_counter()
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        _copy(source, partial)
        _check(partial)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    return Outcome(out, out.stat().st_size, time.perf_counter() - started)


def restore(backup_file: Path, database: Path, *, replace: bool = False) -> Outcome:
    """Put `backup_file` back as the database at `database`.

    An existing database is only replaced with `replace`, and is first backed up beside
    itself (`<name>.before-restore-<time>`), so a restore of the wrong file can be undone.
    """
    backup_file = backup_file.expanduser().resolve()
    if backup_file == database:
        raise BackupError("That is the database itself, not a backup of it.")
    _check(backup_file)
    safety: Path | None = None
    if database.exists():
        if not replace:
            raise BackupError(
                f"A database exists at {database}. Restoring replaces everything in it: stop "
                "the site (or be sure nobody is editing), then run again with --yes. The "
                "current database is first saved beside it."
            )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        safety = backup(
            database, database.with_name(f"{database.name}.before-restore-{stamp}")
        ).path
    started = time.perf_counter()
    source = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(database, timeout=30)
        try:
            # Through the API, under SQLite's write lock: connections the site still holds
            # then read the restored data, never a file swapped beneath them.
            source.backup(target, pages=-1)
        finally:
            target.close()
    finally:
        source.close()
    _check(database)
    return Outcome(database, database.stat().st_size, time.perf_counter() - started, safety)
