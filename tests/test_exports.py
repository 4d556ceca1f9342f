"""Exports: one record shape read in batches (checked against the ORM's public_dict, the
oracle), and its three formats: JSON lines, CSV (formula-safe cells) and RFC 7946 GeoJSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from flask import Flask
from sqlalchemy import select

from directory import exports, moderation
from directory.csvcells import csv_safe, csv_unsafe
from directory.extensions import db
from directory.geocoding import Geocoding
from directory.listings import public_dict
from directory.models import Kind, Listing, ListingSource
from tests import builders

# RFC 7946's rules for what the export writes: a FeatureCollection of Features, each with a
# Point (longitude, latitude: two numbers in range) or a null geometry, and its properties.
POINT = {
    "type": "object",
    "required": ["type", "coordinates"],
    "properties": {
        "type": {"const": "Point"},
        "coordinates": {
            "type": "array",
            "prefixItems": [
                {"type": "number", "minimum": -180, "maximum": 180},
                {"type": "number", "minimum": -90, "maximum": 90},
            ],
            "minItems": 2,
            "maxItems": 2,
        },
    },
}
FEATURE_COLLECTION = {
    "type": "object",
    "required": ["type", "features"],
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "geometry", "properties"],
                "properties": {
                    "type": {"const": "Feature"},
                    "id": {"type": ["number", "string"]},
                    "geometry": {"oneOf": [{"type": "null"}, POINT]},
                    "properties": {"type": ["object", "null"]},
                },
            },
        },
    },
}


def _records(app: Flask, batch: int = exports.BATCH) -> list[dict[str, Any]]:
    with app.test_request_context():
        return list(exports.records(db.session(), batch=batch))


@pytest.fixture
def varied(seeded: Flask) -> Flask:
    """The samples, plus what the samples lack: a telehealth-only prescriber with
    coordinates, a formula-looking name, known-but-no fillers and two outside keys."""
    builders.prescriber(
        name="Dr. Remote Only", telehealth=True, telehealth_only=True, licensed_in=["US-WA"]
    )
    keyed = builders.pharmacy(name='=HYPERLINK("https://evil.example")', fillers=[])
    db.session.add_all(
        [
            ListingSource(listing_id=keyed.id, source="nppes", source_id="1234567893"),
            ListingSource(listing_id=keyed.id, source="LDN list", source_id="17"),
        ]
    )
    db.session.commit()
    return seeded


def test_records_are_public_dict_plus_sources_in_any_batch_size(varied: Flask) -> None:
    listings = {x.id: x for x in db.session.scalars(select(Listing))}
    sources: dict[int, list[dict[str, str]]] = {}
    for s in db.session.scalars(
        select(ListingSource).order_by(ListingSource.source, ListingSource.source_id)
    ):
        sources.setdefault(s.listing_id, []).append({"source": s.source, "source_id": s.source_id})
    with varied.test_request_context():
        expected = []
        for listing_id in sorted(listings):
            listing = listings[listing_id]
            data = public_dict(listing)
            data["sources"] = sources.get(listing_id, [])
            if not listing.has_public_pin:
                data["lat"] = data["lon"] = None
            expected.append(data)
    for batch in (7, 1000):  # batch boundaries fall inside the data, and no boundary at all
        assert _records(varied, batch) == expected
    hidden = [r for r in expected if r["name"] == "Dr. Remote Only"]
    assert hidden and hidden[0]["lat"] is None


def test_csv_has_the_documented_header_and_formula_safe_cells(varied: Flask) -> None:
    out = io.StringIO()
    with varied.test_request_context():
        count = exports.export(db.session(), "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == exports.COLUMNS and len(rows) == count + 1
    by_name = {r[rows[0].index("name")]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    evil = by_name['\'=HYPERLINK("https://evil.example")']
    assert evil["fillers"] == exports.NO_FILLERS
    assert json.loads(evil["sources"]) == [
        {"source": "LDN list", "source_id": "17"},
        {"source": "nppes", "source_id": "1234567893"},
    ]
    for row in by_name.values():
        for name in exports.COLUMNS:
            cell = row[name]
            if name not in ("lat", "lon"):  # numbers are numbers, -122.3 included
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
    mailer = next(r for r in by_name.values() if r["mail_order"] == "true" and r["ships_to"])
    assert ";" in mailer["ships_to"] and all(
        c.startswith("US-") for c in mailer["ships_to"].split(";")
    )


@pytest.mark.parametrize("value", ["=1+1", "+1 206", "-x", "@a", "\tx", "'quoted", "plain", ""])
def test_csv_safe_cells_read_back_unchanged(value: str) -> None:
    assert csv_unsafe(csv_safe(value)) == value


def test_geojson_is_an_rfc7946_feature_collection(varied: Flask) -> None:
    out = io.StringIO()
    with varied.test_request_context():
        exports.export(db.session(), "geojson", out)
    collection = json.loads(out.getvalue())
    jsonschema.validate(collection, FEATURE_COLLECTION)
    records = {r["id"]: r for r in _records(varied)}
    assert len(collection["features"]) == len(records)
    for feature in collection["features"]:
        record = records[feature["id"]]
        assert feature["properties"] == {k: v for k, v in record.items() if k not in ("lat", "lon")}
        if record["lat"] is None:
            assert feature["geometry"] is None
        else:
            assert feature["geometry"]["coordinates"] == [record["lon"], record["lat"]]
    nulls = [f for f in collection["features"] if f["geometry"] is None]
    assert "Dr. Remote Only" in [f["properties"]["name"] for f in nulls]
    assert all(f["properties"]["telehealth_only"] for f in nulls)


@pytest.mark.parametrize("fmt", sorted(exports.WRITERS))
def test_export_command_writes_each_format_without_private_data(
    varied: Flask, runner, tmp_path: Path, fmt: str
) -> None:
    moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={"name": "Pending Only", "country": "US", "city": "Seattle", "region": "US-WA"},
        geocoding=Geocoding(),
        email="secret-submitter@example.org",
    )
    ending = next(end for end, name in exports.EXTENSIONS.items() if name == fmt)
    out = tmp_path / f"listings{ending}"
    result = runner.invoke(args=["export", str(out)])
    assert result.exit_code == 0, result.output
    count = len(_records(varied))
    assert f"Wrote {count} listings" in result.output
    text = out.read_text(encoding="utf-8")
    assert "secret-submitter" not in text and "Pending Only" not in text
    named = runner.invoke(args=["export", "-", "--format", fmt])
    assert named.exit_code == 0 and named.stdout == text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "{tmp}/listings.txt"], "cannot tell the format from 'listings.txt'"),
        (["export", "-", "--format", "xml"], "unknown format 'xml'"),
        (["export", "{tmp}/no/such/folder/x.csv"], "Cannot write"),
    ],
)
def test_export_refuses_bad_requests_in_one_line(
    app: Flask, runner, tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(args=[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
