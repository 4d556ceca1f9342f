"""Submission throughput under gunicorn (issue 12): public forms posted by many clients at once
while 10,000 submissions already wait in the queue.

    python -m bench.submissions            # SQLite; PostgreSQL too with BENCH_DATABASE_URL:
    BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \
        python -m bench.submissions

For each database, the same freshly built data (migrations, the seed's sample listings, 10,000
pending submissions spread over 1,000 real ZIP codes, each geocoded by the app's offline
geocoder) is served by `gunicorn --workers 4` (sync workers, ./gunicorn.conf.py) running the code
before the change (`--before`, a `git archive` of that commit) and then this checkout's, with
rate limits off (RATELIMIT_ENABLED=false) and the pending caps far away. Client threads each
fetch the form once (a real session cookie and CSRF token, as a browser) and then post, one
request at a time, new pharmacies (85%), corrections to sample pharmacies (10%) and planted
duplicates (5%: the same phone or NPI as a queued submission, or a similar name at its ZIP).
Afterwards every accepted submission is looked up in the database (kept?) and every planted
duplicate's stored `duplicates` checked for the one it copies (found?).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.httpload import children, cpu_seconds, free_port

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
SQLITE_FILE = DATA / "submissions.db"
QUEUED = 10_000
ZIPS = 1_000
SEED = 12
WORDS = (
    "Magnolia Cedar Oak Pine Willow Birch Maple Aspen Elm Ivy Harbor River Valley Summit Meadow "
    "Prairie Canyon Lakeside Hillcrest Sunrise Beacon Heritage Liberty Pioneer Golden Silver "
    "Evergreen Bluebird Cardinal Juniper Sage Laurel Cypress Redwood Sequoia Hawthorn Linden "
    "Rowan Alder Hazel Chestnut Poplar Spruce Sycamore Tamarack Walnut Yarrow Clover Fern"
).split()
SUFFIXES = ("Compounding", "Pharmacy", "Apothecary", "Compounding Pharmacy", "Drug", "Rx")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the data ---------------------------------------------------------------------------------


def npi_with_check(rng: random.Random) -> str:
    from directory.validation import npi_valid

    base = f"1{rng.randrange(10**8):08d}"
    return next(base + str(d) for d in range(10) if npi_valid(base + str(d)))


def phone(rng: random.Random) -> str:
    return f"({rng.randint(201, 989)}) {rng.randint(200, 999)}-{rng.randrange(10000):04d}"


def pick_zips(rng: random.Random) -> list[dict[str, str]]:
    import zipcodes

    from directory.regions import us_states

    # Only states the public form offers (Guam's ZIPs were refused as "Not a valid choice").
    states = us_states()
    usable = [
        z
        for z in zipcodes.list_all()
        if z["active"]
        and z["zip_code_type"] == "STANDARD"
        and z["lat"]
        and "US-" + z["state"] in states
    ]
    return [
        {"postal_code": z["zip_code"], "city": z["city"].title(), "region": "US-" + z["state"]}
        for z in rng.sample(usable, ZIPS)
    ]


def random_name(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(SUFFIXES)}"


def build(url: str) -> dict[str, Any]:
    """A fresh database at `url`: schema, vocabularies and sample listings, then QUEUED
    pending submissions. Returns what the load needs: ZIPs, queued rows to copy, listings."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, select, text

    from directory import create_app, seeding
    from directory.duplicates import submission_keys
    from directory.extensions import db
    from directory.geocoding.app import geocoder
    from directory.models import Kind, Listing, Submission, SubmissionStatus, SubmissionType
    from directory.moderation.submissions import content_hash

    if url.startswith("sqlite"):
        SQLITE_FILE.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)
    else:
        from bench.pg import empty_schema

        empty_schema(url)
    os.environ.setdefault("SECRET_KEY", "bench")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": True})
    rng = random.Random(SEED)
    with app.app_context():
        upgrade()
        seeding.load(samples=True)
        zips = pick_zips(rng)
        places: dict[str, dict[str, Any] | None] = {}
        for z in zips:
            place = geocoder().address(None, z["city"], z["region"], z["postal_code"], "US")
            places[z["postal_code"]] = place.to_dict() if place else None
        rows = []
        for n in range(QUEUED):
            z = rng.choice(zips)
            prescriber = rng.random() < 0.2
            data: dict[str, Any] = {
                "name": ("Dr. " if prescriber else "") + random_name(rng),
                "street": None,
                **z,
                "country": "US",
                "phone": phone(rng),
                "website": None,
                "email": None,
            }
            if prescriber:
                data["npi"] = npi_with_check(rng)
            place = places[z["postal_code"]]
            rows.append(
                {
                    "reference": f"LDN-Q{n:05d}",
                    "type": SubmissionType.NEW,
                    "listing_kind": Kind.PRESCRIBER if prescriber else Kind.PHARMACY,
                    "data": data,
                    "place": place,
                    "duplicates": [],
                    "content_hash": content_hash({"queued": n}),
                    "status": SubmissionStatus.PENDING,
                    "note": f"queued {n}",
                    **submission_keys(data, place),
                }
            )
        db.session.execute(insert(Submission), rows)
        db.session.commit()
        ids = dict(
            db.session.execute(
                select(Submission.note, Submission.id).where(Submission.note.like("queued %"))
            ).all()
        )
        pharmacies = list(
            db.session.scalars(select(Listing.id).where(Listing.kind == Kind.PHARMACY))
        )
        if url.startswith("postgresql"):
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    queued = [{**r["data"], "id": ids[r["note"]], "located": r["place"] is not None} for r in rows]
    return {"zips": zips, "queued": queued, "pharmacies": pharmacies}


# --- the server -------------------------------------------------------------------------------


def checkout(ref: str, into: Path) -> Path:
    """The repository at `ref`, as files (git archive), sharing this checkout's gazetteer."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", ref], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (ROOT / "instance").mkdir(exist_ok=True)
    (into / "instance").symlink_to(ROOT / "instance")
    return into


def default_before() -> str:
    """The commit before duplicate detection used stored keys."""
    first = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "tests/test_duplicates.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return (first[-1] + "^") if first else "HEAD"


class Gunicorn:
    """`gunicorn --workers 4 wsgi:app` from `code` (a checkout) on a free port."""

    def __init__(self, code: Path, url: str, log_file: Path) -> None:
        self.code, self.url, self.log_file = code, url, log_file
        self.port = free_port()
        self.host = "127.0.0.1"

    def __enter__(self) -> Gunicorn:
        env = {
            **os.environ,
            "PYTHONPATH": str(self.code),  # this checkout's `directory`, not the installed one
            "DATABASE_URL": self.url,
            "SECRET_KEY": "bench-not-secret",
            "DIRECTORY_ENV": "production",
            "PUBLIC_URL": f"http://{self.host}:{self.port}",
            "RATELIMIT_ENABLED": "false",
            "RATELIMIT_STORAGE_URI": "memory://",
            "PENDING_SUBMISSIONS_PER_ADDRESS": "10000000",
            "PENDING_SUBMISSIONS_MAX": "10000000",
        }
        env.pop("FLASK_DEBUG", None)
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers=4",
            "--worker-class=sync",
            f"--bind={self.host}:{self.port}",
            "--backlog=2048",
            "--timeout=120",
            "--no-control-socket",
            "wsgi:app",
        ]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=self.code, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log_file}")
            try:
                if request(self.host, self.port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn did not answer /healthz; see {self.log_file}")
        time.sleep(1.0)  # every worker up and its gazetteer opened
        return self

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) + sum(cpu_seconds(p) for p in children(self.proc.pid))

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def request(
    host: str, port: int, method: str, path: str, body: bytes | None = None, cookie: str = ""
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Sent:
    kind: str  # new, correction, same_phone, same_npi, similar_name
    note: str
    status: int
    started: float
    seconds: float
    expect: int | None = None  # the queued submission a planted duplicate copies


@dataclass
class Load:
    plan: dict[str, Any]
    run: str
    rng: random.Random = field(default_factory=lambda: random.Random(SEED + 1))
    counter: itertools.count[int] = field(default_factory=itertools.count)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def job(self) -> tuple[str, str, dict[str, Any], int | None]:
        """(kind, path, form, expected duplicate) for the next post."""
        with self.lock:
            n = next(self.counter)
            roll = self.rng.random()
            z = self.rng.choice(self.plan["zips"])
            name, tel = random_name(self.rng), phone(self.rng)
            target = self.rng.choice(self.plan["pharmacies"])
            queued = self.rng.choice(self.plan["queued"])
            npi_q = self.rng.choice([q for q in self.plan["queued"][:500] if q.get("npi")])
        note = f"{self.run} {n}"
        form: dict[str, Any] = {
            "name": name,
            "street": "",
            **{k: z[k] for k in ("city", "postal_code")},
            "state": z["region"],
            "country": "US",
            "phone": tel,
            "website": "",
            "email": "",
            "makes_ldn": "yes",
            "dosage_forms": ["capsule"],
            "sr_policy": "ir_only",
            "fillers_unknown": "y",
            "mail_order": "no",
            "submitter_relation": "patient",
            "submitter_email": "",
            "note": note,
        }
        if roll < 0.10:
            form.update(problem="wrong_details", name=f"{name} (new name)")
            return "correction", f"/suggest/correction/{target}", form, None
        if roll < 0.85 + 0.10:
            return "new", "/suggest/pharmacy", form, None
        plant = n % 3
        if plant == 0:  # the same phone, written another way
            digits = re.sub(r"\D", "", queued["phone"])
            form["phone"] = f"+1 {digits[:3]} {digits[3:6]} {digits[6:]}"
            return "same_phone", "/suggest/pharmacy", form, queued["id"]
        if plant == 1:  # a similar name at the same ZIP
            located = self.plan["located"]
            queued = located[n % len(located)]
            form.update(
                name="The " + queued["name"].removeprefix("Dr. ") + " LLC",
                city=queued["city"],
                postal_code=queued["postal_code"],
                state=queued["region"],
            )
            return "similar_name", "/suggest/pharmacy", form, queued["id"]
        prescriber = {  # the same NPI as a queued prescriber
            "name": f"Dr. {name}",
            "credentials": "MD",
            "specialty": "",
            "practice": "",
            "npi": npi_q["npi"],
            "street": "",
            "city": z["city"],
            "state": z["region"],
            "postal_code": z["postal_code"],
            "country": "US",
            "phone": tel,
            "website": "",
            "email": "",
            "telehealth": "no",
            "licensed_in": [z["region"]],
            "accepting_new_patients": "yes",
            "conditions": ["fibromyalgia"],
            "dosing_notes": "",
            "submitter_relation": "patient",
            "submitter_email": "",
            "note": note,
        }
        return "same_npi", "/suggest/prescriber", prescriber, npi_q["id"]


TOKEN = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')
ERROR = re.compile(rb'<p class="error" id="([^"]+)">([^<]*)</p>')


def client(
    server: Gunicorn, load: Load, start: float, stop: float, out: list[Sent], errors: list[str]
) -> None:
    status, headers, body = request(server.host, server.port, "GET", "/suggest/pharmacy")
    token = TOKEN.search(body)
    cookie = headers.get("Set-Cookie", "").split(";", 1)[0]
    if status != 200 or not token or not cookie:
        errors.append(f"form: {status}")
        return
    while time.perf_counter() < start:
        time.sleep(0.001)
    while time.perf_counter() < stop:
        kind, path, form, expect = load.job()
        body = urllib.parse.urlencode(
            {**form, "csrf_token": token.group(1).decode()}, doseq=True
        ).encode()
        t0 = time.perf_counter()
        status, _headers, page = request(server.host, server.port, "POST", path, body, cookie)
        seconds = time.perf_counter() - t0
        if status != 303 and len(errors) < 5:
            said = [b": ".join(m).decode() for m in ERROR.findall(page)] or [repr(page[:200])]
            errors.append(f"{kind} {status}: {' '.join(said)} (sent {form})")
        out.append(Sent(kind, form["note"], status, t0, seconds, expect))


def drive(server: Gunicorn, plan: dict[str, Any], run: str, args: argparse.Namespace) -> dict:
    load = Load(plan, run)
    out: list[Sent] = []
    errors: list[str] = []
    begin = time.perf_counter() + 2.0  # every client has its form first
    measured_from = begin + args.warmup
    stop = measured_from + args.seconds
    threads = [
        threading.Thread(target=client, args=(server, load, begin, stop, out, errors))
        for _ in range(args.clients)
    ]
    for t in threads:
        t.start()
    while time.perf_counter() < measured_from:
        time.sleep(0.01)
    cpu0, server0 = time.process_time(), server.cpu()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - measured_from
    client_cpu, server_cpu = time.process_time() - cpu0, server.cpu() - server0
    timed = [s for s in out if s.started >= measured_from and s.started + s.seconds <= stop]
    accepted = [s for s in timed if s.status == 303]
    ms = sorted(s.seconds * 1000 for s in accepted)
    return {
        "sent": out,
        "errors": errors,
        "requests": len(timed),
        "accepted": len(accepted),
        "per_second": len(accepted) / args.seconds,
        "median_ms": statistics.median(ms) if ms else None,
        "p95_ms": ms[max(0, int(len(ms) * 0.95) - 1)] if ms else None,
        "max_ms": ms[-1] if ms else None,
        "elapsed": elapsed,
        "client_cpu_ms_per_request": 1000 * client_cpu / max(1, len(timed)),
        "server_cpu_ms_per_request": 1000 * server_cpu / max(1, len(timed)),
        "client_cpu_share": client_cpu / max(1e-9, client_cpu + server_cpu),
    }


def verify(url: str, run: str, sent: list[Sent]) -> dict[str, Any]:
    """Every accepted post is a row; every planted duplicate names the submission it copies."""
    from sqlalchemy import func, select

    from directory import create_app
    from directory.extensions import db
    from directory.models import Submission

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench", "TESTING": True})
    with app.app_context():
        stored = {
            note: dups
            for note, dups in db.session.execute(
                select(Submission.note, Submission.duplicates).where(
                    Submission.note.like(run + " %")
                )
            )
        }
        total = db.session.scalar(select(func.count()).select_from(Submission))
        keyed = db.session.scalar(
            select(func.count()).where(
                Submission.note.like(run + " %"), Submission.name_key.is_not(None)
            )
        )
        db.session.remove()
        db.engine.dispose()
    accepted = [s for s in sent if s.status == 303]
    planted = [s for s in accepted if s.expect is not None]
    found = [
        s
        for s in planted
        if any(d["type"] == "submission" and d["id"] == s.expect for d in stored.get(s.note, []))
    ]
    return {
        "accepted_total": len(accepted),
        "kept": sum(1 for s in accepted if s.note in stored),
        "rows": len(stored),
        "rows_in_table": total,
        "keys_written": keyed,
        "planted": len(planted),
        "planted_found": len(found),
        "missed": [s.kind for s in planted if s not in found][:10],
        "refused": sum(1 for s in sent if s.status != 303),
    }


def measure(label: str, url: str, code: Path, plan_for: Any, args: argparse.Namespace) -> dict:
    log(f"[{label}] building the database")
    t0 = time.perf_counter()
    plan = plan_for()
    plan["located"] = [q for q in plan["queued"] if q["located"] and not q.get("npi")]
    log(f"[{label}] built in {time.perf_counter() - t0:.0f} s; starting gunicorn from {code}")
    run = f"bench-{label}-{int(time.time())}"
    with Gunicorn(code, url, DATA / f"gunicorn-{label}.log") as server:
        log(f"[{label}] {args.clients} clients, {args.warmup} s warm-up, {args.seconds} s measured")
        load = os.getloadavg()[0]
        result = drive(server, plan, run, args)
    result["load_average"] = load
    result.update(verify(url, run, result.pop("sent")))
    log(f"[{label}] " + json.dumps({k: v for k, v in result.items() if k != "errors"}))
    for error in result["errors"]:
        log(f"[{label}] not accepted: {error}")
    return result


def database_urls(args: argparse.Namespace) -> dict[str, str]:
    urls = {"SQLite": f"sqlite:///{SQLITE_FILE}"}
    pg = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if pg and not args.sqlite_only:
        urls["PostgreSQL"] = pg
    return urls


def table(results: dict[tuple[str, str], dict]) -> str:
    lines = [
        "| database | code | accepted/s | median ms | p95 ms | kept | planted duplicates found "
        "| not accepted | client CPU ms/req | gunicorn CPU ms/req | load average |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for (database, code), r in results.items():
        lines.append(
            f"| {database} | {code} | {r['per_second']:.1f} | {r['median_ms']:.0f} "
            f"| {r['p95_ms']:.0f} | {r['kept']}/{r['accepted_total']} "
            f"| {r['planted_found']}/{r['planted']} | {r['refused']} "
            f"| {r['client_cpu_ms_per_request']:.2f} "
            f"| {r['server_cpu_ms_per_request']:.1f} | {r['load_average']:.1f} |"
        )
    for database in {d for d, _ in results}:
        before, after = results.get((database, "before")), results.get((database, "after"))
        if before and after and before["per_second"]:
            lines.append(
                f"\n{database}: {after['per_second'] / before['per_second']:.0f}x the accepted "
                f"submissions per second, p95 {before['p95_ms'] / after['p95_ms']:.0f}x lower."
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument(
        "--before",
        default=None,
        help="git ref of the code before (default: the commit before test_duplicates.py was added)",
    )
    parser.add_argument("--no-before", action="store_true", help="measure this checkout only")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/submissions.json")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        codes = {"after": ROOT}
        if not args.no_before:
            ref = args.before or default_before()
            codes = {"before": checkout(ref, Path(tmp) / "code"), "after": ROOT}
            log(f"before: {ref}")
        results: dict[tuple[str, str], dict] = {}
        for database, url in database_urls(args).items():
            for code, path in codes.items():
                results[(database, code)] = measure(
                    f"{database}-{code}", url, path, lambda url=url: build(url), args
                )
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "clients": args.clients,
                "seconds": args.seconds,
                "queued": QUEUED,
                "cpus": os.cpu_count(),
                "results": {f"{d} {c}": r for (d, c), r in results.items()},
            },
            indent=2,
        )
    )
    if shutil.which("git"):
        log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
