"""Synthetic, clustered listing databases for the benchmark, built the way a real one is.

`ensure_database(size)` returns bench/data/bench-<size>.db, building it when it is missing or
was made by another generator version (bench/data/bench-<size>.json records both). A build runs
the real migrations and loads the real vocabularies through the app, then bulk-inserts listings
and their child rows with plain executemany in one transaction; the R*Tree triggers that the
migration created fill listing_rtree as rows go in, exactly as they do in production.

The data: ~60% pharmacies and 40% prescribers; 90% of listings lie within 30 km of one of 50
real metro centres (a 2-D normal with sigma 12 km, cut at 30 km: the dense middle is the worst
case for a nearest-first search), the rest uniform over a box around the continental US. About
3% are closed, 30% are on a curated reliable list, 60% of pharmacies make immediate-release
LDN only. Ids are assigned in random metro order, so id order says nothing about place (as in a
real table grown over time). Everything comes from one seeded RNG, so a rebuild is identical.

Run alone: `python -m bench.generate --sizes 10000,100000`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .metros import CONUS_EAST, CONUS_NORTH, CONUS_SOUTH, CONUS_WEST, METROS

# Bump when the generated data changes in any way: databases from another version are rebuilt.
GENERATOR_VERSION = 4
SEED = 20261126
DATA_DIR = Path(__file__).resolve().parent / "data"

CLUSTERED_SHARE = 0.90
CLUSTER_SIGMA_KM = 12.0
CLUSTER_MAX_KM = 30.0
PHARMACY_SHARE = 0.60
CURATED_SHARE = 0.30
KM_PER_DEG_LAT = 111.195  # mean earth radius 6371.009 km * pi / 180
# Fixed "today" for generated dates, so a rebuild is byte-for-byte the same data.
REFERENCE_DAY = date(2026, 11, 1)
CHUNK = 50_000

LISTING_COLUMNS = (
    "id",
    "kind",
    "name",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "lat",
    "lon",
    "geo_precision",
    "phone",
    "phone_digits",
    "website",
    "email",
    "status",
    "verified_on",
    "is_sample",
    "seed_key",
    "created_at",
    "updated_at",
    "makes_ldn",
    "sr_policy",
    "fillers_known",
    "price_notes",
    "mail_order",
    "credentials",
    "specialty",
    "practice",
    "telehealth",
    "telehealth_only",
    "npi",
    "accepting_new_patients",
    "dosing_notes",
    "on_curated_list",
)
INSERT_LISTING = (
    f"INSERT INTO listings ({', '.join(LISTING_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in LISTING_COLUMNS)})"
)
INSERT_FLAG = (
    "INSERT INTO reliability_flags (listing_id, type, label, source, as_of, url, created_by_id,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, NULL, ?)"
)

SR_POLICIES = (("ir_only", 0.60), ("sr_on_request", 0.15), ("sr_default", 0.10), ("unknown", 0.15))
STATUSES = (("open", 0.95), ("temporarily_closed", 0.02), ("closed", 0.03))
STREETS = ("Main St", "Oak Ave", "Maple Dr", "Cedar Rd", "Elm St", "Park Blvd", "Pine Way")
PHARMACY_WORDS = ("Compounding", "Apothecary", "Pharmacy", "Compounding Pharmacy", "Rx")
SURNAMES = ("Garcia", "Smith", "Nguyen", "Johnson", "Patel", "Kim", "Brown", "Lopez", "Cohen")
GIVEN = ("Ana", "Ben", "Chen", "Dana", "Eli", "Fatima", "Grace", "Hugo", "Ines", "Jamal")
CREDENTIALS = ("MD", "DO", "NP", "PA-C", "ND")
SPECIALTIES = (
    "Family medicine",
    "Internal medicine",
    "Rheumatology",
    "Neurology",
    "Pain medicine",
    "Integrative medicine",
)
CURATED_SOURCES = (
    ("On the LDN Research Trust pharmacist list", "LDN Research Trust"),
    ("On the LDN Science reliable-pharmacy list", "LDN Science"),
)


ROOT = Path(__file__).resolve().parent.parent


def schema_head() -> str:
    """The Alembic head revision(s) of migrations/: a database built before a schema change
    is rebuilt, since its tables no longer match what the code queries."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    return ",".join(sorted(ScriptDirectory.from_config(config).get_heads()))


def db_path(size: int) -> Path:
    return DATA_DIR / f"bench-{size}.db"


def meta_path(size: int) -> Path:
    return DATA_DIR / f"bench-{size}.json"


def database_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


# --- places -----------------------------------------------------------------------------------


def offset(lat: float, lon: float, east_km: float, north_km: float) -> tuple[float, float]:
    """The point east_km east and north_km north of (lat, lon), on a locally flat earth."""
    new_lat = lat + north_km / KM_PER_DEG_LAT
    return new_lat, lon + east_km / (KM_PER_DEG_LAT * math.cos(math.radians(lat)))


def near_metro(rng: random.Random, sigma_km: float, max_km: float) -> tuple[float, float, int]:
    """A point around a random metro centre: 2-D normal, redrawn until within max_km."""
    m = rng.randrange(len(METROS))
    metro = METROS[m]
    while True:
        dx, dy = rng.gauss(0.0, sigma_km), rng.gauss(0.0, sigma_km)
        if dx * dx + dy * dy <= max_km * max_km:
            break
    lat, lon = offset(metro.lat, metro.lon, dx, dy)
    return lat, lon, m


def anywhere(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(CONUS_SOUTH, CONUS_NORTH), rng.uniform(CONUS_WEST, CONUS_EAST)


def nearest_metro(lat: float, lon: float) -> int:
    # Good enough to give a uniform point a plausible state; only used for 10% of rows.
    coslat = math.cos(math.radians(lat))
    return min(
        range(len(METROS)),
        key=lambda i: (METROS[i].lat - lat) ** 2 + ((METROS[i].lon - lon) * coslat) ** 2,
    )


# --- rows -------------------------------------------------------------------------------------


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, share in weighted:
        x -= share
        if x < 0:
            return value
    return weighted[-1][0]


class Vocab:
    def __init__(self, conn: sqlite3.Connection) -> None:
        def codes(table: str) -> list[str]:
            return [r[0] for r in conn.execute(f"SELECT code FROM {table} ORDER BY code")]

        self.fillers = codes("fillers")
        self.dosage_forms = codes("dosage_forms")
        self.conditions = codes("conditions")
        self.regions = [c for c in codes("regions") if c.startswith("US-")]
        if not (self.fillers and self.dosage_forms and self.conditions and self.regions):
            raise RuntimeError("Vocabularies are empty: seeding.load(samples=False) did not run.")


def generate(size: int, vocab: Vocab, seed: int = SEED) -> Iterator[dict[str, list[tuple]]]:
    """Rows for every table, in chunks of CHUNK listings (ids 1..size)."""
    from directory.models import RANK_CURATED, RANK_EPOCH

    rng = random.Random(seed)
    ref_dt = datetime.combine(REFERENCE_DAY, datetime.min.time())
    flag_id = 0
    chunk: dict[str, list[tuple]] = _empty_chunk()
    for listing_id in range(1, size + 1):
        if rng.random() < CLUSTERED_SHARE:
            lat, lon, m = near_metro(rng, CLUSTER_SIGMA_KM, CLUSTER_MAX_KM)
        else:
            lat, lon = anywhere(rng)
            m = nearest_metro(lat, lon)
        metro = METROS[m]
        pharmacy = rng.random() < PHARMACY_SHARE
        curated = rng.random() < CURATED_SHARE
        status = _pick(rng, STATUSES)
        age = rng.random()
        verified = None if age < 0.2 else REFERENCE_DAY - timedelta(days=int((age - 0.2) * 900))
        verified_on = verified.isoformat() if verified else None
        # Listing.reach_rank, as the database's triggers write it onto the region rows
        # (directory/derived.py); the verification row below makes them write the same number.
        rank = (RANK_CURATED if curated else 0) + (
            max(verified.toordinal() - RANK_EPOCH, 0) if verified else 0
        )
        created = ref_dt - timedelta(days=rng.randrange(1, 1500), seconds=listing_id % 86400)
        created_at = created.strftime("%Y-%m-%d %H:%M:%S.000000")
        area = rng.randrange(201, 990)
        line = rng.randrange(10_000)
        phone_digits = f"{area}555{line:04d}"
        slug = f"l{listing_id}"
        region = metro.region
        if pharmacy:
            name = f"{metro.name} {rng.choice(SURNAMES)} {rng.choice(PHARMACY_WORDS)} {listing_id}"
            fillers_known = rng.random() < 0.7
            mail_order = rng.random() < 0.15
            row = (
                listing_id,
                "pharmacy",
                name,
                f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}",
                metro.name,
                region,
                f"{rng.randrange(1000, 99999):05d}",
                "US",
                lat,
                lon,
                "address",
                f"+1 {area}-555-{line:04d}",
                phone_digits,
                f"https://example.org/bench/{slug}",
                f"{slug}@example.org",
                status,
                verified_on,
                0,
                None,
                created_at,
                created_at,
                1,
                _pick(rng, SR_POLICIES),
                int(fillers_known),
                "About $35 for 30 capsules" if rng.random() < 0.4 else None,
                int(mail_order),
                None,
                None,
                None,
                0,
                0,
                None,
                None,
                None,
            )
            if fillers_known:
                for code in rng.sample(vocab.fillers, rng.choice((1, 1, 1, 2))):
                    chunk["listing_fillers"].append((listing_id, code))
            for code in rng.sample(vocab.dosage_forms, rng.randint(1, 3)):
                chunk["listing_dosage_forms"].append((listing_id, code))
            if mail_order:
                ships = {region, *rng.sample(vocab.regions, rng.randint(0, 8))}
                chunk["listing_regions"].extend((listing_id, "ships_to", c, rank) for c in ships)
            if rng.random() < 0.05:
                flag_id += 1
                chunk["reliability_flags"].append(
                    (
                        listing_id,
                        "accreditation",
                        "PCAB accredited",
                        "Accreditation register",
                        (REFERENCE_DAY - timedelta(days=rng.randrange(700))).isoformat(),
                        None,
                        created_at,
                    )
                )
        else:
            surname = rng.choice(SURNAMES)
            telehealth = rng.random() < 0.4
            telehealth_only = telehealth and rng.random() < 0.12
            accepting = rng.random()
            row = (
                listing_id,
                "prescriber",
                f"Dr. {rng.choice(GIVEN)} {surname} {listing_id}",
                f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}",
                metro.name,
                region,
                f"{rng.randrange(1000, 99999):05d}",
                "US",
                lat,
                lon,
                "address",
                f"+1 {area}-555-{line:04d}",
                phone_digits,
                f"https://example.org/bench/{slug}" if rng.random() < 0.6 else None,
                None,
                status,
                verified_on,
                0,
                None,
                created_at,
                created_at,
                None,
                None,
                0,
                None,
                0,
                rng.choice(CREDENTIALS),
                rng.choice(SPECIALTIES),
                f"{surname} {metro.name} Clinic",
                int(telehealth),
                int(telehealth_only),
                f"1{rng.randrange(10**9):09d}",
                None if accepting < 0.1 else int(accepting < 0.8),
                "Starts at 1.5 mg and titrates to 4.5 mg" if rng.random() < 0.3 else None,
            )
            for code in rng.sample(vocab.conditions, rng.randint(1, 4)):
                chunk["listing_conditions"].append((listing_id, code))
            if telehealth:
                licensed = {region, *rng.sample(vocab.regions, rng.randint(0, 3))}
                chunk["listing_regions"].extend(
                    (listing_id, "licensed_in", c, rank) for c in licensed
                )
        chunk["listings"].append((*row, int(curated)))  # on_curated_list: the flag below
        if verified_on is not None:
            # The source of verified_on: without it `flask check` reports the copy as drift.
            chunk["verifications"].append((listing_id, verified_on, "phone", created_at))
        if curated:
            flag_id += 1
            label, source = rng.choice(CURATED_SOURCES)
            chunk["reliability_flags"].append(
                (
                    listing_id,
                    "curated_list",
                    label,
                    source,
                    (REFERENCE_DAY - timedelta(days=rng.randrange(400))).isoformat(),
                    None,
                    created_at,
                )
            )
        if len(chunk["listings"]) >= CHUNK:
            yield chunk
            chunk = _empty_chunk()
    if chunk["listings"]:
        yield chunk


def _empty_chunk() -> dict[str, list[tuple]]:
    return {
        "listings": [],
        "reliability_flags": [],
        "listing_fillers": [],
        "listing_dosage_forms": [],
        "listing_conditions": [],
        "listing_regions": [],
        "verifications": [],
    }


INSERTS = {
    "listings": INSERT_LISTING,
    "reliability_flags": INSERT_FLAG,
    "listing_fillers": "INSERT INTO listing_fillers (listing_id, filler_code) VALUES (?, ?)",
    "listing_dosage_forms": (
        "INSERT INTO listing_dosage_forms (listing_id, dosage_form_code) VALUES (?, ?)"
    ),
    "listing_conditions": (
        "INSERT INTO listing_conditions (listing_id, condition_code) VALUES (?, ?)"
    ),
    "listing_regions": (
        "INSERT INTO listing_regions (listing_id, role, code, rank) VALUES (?, ?, ?, ?)"
    ),
    # After the regions, so the verification trigger finds them (it writes the same rank).
    "verifications": (
        "INSERT INTO verifications (listing_id, verified_on, method, moderator_id, note,"
        " created_at) VALUES (?, ?, ?, NULL, NULL, ?)"
    ),
}


# --- building ---------------------------------------------------------------------------------


def _migrate_and_seed(path: Path) -> None:
    """The real schema and vocabularies, through the app (as `flask init-db` + `seed` do)."""
    from flask_migrate import upgrade

    from directory import create_app, seeding
    from directory.extensions import db

    # Without SECRET_KEY in the environment a testing app writes one to instance/secret_key.
    os.environ.setdefault("SECRET_KEY", "bench")
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url(path), "SECRET_KEY": "bench", "TESTING": True}
    )
    with app.app_context():
        upgrade()
        seeding.load(samples=False)
        db.session.remove()
        db.engine.dispose()


def build(size: int, path: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build a fresh database at `path` (replacing it). Returns what was built."""
    started = time.perf_counter()
    tmp = path.with_name(path.name + ".building")
    for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        p.unlink(missing_ok=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _migrate_and_seed(tmp)
    counts = dict.fromkeys(INSERTS, 0)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        # Throwaway data: no journal, no fsync, a big cache while building.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-524288")  # 512 MiB
        conn.execute("PRAGMA temp_store=MEMORY")
        if conn.execute("SELECT count(*) FROM listings").fetchone()[0]:
            raise RuntimeError(f"{tmp}: listings is not empty after seeding without samples.")
        vocab = Vocab(conn)
        conn.execute("BEGIN")
        for chunk in generate(size, vocab):
            for table, rows in chunk.items():
                conn.executemany(INSERTS[table], rows)
                counts[table] += len(rows)
            log(f"  {counts['listings']:>9,} / {size:,} listings")
        conn.execute("COMMIT")
        in_rtree = conn.execute("SELECT count(*) FROM listing_rtree").fetchone()[0]
        if in_rtree != size:
            raise RuntimeError(f"listing_rtree has {in_rtree} rows, expected {size}.")
        for table, columns in unfilled_columns(conn).items():
            log(f"  note: {table}.{', '.join(columns)} left to the column default")
        # Back to what the app uses, so the first reader does not have to convert the file.
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    tmp.replace(path)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "schema": schema_head(),
        "seed": SEED,
        "size": size,
        "rows": counts,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "built_at": datetime.now().isoformat(timespec="seconds"),
    }
    meta_path(size).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def unfilled_columns(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Columns of the tables we fill that our INSERTs leave out (a new column since the
    generator was written shows up here; an autoincrement id does not)."""
    out = {}
    for table, sql in INSERTS.items():
        given = {c.strip() for c in sql.split("(", 1)[1].split(")", 1)[0].split(",")}
        missing = [
            name
            for _cid, name, _type, _notnull, _default, pk in conn.execute(
                f"PRAGMA table_info({table})"
            )
            if name not in given and not (pk and name == "id")
        ]
        if missing:
            out[table] = missing
    return out


def existing(size: int) -> dict[str, Any] | None:
    """The metadata of a usable database of this size from this generator version, or None."""
    path, meta_file = db_path(size), meta_path(size)
    if not (path.exists() and meta_file.exists()):
        return None
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError:
        return None
    if (
        meta.get("generator_version") != GENERATOR_VERSION
        or meta.get("size") != size
        or meta.get("schema") != schema_head()
    ):
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        count, top = conn.execute("SELECT count(*), max(id) FROM listings").fetchone()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return meta if count == top == size else None


def ensure_database(
    size: int, *, rebuild: bool = False, log: Callable[[str], None] = print
) -> tuple[Path, dict[str, Any], bool]:
    """(path, metadata, built_now) for a database of `size` listings."""
    meta = None if rebuild else existing(size)
    if meta is not None:
        return db_path(size), meta, False
    log(f"building {db_path(size)} ({size:,} listings, generator v{GENERATOR_VERSION})")
    meta = build(size, db_path(size), log=log)
    log(f"  built in {meta['build_seconds']} s, {meta['file_mb']} MB")
    return db_path(size), meta, True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--rebuild", action="store_true", help="build even if up to date")
    args = parser.parse_args(argv)
    for size in (int(s) for s in args.sizes.split(",")):
        path, meta, built = ensure_database(size, rebuild=args.rebuild)
        print(f"{path}: {'built' if built else 'up to date'}: {json.dumps(meta['rows'])}")


if __name__ == "__main__":
    main()
