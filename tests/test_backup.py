"""`backup` and `restore`: a backup taken while submissions stream in is a consistent
snapshot, and restores to a working site."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from directory import backup
from directory.extensions import db
from tests.conftest import make_app
from tests.test_operations import _closed_port_url
from tests.test_submit import pharmacy_form


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def _assert_consistent(path: Path) -> int:
    """Integrity ok, and every submission whole, with its one audit entry, and no entry
    without its submission: what a backup caught mid-transaction would break."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        subs = dict(conn.execute("SELECT id, json_extract(data, '$.name') FROM submissions"))
        audited = conn.execute(
            "SELECT submission_id FROM audit_log WHERE action = 'submitted'"
        ).fetchall()
    finally:
        conn.close()
    assert sorted(s for (s,) in audited) == sorted(subs), "audit entries and submissions differ"
    assert all(name and name.startswith("Stream ") for name in subs.values())
    return len(subs)


def test_a_backup_during_a_stream_of_submissions_is_consistent_and_restores(
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    # Every submitter is one address here; the per-address cap on pending ones is not the point.
    app = make_app(sqlite_url, PENDING_SUBMISSIONS_PER_ADDRESS=1000)
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    stop = threading.Event()
    failures: list[str] = []

    def submitter(n: int) -> None:
        client = app.test_client()
        for i in range(400):
            if stop.is_set():
                return
            form = pharmacy_form(name=f"Stream {n}-{i}", website=f"https://example.org/{n}/{i}")
            response = client.post("/suggest/pharmacy", data=form)
            if response.status_code != 303:
                failures.append(f"{response.status_code} for {n}-{i}")

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 120
        while _count(database, "submissions") < 15 and time.monotonic() < deadline:
            time.sleep(0.05)
        taken = backup.backup(database, tmp_path / "during.db")
        after_backup = _count(database, "submissions")
        while _count(database, "submissions") < after_backup + 15 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    in_backup = _assert_consistent(taken.path)
    final = _assert_consistent(database)
    assert 15 <= in_backup < final, "the backup was not taken while submissions went on"

    # Restored over the live database (saved first), the site serves the backup's data.
    done = backup.restore(taken.path, database, replace=True)
    assert done.safety_copy is not None and _assert_consistent(done.safety_copy) == final
    assert _assert_consistent(database) == in_backup
    with app.app_context():
        db.engine.dispose()
    restored = make_app(sqlite_url)
    assert restored.test_client().get("/readyz").status_code == 200
    with restored.app_context():
        result = restored.test_cli_runner().invoke(args=["check"])
        db.engine.dispose()
    assert result.exit_code == 0, result.output


def test_the_commands_refuse_what_is_unsafe(sqlite_url: str, tmp_path: Path) -> None:
    app = make_app(sqlite_url)
    runner = app.test_cli_runner()
    out = tmp_path / "backup.db"
    first = runner.invoke(args=["backup", str(out)])
    assert first.exit_code == 0 and "integrity check ok" in first.output
    again = runner.invoke(args=["backup", str(out)])
    assert again.exit_code == 1 and "exists already" in again.output
    assert runner.invoke(args=["backup", str(out), "--force"]).exit_code == 0

    refused = runner.invoke(args=["restore", str(out)])
    assert refused.exit_code == 1 and "--yes" in refused.output
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    not_a_backup = runner.invoke(args=["restore", str(junk), "--yes"])
    assert not_a_backup.exit_code == 1 and "not a readable SQLite database" in not_a_backup.output
    restored = runner.invoke(args=["restore", str(out), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert "saved as" in restored.output and "integrity check ok" in restored.output
    with app.app_context():
        db.engine.dispose()


def test_on_postgresql_the_commands_point_to_pg_dump(tmp_path: Path) -> None:
    runner = make_app(_closed_port_url()).test_cli_runner()
    for args in (["backup", str(tmp_path / "x.db")], ["restore", __file__]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert "pg_dump" in result.output and "Traceback" not in result.output
