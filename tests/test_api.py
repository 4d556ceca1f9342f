"""The JSON API against its own OpenAPI 3.1 document: the document is valid, and real responses
(successes and errors) match the schemas it declares for their status codes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from geopy.distance import great_circle
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from directory import search
from directory.listings import fields_for
from directory.models import Kind
from tests import builders

DOC_URI = "urn:ldn-directory:openapi"
EXTRA_PUBLIC_FIELDS = {
    "id",
    "kind",
    "url",
    "address",
    "verified_on",
    "needs_reconfirming",
    "is_sample",
    "flags",
}


@pytest.fixture(scope="module")
def spec(shared_client) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = shared_client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.is_json
    return response.get_json()


def validator_for(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        schema, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def component(spec: dict[str, Any], name: str) -> Draft202012Validator:
    return validator_for(spec, {"$ref": f"{DOC_URI}#/components/schemas/{name}"})


def check(spec: dict[str, Any], response, path: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The response's status must be documented for `path`, and its body must match the
    schema documented for that status."""
    responses = spec["paths"][path]["get"]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{status} is not documented for {path}"
    assert response.mimetype == "application/json"
    schema = responses[status]["content"]["application/json"]["schema"]
    ref = schema["$ref"]
    body = response.get_json()
    errors = sorted(
        validator_for(spec, {"$ref": DOC_URI + ref}).iter_errors(body), key=lambda e: e.path
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return body


# --- the document -----------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(spec) -> None:
    assert spec["openapi"].startswith("3.1")
    validate_spec(spec)  # raises on any problem


def test_every_search_parameter_is_documented_and_nothing_else(spec) -> None:
    documented = {p["name"] for p in spec["paths"]["/api/v1/search"]["get"]["parameters"]}
    accepted = {"near", "lat", "lon", "radius", "unit", "kind", "page"}
    accepted |= set(search.FLAG_FILTERS) | set(search.CHOICE_FILTERS)
    accepted |= {"also_available"}  # the API's own, not the page's
    assert documented == accepted


def test_every_field_the_api_returns_is_described(spec, client) -> None:
    pharmacy = builders.pharmacy(flags=["curated_list"], verified_on=date.today())
    prescriber = builders.prescriber(npi="1234567893")
    listing_props = set(spec["components"]["schemas"]["Listing"]["properties"])
    for listing in (pharmacy, prescriber):
        body = client.get(f"/api/v1/listings/{listing.id}").get_json()
        assert set(body) <= listing_props, set(body) - listing_props
    search_body = client.get("/api/v1/search?near=35233").get_json()
    assert set(search_body) <= set(spec["components"]["schemas"]["SearchResponse"]["properties"])
    flag_props = set(
        spec["components"]["schemas"]["Listing"]["properties"]["flags"]["items"]["properties"]
    )
    assert set(search_body["results"][0]["flags"][0]) <= flag_props


# --- search -----------------------------------------------------------------------------------


SCHEMA_CASES: list[dict[str, str]] = [
    {"near": "Seattle, WA", "radius": "30"},
    {"near": "Birmingham"},  # ambiguous: other_places
    {"near": "London", "unit": "km", "radius": "50"},
    {"near": "35233", "kind": "pharmacy", "ir_only": "1", "safe_fillers": "1"},
    {"near": "35233", "kind": "prescriber", "condition": "fibromyalgia", "accepting": "1"},
    {"lat": "47.6062", "lon": "-122.3321", "radius": "500"},
    {"lat": "-16.8", "lon": "179.95"},  # the ocean: no country, nothing found
    {"near": "Zürich"},
    {"near": "São Paulo"},
]


def test_search_responses_match_the_schema(spec, seeded, client) -> None:
    for query in SCHEMA_CASES:
        response = client.get("/api/v1/search", query_string=query)
        assert response.status_code == 200, query
        body = check(spec, response, "/api/v1/search")
        assert body["page_size"] == search.PAGE_SIZE
        assert all(r["distance"] is not None for r in body["results"]), query
        assert all(r["distance"] is None for r in body["also_available"]), query
    # The cases above include results, also_available and other_places, so each part of
    # the schema met real data.
    body = client.get("/api/v1/search?near=Birmingham").get_json()
    assert body["results"] and body["also_available"] and body["other_places"]
    # Ambiguous: the others are offered, not the one chosen.
    labels = [p["label"] for p in body["other_places"]]
    assert body["origin"]["label"] == "Birmingham, AL, US"
    assert "Birmingham, England, GB" in labels
    assert body["origin"]["label"] not in labels


def test_search_results_are_nearest_first_with_one_decimal_distances(spec, seeded, client) -> None:
    body = check(
        spec,
        client.get("/api/v1/search?lat=47.6062&lon=-122.3321&radius=30&unit=km"),
        "/api/v1/search",
    )
    results = body["results"]
    assert len(results) >= 5
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances)
    for r in results:
        km = great_circle((47.6062, -122.3321), (r["lat"], r["lon"])).km
        assert r["distance"] == pytest.approx(round(km, 1), abs=0.051)
        assert r["distance"] == round(r["distance"], 1)
        assert r["status"] != "closed" and r.get("telehealth_only") is not True
    assert body["total"] == len(results) and body["total_capped"] is False
    assert body["origin"]["precision"] == "coordinates"


def test_search_pages_continue(spec, app, client) -> None:
    for i in range(30):
        builders.pharmacy(name=f"P{i:02d}", lat=33.5062 + i * 0.001, lon=-86.8003)
    one = check(spec, client.get("/api/v1/search?near=35233&page=1"), "/api/v1/search")
    two = check(spec, client.get("/api/v1/search?near=35233&page=2"), "/api/v1/search")
    assert (one["total"], one["pages"], two["total"], two["pages"]) == (30, 2, 30, 2)
    ids = [r["id"] for r in one["results"] + two["results"]]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert one["results"][-1]["distance"] <= two["results"][0]["distance"]


def test_also_available_in_the_api(spec, app, client) -> None:
    builders.pharmacy(
        name="Mails to Alabama", mail_order=True, ships_to=["US-AL"], lat=47.6, lon=-122.3
    )
    body = check(spec, client.get("/api/v1/search?near=35233"), "/api/v1/search")
    assert body["results"] == []
    assert [r["name"] for r in body["also_available"]] == ["Mails to Alabama"]
    assert body["origin"]["region"] == "US-AL"


def test_also_available_left_out_when_the_caller_says_so(spec, app, client) -> None:
    """also_available=0: no such key, and the walk that finds it is not run; the rest of the
    answer is the same. 1 is the default."""
    from sqlalchemy import event

    from directory.extensions import db

    builders.pharmacy(
        name="Mails to Alabama", mail_order=True, ships_to=["US-AL"], lat=47.6, lon=-122.3
    )
    builders.pharmacy(name="Near", lat=33.5062, lon=-86.8003)
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        without = check(
            spec, client.get("/api/v1/search?near=35233&also_available=0"), "/api/v1/search"
        )
        walks_without = sum("listing_regions.rank" in s for s in statements)
        statements.clear()
        default = check(spec, client.get("/api/v1/search?near=35233"), "/api/v1/search")
        walks_default = sum("listing_regions.rank" in s for s in statements)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    asked = check(spec, client.get("/api/v1/search?near=35233&also_available=1"), "/api/v1/search")
    assert "also_available" not in without
    assert [r["name"] for r in without["results"]] == ["Near"]
    assert (walks_without, walks_default) == (0, 1)
    assert [r["name"] for r in default["also_available"]] == ["Mails to Alabama"]
    assert asked == default
    assert {k: v for k, v in default.items() if k != "also_available"} == without


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({}, "near"),
        ({"near": ""}, "near"),
        ({"near": "35233", "radius": "abc"}, "radius"),
        ({"near": "35233", "radius": "-1"}, "radius"),
        ({"near": "35233", "radius": "0"}, "radius"),
        ({"near": "35233", "radius": "501"}, "radius"),
        ({"near": "35233", "radius": "inf"}, "radius"),
        ({"lat": "33.5"}, "lat"),
        ({"lon": "-86.8"}, "lat"),
        ({"lat": "95", "lon": "10"}, "lat"),
        ({"lat": "10", "lon": "-181"}, "lon"),
        ({"lat": "north", "lon": "west"}, "lat"),
        ({"near": "35233", "kind": "hospital"}, "kind"),
        ({"near": "35233", "unit": "parsecs"}, "unit"),
        ({"near": "35233", "page": "0"}, "page"),
        ({"near": "35233", "page": "-2"}, "page"),
        ({"near": "35233", "page": "²"}, "page"),
        ({"near": "35233", "page": "1" * 5000}, "page"),
        ({"near": "35233", "verified": "perhaps"}, "verified"),
        ({"near": "35233", "dosage_form": "suppository"}, "dosage_form"),
        ({"near": "35233", "condition": "gout"}, "condition"),
        ({"near": "35233", "also_available": "no"}, "also_available"),
        ({"near": "z" * 10240}, "near"),
        ({"near": "95, 10"}, "near"),
        ({"near": "35233\x1b[0m"}, "near"),
        ({"near": "35233\x00"}, None),  # refused before the search even starts
    ],
)
def test_bad_parameters_are_400_json(spec, shared_client, query, field) -> None:
    response = shared_client.get("/api/v1/search", query_string=query)
    assert response.status_code == 400
    body = check(spec, response, "/api/v1/search")
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["code"] == "invalid_parameter"
        assert field in body["error"]["fields"]


@pytest.mark.parametrize("near", ["Birmingxam", "😀", "Xyzzyqx", "<script>alert(1)</script>"])
def test_unknown_place_is_422_with_suggestions(spec, shared_client, near) -> None:
    response = shared_client.get("/api/v1/search", query_string={"near": near})
    assert response.status_code == 422
    body = check(spec, response, "/api/v1/search")
    assert body["error"]["code"] == "place_not_found"
    assert isinstance(body["error"]["suggestions"], list)
    assert body["error"]["fields"]["near"].startswith("We couldn't find")
    if near == "Birmingxam":
        assert "Birmingham, AL, US" in body["error"]["suggestions"]


def test_several_problems_are_reported_at_once(spec, shared_client) -> None:
    response = shared_client.get("/api/v1/search?radius=abc&kind=x&unit=y&lat=1")
    body = check(spec, response, "/api/v1/search")
    assert set(body["error"]["fields"]) == {"radius", "kind", "unit", "lat"}


def test_unknown_api_paths_and_methods_answer_in_json(spec, shared_client) -> None:
    error = component(spec, "Error")
    client = shared_client
    for response, status in (
        (client.get("/api/v1/nothing-here"), 404),
        (client.post("/api/v1/search"), 405),
    ):
        assert response.status_code == status
        assert response.is_json
        error.validate(response.get_json())


# --- one listing ------------------------------------------------------------------------------


def test_a_pharmacy_has_every_public_field(spec, client) -> None:
    p = builders.pharmacy(
        name="Oak & Ivy Compounding",
        email="shop@example.org",
        sr_policy="sr_on_request",
        fillers=["mcc", "lactose"],
        dosage_forms=["liquid", "capsule"],
        price_notes="About $30",
        mail_order=True,
        ships_to=["US-GA", "US-AL"],
        flags=["curated_list", "accreditation"],
        verified_on=date.today() - timedelta(days=400),
    )
    body = check(spec, client.get(f"/api/v1/listings/{p.id}"), "/api/v1/listings/{id}")
    assert set(body) == set(fields_for(Kind.PHARMACY)) | EXTRA_PUBLIC_FIELDS
    assert body["id"] == p.id and body["kind"] == "pharmacy"
    assert body["name"] == "Oak & Ivy Compounding"
    assert body["email"] == "shop@example.org"
    assert body["sr_policy"] == "sr_on_request"
    assert body["fillers"] == ["lactose", "mcc"]
    assert body["dosage_forms"] == ["capsule", "liquid"]
    assert body["ships_to"] == ["US-AL", "US-GA"]
    assert body["mail_order"] is True
    assert body["needs_reconfirming"] is True
    assert body["verified_on"] == (date.today() - timedelta(days=400)).isoformat()
    assert [f["type"] for f in body["flags"]] == ["curated_list", "accreditation"]
    assert body["url"].endswith(f"/pharmacies/{p.id}-oak-ivy-compounding")
    assert body["url"].startswith("http")
    assert body["address"] == f"{p.street}, Birmingham, AL 35233"


def test_unknown_fillers_are_null_not_empty(spec, client) -> None:
    unknown = builders.pharmacy(fillers=None)
    none = builders.pharmacy(fillers=[])
    assert client.get(f"/api/v1/listings/{unknown.id}").get_json()["fillers"] is None
    assert client.get(f"/api/v1/listings/{none.id}").get_json()["fillers"] == []


def test_a_prescriber_has_every_public_field(spec, client) -> None:
    d = builders.prescriber(
        name="Dr. Ana Rivera",
        telehealth=True,
        telehealth_only=True,
        street=None,
        lat=None,
        lon=None,
        geo_precision=None,
        licensed_in=["US-TN", "US-AL"],
        conditions=["me_cfs", "fibromyalgia"],
        npi="1234567893",
        accepting_new_patients=None,
        dosing_notes="Starts at 1.5 mg.",
    )
    body = check(spec, client.get(f"/api/v1/listings/{d.id}"), "/api/v1/listings/{id}")
    assert set(body) == set(fields_for(Kind.PRESCRIBER)) | EXTRA_PUBLIC_FIELDS
    assert body["telehealth_only"] is True and body["lat"] is None
    assert body["licensed_in"] == ["US-AL", "US-TN"]
    assert body["conditions"] == ["fibromyalgia", "me_cfs"]
    assert body["npi"] == "1234567893"
    assert body["accepting_new_patients"] is None
    assert body["needs_reconfirming"] is True and body["verified_on"] is None


def test_where_a_telehealth_only_prescriber_is_based_stays_private(spec, client) -> None:
    """The pages show no pin for them (ListingFacts.has_public_pin); nor may the API."""
    d = builders.prescriber(
        name="Dr. Home Office",
        telehealth=True,
        telehealth_only=True,
        licensed_in=["US-AL"],
        lat=33.5,
        lon=-86.8,
    )
    body = check(spec, client.get(f"/api/v1/listings/{d.id}"), "/api/v1/listings/{id}")
    assert (body["lat"], body["lon"]) == (None, None)
    search = check(spec, client.get("/api/v1/search?near=35233"), "/api/v1/search")
    (found,) = [r for r in search["also_available"] if r["name"] == "Dr. Home Office"]
    assert (found["lat"], found["lon"]) == (None, None)
    office = builders.prescriber(name="Dr. Office", lat=33.51, lon=-86.81)
    body = check(spec, client.get(f"/api/v1/listings/{office.id}"), "/api/v1/listings/{id}")
    assert (body["lat"], body["lon"]) == (33.51, -86.81)


def test_missing_listing_is_404_json(spec, client) -> None:
    for listing_id in ("999999", "0"):
        response = client.get(f"/api/v1/listings/{listing_id}")
        assert response.status_code == 404
        body = check(spec, response, "/api/v1/listings/{id}")
        assert body["error"]["code"] == "not_found"


def test_a_non_numeric_listing_id_is_404_json(spec, client) -> None:
    response = client.get("/api/v1/listings/abc")
    assert response.status_code == 404
    component(spec, "Error").validate(response.get_json())


def test_the_submitters_private_email_is_never_in_the_api(spec, app, client) -> None:
    from directory import moderation
    from directory.geocoding.app import geocoder

    listing = builders.pharmacy(name="Magnolia Compounding", email="shop@example.org")
    moderation.submit(
        listing_kind=Kind.PHARMACY,
        listing=listing,
        data={"name": "Magnolia Compounding", "phone": "(205) 555-0100"},
        geocoding=geocoder(),
        problem="wrong_details",
        note="The phone changed",
        email="private.person@example.net",
    )
    sub, _ = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={
            "name": "Brand New Pharmacy",
            "city": "Birmingham",
            "region": "US-AL",
            "postal_code": "35233",
            "country": "US",
            "phone": "(205) 555-0111",
            "website": None,
            "email": None,
            "fillers": None,
        },
        geocoding=geocoder(),
        email="private.person@example.net",
    )
    moderation.approve(sub.id, builders.user())
    bodies = [
        client.get(f"/api/v1/listings/{listing.id}").data,
        client.get("/api/v1/search?near=35233").data,
        client.get("/api/v1/search?near=35233&kind=pharmacy").data,
    ]
    published = [r["id"] for r in client.get("/api/v1/search?near=35233").get_json()["results"]]
    assert len(published) == 2  # the approved one is public now...
    bodies += [client.get(f"/api/v1/listings/{i}").data for i in published]
    for body in bodies:
        assert b"private.person" not in body  # ...but not who sent it
    assert b"shop@example.org" in bodies[0]  # the pharmacy's own public email is there
