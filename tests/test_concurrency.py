"""Several gunicorn workers against one database: concurrent submitters all land, and a
rate limit kept in Redis holds across workers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from directory.extensions import db
from directory.models import Submission
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, database_url: str, workers: int, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(
            DATABASE_URL=database_url,
            SECRET_KEY="gunicorn-test-secret",
            DIRECTORY_ENV="development",
            **env,
        )
        self.cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "60",
            "wsgi:app",
        ]

    def __enter__(self) -> Gunicorn:
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("gunicorn did not start: " + self.proc.stderr.read().decode()[-2000:])

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def submit_once(base: str, name: str, ip: str = "") -> int:
    """GET the form (session cookie + CSRF token), then POST it, as a browser does."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    headers = {"X-Forwarded-For": ip} if ip else {}
    with opener.open(urllib.request.Request(base + "/suggest/pharmacy", headers=headers)) as r:
        token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', r.read())
    assert token, "no CSRF token in the form"
    form = {
        "csrf_token": token.group(1).decode(),
        "name": name,
        "city": "Birmingham",
        "state": "US-AL",
        "postal_code": "35233",
        "country": "US",
        "website": "https://example.org/" + urllib.parse.quote(name),
        "makes_ldn": "yes",
        "sr_policy": "ir_only",
        "fillers_unknown": "y",
        "mail_order": "no",
    }
    request = urllib.request.Request(
        base + "/suggest/pharmacy",
        data=urllib.parse.urlencode(form).encode(),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with opener.open(request) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_concurrent_submitters_under_several_workers_all_land(app, database_url) -> None:
    with Gunicorn(
        database_url,
        workers=3,
        SUBMISSION_RATE_LIMIT="1000 per hour",
        PENDING_SUBMISSIONS_PER_ADDRESS="1000",
    ) as server:
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(
                pool.map(lambda i: submit_once(server.url, f"Concurrent Pharmacy {i}"), range(36))
            )
    assert statuses == [200] * 36  # the redirect to the confirmation page was followed
    db.session.expire_all()
    count = db.session.scalar(select(func.count()).select_from(Submission))
    assert count == 36
    names = {s.data["name"] for s in db.session.scalars(select(Submission))}
    assert names == {f"Concurrent Pharmacy {i}" for i in range(36)}


def _redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.skipif(not _redis_available(), reason=f"Redis not reachable at {REDIS_URL}")
def test_rate_limit_in_redis_holds_across_workers(app, database_url) -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    with Gunicorn(
        database_url,
        workers=3,
        RATELIMIT_STORAGE_URI=REDIS_URL,
        SUBMISSION_RATE_LIMIT="4 per hour",
        TRUST_PROXY_HOPS="1",
    ) as server:
        statuses = [submit_once(server.url, f"Limited {i}", ip="198.51.100.7") for i in range(9)]
        other = submit_once(server.url, "Another client", ip="198.51.100.8")
    assert statuses.count(200) == 4 and statuses.count(429) == 5
    assert other == 200


def _children(pid: int) -> list[int]:
    """The gunicorn master's workers (its child processes), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_worker_killed_mid_submission_leaves_no_partial_rows(app, database_url) -> None:
    """SIGKILL, not a polite stop: whatever transaction the worker had open is lost whole. Every
    submission a client was told about is stored, with its audit entry; nothing else is."""
    import signal
    import threading

    from directory.models import AuditEntry

    with Gunicorn(database_url, workers=2, RATELIMIT_ENABLED="false") as server:
        stop = threading.Event()
        accepted: list[str] = []

        def submitter(n: int) -> None:
            for i in range(200):
                if stop.is_set():
                    return
                name = f"Killed {n}-{i}"
                try:
                    if submit_once(server.url, name) == 200:
                        accepted.append(name)
                except (OSError, AssertionError):
                    pass  # the worker died under this request (or its form): the client saw it

        with ThreadPoolExecutor(max_workers=4) as pool:
            for n in range(4):
                pool.submit(submitter, n)
            kills = 0
            deadline = time.monotonic() + 180
            landed = 0
            while kills < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
                # Kill again only once submissions land again (the replacement is serving).
                if len(accepted) >= landed + 3:
                    workers = _children(server.proc.pid)
                    os.kill(workers[kills % len(workers)], signal.SIGKILL)
                    kills += 1
                    landed = len(accepted)
            stop.set()
        assert kills == 4
        assert server.proc.poll() is None, "the master survived and kept serving"

    db.session.expire_all()
    subs = {s.id: s for s in db.session.scalars(select(Submission))}
    audited = db.session.scalars(
        select(AuditEntry.submission_id).where(AuditEntry.action == "submitted")
    ).all()
    assert sorted(audited) == sorted(subs), "a submission without its audit entry, or the reverse"
    stored = [s.data["name"] for s in subs.values()]
    assert all(s.reference and s.data.get("city") == "Birmingham" for s in subs.values())
    assert len(stored) == len(set(stored))
    assert set(accepted) <= set(stored), "a submission the client was told about is missing"
    assert len(accepted) >= 8
    if db.engine.dialect.name == "sqlite":
        assert db.session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
