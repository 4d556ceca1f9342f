"""How the pages look and fit: screenshots, narrow screens, tap targets, print, dark scheme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from directory.models import Kind
from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    listing_path,
    screenshot,
    search,
    send_suggestion,
    sign_in,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def main_pages(server: LiveServer) -> dict[str, str]:
    base = server.url
    return {
        "home": f"{base}/",
        "results": f"{base}/search?near=98101",
        "pharmacy": base + listing_path(server.app, Kind.PHARMACY),
        "prescriber": base + listing_path(server.app, Kind.PRESCRIBER),
        "suggest-pharmacy": f"{base}/suggest/pharmacy",
        "suggest-prescriber": f"{base}/suggest/prescriber",
        "about": f"{base}/about",
        "not-found": f"{base}/no-such-page",
        "login": f"{base}/login",
    }


def send_empty_pharmacy_form(page: Any, base: str) -> None:
    page.goto(f"{base}/suggest/pharmacy")
    page.click("form.listing-form button[type=submit]")
    page.wait_for_selector("#error-summary")


def test_screenshots_phone_and_desktop(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    """Full-page pictures for a person to look at: test-artifacts/screenshots/."""
    pages = main_pages(live_server)
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page = open_page(viewport=viewport)
        for name in ("home", "results", "pharmacy", "prescriber", "not-found"):
            page.goto(pages[name])
            screenshot(page, f"{name}-{label}")
        send_empty_pharmacy_form(page, live_server.url)
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        screenshot(page, f"pharmacy-form-errors-{label}")
    dark = open_page(viewport=PHONE, color_scheme="dark")
    for name in ("results", "pharmacy"):
        dark.goto(pages[name])
        screenshot(dark, f"{name}-phone-dark")
    paper = open_page(viewport={"width": 800, "height": 1100})
    paper.emulate_media(media="print")
    for name in ("results", "pharmacy"):
        paper.goto(pages[name])
        screenshot(paper, f"{name}-print")


def test_screenshots_of_moderation_pages(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    base = live_server.url
    send_suggestion(page, base)
    page.goto(f"{base}/login")
    pictures = {"login": page.url}
    sign_in(page, live_server.app, base)
    pictures["moderation-queue"] = page.url
    page.click(".queue-table tbody a")
    page.wait_for_url("**/moderation/submissions/**")
    pictures["moderation-review"] = page.url
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(viewport)
        for name, url in pictures.items():
            if name == "login":
                continue  # signed in now; the login page would send us on to the queue
            page.goto(url)
            screenshot(page, f"{name}-{label}")
    page.set_viewport_size({"width": 320, "height": 640})
    for name in ("moderation-queue", "moderation-review"):
        page.goto(pictures[name])
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 320, name
    page.context.clear_cookies()
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(viewport)
        page.goto(pictures["login"])
        screenshot(page, f"login-{label}")


def test_no_sideways_scrolling_at_320_px_or_200_percent_zoom(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    # A 1280 px window at 200% zoom lays out like a 640 CSS-pixel one with twice the pixels;
    # 320 px is the narrowest phone (and 1280 px at 400%).
    too_wide = {}
    for width, height, scale in ((320, 640, 1), (640, 400, 2)):
        page = open_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
        for name, url in main_pages(live_server).items():
            page.goto(url)
            # Open every fold-out (filters, the 50-state lists) so their insides are measured.
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
            if scroll_width > width:
                too_wide[f"{name} at {width} px"] = scroll_width
        send_empty_pharmacy_form(page, live_server.url)
        scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
        if scroll_width > width:
            too_wide[f"pharmacy-form-errors at {width} px"] = scroll_width
    assert not too_wide, f"pages wider than the screen: {too_wide}"


TAP_TARGETS = """() => {
  const small = [];
  const visible = el => {
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  };
  const check = (el, what) => {
    const r = el.getBoundingClientRect();
    if (visible(el) && (r.height < 43.5 || r.width < 43.5)) {
      const size = `${Math.round(r.width)}x${Math.round(r.height)}`;
      small.push(`${what}: ${el.outerHTML.slice(0, 80)} ${size}`);
    }
  };
  document.querySelectorAll(
    'button, .button, select, summary, .nav a, .brand, .tel, .pager a, .crumbs a, ' +
    'input:not([type=hidden]):not([type=checkbox]):not([type=radio])'
  ).forEach(el => { if (!el.closest('.hp')) check(el, 'control'); });
  // A checkbox or radio is small itself; its row (box plus label) is the target.
  document.querySelectorAll('.choices li, .field-check').forEach(el => check(el, 'choice row'));
  return small;
}"""


def test_tap_targets_are_at_least_44_px(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page(viewport=PHONE)
    found = {}
    for name, url in main_pages(live_server).items():
        page.goto(url)
        page.evaluate("() => document.querySelectorAll('details').forEach(d => (d.open = true))")
        small = page.evaluate(TAP_TARGETS)
        if small:
            found[name] = small
    assert not found, found


def test_readable_type_focus_ring_dark_scheme_and_reduced_motion(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page()
    page.goto(f"{live_server.url}/")
    assert page.evaluate("() => getComputedStyle(document.documentElement).scrollBehavior") == (
        "smooth"
    )
    size = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert size >= 16
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to main content"
    assert skip.is_visible()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0, "the skip link shows when focused"
    page.keyboard.press("Tab")
    ring = page.evaluate(
        """() => {
          const s = getComputedStyle(document.activeElement);
          return {style: s.outlineStyle, width: parseFloat(s.outlineWidth)};
        }"""
    )
    assert ring["style"] != "none" and ring["width"] >= 2, ring


def test_print_leaves_out_navigation_forms_and_map(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page()
    search(page, live_server.url)
    page.emulate_media(media="print")
    for selector in (".site-header nav", "form[role=search]", "#view-toggle"):
        assert page.locator(selector).first.is_hidden(), selector
    assert page.locator("#results .card").first.is_visible()
    after = page.evaluate(
        """() => getComputedStyle(
             document.querySelector('#results .card-title a'), '::after').content"""
    )
    assert live_server.url in after, "the listing's address is printed after its name"

    dark = open_page(color_scheme="dark", reduced_motion="reduce")
    dark.goto(f"{live_server.url}/")
    background = dark.evaluate("() => getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(x) for x in background[4:-1].split(",")[:3])
    assert red + green + blue < 150, background
    assert dark.evaluate("() => getComputedStyle(document.documentElement).scrollBehavior") == (
        "auto"
    )
