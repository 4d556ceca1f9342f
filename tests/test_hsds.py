"""HSDS 3.0: every object the export and the API write validates against Open Referral's own
schemas (vendored in tests/vendor/hsds-3.0, made strict: a field HSDS doesn't define fails too);
ids are stable; nothing private leaks; the API pages and refuses bad input; the open data page
and its links work."""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select

from directory import hsds
from directory.extensions import db
from directory.models import (
    Condition,
    DosageForm,
    Filler,
    FlagType,
    Kind,
    Listing,
    SRPolicy,
    Status,
    Submission,
    SubmissionType,
)
from tests import builders
from tests.conftest import html

VENDOR = Path(__file__).parent / "vendor" / "hsds-3.0" / "schema"
BASE = "https://raw.githubusercontent.com/openreferral/specification/3.0/schema/"
SECRET_EMAIL = "private-sender-7d1e@example.net"
SECRET_NOTE = "Private note for moderators 5c2a"


# --- the official schemas, strict ---------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """Every object schema refuses properties it doesn't define: the official files leave
    additionalProperties open, so a misspelt field would otherwise pass."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and schema.get("type") == "object":
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


@cache
def _registry() -> Registry:
    resources = []
    for path in VENDOR.rglob("*.json"):
        if path.name == "openapi.json":
            continue
        contents = _strict(json.loads(path.read_text(encoding="utf-8")))
        uri = BASE + path.relative_to(VENDOR).as_posix()
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


def _envelope(item: str) -> dict[str, Any]:
    """The HSDA list response of schema/openapi.json: its Page, with `contents` of `item`."""
    api = json.loads((VENDOR / "openapi.json").read_text(encoding="utf-8"))
    page = api["components"]["schemas"]["Page"]
    return {
        "type": "object",
        "properties": page["properties"] | {"contents": {"type": "array", "items": {"$ref": item}}},
        "required": [*page["properties"], "contents"],
        "additionalProperties": False,
    }


def validate(instance: Any, name: str) -> None:
    """`name` is a schema file ("service.json", "compiled/service_list.json") or
    "list:<file>" for a list envelope of that file's objects."""
    if name.startswith("list:"):
        schema: dict[str, Any] = _envelope(BASE + name.removeprefix("list:"))
    else:
        schema = {"$ref": BASE + name}
    validator = Draft202012Validator(schema, registry=_registry(), format_checker=FormatChecker())
    validator.validate(instance)


def validate_all(services: list[dict[str, Any]]) -> set[str]:
    """Each service whole, then each object inside it on its own; returns the kinds seen."""
    seen: set[str] = set()

    def check(obj: dict[str, Any], kind: str) -> None:
        validate(obj, f"{kind}.json")
        seen.add(kind)

    for service in services:
        check(service, "service")
        check(service["organization"], "organization")
        for identifier in service["organization"].get("organization_identifiers", []):
            check(identifier, "organization_identifier")
        for phone in service.get("phones", []):
            check(phone, "phone")
        for area in service.get("service_areas", []):
            check(area, "service_area")
        for at in service["service_at_locations"]:
            check(at, "service_at_location")
            check(at["location"], "location")
            for address in at["location"].get("addresses", []):
                check(address, "address")
        for attribute in service["attributes"]:
            check(attribute, "attribute")
            if "taxonomy_term" in attribute:  # inline in /services/{id}, listed once in files
                check(attribute["taxonomy_term"], "taxonomy_term")
    return seen


# --- data ---------------------------------------------------------------------------------------


@pytest.fixture
def listings(app: Flask) -> list[Listing]:
    """A pharmacy with everything, a telehealth-only prescriber, a closed prescriber with an
    NPI abroad, a sample; and a private correction sent about the first."""
    first = builders.pharmacy(
        email="shop@example.org",
        mail_order=True,
        ships_to=["US-AL", "US-GA"],
        fillers=["mcc", "lactose"],
        dosage_forms=["capsule"],
        price_notes="About $30 a month",
        flags=[FlagType.CURATED_LIST.value, FlagType.PROBLEM_REPORT.value],
        verified_on=date(2026, 6, 1),
    )
    builders.prescriber(
        telehealth=True, telehealth_only=True, website="https://example.org/dr", npi="1234567893"
    )
    builders.prescriber(
        status=Status.CLOSED.value,
        country="CA",
        region="Ontario",
        postal_code="M5V 2T6",
        city="Toronto",
        licensed_in=["CA"],
        practice="Example Clinic",
        accepting_new_patients=None,
    )
    builders.pharmacy(makes_ldn=None, sr_policy=None, fillers=None, street=None)
    db.session.add(
        Submission(
            reference="HSDSPRIVATE1",
            type=SubmissionType.CORRECTION,
            listing_kind=Kind.PHARMACY,
            listing_id=first.id,
            data={"name": "Changed"},
            note=SECRET_NOTE,
            submitter_email=SECRET_EMAIL,
            content_hash="x" * 64,
        )
    )
    db.session.commit()
    return list(db.session.scalars(select(Listing).order_by(Listing.id)))


def export(items: Any = None) -> dict[str, Any]:
    out = io.StringIO()
    count = hsds.write(items, out)
    document = json.loads(out.getvalue())
    assert count == len(document["services"])
    return document


def said(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's attributes as {term code: value}."""
    codes = {t["id"]: t["code"] for t in hsds.taxonomy_terms()}
    return {codes[a["taxonomy_term_id"]]: a.get("value") for a in service["attributes"]}


def every_id(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id":
                yield item
            else:
                yield from every_id(item)
    elif isinstance(value, list):
        for item in value:
            yield from every_id(item)


# --- the export validates -----------------------------------------------------------------------


def test_every_exported_object_validates_against_the_official_schemas(
    listings: list[Listing],
) -> None:
    document = export()
    assert len(document["services"]) == len(listings)
    seen = validate_all(document["services"])
    assert seen == {
        "service",
        "organization",
        "organization_identifier",
        "phone",
        "service_area",
        "service_at_location",
        "location",
        "address",
        "attribute",
    }
    for taxonomy in document["taxonomies"]:
        validate(taxonomy, "taxonomy.json")
    for term in document["taxonomy_terms"]:
        validate(term, "taxonomy_term.json")
    assert document["license"] == hsds.LICENCE


def test_the_sample_data_set_validates(seeded: Flask) -> None:
    document = export()
    assert len(document["services"]) == db.session.query(Listing).count()
    validate_all(document["services"])
    samples = [s for s in document["services"] if s.get("alert") == hsds.SAMPLE_ALERT]
    assert len(samples) == len(document["services"])  # every seed listing is a sample


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s: s.update(status="open"), "status outside HSDS's list"),
        (lambda s: s.update(id="cedar-1"), "an id that is no UUID"),
        (lambda s: s.update(assured="2026-01-01"), "a field HSDS doesn't have"),
        (lambda s: s["organization"].pop("description"), "a required field missing"),
        (lambda s: s["phones"][0].update(number=None), "null where HSDS wants a string"),
        (lambda s: s.update(url="not a link"), "a URL that is no URI"),
    ],
)
def test_the_validation_catches_a_wrong_field(
    listings: list[Listing], change: Any, why: str
) -> None:
    service = copy.deepcopy(export([listings[0].id])["services"][0])
    change(service)
    with pytest.raises(ValidationError):
        validate(service, "service.json")


# --- what the mapping says ----------------------------------------------------------------------


def test_facts_become_attributes_of_our_taxonomy(listings: list[Listing]) -> None:
    pharmacy = export([listings[0]])["services"][0]
    facts = said(pharmacy)
    assert facts["makes_ldn"] == "true"
    assert f"sr_policy/{SRPolicy.IR_ONLY.value}" in facts
    for code in ("mcc", "lactose"):
        assert facts[f"fillers/{code}"] == db.session.get(Filler, code).guidance.value
    assert facts["fillers_known"] == "true"
    assert "dosage_forms/capsule" in facts
    assert facts["mail_order"] == "true"
    assert f"kind/{Kind.PHARMACY.value}" in facts
    assert "Test source" in facts[f"flags/{FlagType.CURATED_LIST.value}"]
    assert "telehealth" not in facts  # a prescriber's fact
    assert pharmacy["assured_date"] == "2026-06-01"
    assert pharmacy["fees_description"] == "About $30 a month"
    assert [a["name"] for a in pharmacy["service_areas"]] == ["Alabama", "Georgia"]
    unknown = export([listings[3]])["services"][0]
    codes = said(unknown)
    assert "makes_ldn" not in codes  # nobody has said: left out, not "false"
    assert codes["fillers_known"] == "false"
    assert "assured_date" not in unknown
    assert "addresses" not in unknown["service_at_locations"][0]["location"]


def test_prescribers_locations_and_status(listings: list[Listing]) -> None:
    remote, closed = export([listings[1], listings[2]])["services"]
    location = remote["service_at_locations"][0]["location"]
    assert location["location_type"] == "virtual"
    assert location["url"] == "https://example.org/dr"
    assert "latitude" not in location and "addresses" not in location  # stays private
    assert remote["organization"]["organization_identifiers"][0]["identifier"] == "1234567893"
    facts = said(remote)
    assert facts["telehealth_only"] == "true" and facts["conditions/fibromyalgia"] is None
    assert closed["status"] == "defunct"
    assert closed["organization"]["name"] == "Example Clinic"
    address = closed["service_at_locations"][0]["location"]["addresses"][0]
    assert (address["country"], address["state_province"]) == ("CA", "Ontario")
    assert [a["name"] for a in closed["service_areas"]] == ["Canada"]


def test_every_status_has_an_hsds_status() -> None:
    assert set(hsds.STATUS) == set(Status)


def test_the_taxonomy_holds_every_vocabulary_value(app: Flask) -> None:
    codes = {t["code"] for t in hsds.taxonomy_terms()}
    expected = {f"sr_policy/{v}" for v in SRPolicy.values()}
    expected |= {f"flags/{v}" for v in FlagType.values()} | {f"kind/{v}" for v in Kind.values()}
    for field, model in (("fillers", Filler), ("dosage_forms", DosageForm)):
        expected |= {f"{field}/{row.code}" for row in db.session.scalars(select(model))}
    expected |= {f"conditions/{row.code}" for row in db.session.scalars(select(Condition))}
    assert expected <= codes
    ids = [t["id"] for t in hsds.taxonomy_terms()]
    assert len(ids) == len(set(ids))


# --- ids ----------------------------------------------------------------------------------------


def test_ids_are_stable_across_exports_and_unique(listings: list[Listing]) -> None:
    first = export()
    listings[0].name = "Renamed Compounding"
    db.session.commit()
    second = export()
    assert list(every_id(first)) == list(every_id(second))
    before, after = first["services"][0]["organization"], second["services"][0]["organization"]
    assert before["uri"] == after["uri"] == f"http://localhost/pharmacies/{listings[0].id}"
    assert after["name"] == "Renamed Compounding"
    service_ids = list(every_id(second["services"]))
    # An object appears once in full (a term once per attribute that links it).
    own = [i for s in second["services"] for i in every_id(s) if i not in _term_ids(second)]
    assert len(own) == len(set(own))
    assert all(uuid.UUID(i) for i in service_ids)


def _term_ids(document: dict[str, Any]) -> set[str]:
    return {t["id"] for t in document["taxonomy_terms"]}


def test_a_service_id_leads_back_to_its_listing_and_nothing_else() -> None:
    for listing_id in (1, 42, 2**47 + 5):
        service_id = hsds.listing_uuid(listing_id, "service")
        assert uuid.UUID(service_id).version == 5
        assert hsds.listing_id_of(service_id, "service") == listing_id
        assert hsds.listing_id_of(hsds.listing_uuid(listing_id, "location"), "service") is None
    forged = hsds.listing_uuid(7, "service")[:-1] + "8"  # listing 8's tail on listing 7's hash
    assert hsds.listing_id_of(forged, "service") is None
    assert hsds.listing_id_of("not-a-uuid", "service") is None


# --- nothing private ----------------------------------------------------------------------------


def test_nothing_private_is_exported_or_served(
    listings: list[Listing], client: FlaskClient
) -> None:
    texts = [json.dumps(export())]
    for path in (
        "/api/hsds/v3/services",
        "/api/hsds/v3/service_at_locations",
        "/api/hsds/v3/services/" + hsds.listing_uuid(listings[0].id, "service"),
        "/data/ldn-directory-hsds.json",
        "/data/ldn-directory-hsds.ndjson",
    ):
        response = client.get(path, buffered=True)
        assert response.status_code == 200, path
        texts.append(response.get_data(as_text=True))
    for text in texts:
        assert SECRET_EMAIL not in text and SECRET_NOTE not in text
        assert "Changed" not in text  # the correction's proposed data


# --- the API ------------------------------------------------------------------------------------


def test_services_come_a_page_at_a_time(listings: list[Listing], client: FlaskClient) -> None:
    pages = [client.get(f"/api/hsds/v3/services?per_page=3&page={n}").json for n in (1, 2, 3)]
    for page in pages:
        validate(page, "list:compiled/service_list.json")
        assert page["total_items"] == len(listings) and page["total_pages"] == 2
    assert [p["size"] for p in pages] == [3, 1, 0]
    assert [(p["first_page"], p["last_page"], p["empty"]) for p in pages] == [
        (True, False, False),
        (False, True, False),
        (False, True, True),
    ]
    ids = [s["id"] for p in pages for s in p["contents"]]
    assert ids == [hsds.listing_uuid(x.id, "service") for x in listings]
    default = client.get("/api/hsds/v3/services").json
    assert default["size"] == len(listings) and default["page_number"] == 1


def test_service_at_locations_page(listings: list[Listing], client: FlaskClient) -> None:
    page = client.get("/api/hsds/v3/service_at_locations?per_page=2").json
    validate(page, "list:compiled/service_at_location_list.json")
    assert page["size"] == 2 and page["total_items"] == len(listings)
    first = page["contents"][0]
    assert first["service"]["id"] == first["service_id"]
    assert first["location"]["id"] == first["location_id"]


def test_one_service_whole(listings: list[Listing], client: FlaskClient) -> None:
    service_id = hsds.listing_uuid(listings[0].id, "service")
    response = client.get(f"/api/hsds/v3/services/{service_id}")
    assert response.status_code == 200
    body = response.json
    assert "taxonomy_term" in validate_all([body])
    for attribute in body["attributes"]:
        term = attribute.pop("taxonomy_term")
        assert term["id"] == attribute["taxonomy_term_id"]
    assert body == export([listings[0].id])["services"][0]


LISTS = [
    "/api/hsds/v3/services",
    "/api/hsds/v3/service_at_locations",
    "/api/hsds/v3/taxonomies",
    "/api/hsds/v3/taxonomy_terms",
]


def test_the_taxonomy_over_the_api(app: Flask, client: FlaskClient) -> None:
    terms = client.get("/api/hsds/v3/taxonomy_terms?per_page=100").json
    validate(terms, "list:taxonomy_term.json")
    assert terms["contents"] == hsds.taxonomy_terms()[:100]
    second = client.get("/api/hsds/v3/taxonomy_terms?per_page=5&page=2").json
    assert second["contents"] == hsds.taxonomy_terms()[5:10]
    taxonomies = client.get("/api/hsds/v3/taxonomies").json
    validate(taxonomies, "list:taxonomy.json")
    assert taxonomies["contents"] == [hsds.TAXONOMY]


@pytest.mark.parametrize(
    "query",
    ["page=0", "page=-1", "page=abc", "page=1.5", "page=99999999", "per_page=0",
     "per_page=101", "per_page=%D9%A3", "per_page=1e2"],
)  # fmt: skip
def test_bad_paging_is_a_json_400(shared_client: FlaskClient, query: str) -> None:
    for path in LISTS:
        response = shared_client.get(f"{path}?{query}")
        assert response.status_code == 400, query
        error = response.json["error"]
        assert error["code"] == "invalid_parameter"
        name = query.split("=")[0]
        assert list(error["fields"]) == [name] and name in error["message"]


@pytest.mark.parametrize(
    "service_id",
    [str(uuid.uuid4()), "nope", hsds.listing_uuid(999_999, "service"), "1" * 300],
)
def test_unknown_services_are_a_json_404(shared_client: FlaskClient, service_id: str) -> None:
    response = shared_client.get(f"/api/hsds/v3/services/{service_id}")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


# --- downloads and the page ---------------------------------------------------------------------


def test_downloads_stream_the_whole_dataset(listings: list[Listing], client: FlaskClient) -> None:
    response = client.get("/data/ldn-directory-hsds.json")
    assert response.is_streamed  # and read here, outside the request's own context
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    document = json.loads(response.get_data(as_text=True))
    assert len(document["services"]) == len(listings)
    validate_all(document["services"])
    lines = client.get("/data/ldn-directory-hsds.ndjson", buffered=True).get_data(as_text=True)
    services = [json.loads(line) for line in lines.splitlines()]
    assert services == document["services"]
    assert client.get("/data/other.json").status_code == 404


def test_an_empty_directory_exports_an_empty_list(app: Flask, client: FlaskClient) -> None:
    assert export()["services"] == []
    page = client.get("/api/hsds/v3/services").json
    validate(page, "list:compiled/service_list.json")
    assert (page["total_items"], page["empty"], page["last_page"]) == (0, True, True)


def test_the_open_data_page_and_its_links(listings: list[Listing], client: FlaskClient) -> None:
    home = html(client.get("/"))
    footer_links = [a["href"] for a in home.select("footer a")]
    assert "/open-data" in footer_links
    response = client.get("/open-data")
    assert response.status_code == 200
    page = html(response)
    text = page.get_text(" ")
    assert "Creative Commons Attribution 4.0" in text and "Sample listing" in text
    assert page.select_one('a[rel="license"]')["href"] == hsds.LICENCE_URL
    local = {a["href"] for a in page.select("main a") if a["href"].startswith("/")}
    assert {"/data/ldn-directory-hsds.json", "/api/hsds/v3/services"} <= local
    for href in local:
        assert client.get(href, buffered=True).status_code == 200, href


def test_ids_are_uuid5_of_their_key() -> None:
    """The fast path computes what uuid.uuid5 does (a listing's ids then carry its id)."""
    for key in ("taxonomy", "taxonomy_term/fillers/mcc", "attribute/12/makes_ldn", "é/ü"):
        assert hsds.uuid_for(key) == str(uuid.uuid5(hsds.NAMESPACE, key))
    plain = str(uuid.uuid5(hsds.NAMESPACE, "service/12"))
    assert hsds.listing_uuid(12, "service") == plain[:24] + "00000000000c"
    assert hsds.listing_uuid(2**48, "service") == str(
        uuid.uuid5(hsds.NAMESPACE, f"service/{2**48}")
    )
