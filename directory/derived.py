"""Columns that copy or summarise other rows, kept in step by the database itself.

Search reads copies so that it never probes other tables per candidate: `on_curated_list` (for
the "reliable" filter), `listing_regions.rank` (the "also available" index walk),
`verified_on` (the "recently verified" filter) and `phone_digits` (duplicate detection). On
SQLite the R*Tree `listing_rtree` copies each listing's point (spatial.SQLITE_RTREE_DDL).

Triggers keep them, on SQLite and PostgreSQL alike, so an ORM flush, a Core update, raw SQL or a
cascade all leave them right; the ORM only has to forget what it had loaded (models.py).
Migration 0005 installs the triggers; `flask --app wsgi check` (drift() below) compares every copy
with its source, so a copy that went wrong by some other road is found, not trusted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .vocabulary import FlagType

if TYPE_CHECKING:
    from alembic.operations import Operations

RANK_EPOCH_DAY = date(2000, 1, 1)
RANK_EPOCH = RANK_EPOCH_DAY.toordinal()
RANK_CURATED = 1_000_000  # more days than verification dates will ever span

_CURATED = FlagType.CURATED_LIST.value
PHONE_LENGTH = 40  # listings.phone is VARCHAR(40); SQLite reads no further than this


def _only_digits(dialect: str, phone: str) -> str:
    """A one-row query whose column d is the phone's ASCII digits."""
    if dialect == "postgresql":
        return f"SELECT regexp_replace({phone}, '[^0-9]', '', 'g') AS d"
    # SQLite has no regexp_replace, and its parser gives up after about 30 nested calls, so not
    # one replace() per other character: each position is kept if it is a digit. BETWEEN, not
    # GLOB '[0-9]' (4 times slower): one character compared bytewise is a digit exactly when
    # it lies between '0' and '9' (past the end it is '', below; non-ASCII starts above).
    keep = " || ".join(
        f"CASE WHEN substr(p, {i}, 1) BETWEEN '0' AND '9' THEN substr(p, {i}, 1) ELSE '' END"
        for i in range(1, PHONE_LENGTH + 1)
    )
    return f"SELECT {keep} AS d FROM (SELECT {phone} AS p) AS s"


def phone_digits_sql(dialect: str, phone: str) -> str:
    """listings.phone_digits from a phone: its digits, a US number's leading 1 dropped, so
    "+1 206-555-0100" and "(206) 555-0100" match; NULL when there are none. The same rule as
    listings.phone_digits(), which submissions (not stored as listings) still need."""
    return (
        "(SELECT NULLIF(CASE WHEN length(d) = 11 AND substr(d, 1, 1) = '1' "
        f"THEN substr(d, 2) ELSE d END, '') FROM ({_only_digits(dialect, phone)}) AS p)"
    )


def curated_sql(listing_id: str) -> str:
    """listings.on_curated_list: the listing carries a curated_list reliability flag."""
    return (
        "EXISTS (SELECT 1 FROM reliability_flags f "
        f"WHERE f.listing_id = {listing_id} AND f.type = '{_CURATED}')"
    )


def verified_sql(listing_id: str) -> str:
    """listings.verified_on: the date of the listing's latest verification."""
    return f"(SELECT max(v.verified_on) FROM verifications v WHERE v.listing_id = {listing_id})"


def rank_sql(dialect: str, curated: str, verified_on: str) -> str:
    """listing_regions.rank: the "also available" order, higher first: listings on a curated
    list, then the most recently verified (days since 2000-01-01; never verified counts 0).
    Listing.reach_rank is the same number in Python; a test holds the two together."""
    if dialect == "postgresql":
        days = f"GREATEST(COALESCE(({verified_on}) - DATE '{RANK_EPOCH_DAY}', 0), 0)"
    else:
        days = (
            f"max(COALESCE(CAST(julianday({verified_on}) - julianday('{RANK_EPOCH_DAY}') "
            "AS INTEGER), 0), 0)"
        )
    return f"(CASE WHEN {curated} THEN {RANK_CURATED} ELSE 0 END + {days})"


def _listing_rank(dialect: str, listing_id: str) -> str:
    rank = rank_sql(dialect, "l.on_curated_list", "l.verified_on")
    return f"COALESCE((SELECT {rank} FROM listings l WHERE l.id = {listing_id}), 0)"


# --- triggers ---------------------------------------------------------------------------------

TRIGGERS = {  # name: table, for dropping them (the names are the same on both databases)
    "derived_listing_phone_insert": "listings",
    "derived_listing_phone_update": "listings",
    "derived_listing_rank": "listings",
    "derived_region_rank_insert": "listing_regions",
    "derived_region_rank_update": "listing_regions",
    "derived_flag_insert": "reliability_flags",
    "derived_flag_update": "reliability_flags",
    "derived_flag_delete": "reliability_flags",
    "derived_verification_insert": "verifications",
    "derived_verification_update": "verifications",
    "derived_verification_delete": "verifications",
}
PG_FUNCTIONS = [
    "derived_listing_phone",
    "derived_listing_rank",
    "derived_region_rank",
    "derived_on_curated_list",
    "derived_verified_on",
]


def _set_curated(listing_id: str) -> str:
    # Only a real change is written, so the rank trigger on listings fires only when it must.
    return (
        f"UPDATE listings SET on_curated_list = {curated_sql(listing_id)} "
        f"WHERE id = {listing_id} AND on_curated_list <> {curated_sql(listing_id)};"
    )


def _differs(dialect: str) -> str:
    """Inequality that counts NULL as a value (a date against no date differs)."""
    return "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"


def _set_verified(dialect: str, listing_id: str) -> str:
    return (
        f"UPDATE listings SET verified_on = {verified_sql(listing_id)} "
        f"WHERE id = {listing_id} AND verified_on {_differs(dialect)} {verified_sql(listing_id)};"
    )


def _set_region_ranks(dialect: str, row: str) -> str:
    rank = rank_sql(dialect, f"{row}.on_curated_list", f"{row}.verified_on")
    return (
        f"UPDATE listing_regions SET rank = {rank} WHERE listing_id = {row}.id AND rank <> {rank};"
    )


def _sqlite_triggers() -> list[str]:
    d = "sqlite"
    region_rank = (
        f"UPDATE listing_regions SET rank = {_listing_rank(d, 'new.listing_id')} "
        "WHERE listing_id = new.listing_id AND role = new.role AND code = new.code;"
    )
    phone = (
        f"UPDATE listings SET phone_digits = {phone_digits_sql(d, 'new.phone')} WHERE id = new.id;"
    )
    return [
        f"""CREATE TRIGGER IF NOT EXISTS derived_listing_phone_insert AFTER INSERT ON listings
            BEGIN {phone} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_listing_phone_update
            AFTER UPDATE OF phone ON listings BEGIN {phone} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_listing_rank
            AFTER UPDATE OF on_curated_list, verified_on ON listings
            BEGIN {_set_region_ranks(d, "new")} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_region_rank_insert AFTER INSERT ON listing_regions
            BEGIN {region_rank} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_region_rank_update
            AFTER UPDATE OF listing_id ON listing_regions BEGIN {region_rank} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_flag_insert AFTER INSERT ON reliability_flags
            BEGIN {_set_curated("new.listing_id")} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_flag_update
            AFTER UPDATE OF type, listing_id ON reliability_flags
            BEGIN {_set_curated("old.listing_id")} {_set_curated("new.listing_id")} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_flag_delete AFTER DELETE ON reliability_flags
            BEGIN {_set_curated("old.listing_id")} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_verification_insert AFTER INSERT ON verifications
            BEGIN {_set_verified(d, "new.listing_id")} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_verification_update
            AFTER UPDATE OF verified_on, listing_id ON verifications
            BEGIN {_set_verified(d, "old.listing_id")} {_set_verified(d, "new.listing_id")} END""",
        f"""CREATE TRIGGER IF NOT EXISTS derived_verification_delete AFTER DELETE ON verifications
            BEGIN {_set_verified(d, "old.listing_id")} END""",
    ]


def _pg_function(name: str, body: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {body} END $$"""


def _pg_trigger(name: str, when: str, function: str) -> list[str]:
    table = TRIGGERS[name]
    return [
        f"DROP TRIGGER IF EXISTS {name} ON {table}",
        f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()",
    ]


def _lock(listing_id: str, mode: str = "UPDATE") -> str:
    # PostgreSQL runs writers side by side (SQLite has one at a time). Two transactions
    # changing one listing's flags would each count the flags their snapshot shows, and the
    # last to commit would win with a stale answer. Locking the listing row first makes the
    # second wait; in READ COMMITTED its next statement then sees the first one's rows.
    return f"PERFORM 1 FROM listings WHERE id = {listing_id} FOR {mode};"


def _postgresql_triggers() -> list[str]:
    d = "postgresql"

    def old_and_new(refresh: Callable[[str], str]) -> str:
        # Both listings when an UPDATE moves a flag or a verification from one to another.
        old, new = "OLD.listing_id", "NEW.listing_id"
        return (
            f"IF TG_OP <> 'INSERT' THEN {_lock(old)} {refresh(old)} END IF; "
            f"IF TG_OP <> 'DELETE' THEN {_lock(new)} {refresh(new)} END IF; RETURN NULL;"
        )

    return [
        _pg_function(
            "derived_listing_phone",
            f"NEW.phone_digits := {phone_digits_sql(d, 'NEW.phone')}; RETURN NEW;",
        ),
        _pg_function("derived_listing_rank", f"{_set_region_ranks(d, 'NEW')} RETURN NULL;"),
        _pg_function(
            "derived_region_rank",
            f"{_lock('NEW.listing_id', 'SHARE')} "
            f"NEW.rank := {_listing_rank(d, 'NEW.listing_id')}; RETURN NEW;",
        ),
        _pg_function("derived_on_curated_list", old_and_new(_set_curated)),
        _pg_function("derived_verified_on", old_and_new(lambda listing: _set_verified(d, listing))),
        # BEFORE: the row is written once, with its copy, rather than written and updated.
        *_pg_trigger("derived_listing_phone_insert", "BEFORE INSERT", "derived_listing_phone"),
        *_pg_trigger(
            "derived_listing_phone_update", "BEFORE UPDATE OF phone", "derived_listing_phone"
        ),
        *_pg_trigger(
            "derived_listing_rank",
            "AFTER UPDATE OF on_curated_list, verified_on",
            "derived_listing_rank",
        ),
        *_pg_trigger("derived_region_rank_insert", "BEFORE INSERT", "derived_region_rank"),
        *_pg_trigger(
            "derived_region_rank_update", "BEFORE UPDATE OF listing_id", "derived_region_rank"
        ),
        *_pg_trigger("derived_flag_insert", "AFTER INSERT", "derived_on_curated_list"),
        *_pg_trigger(
            "derived_flag_update", "AFTER UPDATE OF type, listing_id", "derived_on_curated_list"
        ),
        *_pg_trigger("derived_flag_delete", "AFTER DELETE", "derived_on_curated_list"),
        *_pg_trigger("derived_verification_insert", "AFTER INSERT", "derived_verified_on"),
        *_pg_trigger(
            "derived_verification_update",
            "AFTER UPDATE OF verified_on, listing_id",
            "derived_verified_on",
        ),
        *_pg_trigger("derived_verification_delete", "AFTER DELETE", "derived_verified_on"),
    ]


def trigger_ddl(dialect: str) -> list[str]:
    """Statements that install the triggers; safe to repeat. A migration that rebuilds a table
    in batch mode on SQLite runs inside lifted_for_batch() below."""
    return _postgresql_triggers() if dialect == "postgresql" else _sqlite_triggers()


def drop_trigger_ddl(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {n} ON {t}" for n, t in TRIGGERS.items()] + [
            f"DROP FUNCTION IF EXISTS {f}()" for f in PG_FUNCTIONS
        ]
    return [f"DROP TRIGGER IF EXISTS {n}" for n in TRIGGERS]


@contextmanager
def lifted_for_batch(op: Operations) -> Iterator[None]:
    """Around a migration that rebuilds a table in batch mode on SQLite (copy, drop, rename).

    The rename fails while any trigger names a table that is missing at that moment ("error in
    trigger derived_region_rank_insert: no such table: main.listings"), and dropping a table
    drops its own triggers. So the triggers go first and come back after, with the R*Tree's.
    PostgreSQL alters tables in place and needs none of this."""
    if op.get_bind().dialect.name != "sqlite":
        yield
        return
    from .spatial import SQLITE_RTREE_DDL  # spatial imports the models, which import this

    for statement in drop_trigger_ddl("sqlite"):
        op.execute(statement)
    yield
    for statement in trigger_ddl("sqlite") + SQLITE_RTREE_DDL:
        op.execute(statement)


def backfill_ddl(dialect: str) -> list[str]:
    """Recompute every copy from its source (after installing the triggers on existing data).
    The order matters: rank reads the two columns before it."""
    return [
        f"UPDATE listings SET phone_digits = {phone_digits_sql(dialect, 'phone')}",
        f"UPDATE listings SET on_curated_list = {curated_sql('listings.id')}",
        f"UPDATE listings SET verified_on = {verified_sql('listings.id')}",
        f"UPDATE listing_regions SET rank = {_listing_rank(dialect, 'listing_regions.listing_id')}",
    ]


# --- drift ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    copy: str  # what is stored, e.g. "listings.on_curated_list"
    count: int  # rows that disagree with the source
    examples: list[str]  # a few of them (listing ids, or listing id/role/code)


EXAMPLES = 5


def _drift_queries(dialect: str) -> dict[str, str]:
    differs = _differs(dialect)
    # Rank from the sources themselves, not from the listing's copies, so a wrong copy there
    # shows here too rather than excusing the rank built on it.
    rank = rank_sql(dialect, curated_sql("l.id"), verified_sql("l.id"))
    key = "r.listing_id || '/' || r.role || '/' || r.code"
    queries = {
        "listings.on_curated_list": (
            f"SELECT l.id FROM listings l WHERE l.on_curated_list {differs} {curated_sql('l.id')}"
        ),
        "listings.verified_on": (
            f"SELECT l.id FROM listings l WHERE l.verified_on {differs} {verified_sql('l.id')}"
        ),
        "listing_regions.rank": (
            f"SELECT {key} FROM listing_regions r JOIN listings l ON l.id = r.listing_id "
            f"WHERE r.rank {differs} {rank}"
        ),
        "listings.phone_digits": (
            "SELECT l.id FROM listings l "
            f"WHERE l.phone_digits {differs} {phone_digits_sql(dialect, 'l.phone')}"
        ),
    }
    if dialect == "sqlite":
        queries["listing_rtree"] = """
            SELECT l.id FROM listings l LEFT JOIN listing_rtree t ON t.id = l.id
            WHERE (l.lat IS NOT NULL AND l.lon IS NOT NULL) IS NOT (t.id IS NOT NULL)
               OR t.id IS NOT NULL AND (
                  -- the R*Tree stores 32-bit floats: a point is in step when its box holds it
                  l.lat < t.min_lat OR l.lat > t.max_lat OR l.lon < t.min_lon OR l.lon > t.max_lon)
            UNION ALL
            SELECT t.id FROM listing_rtree t WHERE t.id NOT IN (SELECT id FROM listings)"""
    return queries


def drift(conn: Connection) -> list[Drift]:
    """Each stored copy with the number of rows that disagree with its source."""
    found = []
    for copy, query in _drift_queries(conn.dialect.name).items():
        count = conn.execute(text(f"SELECT count(*) FROM ({query}) AS d")).scalar_one()
        rows = conn.execute(text(f"{query} ORDER BY 1 LIMIT {EXAMPLES}")).scalars()
        found.append(Drift(copy, count, [str(r) for r in rows]))
    return found
