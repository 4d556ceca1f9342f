"""Moderation queue benchmark (issue 11): the queue and review pages with 10,000 submissions
waiting, on a copy of a bench database.

The bench database (bench/generate.py) is copied to a temporary file, 10,000 pending
submissions are written into the copy (70% new listings, a fifth of those with possible
duplicates; 30% corrections and problem reports about random listings), and the pages are
then requested in-process through Flask's test client as a signed-in moderator: the whole
request (routing, session, queries, template), without a network or a server. Each timing is
`--requests` requests after 5 warm-up ones; medians and p95 in milliseconds. In the same run
the old queue count (every pending row loaded to count them in Python) is timed beside the new
one, so the ratio holds for the same machine and load.

    .venv/bin/python -m bench.moderation                   # the 1M database
    .venv/bin/python -m bench.moderation --size 100000 --requests 100

Prints a markdown table (bench/README.md, "Moderation queue (issue 11)") and writes
bench/results/moderation-latest.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .generate import ensure_database

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench horse battery staple"
SEED = 11


def _ms(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(p95 * 1000, 2),
        "n": len(ordered),
    }


def _time(fn: Callable[[], Any], requests: int) -> dict[str, float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return _ms(samples)


def _submissions(listing_ids: list[int], count: int, rng: random.Random) -> list[dict[str, Any]]:
    from directory.moderation import REFERENCE_ALPHABET
    from directory.vocabulary import Problem

    start = datetime(2026, 11, 1)
    problems = [p.value for p in Problem]
    rows = []
    for i in range(count):
        new = rng.random() < 0.7
        listing_id = None if new else rng.choice(listing_ids)
        n = rng.randrange(10_000)
        data = {
            "name": f"Bench Compounding {i}",
            "street": f"{n} Main St",
            "city": "Birmingham",
            "region": "US-AL",
            "postal_code": "35233",
            "country": "US",
            "phone": f"+1205555{n:04d}",
            "website": None,
            "email": None,
            "makes_ldn": True,
            "dosage_forms": ["capsule"],
            "sr_policy": rng.choice(["ir_only", "sr_on_request", "unknown"]),
            "fillers": ["mcc"],
            "price_notes": None,
            "mail_order": False,
            "ships_to": [],
        }
        duplicates = (
            [{"type": "listing", "id": rng.choice(listing_ids), "reasons": ["same phone"]}]
            if new and rng.random() < 0.2
            else []
        )
        rows.append(
            {
                "reference": "LDN-" + "".join(rng.choice(REFERENCE_ALPHABET) for _ in range(6)),
                "type": "new" if new else "correction",
                "listing_kind": "pharmacy",
                "listing_id": listing_id,
                "problem": None if new else rng.choice(problems),
                "data": data,
                "place": {"lat": 33.5, "lon": -86.8, "precision": "postal_code", "label": "x"},
                "duplicates": duplicates,
                "content_hash": f"{i:064d}",
                "status": "pending",
                "created_at": start + timedelta(minutes=i),
            }
        )
    return rows


def _fill(app: Any, count: int) -> dict[str, Any]:
    from sqlalchemy import insert, select

    from directory.extensions import db
    from directory.models import Kind, Listing, Role, Submission
    from directory.moderation import save_account

    rng = random.Random(SEED)
    with app.app_context():
        ids = list(
            db.session.scalars(
                select(Listing.id).where(Listing.kind == Kind.PHARMACY).limit(50_000)
            )
        )
        rows = _submissions(ids, count, rng)
        # The table's own column types take the enums' values and write the dicts as JSON.
        db.session.execute(insert(Submission), rows)
        save_account("bencher", PASSWORD, Role.ADMIN, actor_label="bench")
        db.session.commit()
        subs = db.session.execute(select(Submission.id, Submission.type)).all()
    new = [i for i, t in subs if t.value == "new"]
    corrections = [i for i, t in subs if t.value == "correction"]
    return {"new": new, "corrections": corrections, "listings": len(ids)}


def _old_queue_counts() -> dict[str, int]:
    """The count before issue 11: every pending row loaded, then counted in Python."""
    from directory.moderation import pending
    from directory.vocabulary import SubmissionType

    subs = pending(limit=10_000)
    return {
        "new": sum(1 for s in subs if s.type == SubmissionType.NEW),
        "corrections": sum(1 for s in subs if s.type == SubmissionType.CORRECTION),
        "duplicates": sum(1 for s in subs if s.duplicates),
    }


def run(size: int, pending: int, requests: int) -> dict[str, Any]:
    source, meta, _ = ensure_database(size, log=lambda m: print(m, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="bench-moderation-") as tmp:
        copy = Path(tmp) / "moderation.db"
        print(f"copying {source} ({meta['file_mb']} MB)", file=sys.stderr)
        shutil.copyfile(source, copy)
        sys.path.insert(0, str(ROOT))
        from directory import create_app

        app = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": f"sqlite:///{copy}",
                "SECRET_KEY": "bench-not-secret",
                "WTF_CSRF_ENABLED": False,
                "RATELIMIT_ENABLED": False,
                "SESSION_COOKIE_SECURE": False,
                "GEOCODER": "offline",
                "MAP_TILE_URL": "",
            }
        )
        started = time.perf_counter()
        made = _fill(app, pending)
        print(
            f"wrote {pending:,} submissions in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        client = app.test_client()
        login = client.post("/login", data={"username": "bencher", "password": PASSWORD})
        assert login.status_code == 303, login.status_code
        rng = random.Random(SEED)
        last_page = -(-pending // 50)

        def get(url: Callable[[], str]) -> Callable[[], None]:
            def fn() -> None:
                response = client.get(url())
                assert response.status_code == 200, (url(), response.status_code)

            return fn

        timings: dict[str, dict[str, float]] = {}
        timings["queue, page 1"] = _time(get(lambda: "/moderation/"), requests)
        timings["queue, a random page"] = _time(
            get(lambda: f"/moderation/?page={rng.randint(1, last_page)}"), requests
        )
        timings[f"queue, last page ({last_page})"] = _time(
            get(lambda: f"/moderation/?page={last_page}"), requests
        )
        timings["review, a new listing"] = _time(
            get(lambda: f"/moderation/submissions/{rng.choice(made['new'])}"), requests
        )
        timings["review, a correction"] = _time(
            get(lambda: f"/moderation/submissions/{rng.choice(made['corrections'])}"), requests
        )
        with app.app_context():
            from directory.extensions import db
            from directory.moderation import queue_counts

            def counts_new() -> None:
                queue_counts()
                db.session.rollback()

            def counts_old() -> None:
                _old_queue_counts()
                db.session.expunge_all()
                db.session.rollback()

            timings["queue counts (SQL, new)"] = _time(counts_new, requests)
            timings["queue counts (rows loaded, before)"] = _time(
                counts_old, max(10, requests // 10)
            )
        with app.app_context():
            db.engine.dispose()  # before the copy is deleted
    ratio = round(
        timings["queue counts (rows loaded, before)"]["median_ms"]
        / max(timings["queue counts (SQL, new)"]["median_ms"], 0.001),
        1,
    )
    return {
        "size": size,
        "pending": pending,
        "requests": requests,
        "python": platform.python_version(),
        "timings": timings,
        "count_speedup_median": ratio,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['size']:,} listings, {result['pending']:,} pending submissions, "
        f"{result['requests']} requests each (in-process, SQLite):",
        "",
        "| what | median ms | p95 ms |",
        "|---|---:|---:|",
    ]
    for name, t in result["timings"].items():
        lines.append(f"| {name} | {t['median_ms']} | {t['p95_ms']} |")
    lines.append("")
    lines.append(f"Counting in SQL: {result['count_speedup_median']}x faster at the median.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--output", default=str(ROOT / "bench/results/moderation-latest.json"))
    args = parser.parse_args(argv)
    result = run(args.size, args.pending, args.requests)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
