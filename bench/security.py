"""What issue 12's security changes cost: a sign-in's password check at the old and the new
scrypt cost, and the pending-submission cap's two counts with many submissions queued.

    .venv/bin/python -m bench.security [--pending 10000] [--repeat 15]

Prints a markdown table (medians and p95, both costs measured in the same run) for
bench/README.md's "Security (issue 12)" section.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95


def passwords(repeat: int) -> list[tuple[str, float, float]]:
    from werkzeug.security import check_password_hash, generate_password_hash

    rows = []
    for method in ("scrypt:32768:8:1", "scrypt:131072:8:1"):
        stored = generate_password_hash("correct horse battery", method=method)
        median, p95 = _timed(
            lambda s=stored: check_password_hash(s, "correct horse battery"), repeat
        )
        rows.append((f"password check, {method}", median, p95))
    return rows


def pending_cap(pending: int, repeat: int) -> list[tuple[str, float, float]]:
    os.environ.setdefault("SECRET_KEY", "bench")
    from sqlalchemy import insert

    from directory import create_app
    from directory.extensions import db
    from directory.models import Kind, Submission, SubmissionStatus, SubmissionType
    from directory.moderation.submissions import _check_pending_cap, client_hash

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'cap.db'}"
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": True})
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            senders = [client_hash(f"198.51.{i // 256}.{i % 256}") for i in range(pending // 5)]
            rows = [
                {
                    "reference": f"LDN-{i:06d}",
                    "type": SubmissionType.NEW,
                    "listing_kind": Kind.PHARMACY,
                    "data": {},
                    "duplicates": [],
                    "content_hash": f"{i:064d}",
                    "client_hash": senders[i % len(senders)],
                    "status": SubmissionStatus.PENDING,
                }
                for i in range(pending)
            ]
            db.session.execute(insert(Submission), rows)
            db.session.commit()
            app.config.update(PENDING_SUBMISSIONS_PER_ADDRESS=10**9, PENDING_SUBMISSIONS_MAX=10**9)
            median, p95 = _timed(lambda: _check_pending_cap(senders[0]), repeat)
            db.session.remove()
            db.engine.dispose()
    return [(f"pending cap check (2 counts), {pending:,} pending, SQLite", median, p95)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rows = passwords(args.repeat) + pending_cap(args.pending, args.repeat * 10)
    print(f"load average {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}\n")
    print("| what | median ms | p95 ms |\n|---|---|---|")
    for what, median, p95 in rows:
        print(f"| {what} | {median:.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
