"""Whole journeys in real Chromium: a visitor suggests a pharmacy; a moderator reviews,
corrects and publishes it; a patient finds it; a correction goes round the same loop."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import date
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import sign_in

pytestmark = pytest.mark.browser
ZIP = "35233"
NAME = re.compile(r"^Name")
STATE = re.compile(r"^State")


def fill_pharmacy_form(page: Any, *, name: str, phone: str) -> None:
    page.get_by_label(NAME).fill(name)
    page.get_by_label("Street address").fill("2100 Magnolia Ave S")
    page.get_by_label("City or town").fill("Birmingham")
    page.get_by_label(STATE).select_option(label="Alabama")
    page.get_by_label("ZIP or postal code").fill(ZIP)
    page.get_by_label("Phone").fill(phone)
    page.get_by_label("Makes immediate-release LDN only").check()
    page.get_by_label("Capsules").check()
    page.get_by_label("Microcrystalline cellulose", exact=False).check()
    page.get_by_label("I don't know which fillers it uses").uncheck()
    page.get_by_label("I am a patient there").check()
    page.get_by_label("Your email", exact=False).fill("visitor@example.org")


def api_names(base: str, near: str) -> list[str]:
    with urllib.request.urlopen(f"{base}/api/v1/search?near={near}&radius=25") as response:
        body = json.load(response)
    return [r["name"] for r in body["results"] + body["also_available"]]


def test_visitor_suggests_a_pharmacy_fixes_an_error_and_it_is_not_public_yet(
    live_server, open_page
) -> None:
    base = live_server.url
    page = open_page()
    page.goto(base + "/")
    page.get_by_role("link", name="Suggest a pharmacy").click()
    fill_pharmacy_form(page, name="Magnolia Compounding", phone="12")
    page.get_by_role("button", name="Send for review").click()

    # The error sits next to the phone field, and nothing typed is lost.
    error = page.locator(".field.has-error .error").first
    assert error.inner_text() == "This phone number has too few or too many digits."
    assert page.get_by_label(NAME).input_value() == "Magnolia Compounding"
    assert page.get_by_label("ZIP or postal code").input_value() == ZIP
    assert page.get_by_label("Makes immediate-release LDN only").is_checked()
    assert page.get_by_label("Your email", exact=False).input_value() == "visitor@example.org"

    page.get_by_label("Phone").fill("205 555 0142")
    page.get_by_role("button", name="Send for review").click()
    page.wait_for_url(re.compile(r"/suggest/sent/LDN-"))
    reference = page.locator(".reference strong").inner_text()
    assert re.fullmatch(r"LDN-[A-Z2-9]{6}", reference)

    # Not live: not on the results page, not in the API.
    page.goto(f"{base}/search?near={ZIP}")
    assert "Magnolia Compounding" not in page.locator("main").inner_text()
    assert "Magnolia Compounding" not in api_names(base, ZIP)


def test_the_whole_moderation_loop(live_server, open_page) -> None:
    base = live_server.url
    visitor = open_page()
    visitor.goto(base + "/suggest/pharmacy")
    fill_pharmacy_form(visitor, name="Magnolia Compunding", phone="205 555 0142")
    visitor.get_by_role("button", name="Send for review").click()
    visitor.wait_for_url(re.compile(r"/suggest/sent/"))
    reference = visitor.locator(".reference strong").inner_text()

    # A moderator signs in, finds it in the queue and fixes the typo before publishing.
    mod = open_page()
    sign_in(mod, live_server.app, base)
    mod.get_by_role("link", name=reference).click()
    # The queue page has a <main> too: wait for the review page's, not read whichever is there.
    expect(mod.locator("main")).to_contain_text("visitor@example.org")
    review_url = mod.url
    mod.get_by_role("link", name="Edit, then approve").click()
    mod.get_by_label(NAME).fill("Magnolia Compounding")
    mod.get_by_role("button", name="Save and publish").click()
    # Nothing else waits: back to the queue, told exactly what happened.
    mod.wait_for_url(re.compile(r"/moderation/$"))
    assert f"Published Magnolia Compounding from {reference}: it now appears in search." in (
        mod.locator(".flashes").inner_text()
    )
    mod.goto(review_url)
    mod.get_by_role("link", name="Magnolia Compounding").click()
    mod.wait_for_url(re.compile(r"/moderation/listings/\d+$"))
    listing_admin_url = mod.url

    # ...and records that they phoned the pharmacy today.
    mod.get_by_label("By phone").check()
    mod.get_by_label(re.compile(r"^Date you checked")).fill(date.today().isoformat())
    mod.get_by_role("button", name="Mark verified").click()
    # "Published" from the step before may still be showing until the new page arrives.
    expect(mod.locator(".flashes")).to_contain_text("Marked as verified")

    # A patient searching near the ZIP finds it, with the verification date.
    patient = open_page()
    patient.goto(base + "/")
    patient.get_by_label("Where are you?").fill(ZIP)
    patient.get_by_role("button", name="Search", exact=True).click()
    card = patient.locator(".card", has_text="Magnolia Compounding")
    expect(card).to_have_count(1)  # count() alone would not wait for the results page
    expect(card).to_contain_text(f"Verified today ({date.today().isoformat()})")
    card.get_by_role("link", name="Magnolia Compounding").click()

    # The patient suggests a correction from the listing page.
    patient.get_by_role("link", name="Suggest a correction or report a problem").click()
    assert patient.get_by_label(NAME).input_value() == "Magnolia Compounding"
    patient.get_by_label("Some details are wrong").check()
    patient.get_by_label("Price notes").fill("About $25 for 30 capsules")
    patient.get_by_role("button", name="Send for review").click()
    patient.wait_for_url(re.compile(r"/suggest/sent/"))
    correction_ref = patient.locator(".reference strong").inner_text()

    # The moderator sees the change side by side and approves it.
    mod.goto(base + "/moderation/")
    mod.get_by_role("link", name=correction_ref).click()
    row = mod.locator("table.diff tbody tr", has_text="Price notes")
    assert "About $25 for 30 capsules" in row.locator("td.after").inner_text()
    mod.get_by_role("button", name="Apply the ticked changes").click()
    mod.wait_for_url(re.compile(r"/moderation/$"))
    assert f"Applied {correction_ref} to Magnolia Compounding: changed Price notes." in (
        mod.locator(".flashes").inner_text()
    )

    mod.goto(listing_admin_url)
    history = mod.locator("ol.history").inner_text()
    assert "published a new listing" in history and "applied a correction" in history
    assert "checked the details" in history and correction_ref in history
    patient.goto(base + f"/search?near={ZIP}")
    patient.locator(".card", has_text="Magnolia Compounding").get_by_role("link").first.click()
    expect(patient.locator("main")).to_contain_text("About $25 for 30 capsules")
