"""The volunteers' call list on the bench databases (issue 11): the list page with each filter,
claiming an item, and saving a confirmation (which also claims the next item), in-process
through Flask's test client, signed in as a moderator.

    .venv/bin/python -m bench.calls --sizes 100000,1000000

Saves write, so each run works on a copy of bench/data/bench-<size>.db
(bench/data/calls-<size>.db), made fresh each run; the copy's `confirmed_nearby` is worked out
first by `calls.refresh_nearby()` (timed: it is what `flask refresh-call-list` does).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from .generate import database_url, ensure_database

REQUESTS = 200
WARMUP = 20
LIST_MODES: dict[str, str] = {
    "no filter": "",
    "state: California (dense)": "state=US-CA",
    "state: Wyoming (sparse)": "state=US-WY",
    "kind: prescriber": "kind=prescriber",
    "never confirmed": "due=never",
    "stale": "due=stale",
    "Texas + pharmacy + stale": "state=US-TX&kind=pharmacy&due=stale",
    "page 50": "page=50",
}
FUNCTION_MODES: dict[str, Any] = {}  # filled in bench_size (needs the app's imports)
ANSWERS = {
    "outcome": "confirmed",
    "sr_policy": "ir_only",
    "fillers": ["mcc"],
    "dosage_forms": ["capsule"],
    "mail_order": "no",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "n": len(ms),
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter_ns()
    result = fn()
    return (time.perf_counter_ns() - start) / 1e6, result


def bench_size(size: int) -> dict[str, Any]:
    source, _meta, _built = ensure_database(size, log=log)
    path = source.with_name(f"calls-{size}.db")
    log(f"copying {source} to {path}")
    shutil.copyfile(source, path)

    from sqlalchemy import select

    from directory import create_app
    from directory.extensions import db
    from directory.models import Listing, Role, User
    from directory.moderation import calls
    from directory.vocabulary import CallDue, CallOutcome, Kind

    FUNCTION_MODES.update(
        {
            "no filter": calls.CallFilters(),
            "kind: prescriber": calls.CallFilters(kind=Kind.PRESCRIBER),
            "never confirmed": calls.CallFilters(due=CallDue.NEVER),
            "Texas + pharmacy + stale": calls.CallFilters(
                region="US-TX", kind=Kind.PHARMACY, due=CallDue.STALE
            ),
        }
    )

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url(path),
            "SECRET_KEY": "bench",
            "TESTING": True,
            "WTF_CSRF_ENABLED": False,
            "RATELIMIT_ENABLED": False,
        }
    )
    out: dict[str, Any] = {"size": size}
    with app.app_context():
        # A database built before the call list's indexes changed gets them as the model
        # has them now (cheaper than rebuilding 1M listings for an index).
        from sqlalchemy import text

        for index in Listing.__table__.indexes:
            if index.name and index.name.startswith("ix_listings_call_order"):
                db.session.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
                db.session.commit()
                index.create(db.engine)
        refresh_ms, marked = timed(calls.refresh_nearby)
        out["refresh_nearby"] = {"seconds": round(refresh_ms / 1000, 1), "marked": marked}
        log(f"refresh_nearby: {refresh_ms / 1000:.1f} s, {marked:,} marked")
        user = User(username="bench", password_hash="", role=Role.MODERATOR)
        user.set_password("bench password 11")
        db.session.add(user)
        db.session.commit()
        db.session.remove()

    client = app.test_client()
    assert client.post("/login", data={"username": "bench", "password": "bench password 11"})
    lists: dict[str, Any] = {}
    for name, query in LIST_MODES.items():
        url = f"/moderation/calls/?{query}"
        for _ in range(WARMUP):
            client.get(url)
        samples = []
        for _ in range(REQUESTS):
            ms, response = timed(lambda url=url: client.get(url))
            assert response.status_code == 200, (url, response.status_code)
            samples.append(ms)
        lists[name] = summary(samples)
        log(f"list {name}: {lists[name]}")
    out["list"] = lists
    # The same client on a page that reads nothing from the database: what any request costs
    # on this machine at this moment (the ratio says how much the list itself adds).
    for _ in range(WARMUP):
        client.get("/about")
    out["baseline"] = summary([timed(lambda: client.get("/about"))[0] for _ in range(REQUESTS)])
    log(f"baseline /about: {out['baseline']}")
    # The list's queries alone, without rendering or the request around them.
    with app.app_context():
        for name, filters in FUNCTION_MODES.items():
            samples = []
            for n in range(WARMUP + REQUESTS):
                ms, _page = timed(lambda filters=filters: calls.call_list(filters))
                db.session.remove()
                if n >= WARMUP:
                    samples.append(ms)
            out.setdefault("call_list", {})[name] = summary(samples)
            log(f"call_list() {name}: {out['call_list'][name]}")

    # Items to claim and to save: from the list itself, as volunteers would take them.
    with app.app_context():
        page = calls.call_list(calls.CallFilters(page=1))
        pages = [calls.call_list(calls.CallFilters(page=p)) for p in range(2, 40)]
        ids = [item.id for p in [page, *pages] for item in p.items]
        kinds = {i: k for p in [page, *pages] for i, k in ((x.id, x.kind) for x in p.items)}
        db.session.remove()
    pharmacy_ids = [i for i in ids if kinds[i].value == "pharmacy"]
    claim_ids, save_ids = pharmacy_ids[: REQUESTS // 2], pharmacy_ids[REQUESTS // 2 :]
    claims = []
    for listing_id in claim_ids:
        ms, response = timed(lambda i=listing_id: client.post(f"/moderation/calls/{i}/claim"))
        assert response.status_code == 303, response.status_code
        claims.append(ms)
    out["claim"] = summary(claims)
    log(f"claim: {out['claim']}")
    saves = []
    for listing_id in save_ids[: REQUESTS // 2]:
        ms, response = timed(
            lambda i=listing_id: client.post(f"/moderation/calls/{i}", data=ANSWERS)
        )
        assert response.status_code == 303, response.get_data(as_text=True)[:500]
        saves.append(ms)
    out["save"] = summary(saves)
    log(f"save + claim next: {out['save']}")
    # The save on its own (calls.record_call: the answers, the verification, the audit
    # entries, the attempt, the neighbours' mark, one commit), without the request around it
    # or the next item's claim that the POST also makes; each listing claimed first, untimed.
    record_ids = pharmacy_ids[REQUESTS : 2 * REQUESTS]
    answers = {
        "sr_policy": "ir_only",
        "fillers": ["mcc"],
        "dosage_forms": ["capsule"],
        "mail_order": False,
        "ships_to": [],
        "price_notes": None,
    }
    records = []
    with app.app_context():
        volunteer = db.session.scalars(select(User).where(User.username == "bench")).one()
        for listing_id in record_ids:
            calls.claim(listing_id, volunteer)
            ms, _ = timed(
                lambda i=listing_id: calls.record_call(
                    i, volunteer, CallOutcome.CONFIRMED, answers=answers
                )
            )
            records.append(ms)
        db.session.remove()
    if records:
        out["record_call"] = summary(records)
        log(f"record_call() alone: {out['record_call']}")
    with app.app_context():
        db.engine.dispose()
    path.unlink()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    return out


def _cell(timing: dict[str, float]) -> str:
    return f"{timing['median']} / {timing['p95']}"


def table(results: list[dict[str, Any]]) -> str:
    sizes = [r["size"] for r in results]
    head = "| what | " + " | ".join(f"{s:,}: median / p95 ms" for s in sizes) + " |"
    rows = [head, "|---|" + "---|" * len(sizes)]
    for name in LIST_MODES:
        cells = [f"{r['list'][name]['median']} / {r['list'][name]['p95']}" for r in results]
        rows.append(f"| list, {name} | " + " | ".join(cells) + " |")
    for name in FUNCTION_MODES:
        cells = [
            f"{r['call_list'][name]['median']} / {r['call_list'][name]['p95']}" for r in results
        ]
        rows.append(f"| call_list() alone, {name} | " + " | ".join(cells) + " |")
    cells = [f"{r['baseline']['median']} / {r['baseline']['p95']}" for r in results]
    rows.append("| baseline: GET /about, same client | " + " | ".join(cells) + " |")
    for key, label in (
        ("claim", "claim (POST)"),
        ("save", "save a confirmation + claim next"),
        ("record_call", "record_call() alone (the save)"),
    ):
        cells = [f"{r[key]['median']} / {r[key]['p95']}" if key in r else "" for r in results]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{r['refresh_nearby']['seconds']} s" for r in results]
    rows.append("| refresh_nearby (whole table) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    args = parser.parse_args(argv)
    results = [bench_size(int(s)) for s in args.sizes.split(",")]
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
