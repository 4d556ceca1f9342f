"""A pharmacy from the NPI registry's file, as a patient on a phone meets it: in the results
near them, marked "not yet confirmed", with where it came from on its page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bench import nppes_generate as gen
from tests.browser.helpers import PHONE, SCREENSHOTS, screenshot, search
from tests.conftest import LiveServer
from tests.test_nppes import FILE, SEATTLE, seattle

pytestmark = pytest.mark.browser


def test_an_imported_pharmacy_is_found_and_marked_unconfirmed(
    open_page: Callable[..., Any], live_app: Flask, live_server: LiveServer, tmp_path: Path
) -> None:
    path = gen.write_csv(tmp_path / FILE, [seattle()])
    result = live_app.test_cli_runner().invoke(args=["import-nppes", str(path)])
    assert result.exit_code == 0 and "new 1" in result.output, result.output

    page = open_page(viewport=PHONE)
    search(page, live_server.url, "98101")
    card = page.locator("#results .card", has_text="Pike Place Compounding LLC")
    assert card.count() == 1
    assert "Not yet confirmed that it makes LDN" in card.inner_text()
    screenshot(page, "nppes-search-phone")
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(SCREENSHOTS / "nppes-card-phone.png"))

    card.locator(".card-title a").click()
    page.wait_for_url("**/pharmacies/**")
    provenance = page.locator(".provenance")
    assert provenance.inner_text() == (
        f"In the NPI registry as a compounding pharmacy (NPI {SEATTLE}), file of 2026-11-09."
    )
    assert provenance.is_visible()
    screenshot(page, "nppes-listing-phone")
    page.screenshot(path=str(SCREENSHOTS / "nppes-listing-phone-top.png"))

    # The filter leaves it out.
    page.goto(f"{live_server.url}/search?near=98101&confirmed=1")
    assert page.locator("#results .card", has_text="Pike Place Compounding LLC").count() == 0
