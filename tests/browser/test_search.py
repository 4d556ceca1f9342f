"""Searching as a patient would: by ZIP, by "Use my location", by keyboard alone."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.helpers import PHONE, distances, search, tab_to
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

SEATTLE = {"latitude": 47.61, "longitude": -122.33}


def test_search_by_zip_lists_results_nearest_first(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page()
    search(page, live_server.url, "98101")
    assert "Seattle" in page.locator("h1").inner_text()
    names = page.locator("#results .card-title a").all_inner_texts()
    found = distances(page)
    assert len(names) >= 3 and len(found) == len(names)
    assert found == sorted(found), f"not nearest first: {list(zip(names, found, strict=True))}"
    assert all(d <= 25 for d in found)
    # Each result has a tap-to-call link where a phone number is known.
    tel = page.locator("#results .card .tel").first
    assert tel.get_attribute("href").startswith("tel:+")


def test_use_my_location_searches_near_the_browser_position(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page(viewport=PHONE, geolocation=SEATTLE, permissions=["geolocation"])
    page.goto(f"{live_server.url}/")
    button = page.get_by_role("button", name="Use my location")
    assert button.is_visible()
    button.click()
    page.wait_for_url("**/search?**lat=47.61**")
    assert "Seattle" in page.locator("h1").inner_text()
    assert page.locator("#near").input_value() == ""
    found = distances(page)
    assert found and found == sorted(found)


def test_use_my_location_explains_when_permission_is_refused(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page(geolocation=SEATTLE, permissions=[])
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Use my location").click()
    status = page.locator("#locate-status")
    status.filter(has_text="ZIP code").wait_for()
    assert status.get_attribute("role") == "status"
    assert "Your browser did not share your location" in status.inner_text()
    assert page.url == f"{live_server.url}/", "no search without a position"


def test_without_javascript_the_location_button_and_view_switch_stay_hidden(
    open_page: Callable[..., Any], map_server: LiveServer
) -> None:
    page = open_page(java_script_enabled=False)
    page.goto(f"{map_server.url}/")
    assert page.locator("#use-location").is_hidden()
    page.fill("#near", "98101")
    page.press("#near", "Enter")
    page.wait_for_url("**/search?**")
    assert page.locator("#results .card").count() > 0
    # The map is configured, but without JavaScript the list is all there is.
    assert page.locator("#view-toggle").count() == 1
    assert page.locator("#view-toggle").is_hidden()
    assert page.locator("#map").is_hidden()
    # The filters work as a plain form.
    page.locator(".filters summary").click()
    page.select_option("#kind", "pharmacy")
    page.click("text=Update results")
    page.wait_for_url("**kind=pharmacy**")
    kinds = page.locator("#results .card .kind").all_inner_texts()
    assert kinds and set(kinds) == {"Pharmacy"}


def test_keyboard_only_search_to_a_listing(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page()
    page.goto(f"{live_server.url}/")
    tab_to(page, "#near")
    page.keyboard.type("98101")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search?**")
    first = page.locator("#results .card-title a").first
    name = first.inner_text()
    presses = tab_to(page, "#results .card-title a")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == name.strip()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/(pharmacies|prescribers)/\d+-"))
    assert page.locator("h1").inner_text().strip() == name.strip()
    assert presses < 40, f"{presses} presses of Tab to reach the first result is too many"


def test_keyboard_only_pharmacy_suggestion(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    page.goto(f"{live_server.url}/suggest/pharmacy")
    # The honeypot is off-screen, hidden from screen readers, and tab_to fails if focus
    # ever lands on it.
    trap = page.locator(".hp")
    box = trap.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0, box
    assert trap.get_attribute("aria-hidden") == "true"
    assert page.locator("#company_fax").get_attribute("tabindex") == "-1"
    tab_to(page, "#name")
    page.keyboard.type("Keyboard Only Compounding")
    tab_to(page, "#city")
    page.keyboard.type("Seattle")
    tab_to(page, "#state")
    page.keyboard.type("Washington")  # a native select picks the typed option
    tab_to(page, "#phone")
    page.keyboard.type("206-555-0142")
    # A checkbox: Space ticks it.
    tab_to(page, "input[name=dosage_forms][value=capsule]")
    page.keyboard.press("Space")
    # A radio group is one Tab stop; the arrow keys move the choice, Space confirms it.
    tab_to(page, "input[name=sr_policy]:checked")
    for _ in range(5):
        if page.evaluate("() => document.activeElement.value") == "ir_only":
            break
        page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    tab_to(page, "input[name=fillers][value=mcc]")
    page.keyboard.press("Space")  # unticks "I don't know which fillers" (suggest.js)
    checked = page.evaluate(
        """() => ({
          capsule: document.querySelector('input[name=dosage_forms][value=capsule]').checked,
          sr: document.querySelector('input[name=sr_policy]:checked').value,
          mcc: document.querySelector('input[name=fillers][value=mcc]').checked,
          unknown: document.querySelector('#fillers_unknown').checked,
        })"""
    )
    assert checked == {"capsule": True, "sr": "ir_only", "mcc": True, "unknown": False}
    tab_to(page, "form.listing-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_url("**/suggest/sent/**")
    assert page.locator("h1").inner_text() == "Thank you, we have it"
    assert page.locator(".reference strong").inner_text().startswith("LDN-")
