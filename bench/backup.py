"""How long `flask backup` and `restore` take on the bench databases, and whether writers
wait for a backup.

    .venv/bin/python -m bench.backup --sizes 100000 --repeat 5

For each size: the database's size; backup seconds (median and slowest of --repeat, each a
fresh copy through SQLite's online backup API plus the integrity check); the same while
another connection commits a small write transaction in a loop, with how many commits went
through during the backup and the slowest single commit (a writer is never held for the
backup's length in WAL mode); and restore seconds (the copy written back over a database,
the safety copy of the one replaced included).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from directory import backup

from .generate import ensure_database


def _writer(path: Path, stop: threading.Event, commits: list[float]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS bench_writes (id INTEGER PRIMARY KEY, at REAL)")
    while not stop.is_set():
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bench_writes (at) VALUES (?)", (started,))
        conn.execute("COMMIT")
        commits.append(time.perf_counter() - started)
        time.sleep(0.002)
    conn.close()


def measure(size: int, repeat: int) -> dict[str, float]:
    source, _meta, _built = ensure_database(size)
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        work = Path(tmp)
        live = work / "live.db"
        backup.backup(source, live)  # a private copy that the writer may change
        quiet = []
        for i in range(repeat):
            quiet.append(backup.backup(live, work / f"quiet-{i}.db").seconds)
            (work / f"quiet-{i}.db").unlink()
        busy, during, slowest = [], [], []
        for i in range(repeat):
            stop, commits = threading.Event(), []
            thread = threading.Thread(target=_writer, args=(live, stop, commits))
            thread.start()
            time.sleep(0.2)
            before = len(commits)
            done = backup.backup(live, work / f"busy-{i}.db")
            during.append(len(commits) - before)
            stop.set()
            thread.join()
            busy.append(done.seconds)
            slowest.append(max(commits) * 1000)
            (work / f"busy-{i}.db").unlink()
        kept = backup.backup(live, work / "kept.db")
        restores = []
        for _ in range(repeat):
            outcome = backup.restore(kept.path, live, replace=True)
            restores.append(outcome.seconds)
            assert outcome.safety_copy is not None
            outcome.safety_copy.unlink()
        return {
            "size": size,
            "mb": kept.bytes / 1e6,
            "backup_median_s": statistics.median(quiet),
            "backup_max_s": max(quiet),
            "busy_median_s": statistics.median(busy),
            "commits_during_backup": statistics.median(during),
            "slowest_commit_ms": max(slowest),
            "restore_median_s": statistics.median(restores),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        "| listings | file MB | backup s (median / slowest) | backup s with a writer | "
        "writer commits during it | slowest commit ms | restore s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(size, args.repeat)
        print(
            f"| {size:,} | {r['mb']:,.0f} | {r['backup_median_s']:.2f} / {r['backup_max_s']:.2f} "
            f"| {r['busy_median_s']:.2f} | {r['commits_during_backup']:.0f} "
            f"| {r['slowest_commit_ms']:.0f} | {r['restore_median_s']:.2f} |"
        )


if __name__ == "__main__":
    main()
