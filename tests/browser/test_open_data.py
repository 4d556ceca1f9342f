"""The open data page on a phone: a picture to look at, nothing wider than the screen, and the
footer link and the API link followed in the browser."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.helpers import PHONE, screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_open_data_page_on_a_phone(open_page: Callable[..., Any], live_server: LiveServer) -> None:
    page = open_page(viewport=PHONE)
    page.goto(f"{live_server.url}/")
    page.click("footer >> text=Open data")
    page.wait_for_url("**/open-data")
    screenshot(page, "open-data-phone")
    for width in (320, PHONE["width"]):
        page.set_viewport_size({"width": width, "height": PHONE["height"]})
        scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll_width <= width, f"the open data page is {scroll_width} px wide at {width}"
    page.click("main a[href='/api/hsds/v3/services']")
    page.wait_for_url("**/api/hsds/v3/services")  # not the open data page's body
    body = json.loads(page.inner_text("body"))
    assert body["total_items"] > 0 and body["contents"][0]["alert"]
