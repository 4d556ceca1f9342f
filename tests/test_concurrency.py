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
from sqlalchemy import func, select

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
