"""The search benchmark: `python -m bench.run` (`make bench`). See bench/README.md.

For each size it makes (or reuses) a clustered synthetic database, times the search function
in-process next to a full-scan baseline, then measures HTTP throughput of /api/v1/search next
to /healthz under gunicorn with one sync worker, and the worker's memory. Prints markdown
tables and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from . import generate, httpload, pg, searchtime

RESULTS = Path(__file__).resolve().parent / "results"
QUICK_SIZES = [10_000, 100_000]
FULL_SIZES = [10_000, 100_000, 1_000_000]

# The targets, checked at TARGET_SIZE listings.
TARGET_SIZE = 1_000_000
P95_NO_FILTERS_MS = 5.0
P95_FILTERS_MS = 10.0
MIN_HTTP_RATIO = 0.25  # /api/v1/search, every request a different place
MIN_PAGE_RATIO = 0.15  # the /search page, likewise
MIN_304_RATIO = 0.70  # /api/v1/search answered 304 for its current ETag
MAX_WORKER_RSS_MB = 150.0
MAX_PG_P95_RATIO = 1.2
HTTP_POINTS = 1000  # the search URLs rotate over 1,000 points, 20 near each of the 50 metros


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def baseline_count(size: int, requested: int | None) -> int:
    if requested is not None:
        return requested
    return 100 if size <= 10_000 else 50 if size <= 100_000 else 20


def run_count(size: int, points: int, requested: int | None) -> int:
    if requested is not None:
        return min(requested, points)
    return min(points, 100) if size >= 1_000_000 else points


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }


CODE_FILES = (
    "directory/spatial.py",
    "directory/search.py",
    "directory/cards.py",
    "directory/views/api.py",
    "wsgi.py",
)


def code_fingerprint() -> dict[str, str]:
    """Short hashes of the files whose speed is measured, to tie numbers to a code version."""
    root = Path(__file__).resolve().parent.parent
    return {
        name: hashlib.sha256((root / name).read_bytes()).hexdigest()[:12]
        for name in CODE_FILES
        if (root / name).exists()
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- report -----------------------------------------------------------------------------------


def warm_page_cache(path: Path) -> dict[str, float]:
    """Read the database file once, so every size is measured with it in the OS page cache.

    The tables below assume a warm cache. Without this, whether it is warm depends on what ran
    before on a shared VM: a cold 1M file made each random row read a 20 us disk read instead
    of a 2 us copy from memory, and tripled the 1M search times in one run.
    """
    started = time.perf_counter()
    size = 0
    with path.open("rb", buffering=0) as fh:
        while chunk := fh.read(1 << 20):
            size += len(chunk)
    return {"mb": round(size / 2**20), "seconds": round(time.perf_counter() - started, 2)}


def _fmt(ms: float) -> str:
    return f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def search_table(results: dict[str, Any]) -> str:
    lines = [
        "| listings | engine | filters | nearest p50 | nearest p95 | nearest CPU p95 | run() p50 "
        "| run() p95 | full scan p50 | full scan p95 | speed-up (p50) | agrees |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    engines = (("search", "SQLite"), ("search_postgres", "PostgreSQL"))
    rows = [
        (size, engine, mode, m)
        for size, r in results["sizes"].items()
        for mode in searchtime.MODES
        for key, engine in engines
        if (m := r.get(key, {}).get(mode))
    ]
    for size, engine, mode, m in rows:
        lines.append(
            f"| {int(size):,} | {engine} | {mode} | {_fmt(m['nearest']['median_ms'])} "
            f"| {_fmt(m['nearest']['p95_ms'])} | {_fmt(m['nearest']['cpu_p95_ms'])} "
            f"| {_fmt(m['run']['median_ms'])} "
            f"| {_fmt(m['run']['p95_ms'])} | {_fmt(m['full_scan']['median_ms'])} "
            f"| {_fmt(m['full_scan']['p95_ms'])} (n={m['full_scan']['n']}) "
            f"| {m['speedup_median']:,.0f}x | {m['baseline_agrees']} |"
        )
    return "\n".join(lines)


def http_table(results: dict[str, Any]) -> str:
    lines = [
        "| listings | engine | /healthz req/s | /api/v1/search req/s (ratio; runs) "
        "| /search page req/s (ratio; runs) | 304 req/s (ratio; runs) "
        "| worker CPU ms/req (healthz, API, page, 304) | worker RSS after (peak) MB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(h: dict[str, Any], name: str, ratio: str) -> str:
        runs = ", ".join(f"{x:.1%}" for x in h.get(f"{name}_ratios", []))
        return f"{h[f'{name}_rps']:,.1f} ({h[ratio]:.1%}; {runs})"

    for size, r in results["sizes"].items():
        for key, engine in (("http", "SQLite"), ("http_postgres", "PostgreSQL")):
            h = r.get(key)
            if not h:
                continue
            lines.append(
                f"| {int(size):,} | {engine} | {h['healthz_rps']:,.0f} "
                f"| {cell(h, 'search', 'ratio')} | {cell(h, 'page', 'page_ratio')} "
                f"| {cell(h, 'not_modified', 'not_modified_ratio')} "
                f"| {h['healthz_cpu_ms']:.2f}, {h['search_cpu_ms']:.2f}, {h['page_cpu_ms']:.2f}, "
                f"{h['not_modified_cpu_ms']:.2f} "
                f"| {h['worker_rss_mb']:.0f} ({h['worker_peak_rss_mb']:.0f}) |"
            )
    return "\n".join(lines)


def check_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    r = results["sizes"].get(str(TARGET_SIZE))
    if r is None:
        return []
    checks = []
    s = r.get("search", {})
    if "none" in s:
        value = s["none"]["nearest"]["p95_ms"]
        checks.append(
            {
                "target": f"nearest p95 without filters <= {P95_NO_FILTERS_MS:g} ms",
                "value": f"{value:.2f} ms",
                "met": value <= P95_NO_FILTERS_MS,
            }
        )
    if "reliable+ir_only" in s:
        value = s["reliable+ir_only"]["nearest"]["p95_ms"]
        checks.append(
            {
                "target": f"nearest p95 with reliable + ir_only <= {P95_FILTERS_MS:g} ms",
                "value": f"{value:.2f} ms",
                "met": value <= P95_FILTERS_MS,
            }
        )
    for mode, engines in r.get("interleaved", {}).items():
        pg_p95, lite_p95 = engines["PostgreSQL"]["p95_ms"], engines["SQLite"]["p95_ms"]
        checks.append(
            {
                "target": f"PostgreSQL nearest p95 <= {MAX_PG_P95_RATIO:g} x SQLite's "
                f"(interleaved), {mode}",
                "value": f"{pg_p95:.2f} / {lite_p95:.2f} ms = {pg_p95 / lite_p95:.2f} x",
                "met": pg_p95 / lite_p95 <= MAX_PG_P95_RATIO,
            }
        )
    for key, engine in (("http", "SQLite"), ("http_postgres", "PostgreSQL")):
        h = r.get(key)
        if not h:
            continue
        for name, ratio, least in (
            ("/api/v1/search, cold", "ratio", MIN_HTTP_RATIO),
            ("/search page, cold", "page_ratio", MIN_PAGE_RATIO),
            ("/api/v1/search answered 304", "not_modified_ratio", MIN_304_RATIO),
        ):
            checks.append(
                {
                    "target": f"{engine}: {name} >= {least:.0%} of /healthz requests/s",
                    "value": f"{h[ratio]:.1%}",
                    "met": h[ratio] >= least,
                }
            )
    h = r.get("http")
    if h:
        checks.append(
            {
                "target": f"worker RSS < {MAX_WORKER_RSS_MB:g} MB",
                "value": f"{h['worker_rss_mb']:.0f} MB (peak {h['worker_peak_rss_mb']:.0f})",
                "met": h["worker_peak_rss_mb"] < MAX_WORKER_RSS_MB,
            }
        )
    return checks


def report(results: dict[str, Any]) -> str:
    cfg = results["config"]
    m = results["machine"]
    parts: list[str] = [
        f"{results['started_at']}  `{results['command']}`",
        f"{m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, SQLite {m['sqlite']}; "
        "1-min load average before/after each size: "
        + ", ".join(
            f"{int(size):,}: {r['load_average_before'][0]:g}/{r['load_average_after'][0]:g}"
            for size, r in results["sizes"].items()
        ),
        "",
    ]
    if any("search" in r for r in results["sizes"].values()):
        parts += [
            f"Search: top {searchtime.LIMIT} within {searchtime.RADIUS_MI:g} mi, "
            f"{cfg['points']} query points ({searchtime.METRO_SHARE:.0%} near metro centres), "
            "times in ms",
            "",
            search_table(results),
            "",
        ]
    if any("interleaved" in r for r in results["sizes"].values()):
        parts += [
            "nearest, both engines point by point in turn (same points, same moment), ms:",
            "",
            "| listings | filters | SQLite p50 | SQLite p95 | PostgreSQL p50 | PostgreSQL p95 "
            "| p95 ratio |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for size, r in results["sizes"].items():
            for mode, e in r.get("interleaved", {}).items():
                lite, pgs = e["SQLite"], e["PostgreSQL"]
                parts.append(
                    f"| {int(size):,} | {mode} | {_fmt(lite['median_ms'])} "
                    f"| {_fmt(lite['p95_ms'])} | {_fmt(pgs['median_ms'])} "
                    f"| {_fmt(pgs['p95_ms'])} | {pgs['p95_ms'] / lite['p95_ms']:.2f} |"
                )
        parts.append("")
    if any("http" in r for r in results["sizes"].values()):
        parts += [
            f"HTTP: gunicorn, 1 sync worker, load by {cfg['load_generator']}, "
            f"{cfg['http_seconds']:g} s per run, A B C D A B C D, "
            f"search URLs rotating over {cfg['http_search_points']:,} points",
            "",
            http_table(results),
        ]
    checks = check_targets(results)
    if checks:
        parts += ["", f"Targets at {TARGET_SIZE:,} listings:", ""]
        parts += [f"- [{'x' if c['met'] else ' '}] {c['target']}: {c['value']}" for c in checks]
    return "\n".join(parts)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated listing counts (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10k and 100k only, 100 query points, 5 s HTTP runs",
    )
    parser.add_argument("--points", type=int, help="query points per mode (default 300)")
    parser.add_argument(
        "--baseline", type=int, help="full-scan repetitions (default 100/50/20 by size)"
    )
    parser.add_argument(
        "--run-points", type=int, help="points for search.run() (default all; 100 at 1M)"
    )
    parser.add_argument("--http-seconds", type=float, help="seconds per HTTP run (default 10)")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn part")
    parser.add_argument("--no-search", action="store_true", help="skip the in-process part")
    parser.add_argument(
        "--load-generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk when installed, else Python",
    )
    parser.add_argument(
        "--install-wrk", action="store_true", help="apt-get install wrk first if missing (root)"
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild the databases")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    if args.sizes:
        args.size_list = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    else:
        args.size_list = QUICK_SIZES if args.quick else FULL_SIZES
    args.points = args.points or (100 if args.quick else 300)
    args.http_seconds = args.http_seconds or (5.0 if args.quick else 10.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    generator = args.load_generator
    if not args.no_http and generator in ("auto", "wrk"):
        found = httpload.install_wrk(log) if args.install_wrk else httpload.wrk_path()
        if found is None:
            if generator == "wrk":
                raise SystemExit("wrk is not installed: apt-get install -y wrk")
            log("wrk not found: using the Python load generator (apt-get install -y wrk)")
            generator = "python"
        else:
            generator = "wrk"
    points = searchtime.query_points(args.points)
    http_points = searchtime.metro_points(HTTP_POINTS)
    results: dict[str, Any] = {
        "command": " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]),
        "started_at": datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_fingerprint(),
        "config": {
            "generator_version": generate.GENERATOR_VERSION,
            "points": len(points),
            "radius_mi": searchtime.RADIUS_MI,
            "limit": searchtime.LIMIT,
            "http_seconds": args.http_seconds,
            "load_generator": generator,
            "http_search_points": len(http_points),
        },
        "sizes": {},
    }
    pg_url = os.environ.get("BENCH_DATABASE_URL")
    for size in args.size_list:
        log(f"== {size:,} listings")
        path, meta, built = generate.ensure_database(size, rebuild=args.rebuild, log=log)
        entry: dict[str, Any] = {"database": meta, "built_now": built}
        entry["page_cache_warm_up"] = warm_page_cache(path)
        log(
            f"  read the file into the OS page cache: {entry['page_cache_warm_up']['mb']:,} MB "
            f"in {entry['page_cache_warm_up']['seconds']} s"
        )
        entry["load_average_before"] = load_average()
        started = time.perf_counter()
        if not args.no_search:
            entry["search"] = searchtime.time_search(
                path,
                points,
                baseline_count(size, args.baseline),
                run_count(size, len(points), args.run_points),
                log=log,
            )
        if pg_url and not args.no_search:
            # The same rows and points on PostgreSQL (PostGIS), right after SQLite: the two
            # engines side by side in one run, under the same neighbours.
            entry["postgres"] = pg.ensure_postgres(
                size, path, meta, pg_url, rebuild=args.rebuild, log=log
            )
            entry["interleaved"] = searchtime.time_nearest_interleaved(
                {"SQLite": generate.database_url(path), "PostgreSQL": pg_url}, points, log=log
            )
            log("  PostgreSQL:")
            entry["search_postgres"] = searchtime.time_search(
                pg_url,
                points,
                baseline_count(size, args.baseline),
                run_count(size, len(points), args.run_points),
                log=log,
            )
        if not args.no_http:
            engines: list[tuple[str, Path | str]] = [("http", path)]
            if pg_url:
                entry.setdefault(
                    "postgres",
                    pg.ensure_postgres(size, path, meta, pg_url, rebuild=args.rebuild, log=log),
                )
                engines.append(("http_postgres", pg_url))
            for key, database in engines:
                log(f"  HTTP on {'PostgreSQL' if key == 'http_postgres' else 'SQLite'}:")
                entry[key] = httpload.measure(
                    database,
                    http_points,
                    seconds=args.http_seconds,
                    radius=searchtime.RADIUS_MI,
                    generator=generator,
                    log_file=generate.DATA_DIR / f"gunicorn-{size}.log",
                    log=log,
                )
        entry["seconds"] = round(time.perf_counter() - started, 1)
        entry["load_average_after"] = load_average()
        results["sizes"][str(size)] = entry
    results["finished_at"] = datetime.now().isoformat(timespec="seconds")
    results["targets"] = check_targets(results)
    text = report(results)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
