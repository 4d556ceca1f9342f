"""Export and import benchmark: the real commands, each in a process of its own.

`flask --app wsgi export` writes the 1M bench database in each format; the time is the wall
clock of the command and the memory its peak RSS (the kernel's ru_maxrss for the child, so the
interpreter, the app and the streamed export together). Then the 100k bench database's CSV
export is imported into an empty database (migrated, vocabularies only, one moderator):
rows per second through the public form's rules and the audited writes.

    .venv/bin/python -m bench.export                      # 1M export, 100k import
    .venv/bin/python -m bench.export --size 100000 --import-size 10000

Prints a markdown table (bench/README.md, "Exports and imports") and writes
bench/results/export-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .generate import ensure_database

ROOT = Path(__file__).resolve().parent.parent
FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
FORMATS = ("jsonl", "csv", "geojson", "hsds")
PASSWORD = "bench horse battery staple"


def _env(database: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database.resolve()}",
        "SECRET_KEY": "bench-not-secret",
        "PUBLIC_URL": "http://127.0.0.1",
        "GEOCODER": "offline",
    }


def _timed(args: list[str], database: Path, stdin: str | None = None) -> dict[str, Any]:
    """Run one command; its wall time, its own peak RSS and its output.

    The peak comes from the command's own /proc status (VmHWM), read by a small watcher: the
    rusage that wait4 gives a child of this process counts this process's size at the fork
    (Linux keeps the forked copy's high-water mark across exec), which once read 268 MB for an
    export whose own peak was 86 MB."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            FLASK + args,
            cwd=ROOT,
            env=_env(database),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
            text=True,
        )
        if proc.stdin is not None:
            proc.stdin.write(stdin or "")
            proc.stdin.close()
        peak_kib = 0
        status_file = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status_file.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass  # between exit and reaping
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {err.read().strip()}")
        return {
            "seconds": seconds,
            "peak_rss_mb": peak_kib / 1024,
            "output": out.read().strip(),
        }


def measure_exports(size: int, folder: Path) -> list[dict[str, Any]]:
    database, _meta, _built = ensure_database(size, log=lambda m: print(m, file=sys.stderr))
    rows = []
    for fmt in FORMATS:
        out = folder / f"bench-{size}.{fmt}"
        print(f"export {size:,} as {fmt}", file=sys.stderr)
        run = _timed(["export", str(out), "--format", fmt], database)
        rows.append({"format": fmt, "listings": size, "bytes": out.stat().st_size, **run})
        out.unlink()
    return rows


def measure_import(size: int, folder: Path) -> dict[str, Any]:
    source, _meta, _built = ensure_database(size, log=lambda m: print(m, file=sys.stderr))
    data = folder / f"bench-{size}.csv"
    _timed(["export", str(data)], source)
    target = folder / "import-target.db"
    _timed(["init-db"], target)
    _timed(["seed", "--no-samples"], target)
    _timed(["create-moderator", "bench", "--password-stdin"], target, PASSWORD + "\n")
    print(f"import {size:,} rows", file=sys.stderr)
    run = _timed(["import", str(data), "--as", "bench"], target)
    run.update(rows=size, rows_per_second=size / run["seconds"], bytes=data.stat().st_size)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="listings to export")
    parser.add_argument("--import-size", type=int, default=100_000, help="rows to import")
    parser.add_argument("--no-import", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/export-latest.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ldn-export-bench-") as tmp:
        exports = measure_exports(args.size, Path(tmp))
        imported = None if args.no_import else measure_import(args.import_size, Path(tmp))
    print("| format | listings | file size (MB) | time (s) | listings/s | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in exports:
        print(
            f"| {r['format']} | {r['listings']:,} | {r['bytes'] / 1e6:,.0f} | "
            f"{r['seconds']:.1f} | {r['listings'] / r['seconds']:,.0f} | {r['peak_rss_mb']:.0f} |"
        )
    if imported:
        print()
        print("| import | rows | time (s) | rows/s | peak RSS (MB) |")
        print("|---|---:|---:|---:|---:|")
        print(
            f"| CSV, into an empty database | {imported['rows']:,} | {imported['seconds']:.1f} "
            f"| {imported['rows_per_second']:,.0f} | {imported['peak_rss_mb']:.0f} |"
        )
        print(f"\n{imported['output']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "load_average": os.getloadavg(),
                "exports": exports,
                "import": imported,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
