"""How fast is `flask --app wsgi import-nppes`, and does its memory stay flat as the file grows?

For each size: a file in the registry's layout (bench/nppes_generate.py), a bare `csv.reader`
pass over it (for scale: what parsing every row would cost), the scan alone (byte test, no
database), then the real command in a child process on a fresh SQLite database: the first import
(every compounding pharmacy is new) and the same file again (every one unchanged). The child's
RSS and peak RSS (VmHWM) are sampled every 0.1 s, so a climb would show.

    .venv/bin/python -m bench.nppes                        # 250,000 and 500,000 rows
    .venv/bin/python -m bench.nppes --sizes 500000 --zip   # from the monthly zip's shape
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from . import nppes_generate as gen

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "nppes-latest.json"
FLASK = Path(sys.executable).with_name("flask")


def _rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds else 0.0


def bare_csv(path: Path) -> dict[str, float]:
    start = time.perf_counter()
    rows = 0
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        for _ in csv.reader(fh):
            rows += 1
    seconds = time.perf_counter() - start
    return {"rows": rows - 1, "seconds": seconds, "rows_per_s": _rate(rows - 1, seconds)}


def scan_only(path: Path) -> dict[str, float]:
    from directory import nppes

    start = time.perf_counter()
    progress = nppes.Progress()
    with nppes.open_registry(path) as registry:
        found = sum(1 for _ in nppes.scan(registry, set(), progress=progress))
    seconds = time.perf_counter() - start
    return {
        "rows": progress.rows,
        "parsed": found,
        "seconds": seconds,
        "rows_per_s": _rate(progress.rows, seconds),
    }


def _env(database_url: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": database_url, "DIRECTORY_ENV": "development"}


def fresh_database(folder: Path) -> str:
    url = f"sqlite:///{folder / 'nppes-bench.db'}"
    for args in (["init-db"], ["seed", "--no-samples"]):
        subprocess.run(
            [str(FLASK), "--app", "wsgi", *args],
            cwd=ROOT,
            env=_env(url),
            check=True,
            capture_output=True,
        )
    return url


def _memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS now, peak RSS) of a running process. The peak is VmHWM, not wait4's ru_maxrss: on
    Linux a child's ru_maxrss starts from its parent's RSS at fork, before exec."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    found = {k: int(v.split()[0]) for k, _, v in (s.partition(":") for s in status) if k in _VM}
    return (found["VmRSS"], found["VmHWM"]) if len(found) == 2 else None


_VM = {"VmRSS", "VmHWM"}


def timed_import(path: Path, database_url: str) -> dict[str, Any]:
    """The real command in a child: wall time, the command's own time and rate, peak RSS
    and RSS samples."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [str(FLASK), "--app", "wsgi", "import-nppes", str(path)],
        cwd=ROOT,
        env=_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    samples: list[tuple[float, int]] = []
    peak = [0]

    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            memory = _memory_kb(child.pid)
            if memory:
                samples.append((time.perf_counter() - start, memory[0]))
                peak[0] = max(peak[0], memory[1])
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert child.stdout is not None
    output = child.stdout.read()
    child.wait()
    wall = time.perf_counter() - start
    done.set()
    sampler.join(timeout=1)
    if child.returncode != 0:
        raise SystemExit(f"import-nppes failed:\n{output}")
    summary = output.strip().splitlines()[0]
    own = re.search(r"\(([\d.]+) s, ([\d,]+) rows/s\)", summary)
    half = [rss for t, rss in samples if t >= wall / 2]
    return {
        "summary": summary,
        "wall_seconds": wall,
        "import_seconds": float(own.group(1)) if own else None,
        "rows_per_s": float(own.group(2).replace(",", "")) if own else None,
        "peak_rss_mb": peak[0] / 1024,
        "rss_second_half_mb": [min(half) / 1024, max(half) / 1024] if half else None,
        "samples": len(samples),
    }


def measure(rows: int, zipped: bool) -> dict[str, Any]:
    print(f"== {rows:,} rows{' (zip)' if zipped else ''}: making the file", file=sys.stderr)
    path = gen.ensure_file(rows, zipped=zipped)
    plain = gen.ensure_file(rows)
    result: dict[str, Any] = {"rows": rows, "zip": zipped, "bytes": path.stat().st_size}
    print("   bare csv.reader", file=sys.stderr)
    result["csv_reader"] = bare_csv(plain)
    print("   scan alone", file=sys.stderr)
    result["scan"] = scan_only(path)
    with tempfile.TemporaryDirectory() as folder:
        url = fresh_database(Path(folder))
        print("   first import", file=sys.stderr)
        result["first_import"] = timed_import(path, url)
        print("   same file again", file=sys.stderr)
        result["reimport"] = timed_import(path, url)
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| rows | file | bare csv.reader | scan alone | first import (all new) | "
        "same file again | peak RSS (first / again) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        first, again = r["first_import"], r["reimport"]
        lines.append(
            f"| {r['rows']:,} | {'zip' if r['zip'] else 'csv'}, {r['bytes'] / 1e6:,.0f} MB "
            f"| {r['csv_reader']['rows_per_s']:,.0f} rows/s "
            f"| {r['scan']['rows_per_s']:,.0f} rows/s "
            f"| {first['rows_per_s']:,.0f} rows/s ({first['import_seconds']:.1f} s; "
            f"{first['wall_seconds']:.1f} s with start-up) "
            f"| {again['rows_per_s']:,.0f} rows/s ({again['import_seconds']:.1f} s; "
            f"{again['wall_seconds']:.1f} s) "
            f"| {first['peak_rss_mb']:.0f} / {again['peak_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250000,500000")
    parser.add_argument("--zip", action="store_true", help="import from the zip's shape")
    args = parser.parse_args()
    results = [measure(int(n), args.zip) for n in args.sizes.split(",")]
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
