"""HTTP throughput under gunicorn (one sync worker) and the worker's memory.

The server runs `wsgi:app` exactly as in production, configured through the environment. The
load comes from another process: `wrk` when it is installed (Debian package `wrk`; a Lua script
rotates the search over several points), otherwise a Python load generator (several processes,
each with its own connection, which it reopens whenever the server closes it; it also rotates).
Endpoints are measured alternately, A B A B, so a noisy neighbour hurts both about equally.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 4  # > 1 so the next request already waits in the backlog when the worker is free


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS (now), VmHWM (peak) and RssAnon (private heap, no file pages) in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


class Gunicorn:
    """`gunicorn --workers 1 wsgi:app` on a free local port, for one database file."""

    def __init__(self, db_file: Path | str, log_file: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.db_file = db_file
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        env = {
            **os.environ,
            "DATABASE_URL": (
                self.db_file
                if isinstance(self.db_file, str)
                else f"sqlite:///{self.db_file.resolve()}"
            ),
            "SECRET_KEY": "bench-not-secret",
            "PUBLIC_URL": "http://127.0.0.1",
            "RATELIMIT_STORAGE_URI": "memory://",
            "DIRECTORY_ENV": "production",
        }
        env.pop("FLASK_DEBUG", None)
        gunicorn = Path(sys.executable).with_name("gunicorn")
        cmd = [
            str(gunicorn),
            "--workers=1",
            "--worker-class=sync",
            f"--bind=127.0.0.1:{self.port}",
            "--backlog=2048",
            "--timeout=120",
            "--no-control-socket",
            "wsgi:app",
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_file}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /healthz within 90 s; see {self.log_file}")

    def worker_pid(self) -> int:
        assert self.proc is not None
        workers = children(self.proc.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        return workers[0]

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the master stops its worker
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- load generators --------------------------------------------------------------------------


def wrk_path() -> str | None:
    return shutil.which("wrk")


def install_wrk(log: Callable[[str], None] = print) -> str | None:
    """Debian's wrk, when we are root and apt-get is there; None otherwise."""
    if wrk_path() or os.geteuid() != 0 or not shutil.which("apt-get"):
        return wrk_path()
    log("installing wrk (apt-get install -y wrk)")
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    return wrk_path()


LUA_ROTATE = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i])
end
"""


def _lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_wrk(
    base: str, paths: list[str], seconds: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    wrk = wrk_path()
    assert wrk is not None
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--timeout=30s", "--latency"]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        if len(paths) > 1:
            script = Path(tmp) / "rotate.lua"
            script.write_text(LUA_ROTATE % ", ".join(_lua_string(p) for p in paths))
            cmd += ["-s", str(script)]
        cmd.append(base + paths[0])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    text = done.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if rate is None or total is None:
        raise RuntimeError(f"could not read wrk's output:\n{text}\n{done.stderr}")
    return {
        "requests_per_s": float(rate.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
        "latency_p50": p50.group(1) if p50 else None,
        "latency_p99": p99.group(1) if p99 else None,
    }


def _python_client(
    port: int, paths: list[str], start: int, until: float, out: Any, headers: dict[str, str]
) -> None:
    done = bad = 0
    conn: http.client.HTTPConnection | None = None
    i = start
    while time.monotonic() < until:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", paths[i % len(paths)], headers=headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = None
            continue
        i += 1
        done += 1
        bad += not 200 <= response.status < 400
        if response.will_close:
            conn.close()
            conn = None
    out.put((done, bad))


def run_python(
    port: int, paths: list[str], seconds: float, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    started = time.monotonic()
    until = started + seconds
    procs = [
        ctx.Process(target=_python_client, args=(port, paths, k, until, results, headers or {}))
        for k in range(CONNECTIONS)
    ]
    for p in procs:
        p.start()
    counts = [results.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    done = sum(c[0] for c in counts)
    return {
        "requests_per_s": round(done / elapsed, 2),
        "requests": done,
        "non_2xx": sum(c[1] for c in counts),
        "socket_errors": "",
        "latency_p50": None,
        "latency_p99": None,
    }


# --- the measurement --------------------------------------------------------------------------


def search_paths(points: list[tuple[float, float]], radius: float, page: bool = False) -> list[str]:
    path = "/search" if page else "/api/v1/search"
    return [f"{path}?lat={lat:.5f}&lon={lon:.5f}&radius={radius:g}" for lat, lon in points]


def measure(
    database: Path | str,
    points: list[tuple[float, float]],
    *,
    seconds: float,
    radius: float,
    generator: str,
    log_file: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Requests/s of /healthz, /api/v1/search and the /search page (each rotating over every
    point: the cold path), and of /api/v1/search answered 304 for its current ETag, in the
    order A B C D A B C D; the worker's memory after."""
    api = search_paths(points, radius)
    endpoints = {
        "healthz": ["/healthz"],
        "search": api,
        "page": search_paths(points, radius, page=True),
        "not_modified": api[:1],
    }
    headers: dict[str, dict[str, str]] = {name: {} for name in endpoints}
    with Gunicorn(database, log_file) as server:
        worker = server.worker_pid()
        rss_start = rss_kb(worker)
        # Sanity: the search answers, with results, before we measure how fast it does.
        with urllib.request.urlopen(server.base + api[0], timeout=60) as r:
            body = r.read()
            etag = r.headers["ETag"]
            if r.status != 200 or b'"results":[]' in body.replace(b" ", b""):
                raise RuntimeError(f"search answered {r.status} without results: {body[:300]!r}")
        headers["not_modified"] = {"If-None-Match": etag}
        try:
            urllib.request.urlopen(
                urllib.request.Request(server.base + api[0], headers=headers["not_modified"])
            )
            raise RuntimeError("the current ETag did not get a 304")
        except urllib.error.HTTPError as exc:
            if exc.code != 304:
                raise

        def load(name: str, secs: float) -> dict[str, Any]:
            paths = endpoints[name]
            cpu0 = cpu_seconds(worker)
            if generator == "wrk":
                r = run_wrk(server.base, paths, secs, headers[name])
            else:
                r = run_python(server.port, paths, secs, headers[name])
            # The worker's CPU per request does not depend on how busy the neighbours are.
            r["worker_cpu_ms_per_request"] = round(
                (cpu_seconds(worker) - cpu0) * 1000 / max(r["requests"], 1), 3
            )
            return r

        for name in endpoints:  # warm-up: imports, caches, first queries
            load(name, min(2.0, seconds))
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in endpoints}
        for _round in range(2):
            for name in endpoints:
                r = load(name, seconds)
                runs[name].append(r)
                log(
                    f"  {name:<12} {r['requests_per_s']:>8.1f} req/s  p50 {r['latency_p50']}  "
                    f"worker CPU {r['worker_cpu_ms_per_request']:.2f} ms/request"
                )
        rss_end = rss_kb(worker)
    out: dict[str, Any] = {"generator": generator, "seconds_each": seconds, "runs": runs}
    for name, rs in runs.items():
        out[f"{name}_rps"] = round(sum(r["requests_per_s"] for r in rs) / len(rs), 1)
        out[f"{name}_non_2xx"] = sum(r["non_2xx"] for r in rs)
        cpu = sum(r["worker_cpu_ms_per_request"] * r["requests"] for r in rs)
        out[f"{name}_cpu_ms"] = round(cpu / max(sum(r["requests"] for r in rs), 1), 3)
        # Run-to-run spread of the ratio: each round's endpoint over that round's /healthz.
        out[f"{name}_ratios"] = [
            round(r["requests_per_s"] / h["requests_per_s"], 3)
            for r, h in zip(rs, runs["healthz"], strict=True)
        ]
    out["ratio"] = round(out["search_rps"] / out["healthz_rps"], 3)
    out["page_ratio"] = round(out["page_rps"] / out["healthz_rps"], 3)
    out["not_modified_ratio"] = round(out["not_modified_rps"] / out["healthz_rps"], 3)
    # What the ratio would be if the worker had a core to itself: CPU per request, inverted.
    out["cpu_ratio"] = round(out["healthz_cpu_ms"] / max(out["search_cpu_ms"], 1e-9), 3)
    out["page_cpu_ratio"] = round(out["healthz_cpu_ms"] / max(out["page_cpu_ms"], 1e-9), 3)
    out["search_points"] = len(api)
    out["response_bytes"] = len(body)
    out["worker_rss_mb_start"] = round(rss_start["VmRSS"] / 1024, 1)
    out["worker_rss_mb"] = round(rss_end["VmRSS"] / 1024, 1)
    out["worker_peak_rss_mb"] = round(rss_end["VmHWM"] / 1024, 1)
    out["worker_anon_rss_mb"] = round(rss_end.get("RssAnon", 0) / 1024, 1)
    out["worker_file_rss_mb"] = round(rss_end.get("RssFile", 0) / 1024, 1)
    return out
