"""Issue 14's frictions on a 390x844 phone in Chromium: results first after a filtered search,
the skip link, a filler that unticks "I don't know", the correction form's first question,
what happens next, print marks and the listing's small map. Screenshots go to
test-artifacts/screenshots/ (fric-*.png)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from directory.models import Kind
from tests.browser.helpers import (
    PHONE,
    TILE_URL,
    describe,
    listing_path,
    run_axe,
    screenshot,
    seeded_server,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

CONTACT = "help@ldn.example.org"
FILTERED = "/search?near=98101&kind=pharmacy&ir_only=1&safe_fillers=1&radius=25&unit=mi"


@pytest.fixture
def server(database_url: str) -> Iterator[LiveServer]:
    """The sample data, the map on (tiles from an address that never answers) and a contact
    address, as a real deployment would have them."""
    with seeded_server(database_url, MAP_TILE_URL=TILE_URL, CONTACT_EMAIL=CONTACT) as running:
        yield running


def top(page: Any, selector: str) -> float:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    return float(box["y"])


def test_results_come_first_after_a_filtered_search(
    open_page: Callable[..., Any], server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    page.goto(server.url + FILTERED)
    summary = page.locator("details.filters summary")
    assert summary.inner_text().split(":", 1)[1].strip() == (
        "Pharmacies · immediate-release only · fillers fine or take care · 25 mi — change"
    )
    assert page.locator("details.filters").get_attribute("open") is None
    # The first result starts on the first screen (it started about 1,290 px down).
    first = top(page, "#results .card")
    assert first < PHONE["height"] - 100, f"the first result starts {first:.0f} px down"
    screenshot(page, "fric-results-filters-full")
    page.screenshot(path=str(screenshot(page, "fric-results-filters")), full_page=False)
    # "change" opens the filters, still ticked.
    summary.click()
    assert page.locator("#f-ir_only").is_visible() and page.locator("#f-ir_only").is_checked()
    assert page.locator("#f-safe_fillers").is_checked()
    page.screenshot(path=str(screenshot(page, "fric-results-filters-open")), full_page=False)


def test_skip_to_results_is_two_tabs_away(
    open_page: Callable[..., Any], server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    page.goto(server.url + FILTERED.replace("&ir_only=1&safe_fillers=1", ""))
    # The filters open (the worst case), focus back at the top of the page.
    page.evaluate("() => { document.querySelector('details.filters').open = true; }")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    skip = page.evaluate("() => document.activeElement.textContent.trim()")
    assert skip == "Skip to results"
    assert page.locator("a.skip-link[href='#results']").is_visible()  # shown when focused
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.closest('.card-title') !== null")
    assert focused, "the next Tab after the skip link is the first result"


def test_choosing_a_filler_unticks_i_dont_know(
    open_page: Callable[..., Any], server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    page.goto(f"{server.url}/suggest/pharmacy")
    unknown = page.locator("#fillers_unknown")
    mcc = page.locator("input[name=fillers][value=mcc]")
    assert unknown.is_checked()
    mcc.check()
    assert not unknown.is_checked()
    unknown.check()
    assert not mcc.is_checked(), "ticking 'I don't know' clears the fillers"


def test_the_correction_form_on_a_phone(open_page: Callable[..., Any], server: LiveServer) -> None:
    app: Flask = server.app
    path = listing_path(app, Kind.PHARMACY)
    listing_id = re.search(r"/(\d+)-", path).group(1)  # type: ignore[union-attr]
    page = open_page(viewport=PHONE)
    page.goto(f"{server.url}/suggest/correction/{listing_id}")
    # The question and its text box on the first screen; the full edit folded below them.
    assert top(page, "#problem legend") < PHONE["height"]
    assert top(page, "#note") < PHONE["height"] + 200
    assert page.locator("#name").is_hidden()
    screenshot(page, "fric-correction-form")
    # An answer that needs new details opens the full edit; "closed" needs none.
    page.get_by_label("The phone number is wrong").check()
    assert page.locator("#phone").is_visible()
    page.locator("details.full-edit > summary").click()  # folded again
    page.get_by_label("It has closed").check()
    assert page.locator("#phone").is_hidden()
    page.fill("#note", "A sign on the door says it closed for good in May.")
    page.screenshot(path=str(screenshot(page, "fric-correction-form-screen")), full_page=False)
    page.click("form.listing-form button[type=submit]")
    page.wait_for_url("**/suggest/sent/**")
    assert page.locator("h2", has_text="What happens next").is_visible()
    contact = page.locator(".contact a")
    assert contact.inner_text() == CONTACT
    assert contact.get_attribute("href").startswith(f"mailto:{CONTACT}?subject=LDN-")
    screenshot(page, "fric-confirmation")
    violations = run_axe(page)
    assert not violations, describe(violations)
    page.goto(f"{server.url}/about")
    assert page.locator(f"main a[href='mailto:{CONTACT}']").is_visible()
    violations = run_axe(page)
    assert not violations, describe(violations)


def test_the_full_edit_works_without_javascript_and_keeps_what_was_typed(
    open_page: Callable[..., Any], server: LiveServer
) -> None:
    path = listing_path(server.app, Kind.PHARMACY)
    listing_id = re.search(r"/(\d+)-", path).group(1)  # type: ignore[union-attr]
    page = open_page(viewport=PHONE, java_script_enabled=False)
    page.goto(f"{server.url}/suggest/correction/{listing_id}")
    page.locator("details.full-edit > summary").click()
    page.fill("#phone", "206 555 0111")
    page.click("form.listing-form button[type=submit]")  # "What's wrong?" not answered
    page.wait_for_selector("#error-summary")
    assert page.locator("details.full-edit").get_attribute("open") is not None
    assert page.locator("#phone").input_value() == "(206) 555-0111"
    page.get_by_label("The phone number is wrong").check()
    page.click("form.listing-form button[type=submit]")
    page.wait_for_url("**/suggest/sent/**")


def test_print_keeps_the_marks_of_the_badges(
    open_page: Callable[..., Any], server: LiveServer
) -> None:
    page = open_page()
    page.goto(server.url + FILTERED)
    page.emulate_media(media="print")
    marks = page.evaluate(
        """() => [...document.querySelectorAll('#results .badge')].map(b => {
             const s = getComputedStyle(b, '::before');
             return s.display === 'none' ? '' : s.content;
           })"""
    )
    assert marks and all(marks), f"a badge prints without its mark: {marks}"
    assert any("✓" in m for m in marks)


def test_a_listing_offers_open_in_maps_and_a_small_map(
    open_page: Callable[..., Any], server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    page.goto(server.url + FILTERED)
    page.locator("#results .card-title a").first.click()
    page.wait_for_url(re.compile(r"/pharmacies/\d+-.*\?from="))
    assert page.locator("a.map-link").first.get_attribute("href").startswith("geo:")
    page.locator("#map.leaflet-container").wait_for()
    assert page.locator("#map .leaflet-marker-icon").count() == 1
    violations = run_axe(page)
    assert not violations, describe(violations)
    screenshot(page, "fric-listing-map")
    # The breadcrumb goes back to the same filtered search.
    page.locator(".crumbs a").click()
    page.wait_for_url(re.compile(r"/search\?"))
    assert "ir_only=1" in page.url and "safe_fillers=1" in page.url
    assert page.locator("#f-ir_only").is_checked()
