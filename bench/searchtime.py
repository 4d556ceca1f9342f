"""In-process timing of the search function against a full-scan baseline.

For each filter mode, on the same query points and in the same process:
- `spatial.nearest` with the conditions `search.conditions` builds (what the issue's targets
  are about),
- `search.run` with the point given as lat/lon (what the page and the API call: reverse label,
  nearest, loading the 20 listings, "also available"),
- `spatial.full_scan_nearest` on the first few points (the no-index baseline), whose answers
  are also compared with nearest's as a check that the fast path is right.

Each call runs in a fresh session (as each request does), which is removed outside the timing.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from .generate import anywhere, database_url, near_metro, offset
from .metros import METROS

RADIUS_MI = 25.0
LIMIT = 20
METRO_SHARE = 0.8  # of query points; the rest are uniform over the continental US
QUERY_SIGMA_KM = 8.0  # query points sit in the dense middle of a metro
QUERY_SEED = 7
WARMUP = 30
MODES: dict[str, frozenset[str]] = {
    "none": frozenset(),
    "reliable+ir_only": frozenset({"reliable", "ir_only"}),
}


def query_points(n: int, seed: int = QUERY_SEED) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    points = []
    for _ in range(n):
        if rng.random() < METRO_SHARE:
            lat, lon, _m = near_metro(rng, QUERY_SIGMA_KM, 25.0)
        else:
            lat, lon = anywhere(rng)
        points.append((round(lat, 5), round(lon, 5)))
    return points


def metro_points(k: int, seed: int = QUERY_SEED) -> list[tuple[float, float]]:
    """k points within a few km of the metro centres, one per metro in turn (for the HTTP runs:
    with more points than metros, every request still asks about a place not asked before)."""
    rng = random.Random(seed)
    out = []
    for i in range(k):
        metro = METROS[i % len(METROS)]
        lat, lon = offset(metro.lat, metro.lon, rng.gauss(0, 4.0), rng.gauss(0, 4.0))
        out.append((round(lat, 5), round(lon, 5)))
    return out


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(samples: list[tuple[int, int]]) -> dict[str, Any]:
    """Wall-clock statistics of (wall ns, cpu ns) samples, with the CPU-time median and p95.

    CPU time (this thread's) leaves out time spent waiting for a core, so on a shared machine
    it shows what the wall-clock numbers would be without the neighbours.
    """
    ms = [w / 1e6 for w, _ in samples]
    cpu = [c / 1e6 for _, c in samples]
    return {
        "n": len(ms),
        "median_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3),
        "mean_ms": round(sum(ms) / len(ms), 3),
        "cpu_median_ms": round(percentile(cpu, 50), 3),
        "cpu_p95_ms": round(percentile(cpu, 95), 3),
    }


def _timed(fn: Callable[[], Any], remove: Callable[[], None]) -> tuple[tuple[int, int], Any]:
    c0 = time.thread_time_ns()
    t0 = time.perf_counter_ns()
    out = fn()
    elapsed = time.perf_counter_ns() - t0
    cpu = time.thread_time_ns() - c0
    remove()
    return (elapsed, cpu), out


def _same_answer(fast: list[tuple[int, float]], slow: list[tuple[int, float]]) -> bool:
    # Same distances in the same order (ids may swap only between exactly equal distances).
    return len(fast) == len(slow) and all(
        abs(a[1] - b[1]) < 1e-9 and (a[0] == b[0] or a[1] == b[1])
        for a, b in zip(fast, slow, strict=True)
    )


def _time_mode(
    points: list[tuple[float, float]],
    filters: frozenset[str],
    baseline_points: int,
    run_points: int,
    geocoding: Any,
) -> dict[str, Any]:
    from directory import geomath, search, spatial
    from directory.extensions import db

    remove = db.session.remove
    radius_km = RADIUS_MI * geomath.KM_PER_MILE
    base = search.Params(radius=RADIUS_MI, filters=filters)
    conds = search.conditions(base)

    def nearest(lat: float, lon: float) -> spatial.Nearest:
        return spatial.nearest(lat, lon, radius_km=radius_km, conditions=conds, limit=LIMIT)

    def run(lat: float, lon: float) -> search.Result:
        return search.run(replace(base, lat=lat, lon=lon), geocoding)

    def full_scan(lat: float, lon: float) -> list[tuple[int, float]]:
        return spatial.full_scan_nearest(lat, lon, radius_km, conds, limit=LIMIT)

    for p in points[:WARMUP]:
        _timed(lambda p=p: nearest(*p), remove)
        _timed(lambda p=p: run(*p), remove)

    nearest_ns: list[tuple[int, int]] = []
    answers = []
    for p in points:
        ns, found = _timed(lambda p=p: nearest(*p), remove)
        nearest_ns.append(ns)
        answers.append(found)
    run_ns = [_timed(lambda p=p: run(*p), remove)[0] for p in points[:run_points]]

    k = min(baseline_points, len(points))
    full_ns: list[tuple[int, int]] = []
    agree = 0
    for p, fast in zip(points[:k], answers[:k], strict=True):
        ns, slow = _timed(lambda p=p: full_scan(*p), remove)
        full_ns.append(ns)
        agree += _same_answer(fast.hits, slow)

    nearest_same_points = summary(nearest_ns[:k])
    full = summary(full_ns)
    return {
        "nearest": summary(nearest_ns),
        "run": summary(run_ns),
        "full_scan": full,
        "nearest_on_baseline_points": nearest_same_points,
        "speedup_median": round(full["median_ms"] / nearest_same_points["median_ms"], 1),
        "baseline_agrees": f"{agree}/{k}",
        "mean_hits": round(sum(len(a.hits) for a in answers) / len(answers), 1),
        "capped_share": round(sum(a.total_capped for a in answers) / len(answers), 2),
    }


def time_search(
    db_file: Path | str,
    points: list[tuple[float, float]],
    baseline_points: int,
    run_points: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    os.environ.setdefault("SECRET_KEY", "bench")  # else a testing app writes instance/secret_key
    from directory import create_app
    from directory.extensions import db
    from directory.geocoding.app import geocoder

    url = db_file if isinstance(db_file, str) else database_url(db_file)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": True})
    out: dict[str, Any] = {}
    with app.app_context():
        geocoding = geocoder()
        for mode, filters in MODES.items():
            r = out[mode] = _time_mode(
                points, filters, baseline_points, run_points or len(points), geocoding
            )
            log(
                f"  {mode:<17} nearest p50 {r['nearest']['median_ms']:.2f} "
                f"p95 {r['nearest']['p95_ms']:.2f} ms | run() p50 {r['run']['median_ms']:.2f} "
                f"p95 {r['run']['p95_ms']:.2f} ms | full scan p50 "
                f"{r['full_scan']['median_ms']:.1f} ms (n={r['full_scan']['n']}, "
                f"agrees {r['baseline_agrees']}) | x{r['speedup_median']}"
            )
        db.session.remove()
        db.engine.dispose()
    return out


def time_nearest_interleaved(
    urls: dict[str, str], points: list[tuple[float, float]], log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """`spatial.nearest` on several databases, point by point in turn (which engine goes first
    alternates), so a busy neighbour slows them alike: the engines' ratio is measured under the
    same load. {mode: {engine: summary}}."""
    os.environ.setdefault("SECRET_KEY", "bench")
    from directory import create_app, geomath, search, spatial
    from directory.extensions import db

    apps = {
        name: create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": True})
        for name, url in urls.items()
    }
    radius_km = RADIUS_MI * geomath.KM_PER_MILE
    out: dict[str, dict[str, Any]] = {}
    for mode, filters in MODES.items():
        conds = search.conditions(search.Params(radius=RADIUS_MI, filters=filters))
        samples: dict[str, list[tuple[int, int]]] = {name: [] for name in apps}
        order = list(apps)
        # A whole unmeasured pass first: SQLite's pages were read by the passes before this
        # one (and its file into the OS cache), PostgreSQL's not; measuring PostgreSQL's first
        # reads of the index pages against SQLite's warm ones would compare caches, not engines.
        warm_up = len(points)
        for i, p in enumerate(points + points):
            for name in order if i % 2 else reversed(order):
                with apps[name].app_context():
                    ns, _found = _timed(
                        lambda p=p, c=conds: spatial.nearest(
                            *p, radius_km=radius_km, conditions=c, limit=LIMIT
                        ),
                        db.session.remove,
                    )
                if i >= warm_up:
                    samples[name].append(ns)
        out[mode] = {name: summary(s) for name, s in samples.items()}
        log(
            f"  interleaved {mode:<17} "
            + " | ".join(
                f"{name} p50 {s['median_ms']:.2f} p95 {s['p95_ms']:.2f} ms"
                for name, s in out[mode].items()
            )
        )
    for app in apps.values():
        with app.app_context():
            db.engine.dispose()
    return out
