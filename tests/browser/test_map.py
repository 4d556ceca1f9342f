"""The List / Map switch with no tile server (as offline as our test machines), the single pin
on a moderator's review page, and how much the results page weighs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import WAIT_MS
from tests.browser.helpers import (
    PHONE,
    TILE_HOST,
    describe,
    run_axe,
    screenshot,
    send_suggestion,
    sign_in,
    switch_scheme,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

PAGE_BUDGET = 100_000  # bytes of document, CSS and JS for a results page, before any map


def load_weighed(page: Any, url: str) -> tuple[int, str]:
    """Open url; return the bytes of every response body it took, and a table of them."""
    finished: list[Any] = []
    # The handler only collects: a handler that itself waits on the browser (response(),
    # body()) can still be waiting when the page is idle, and on a loaded machine the sizes
    # were then read with site.css missing. The bodies are read after, in order.

    def collect(request: Any) -> None:
        finished.append(request)

    page.on("requestfinished", collect)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    page.remove_listener("requestfinished", collect)
    sizes: dict[str, int] = {}
    for request in finished:
        response = request.response()
        if response is not None:
            sizes[request.url] = len(response.body())
    table = "\n".join(f"{n:>8}  {u}" for u, n in sizes.items())
    assert any(u.split("?")[0].endswith("site.css") for u in sizes)
    assert not any("leaflet" in u for u in sizes), f"Leaflet loads only for the map:\n{table}"
    return sum(sizes.values()), table


def test_results_without_a_map(open_page: Callable[..., Any], live_server: LiveServer) -> None:
    """MAP_TILE_URL empty: no map, no switch, and the page is light."""
    page = open_page(viewport=PHONE)
    total, table = load_weighed(page, f"{live_server.url}/search?near=98101")
    print(f"results page, map off: {total} bytes\n{table}")
    assert total < PAGE_BUDGET, f"{total} bytes:\n{table}"
    assert page.locator("#results .card").count() > 0
    assert page.locator("#map").count() == 0
    assert page.locator("#view-toggle").count() == 0


def test_map_toggle_markers_popups_and_review_pin(
    open_page: Callable[..., Any], map_server: LiveServer
) -> None:
    # Reduced motion also shows that map.js turns Leaflet's animations off when asked.
    page = open_page(viewport=PHONE, reduced_motion="reduce")
    tiles: list[str] = []
    page.on("request", lambda r: tiles.append(r.url) if TILE_HOST in r.url else None)
    total, table = load_weighed(page, f"{map_server.url}/search?near=98101")
    print(f"results page, map on (before switching to it): {total} bytes\n{table}")
    assert total < PAGE_BUDGET, f"{total} bytes:\n{table}"

    toggle = page.locator("#view-toggle")
    assert toggle.is_visible()
    list_button = toggle.get_by_role("button", name="List")
    map_button = toggle.get_by_role("button", name="Map")
    assert list_button.get_attribute("aria-pressed") == "true"
    assert page.locator("#map").is_hidden()
    assert not page.evaluate("() => 'L' in window"), "Leaflet waits until the map is asked for"

    cards = page.locator("#results .card[data-lat][data-lon]")
    expected = cards.count() + 1  # one marker per mapped result, plus where the search was
    first_name = cards.first.locator(".card-title a").inner_text().strip()
    map_button.click()
    assert map_button.get_attribute("aria-pressed") == "true"
    assert list_button.get_attribute("aria-pressed") == "false"
    assert page.locator("#map").is_visible()
    assert page.locator("#results").is_hidden()
    markers = page.locator("#map .leaflet-marker-icon")
    markers.nth(expected - 1).wait_for()
    assert markers.count() == expected
    assert page.locator("#map .leaflet-marker-icon.map-origin").count() == 1

    # Markers take keyboard focus; Enter opens the popup with a link to the listing.
    marker = page.locator(f'#map .leaflet-marker-icon[title="{first_name}"]').first
    marker.focus()
    page.keyboard.press("Enter")
    link = page.locator(".leaflet-popup-content a.map-popup-link")
    link.wait_for()
    assert link.inner_text() == first_name
    assert link.get_attribute("href").startswith(("/pharmacies/", "/prescribers/"))
    assert " away" in page.locator(".leaflet-popup-content p").inner_text()

    # Clicking another marker swaps the popup for that result's. On a very busy machine
    # Leaflet can let a click go by while it is still settling the first popup (two fresh-clone
    # runs with both cores taken lost it); a person clicks again, and so does the test, at most
    # three times, waiting each time for the popup itself, never for a fixed time.
    last_name = cards.last.locator(".card-title a").inner_text().strip()
    other = page.locator(f'#map .leaflet-marker-icon[title="{last_name}"]').first
    popup = page.locator(".leaflet-popup-content a", has_text=last_name)
    for attempt in range(3):
        other.click()
        try:
            popup.wait_for(timeout=WAIT_MS / 4)
            break
        except PlaywrightTimeoutError:
            screenshot(page, f"results-map-click-missed-{attempt}")
    else:
        pytest.fail(f"three clicks on {last_name!r} opened no popup")
    assert link.count() == 1, "one popup at a time"

    violations = run_axe(page)
    assert not violations, describe(violations)
    switch_scheme(page, "dark")
    violations = run_axe(page, colours_only=True)
    assert not violations, "dark: " + describe(violations)
    screenshot(page, "results-map-phone-dark")
    switch_scheme(page, "light")
    screenshot(page, "results-map-phone")

    list_button.click()
    assert page.locator("#results").is_visible()
    assert page.locator("#map").is_hidden()
    assert list_button.get_attribute("aria-pressed") == "true"
    assert tiles, "the map did try to load tiles (and they failed quietly)"

    # A moderator's review page shows the one submitted pin, straight away.
    send_suggestion(page, map_server.url, postal_code="98101")
    sign_in(page, map_server.app, map_server.url)
    page.click(".queue-table tbody a")
    page.wait_for_url("**/moderation/submissions/**")
    page.locator("#map .leaflet-marker-icon").wait_for()
    assert page.locator("#map .leaflet-marker-icon").count() == 1
