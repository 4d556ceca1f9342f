"""Imports: every export format reads back unchanged into an empty database; keys make a
re-import update; curated lists become audited flags; the public form's rules refuse rows
with their line; a file that cannot be read stops with one line and nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from directory import exports, imports, seeding
from directory.extensions import db
from directory.models import (
    AuditEntry,
    FlagType,
    Kind,
    Listing,
    ListingSource,
    ReliabilityFlag,
)
from tests import builders
from tests.conftest import PG_URL, build_schema, make_app

# What an import does not carry: this directory's own numbers, and its own verification
# (an import never claims that a moderator checked a listing).
OWN = ("id", "url", "verified_on", "needs_reconfirming")


def _export(app: Flask) -> list[dict[str, Any]]:
    with app.test_request_context():
        return [{k: v for k, v in r.items() if k not in OWN} for r in exports.records(db.session())]


def _counts() -> tuple[int, int, int]:
    return (
        db.session.scalar(select(func.count()).select_from(Listing)) or 0,
        db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        db.session.scalar(select(func.count()).select_from(ReliabilityFlag)) or 0,
    )


@pytest.fixture(scope="module")
def exported(
    template_database: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """Every format's export of a directory (the samples, a telehealth-only prescriber with an
    NPI, a formula-looking name, known-but-no fillers, an outside key) kept in an SQLite file
    of its own, and its records: whatever the test database, the import starts empty."""
    folder = tmp_path_factory.mktemp("exported")
    if PG_URL:
        build_schema(f"sqlite:///{folder / 'source.db'}")
    else:
        shutil.copyfile(template_database, folder / "source.db")
    source = make_app(f"sqlite:///{folder / 'source.db'}")
    files = {}
    with source.app_context():
        seeding.load()
        builders.prescriber(
            name="Dr. =Formula", npi="1234567893", telehealth=True, telehealth_only=True
        )
        keyed = builders.pharmacy(name="Keyed Pharmacy", fillers=[], phone="+1 206-555-0100")
        db.session.add(ListingSource(listing_id=keyed.id, source="LDN list", source_id="17"))
        db.session.commit()
        for fmt in imports.READERS:
            files[fmt] = folder / f"all.{fmt}"
            with source.test_request_context(), files[fmt].open("w", encoding="utf-8") as fh:
                exports.export(db.session(), fmt, fh)
        records = _export(source)
        db.session.remove()
        db.engine.dispose()
    return files, records


@pytest.fixture
def moderator(app: Flask) -> str:
    builders.user("alice")
    return "alice"


def _import(runner, path: Path, *args: str) -> Any:
    return runner.invoke(args=["import", str(path), *args])


@pytest.mark.parametrize("fmt", sorted(imports.READERS))  # HSDS is out only
def test_an_export_imports_back_unchanged(
    app: Flask,
    runner,
    moderator: str,
    exported: tuple[dict[str, Path], list[dict[str, Any]]],
    fmt: str,
) -> None:
    files, before = exported
    path = files[fmt]
    result = _import(runner, path, "--as", moderator)
    assert result.exit_code == 0, result.output
    assert f"{len(before)} rows: {len(before)} new, 0 updated" in result.output
    assert _export(app) == before

    # Again: the keys (source and NPI) find their listings; the rest are new copies.
    again = _import(runner, path, "--as", moderator)
    assert again.exit_code == 0, again.output
    keyed_rows = sum(1 for r in before if r["sources"] or r.get("npi"))
    assert f"{len(before) - keyed_rows} new, 0 updated, {keyed_rows} unchanged" in again.output


def test_a_bulk_edit_by_id_updates_what_changed_and_audits_it(
    seeded: Flask, runner, moderator: str, tmp_path: Path
) -> None:
    path = tmp_path / "all.jsonl"
    runner.invoke(args=["export", str(path)])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    target = next(r for r in rows if r["kind"] == Kind.PHARMACY.value)
    target["price_notes"] = "About $12 a month"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    listings, audits, flags = _counts()

    result = _import(runner, path, "--as", moderator, "--by-id")
    assert result.exit_code == 0, result.output
    assert f"0 new, 1 updated, {len(rows) - 1} unchanged" in result.output
    assert _counts() == (listings, audits + 1, flags)
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.action, entry.actor_label, entry.listing_id) == (
        "import_update",
        moderator,
        target["id"],
    )
    assert entry.after == {"price_notes": "About $12 a month"}
    assert entry.reason == "Imported from all.jsonl"


CURATED = """source_id,kind,name,street,city,region,postal_code,phone,website
17,pharmacy,Reliable Compounding,100 Pine St,Seattle,US-WA,98101,(206) 555-0199,
18,pharmacy,No Way To Reach Us,1 Main St,Portland,US-OR,97201,,
19,pharmacy,Bad Link Pharmacy,2 Main St,Portland,US-OR,97201,,ftp://example.org
20,pharmacy,Wrong Zip Pharmacy,3 Main St,Portland,US-OR,ABCDEFGHIJKLMNOP,(503) 555-0100,
"""


def _curated(tmp_path: Path, text: str = CURATED) -> Path:
    path = tmp_path / "reliable-2026-05.csv"
    path.write_text(text)
    return path


def test_a_curated_list_becomes_audited_flags(
    app: Flask, runner, moderator: str, tmp_path: Path
) -> None:
    path = _curated(tmp_path, CURATED.splitlines()[0] + "\n" + CURATED.splitlines()[1] + "\n")
    args = ["--as", moderator, "--source", "LDN Trust", "--list-date", "2026-05"]
    result = _import(runner, path, *args)
    assert result.exit_code == 0, result.output
    assert "1 new, 0 updated, 0 unchanged, 1 flags added, 0 refused" in result.output
    listing = db.session.scalars(select(Listing)).one()
    assert listing.on_curated_list and listing.lat is not None  # placed from its ZIP, offline
    flag = listing.flags[0]
    assert (flag.type, flag.source, flag.as_of.isoformat()) == (
        FlagType.CURATED_LIST,
        "LDN Trust",
        "2026-05-01",
    )
    source = db.session.scalars(select(ListingSource)).one()
    assert (source.source, source.source_id, source.file) == ("LDN Trust", "17", path.name)
    actions = {
        e.action: e for e in db.session.scalars(select(AuditEntry)) if e.listing_id == listing.id
    }
    assert set(actions) == {"import_new", "flag_add", "source_add"}
    assert all(
        e.actor_label == moderator and path.name in (e.reason or "") for e in actions.values()
    )

    # The same list again changes nothing; next year's edition replaces the flag.
    same = _import(runner, path, *args)
    assert "0 new, 0 updated, 1 unchanged, 0 flags added" in same.output
    newer = _import(runner, path, *args[:-1], "2027-05")
    assert "1 flags added" in newer.output
    db.session.expire_all()
    assert [f.as_of.isoformat() for f in listing.flags] == ["2027-05-01"]


def test_a_newer_edition_of_a_list_takes_the_flag_off_listings_no_longer_on_it(
    app: Flask, runner, moderator: str, tmp_path: Path
) -> None:
    header, first = CURATED.splitlines()[:2]
    second = "21,pharmacy,Second Pharmacy,5 Main St,Portland,US-OR,97201,(503) 555-0101,"
    args = ["--as", moderator, "--source", "LDN Trust", "--list-date"]
    path = _curated(tmp_path, "\n".join([header, first, second]) + "\n")
    assert "2 new" in _import(runner, path, *args, "2026-05").output
    typo = _curated(tmp_path, "\n".join([header, first, "22,pharmacist,Typo"]) + "\n")
    kept = _import(runner, typo, *args, "2027-05")
    assert "1 refused" in kept.output and "were kept" in kept.output
    assert db.session.scalar(select(func.count()).select_from(ReliabilityFlag)) == 2

    newer = _curated(tmp_path, "\n".join([header, first]) + "\n")
    result = _import(runner, newer, *args, "2027-05")
    assert "0 flags added, 1 flags removed, 0 refused" in result.output, result.output
    db.session.expire_all()
    flags = {
        f.listing.name: f.as_of.isoformat() for f in db.session.scalars(select(ReliabilityFlag))
    }
    assert flags == {"Reliable Compounding": "2027-05-01"}
    entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None and entry.action == "flag_remove"
    assert entry.reason == f"Not on LDN Trust's list of 2027-05-01: {newer.name}"


def test_dry_run_names_every_refused_row_and_writes_nothing(
    app: Flask, runner, moderator: str, tmp_path: Path
) -> None:
    path = _curated(tmp_path)
    before = _counts()
    result = _import(
        runner,
        path,
        "--as",
        moderator,
        "--source",
        "LDN Trust",
        "--list-date",
        "2026-05",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    assert _counts() == before
    refused = [line for line in result.output.splitlines() if "refused:" in line]
    assert [line.split(",")[1].strip().split(":")[0] for line in refused] == [
        "line 3",
        "line 4",
        "line 5",
    ]
    assert "Give at least one way to reach the pharmacy" in refused[0]
    assert "website" in refused[1] and "postal_code" in refused[2]
    assert "Checked (dry run, nothing written)" in result.output
    assert "4 rows: 1 new, 0 updated, 0 unchanged, 1 flags added, 3 refused" in result.output


def test_a_prescriber_is_found_by_npi_and_its_kind_is_kept(
    app: Flask, runner, moderator: str, tmp_path: Path
) -> None:
    existing = builders.prescriber(name="Dr. Old Name", npi="1234567893")
    path = tmp_path / "npi.jsonl"
    rows = [
        {
            "kind": "prescriber",
            "name": "Dr. New Name",
            "npi": "1234-567-893",
            "city": "Birmingham",
            "region": "US-AL",
            "postal_code": "35233",
        },
        {
            "kind": "pharmacy",
            "name": "Not A Doctor",
            "sources": [{"source": "x", "source_id": "1"}],
            "city": "Birmingham",
            "region": "US-AL",
            "postal_code": "35233",
            "phone": "(205) 555-0100",
        },
        {
            "kind": "prescriber",
            "name": "Dr. Typo",
            "npi": "1234567890",
            "city": "Birmingham",
            "region": "US-AL",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db.session.add(ListingSource(listing_id=existing.id, source="x", source_id="1"))
    db.session.commit()
    result = _import(runner, path, "--as", moderator)
    assert "1 updated" in result.output and "2 refused" in result.output, result.output
    assert "line 2: refused: its key names listing" in result.output
    assert "line 3: refused: npi: This NPI's last digit doesn't match" in result.output
    db.session.expire_all()
    assert db.session.get(Listing, existing.id).name == "Dr. New Name"


@pytest.mark.parametrize(
    ("name", "content", "args", "message"),
    [
        ("list.txt", "kind,name\n", [], "cannot tell the format from 'list.txt'"),
        ("list.csv", "kind,name\npharmacy,A\n", ["--format", "xml"], "unknown format 'xml'"),
        ("list.csv", "kind,nmae,city\n", [], "missing required column(s): name"),
        ("list.csv", "kind,name,colour\n", [], "unknown column(s): colour"),
        ("list.jsonl", '{"kind": "pharmacy"}\n{"kind": \n', [], "line 2: not valid JSON"),
        ("list.geojson", '{"type": "FeatureCollection",\n "features": [}', [], "line 2: not valid"),
        ("list.geojson", '{"type": "Feature"}', [], "not a GeoJSON FeatureCollection"),
        ("list.geojson", "[1, 2]", [], "not a GeoJSON FeatureCollection"),
        ("list.csv", b"kind,name\npharmacy,Caf\xe9\n", [], "is not UTF-8 text"),
        ("missing.csv", None, [], "cannot read"),
        ("list.csv", "kind,name\n", ["--as", "nobody"], "no active moderator account 'nobody'"),
        ("list.csv", "kind,name\n", ["--as", ""], "Give --as NAME"),
        ("list.csv", "kind,name\n", ["--list-date", "May"], "--list-date needs a date"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    app: Flask,
    runner,
    moderator: str,
    tmp_path: Path,
    name: str,
    content: str | bytes | None,
    args: list[str],
    message: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    before = _counts()
    as_args = [] if "--as" in args else ["--as", moderator]
    result = _import(runner, path, *as_args, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert _counts() == before
