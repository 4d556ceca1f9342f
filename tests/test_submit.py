"""Public submissions (issue 4): field rules, kept input, honeypot, idempotence, privacy,
duplicates, corrections, CSRF, rate limits and body size."""

from __future__ import annotations

from typing import Any

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import func, select

from directory import duplicates, moderation
from directory.extensions import db
from directory.models import Listing, Submission, SubmissionStatus, SubmissionType
from tests import builders
from tests.conftest import html, make_app

SCRIPT = '<script>alert("x")</script><b>bold</b> & "quotes"'
PRIVATE_EMAIL = "private.person@example.net"


def pharmacy_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Magnolia Compounding",
        "street": "100 Main St",
        "city": "Birmingham",
        "state": "US-AL",
        "postal_code": "35233",
        "country": "US",
        "phone": "205 555 0199",
        "website": "https://example.org/magnolia",
        "email": "",
        "makes_ldn": "yes",
        "dosage_forms": ["capsule", "liquid"],
        "sr_policy": "ir_only",
        "fillers": ["mcc"],
        "price_notes": "About $30 a month",
        "mail_order": "yes",
        "ships_to": ["US-AL", "US-GA"],
        "ships_to_countries": "",
        "submitter_relation": "patient",
        "submitter_email": "",
        "note": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def prescriber_form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Dr. Ana Rivera",
        "credentials": "MD",
        "specialty": "Rheumatology",
        "practice": "Rivera Clinic",
        "npi": "1234567893",
        "street": "1 Clinic Rd",
        "city": "Birmingham",
        "state": "US-AL",
        "postal_code": "35233",
        "country": "US",
        "phone": "",
        "website": "",
        "email": "",
        "telehealth": "yes",
        "licensed_in": ["US-AL", "US-TN"],
        "accepting_new_patients": "yes",
        "conditions": ["fibromyalgia", "me_cfs"],
        "dosing_notes": "Starts at 1.5 mg.",
        "submitter_email": "",
        "note": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def submissions() -> list[Submission]:
    return list(db.session.scalars(select(Submission).order_by(Submission.id)))


def count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def post(client, kind: str, data: dict[str, Any]):  # type: ignore[no-untyped-def]
    return client.post(f"/suggest/{kind}", data=data)


def sent_reference(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 303, html(response).select(".error")
    location = response.headers["Location"]
    assert "/suggest/sent/LDN-" in location
    return location.rsplit("/", 1)[1]


def textarea(page: BeautifulSoup, name: str) -> str:
    """A textarea's value as a browser reads it: one newline right after the tag is dropped."""
    text = page.select_one(f"textarea[name={name}]").get_text()
    return text.removeprefix("\r\n") if text.startswith("\r\n") else text.removeprefix("\n")


def browser_form(page: BeautifulSoup) -> dict[str, Any]:
    """What a browser would send for the listing form as shown."""
    form: dict[str, Any] = {}
    for el in page.select("form.listing-form input[name], form.listing-form textarea[name]"):
        name = el["name"]
        if el.get("type") in ("checkbox", "radio"):
            if el.has_attr("checked"):
                form.setdefault(name, []).append(el["value"])
        elif el.name == "textarea":
            form[name] = textarea(page, name)
        else:
            form[name] = el.get("value", "")
    for select_el in page.select("form.listing-form select[name]"):
        chosen = select_el.select_one("option[selected]")
        form[select_el["name"]] = chosen["value"] if chosen else ""
    return form


def field_error(page: BeautifulSoup, field: str) -> str:
    error = page.select_one(f"#{field}-error")
    assert error is not None, f"no message next to {field}: {page.select('.error')}"
    return error.get_text(" ", strip=True)


# --- a good submission ------------------------------------------------------------------------


def test_a_pharmacy_suggestion_is_stored_as_pending(client) -> None:
    response = post(client, "pharmacy", pharmacy_form(submitter_email="Me@Example.ORG"))
    reference = sent_reference(response)
    (sub,) = submissions()
    assert sub.reference == reference
    assert sub.status == SubmissionStatus.PENDING and sub.type == SubmissionType.NEW
    assert sub.listing_id is None
    assert sub.data["name"] == "Magnolia Compounding"
    assert sub.data["phone"] == "+12055550199"  # stored in E.164
    assert sub.data["region"] == "US-AL" and sub.data["country"] == "US"
    assert sub.data["fillers"] == ["mcc"] and sub.data["dosage_forms"] == ["capsule", "liquid"]
    assert sub.data["ships_to"] == ["US-AL", "US-GA"] and sub.data["mail_order"] is True
    assert sub.submitter_email == "me@example.org"
    assert sub.place is not None and sub.place["precision"] == "postal_code"
    page = html(client.get(response.headers["Location"]))
    assert page.select_one(".reference strong").get_text(strip=True) == reference


def test_a_prescriber_suggestion_is_stored_as_pending(client) -> None:
    sent_reference(post(client, "prescriber", prescriber_form(npi="123-456-7893")))
    (sub,) = submissions()
    assert sub.data["npi"] == "1234567893"
    assert sub.data["telehealth"] is True and sub.data["telehealth_only"] is False
    assert sub.data["licensed_in"] == ["US-AL", "US-TN"]
    assert sub.data["conditions"] == ["fibromyalgia", "me_cfs"]
    assert sub.data["accepting_new_patients"] is True


def test_a_telehealth_only_prescriber_needs_no_address(client) -> None:
    form = prescriber_form(telehealth="only", street="", city="", state="", postal_code="")
    sent_reference(post(client, "prescriber", form))
    (sub,) = submissions()
    assert sub.data["telehealth_only"] is True and sub.place is None


def test_a_british_address(client) -> None:
    form = pharmacy_form(
        country="GB",
        state="",
        region_other="England",
        city="London",
        postal_code="SW1A 1AA",
        phone="020 7946 0100",
        ships_to=[],
        ships_to_countries="gb, ie",
    )
    sent_reference(post(client, "pharmacy", form))
    (sub,) = submissions()
    assert sub.data["postal_code"] == "SW1A 1AA" and sub.data["region"] == "England"
    assert sub.data["phone"] == "+442079460100"
    assert sub.data["ships_to"] == ["GB", "IE"]


def test_a_prescriber_licensed_abroad(client) -> None:
    form = prescriber_form(
        country="GB",
        state="",
        region_other="England",
        city="London",
        postal_code="SW1A 1AA",
        npi="",
        licensed_in=[],
        licensed_in_countries="gb; ie",
    )
    sent_reference(post(client, "prescriber", form))
    (sub,) = submissions()
    assert sub.data["licensed_in"] == ["GB", "IE"]


@pytest.mark.parametrize(
    ("name", "city", "country", "state", "postal"),
    [
        ("Zoë's Apotheke", "Birmingham", "US", "US-AL", "35233"),
        ("São Paulo Farmácia", "São Paulo", "BR", "", "01310-100"),
    ],
)
def test_unicode_names_are_kept_exactly(client, name, city, country, state, postal) -> None:
    form = pharmacy_form(
        name=name,
        city=city,
        country=country,
        state=state,
        postal_code=postal,
        phone="+55 11 3000 0000" if country == "BR" else "205 555 0199",
        ships_to=[],
    )
    sent_reference(post(client, "pharmacy", form))
    (sub,) = submissions()
    assert sub.data["name"] == name and sub.data["city"] == city
    assert sub.place is not None
    if country == "BR":
        assert sub.place["label"] == "São Paulo, BR"
    # Published, the name and its page work too.
    listing = moderation.approve(sub.id, builders.user()).listing
    page = html(client.get(f"/pharmacies/{listing.id}-{listing.slug}"))
    assert page.select_one("h1").get_text(strip=True) == name
    assert listing.slug == {"US": "zoe-s-apotheke", "BR": "sao-paulo-farmacia"}[country]


# --- field rules: a message next to the field, nothing stored --------------------------------


FIELD_RULES: list[tuple[str, dict[str, Any], str, str]] = [
    ("prescriber", {"npi": "1234567898"}, "npi", "last digit doesn't match"),
    ("prescriber", {"npi": "12345"}, "npi", "exactly 10 digits"),
    ("prescriber", {"npi": "12345678931"}, "npi", "exactly 10 digits"),
    ("pharmacy", {"phone": "call me"}, "phone", "doesn't look like a phone number"),
    ("pharmacy", {"phone": "555"}, "phone", "too few or too many digits"),
    ("pharmacy", {"website": "javascript:alert(1)"}, "website", "starting with https://"),
    ("pharmacy", {"website": "ftp://example.org"}, "website", "starting with https://"),
    ("pharmacy", {"website": "https://exa mple.org"}, "website", "can't contain spaces"),
    ("pharmacy", {"email": "not-an-email"}, "email", "like name@example.org"),
    ("pharmacy", {"submitter_email": "me@"}, "submitter_email", "like name@example.org"),
    ("pharmacy", {"postal_code": "ABC"}, "postal_code", "5-digit ZIP code, like 35233"),
    (
        "pharmacy",
        {"country": "GB", "state": "", "postal_code": "35233"},
        "postal_code",
        "like SW1A 1AA",
    ),
    ("pharmacy", {"state": "US-ZZ"}, "state", "Not a valid choice"),
    ("pharmacy", {"state": "AL"}, "state", "Not a valid choice"),
    ("pharmacy", {"country": "GB", "postal_code": ""}, "state", "States are for US addresses"),
    ("pharmacy", {"country": "XX"}, "country", "Not a valid choice"),
    ("pharmacy", {"name": ""}, "name", "Please enter the name."),
    ("pharmacy", {"name": "n" * 10240}, "name", "longer than 200 characters"),
    ("prescriber", {"name": "n" * 10240}, "name", "longer than 200 characters"),
    ("pharmacy", {"street": "s" * 201}, "street", "longer than 200 characters"),
    ("pharmacy", {"price_notes": "p" * 501}, "price_notes", "longer than 500 characters"),
    ("pharmacy", {"note": "n" * 2001}, "note", "longer than 2000 characters"),
    ("prescriber", {"dosing_notes": "d" * 1001}, "dosing_notes", "longer than 1000"),
    (
        "pharmacy",
        {"phone": "", "website": "", "email": ""},
        "phone",
        "at least one way to reach the pharmacy",
    ),
    ("pharmacy", {"dosage_forms": ["plutonium"]}, "dosage_forms", "choose from the list"),
    ("pharmacy", {"ships_to": ["US-ZZ"]}, "ships_to", "choose from the list"),
    ("pharmacy", {"ships_to_countries": "XX, GB"}, "ships_to_countries", "XX"),
    ("pharmacy", {"sr_policy": "sometimes"}, "sr_policy", "Not a valid choice"),
    ("prescriber", {"licensed_in": []}, "licensed_in", "at least one state"),
    ("prescriber", {"licensed_in_countries": "GB, ZZ"}, "licensed_in_countries", "ZZ"),
    ("prescriber", {"conditions": ["gout"]}, "conditions", "choose from the list"),
    (
        "prescriber",
        {"telehealth": "no", "city": "", "postal_code": "", "street": ""},
        "city",
        "city or ZIP of the office",
    ),
]


def check_field_rule(client, kind: str, changes: dict[str, Any], field: str, message: str) -> str:  # type: ignore[no-untyped-def]
    """'' when the form refuses `changes` with `message` next to `field`; else what went wrong."""
    form = (pharmacy_form if kind == "pharmacy" else prescriber_form)(**changes)
    response = post(client, kind, form)
    if response.status_code != 400:
        return f"status {response.status_code}"
    page = html(response)
    error = page.select_one(f"#{field}-error")
    if error is None or message not in error.get_text(" ", strip=True):
        return f"message next to {field}: {error and error.get_text(' ', strip=True)}"
    # The summary at the top links to the field.
    if page.select_one(f".error-summary a[href='#{field}']") is None:
        return "no link from the summary"
    return ""


def test_field_rules(client) -> None:
    # One app for every case (a fresh one per case would cost more than the checks).
    wrong = []
    for kind, changes, field, message in FIELD_RULES:
        problem = check_field_rule(client, kind, changes, field, message)
        if problem:
            wrong.append(f"{kind} {str(changes)[:60]}: {problem}")
    assert not wrong, "\n".join(wrong)
    assert count(Submission) == 0


def test_a_us_address_needs_its_state(client) -> None:
    assert not check_field_rule(client, "pharmacy", {"state": ""}, "state", "choose the state")


def test_a_valid_npi_passes(client) -> None:
    sent_reference(post(client, "prescriber", prescriber_form(npi="1234567893")))


def test_everything_typed_is_kept_when_something_is_wrong(client) -> None:
    form = pharmacy_form(
        name="Zoë's Apotheke",
        street="12 Oak St, Suite 3",
        phone="2055550199",
        website="javascript:alert(1)",  # the one mistake
        email="Shop@Example.org",
        makes_ldn="unknown",
        sr_policy="sr_on_request",
        dosage_forms=["cream", "liquid"],
        fillers=["lactose", "mcc"],
        price_notes="£20, or $25",
        ships_to=["US-AL", "US-TN"],
        ships_to_countries="GB",
        submitter_relation="staff",
        submitter_email="me@example.org",
        note="Line one\nLine two",
    )
    response = post(client, "pharmacy", form)
    assert response.status_code == 400
    page = html(response)
    for name in ("name", "street", "city", "postal_code", "website", "price_notes"):
        assert page.select_one(f"input[name={name}]")["value"] == form[name], name
    assert page.select_one("input[name=ships_to_countries]")["value"] == "GB"
    assert page.select_one("input[name=submitter_email]")["value"] == "me@example.org"
    assert page.select_one("input[name=email]")["value"] == "Shop@Example.org"
    # The phone was fine: it comes back formatted.
    assert page.select_one("input[name=phone]")["value"] == "(205) 555-0199"
    assert textarea(page, "note") == "Line one\nLine two"
    assert page.select_one("select[name=state] option[selected]")["value"] == "US-AL"
    assert page.select_one("select[name=country] option[selected]")["value"] == "US"

    def checked(name: str) -> set[str]:
        return {el["value"] for el in page.select(f"input[name={name}][checked]")}

    assert checked("makes_ldn") == {"unknown"}
    assert checked("sr_policy") == {"sr_on_request"}
    assert checked("dosage_forms") == {"cream", "liquid"}
    assert checked("fillers") == {"lactose", "mcc"}
    assert checked("fillers_unknown") == set()
    assert checked("mail_order") == {"yes"}
    assert checked("ships_to") == {"US-AL", "US-TN"}
    assert checked("submitter_relation") == {"staff"}
    assert "starting with https://" in field_error(page, "website")


def test_prescriber_answers_are_kept_too(client) -> None:
    form = prescriber_form(npi="1234567898", telehealth="only", accepting_new_patients="no")
    page = html(post(client, "prescriber", form))
    assert page.select_one("input[name=npi]")["value"] == "1234567898"
    assert page.select_one("input[name=credentials]")["value"] == "MD"
    assert textarea(page, "dosing_notes") == "Starts at 1.5 mg."
    assert {el["value"] for el in page.select("input[name=telehealth][checked]")} == {"only"}
    assert {el["value"] for el in page.select("input[name=licensed_in][checked]")} == {
        "US-AL",
        "US-TN",
    }
    assert {el["value"] for el in page.select("input[name=conditions][checked]")} == {
        "fibromyalgia",
        "me_cfs",
    }
    assert {el["value"] for el in page.select("input[name=accepting_new_patients][checked]")} == {
        "no"
    }


# --- bots, double clicks ---------------------------------------------------------------------


def test_the_honeypot_refuses_bots(client) -> None:
    response = post(client, "pharmacy", pharmacy_form(company_fax="+1 205 555 0100"))
    assert response.status_code == 400
    assert count(Submission) == 0
    page = html(response)
    # Shown empty again, still hidden from people.
    trap = page.select_one("input[name=company_fax]")
    assert trap["value"] == "" and trap["tabindex"] == "-1"
    assert trap.find_parent(class_="hp")["aria-hidden"] == "true"


def test_the_form_has_an_empty_honeypot(client) -> None:
    page = html(client.get("/suggest/pharmacy"))
    assert page.select_one("form input[name=company_fax]")["value"] == ""


def test_sending_the_same_thing_twice_stores_it_once(client) -> None:
    form = pharmacy_form(note="Please add it")
    first = sent_reference(post(client, "pharmacy", form))
    second = sent_reference(post(client, "pharmacy", form))
    assert first == second
    assert count(Submission) == 1
    # Anything different is a new submission.
    third = sent_reference(post(client, "pharmacy", pharmacy_form(note="Something else")))
    assert third != first and count(Submission) == 2


# --- pending means not public ----------------------------------------------------------------


def test_a_pending_submission_is_nowhere_public(client) -> None:
    builders.pharmacy(name="Already Published", lat=33.5062, lon=-86.8003)
    sent_reference(post(client, "pharmacy", pharmacy_form(name="Secret Pending Pharmacy")))
    sent_reference(post(client, "prescriber", prescriber_form(name="Dr. Pending Person")))
    assert count(Listing) == 1
    page = client.get("/search?near=35233&radius=500").data
    assert b"Already Published" in page
    api = client.get("/api/v1/search?near=35233&radius=500").get_json()
    names = [r["name"] for r in api["results"] + api["also_available"]]
    assert names == ["Already Published"]
    for hidden in (b"Secret Pending Pharmacy", b"Dr. Pending Person"):
        assert hidden not in page
    for sub in submissions():
        assert sub.status == SubmissionStatus.PENDING and sub.listing_id is None
    for listing_id in range(2, 6):  # no id was handed to the pending ones
        assert client.get(f"/api/v1/listings/{listing_id}").status_code == 404
        assert client.get(f"/pharmacies/{listing_id}").status_code == 404
        assert client.get(f"/prescribers/{listing_id}").status_code == 404


def test_the_submitters_email_never_appears_publicly(client) -> None:
    listing = builders.pharmacy(name="Magnolia Compounding", email="shop@example.org")
    correction = pharmacy_form(
        name="Magnolia Compounding",
        street=listing.street,
        phone="205 555 0177",
        problem="wrong_details",
        submitter_email=PRIVATE_EMAIL,
        note="Their phone changed",
    )
    sent = client.post(f"/suggest/correction/{listing.id}", data=correction)
    sent_reference(sent)
    new = sent_reference(
        post(client, "pharmacy", pharmacy_form(name="Oak Pharmacy", submitter_email=PRIVATE_EMAIL))
    )
    (_, new_sub) = submissions()
    assert new_sub.reference == new and new_sub.submitter_email == PRIVATE_EMAIL
    published = moderation.approve(new_sub.id, builders.user()).listing
    pages = [
        client.get(sent.headers["Location"]),
        client.get(f"/suggest/sent/{new}"),
        client.get(f"/pharmacies/{listing.id}-{listing.slug}"),
        client.get(f"/pharmacies/{published.id}-{published.slug}"),
        client.get("/search?near=35233"),
        client.get(f"/suggest/correction/{listing.id}"),
        client.get(f"/api/v1/listings/{listing.id}"),
        client.get(f"/api/v1/listings/{published.id}"),
        client.get("/api/v1/search?near=35233"),
    ]
    for response in pages:
        assert response.status_code == 200
        assert PRIVATE_EMAIL.encode() not in response.data, response.request.path
        assert b"private.person" not in response.data
    assert b"Oak Pharmacy" in pages[3].data  # the approved listing itself is public
    # ...with the phone as normalised when it was sent ("205 555 0199").
    assert html(pages[3]).select_one("a.tel").get_text(strip=True) == "(205) 555-0199"


# --- duplicates ------------------------------------------------------------------------------


def test_possible_duplicates_are_found_and_stored(client) -> None:
    near_twin = builders.pharmacy(name="Magnolia Compounding Pharmacy", phone="(205) 555-0150")
    same_phone = builders.pharmacy(
        name="Completely Different Rx", phone="(205) 555-0123", lat=47.6, lon=-122.3
    )
    far_twin = builders.pharmacy(
        name="Magnolia Compounding", phone="(206) 555-0100", lat=47.6, lon=-122.3
    )
    sent_reference(
        post(client, "pharmacy", pharmacy_form(name="Magnolia Pharmacy", phone="+1 205 555 0123"))
    )
    (sub,) = submissions()
    found = {(d["type"], d["id"]): d["reasons"] for d in sub.duplicates}
    assert found == {
        ("listing", near_twin.id): ["similar name within 1 km"],
        ("listing", same_phone.id): ["same phone"],
    }
    assert ("listing", far_twin.id) not in found


def test_a_matching_npi_is_a_possible_duplicate(client) -> None:
    doc = builders.prescriber(name="Dr. Someone Else", npi="1234567893", lat=47.6, lon=-122.3)
    sent_reference(post(client, "prescriber", prescriber_form(npi="123 456 7893")))
    (sub,) = submissions()
    assert sub.duplicates == [{"type": "listing", "id": doc.id, "reasons": ["same NPI"]}]


def test_another_pending_submission_is_a_possible_duplicate(client) -> None:
    sent_reference(
        post(client, "pharmacy", pharmacy_form(name="Cedar Apothecary", phone="205 555 0101"))
    )
    sent_reference(
        post(
            client, "pharmacy", pharmacy_form(name="The Cedar Apothecary LLC", phone="205 555 0102")
        )
    )
    sent_reference(
        post(
            client,
            "prescriber",
            prescriber_form(name="Dr. Nobody", npi="", phone="205 555 0101", street="9 Elm St"),
        )
    )
    first, second, third = submissions()
    assert first.duplicates == []
    assert second.duplicates == [
        {"type": "submission", "id": first.id, "reasons": ["similar name within 1 km"]}
    ]
    assert {"type": "submission", "id": first.id, "reasons": ["same phone"]} in third.duplicates


def test_names_in_any_script_can_be_duplicates(client) -> None:
    cyrillic = builders.pharmacy(name="Аптека Здоровье", phone="(205) 555-0161")
    accented = builders.pharmacy(name="Zoë's Apotheke", phone="(205) 555-0162")
    sent_reference(post(client, "pharmacy", pharmacy_form(name="Аптека «Здоровье»")))
    sent_reference(post(client, "pharmacy", pharmacy_form(name="Zoe's Apotheke", note="2")))
    first, second = submissions()
    assert first.duplicates == [
        {"type": "listing", "id": cyrillic.id, "reasons": ["similar name within 1 km"]}
    ]
    assert {"type": "listing", "id": accented.id, "reasons": ["similar name within 1 km"]} in (
        second.duplicates
    )
    assert duplicates.name_key("Zoë's Apotheke") == duplicates.name_key("ZOE'S APOTHEKE")
    assert duplicates.name_key("São Paulo Farmácia") == "sao paulo farmacia"


def test_no_duplicates_for_a_new_place(client) -> None:
    builders.pharmacy(name="Somewhere Else Pharmacy", phone="(205) 555-0150")
    sent_reference(post(client, "pharmacy", pharmacy_form(name="Fresh Start Compounding")))
    (sub,) = submissions()
    assert sub.duplicates == []


# --- corrections -----------------------------------------------------------------------------


def test_the_correction_form_is_filled_from_the_pharmacy(client) -> None:
    p = builders.pharmacy(
        name="Oak & Ivy Compounding",
        street="12 Oak St",
        phone="(205) 555-0142",
        website="https://example.org/oak",
        email="shop@example.org",
        sr_policy="sr_on_request",
        fillers=["mcc", "lactose"],
        dosage_forms=["capsule", "liquid"],
        price_notes="About $30",
        mail_order=True,
        ships_to=["US-AL", "US-GA", "GB"],
    )
    response = client.get(f"/suggest/correction/{p.id}")
    assert response.status_code == 200
    page = html(response)
    assert page.select_one("h1").get_text(strip=True) == "Suggest a correction"
    values = {
        name: page.select_one(f"input[name={name}]")["value"]
        for name in ("name", "street", "city", "postal_code", "phone", "website", "email")
    }
    assert values == {
        "name": "Oak & Ivy Compounding",
        "street": "12 Oak St",
        "city": "Birmingham",
        "postal_code": "35233",
        "phone": "(205) 555-0142",
        "website": "https://example.org/oak",
        "email": "shop@example.org",
    }
    assert page.select_one("input[name=price_notes]")["value"] == "About $30"
    assert page.select_one("input[name=ships_to_countries]")["value"] == "GB"
    assert page.select_one("select[name=state] option[selected]")["value"] == "US-AL"
    assert page.select_one("select[name=country] option[selected]")["value"] == "US"

    def checked(name: str) -> set[str]:
        return {el["value"] for el in page.select(f"input[name={name}][checked]")}

    assert checked("sr_policy") == {"sr_on_request"}
    assert checked("fillers") == {"lactose", "mcc"}
    assert checked("fillers_unknown") == set()
    assert checked("dosage_forms") == {"capsule", "liquid"}
    assert checked("mail_order") == {"yes"}
    assert checked("ships_to") == {"US-AL", "US-GA"}
    assert checked("makes_ldn") == {"yes"}
    assert checked("problem") == set()  # the one thing they must answer themselves


def test_the_correction_form_is_filled_from_the_prescriber(client) -> None:
    d = builders.prescriber(
        name="Dr. Ana Rivera",
        npi="1234567893",
        telehealth=True,
        licensed_in=["US-AL", "US-TN"],
        accepting_new_patients=None,
        conditions=["me_cfs"],
        dosing_notes="Starts at 0.5 mg.",
    )
    page = html(client.get(f"/suggest/correction/{d.id}"))
    assert page.select_one("input[name=name]")["value"] == "Dr. Ana Rivera"
    assert page.select_one("input[name=npi]")["value"] == "1234567893"
    assert page.select_one("input[name=credentials]")["value"] == "MD"
    assert textarea(page, "dosing_notes") == "Starts at 0.5 mg."
    assert {el["value"] for el in page.select("input[name=telehealth][checked]")} == {"yes"}
    assert {el["value"] for el in page.select("input[name=licensed_in][checked]")} == {
        "US-AL",
        "US-TN",
    }
    assert {el["value"] for el in page.select("input[name=conditions][checked]")} == {"me_cfs"}
    assert {el["value"] for el in page.select("input[name=accepting_new_patients][checked]")} == {
        "unknown"
    }


def test_a_correction_is_stored_against_its_listing(client) -> None:
    p = builders.pharmacy(name="Oak Pharmacy", fillers=None)
    page = html(client.get(f"/suggest/correction/{p.id}"))
    # Send the pre-filled form back with one change, the way a browser would.
    form = browser_form(page)
    form["phone"] = "205 555 0999"
    form["problem"] = "wrong_details"
    sent_reference(client.post(f"/suggest/correction/{p.id}", data=form))
    (sub,) = submissions()
    assert sub.type == SubmissionType.CORRECTION and sub.listing_id == p.id
    assert sub.problem == "wrong_details"
    assert sub.data["phone"] == "+12055550999"
    assert sub.data["fillers"] is None  # "don't know" stays "don't know"
    assert sub.place is not None and sub.place["lat"] == p.lat  # address unchanged
    db.session.refresh(p)
    assert p.phone != "+12055550999"  # nothing changes until a moderator says so


def test_seeded_correction_forms_can_be_sent_back_as_they_are(seeded, client) -> None:
    """Whatever a listing holds, its pre-filled form passes the form's own rules: a patient
    reporting one thing must not have to fix fields they never touched, and the moderator
    sees no change that nobody made."""
    listings = db.session.scalars(select(Listing).order_by(Listing.id)).all()
    # One of each shape: both kinds in every country, and telehealth only.
    shapes: dict[tuple[Any, ...], Listing] = {}
    for x in listings:
        shapes.setdefault((x.country, x.kind, x.telehealth_only), x)
    sample = list(shapes.values())
    assert len(sample) >= 10
    wrong = []
    for listing in sample:
        form = browser_form(html(client.get(f"/suggest/correction/{listing.id}")))
        form["problem"] = "other"
        response = client.post(f"/suggest/correction/{listing.id}", data=form)
        if response.status_code != 303:
            errors = [
                li.get_text(" ", strip=True) for li in html(response).select(".error-summary li")
            ]
            wrong.append(f"{listing.id} {listing.name}: {errors}")
            continue
        sub = db.session.scalars(select(Submission).order_by(Submission.id.desc())).first()
        changes = moderation.review(sub.id).changes
        if changes:
            wrong.append(f"{listing.id} {listing.name}: proposes {changes}")
    assert not wrong, "\n".join(wrong)
    assert count(Submission) == len(sample)


def test_a_correction_needs_the_kind_of_problem(client) -> None:
    p = builders.pharmacy()
    response = client.post(f"/suggest/correction/{p.id}", data=pharmacy_form())
    assert response.status_code == 400
    assert "what kind of problem" in field_error(html(response), "problem")
    assert count(Submission) == 0


def test_correcting_a_missing_listing_is_404(client) -> None:
    assert client.get("/suggest/correction/999999").status_code == 404
    assert client.post("/suggest/correction/999999", data=pharmacy_form()).status_code == 404


def test_malformed_references_are_404(client) -> None:
    for reference in ("LDN-XYZ", "nope", "LDN-ABC$%^", "LDN-ABCDEF1", "LDN-abc"):
        assert client.get(f"/suggest/sent/{reference}").status_code == 404, reference


# --- markup is text ----------------------------------------------------------------------------


def test_markup_in_every_text_field_is_stored_as_text_and_escaped(client) -> None:
    texts = {
        "name": "Dr. " + SCRIPT,
        "credentials": SCRIPT[:60],
        "specialty": SCRIPT,
        "practice": SCRIPT,
        "street": SCRIPT,
        "city": SCRIPT,
        "dosing_notes": SCRIPT,
        "note": SCRIPT,
    }
    # First with a mistake: the page shows everything back, escaped.
    response = post(client, "prescriber", prescriber_form(npi="1234567898", **texts))
    assert response.status_code == 400
    assert b"<script>alert" not in response.data and b"<b>bold</b>" not in response.data
    page = html(response)
    for name, value in texts.items():
        el = page.select_one(f"[name={name}]")
        shown = textarea(page, name) if el.name == "textarea" else el["value"]
        assert shown == value, name
    # Then corrected: stored exactly as typed.
    sent_reference(post(client, "prescriber", prescriber_form(**texts)))
    (sub,) = submissions()
    for name, value in texts.items():
        stored = sub.note if name == "note" else sub.data[name]
        assert stored == value, name
    # Published, it is shown as text on every public page and returned as text by the API.
    listing = moderation.approve(sub.id, builders.user()).listing
    for path in (
        f"/prescribers/{listing.id}-{listing.slug}",
        "/search?near=35233",
        f"/suggest/correction/{listing.id}",
    ):
        body = client.get(path)
        assert body.status_code == 200
        assert b"<script>alert" not in body.data and b"<b>bold</b>" not in body.data, path
    detail = html(client.get(f"/prescribers/{listing.id}-{listing.slug}"))
    assert detail.select_one("h1").get_text() == f"{texts['name']}, {texts['credentials']}"
    api = client.get(f"/api/v1/listings/{listing.id}").get_json()
    assert api["name"] == texts["name"] and api["dosing_notes"] == SCRIPT


def test_markup_in_pharmacy_text_fields(client) -> None:
    texts = {
        "name": SCRIPT,
        "street": SCRIPT,
        "city": SCRIPT,
        "price_notes": SCRIPT,
        "region_other": SCRIPT,
        "note": SCRIPT,
    }
    form = pharmacy_form(
        country="NZ", state="", postal_code="1010", phone="+64 9 300 0000", ships_to=[], **texts
    )
    sent_reference(post(client, "pharmacy", form))
    (sub,) = submissions()
    assert sub.data["region"] == SCRIPT and sub.data["price_notes"] == SCRIPT
    listing = moderation.approve(sub.id, builders.user()).listing
    body = client.get(f"/pharmacies/{listing.id}-{listing.slug}").data
    assert b"<script>alert" not in body and b"<b>bold</b>" not in body
    assert b"&lt;script&gt;alert" in body


# --- request-level protections ---------------------------------------------------------------


def test_a_missing_csrf_token_is_a_plain_400(database_url) -> None:
    app = make_app(database_url, WTF_CSRF_ENABLED=True)
    with app.app_context():
        client = app.test_client()
        response = client.post("/suggest/pharmacy", data=pharmacy_form())
        assert response.status_code == 400
        page = html(response)
        assert "Nothing was saved" in page.select_one("main").get_text(" ", strip=True)
        assert page.select_one("form.listing-form") is None
        assert count(Submission) == 0
        # With the token from the form, the same data goes through.
        form_page = html(client.get("/suggest/pharmacy"))
        token = form_page.select_one("input[name=csrf_token]")["value"]
        sent_reference(
            client.post("/suggest/pharmacy", data={**pharmacy_form(), "csrf_token": token})
        )
        # A forged token is refused like a missing one.
        forged = client.post(
            "/suggest/pharmacy", data={**pharmacy_form(note="x"), "csrf_token": token + "x"}
        )
        assert forged.status_code == 400
        assert count(Submission) == 1
        db.session.remove()
        db.engine.dispose()


def test_the_third_post_in_an_hour_is_refused(database_url) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, SUBMISSION_RATE_LIMIT="2 per hour")
    with app.app_context():
        client = app.test_client()
        sent_reference(post(client, "pharmacy", pharmacy_form(name="First Pharmacy")))
        assert post(client, "pharmacy", pharmacy_form(name="")).status_code == 400  # free
        sent_reference(post(client, "pharmacy", pharmacy_form(name="Second Pharmacy")))
        response = post(client, "pharmacy", pharmacy_form(name="Third Pharmacy"))
        assert response.status_code == 429
        page = html(response)
        text = page.select_one("main").get_text(" ", strip=True)
        assert "Please wait a little" in text and "Please try again later" in text
        assert page.select_one("form.listing-form") is None
        assert [s.data["name"] for s in submissions()] == ["First Pharmacy", "Second Pharmacy"]
        # Reading the form is not limited, so nobody loses what they were about to type.
        assert client.get("/suggest/pharmacy").status_code == 200
        db.session.remove()
        db.engine.dispose()


def test_a_body_over_the_size_limit_is_413(app, client) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit  # configured
    response = post(client, "pharmacy", pharmacy_form(note="n" * (limit + 1)))
    assert response.status_code == 413
    page = html(response)
    assert "more than we can accept" in page.select_one("main").get_text(" ", strip=True)
    assert count(Submission) == 0
