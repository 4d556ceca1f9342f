"""Helpers shared by the browser tests: where things are, and small page actions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from directory.extensions import db
from directory.models import Kind, Listing
from tests import builders
from tests.conftest import PASSWORD, LiveServer, make_app

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# Nothing listens on port 9 (discard); tests also abort these requests before they leave.
TILE_URL = "http://127.0.0.1:9/{z}/{x}/{y}.png"
TILE_HOST = "127.0.0.1:9"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def listing_path(app: Flask, kind: Kind) -> str:
    """The canonical address of the first sample listing of a kind."""
    from directory.listings import detail_url

    with app.test_request_context():
        listing = db.session.scalars(
            select(Listing).where(Listing.kind == kind).order_by(Listing.id)
        ).first()
        assert listing is not None
        path = detail_url(listing)
        db.session.remove()
    return path


WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
COLOUR_RULES = ["color-contrast", "link-in-text-block", "non-text-contrast"]


def run_axe(page: Any, *, colours_only: bool = False) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA violations on the current page (or only the colour rules,
    for a second pass in the other colour scheme).

    Evaluated through DevTools rather than added as a <script>, so the page's CSP
    (script-src 'self') stays exactly as in production."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    run_only = (
        {"type": "rule", "values": COLOUR_RULES}
        if colours_only
        else {"type": "tag", "values": WCAG_AA}
    )
    return page.evaluate(
        """async (runOnly) => {
          const known = new Set(axe.getRules().map(r => r.ruleId));
          if (runOnly.type === 'rule') runOnly.values = runOnly.values.filter(r => known.has(r));
          const r = await axe.run(document, {runOnly, resultTypes: ['violations']});
          return r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
          }));
        }""",
        run_only,
    )


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for n in v["nodes"][:5]:
            lines.append(f"    {n['target']}: {n['summary']}")
    return "\n".join(lines)


def tab_to(page: Any, selector: str, limit: int = 150) -> int:
    """Press Tab until the focused element matches selector; returns how many presses it took.

    Fails if focus lands on something that should never take it (the honeypot)."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        state = page.evaluate(
            """(sel) => {
              const el = document.activeElement;
              return {hit: !!el && el.matches(sel), hp: !!el && !!el.closest('.hp')};
            }""",
            selector,
        )
        assert not state["hp"], "keyboard focus reached the honeypot field"
        if state["hit"]:
            return presses
    raise AssertionError(f"{selector} not reached after {limit} presses of Tab")


def search(page: Any, base_url: str, near: str = "98101") -> None:
    page.goto(f"{base_url}/")
    page.fill("#near", near)
    page.click("form[role=search] button[type=submit]")
    page.wait_for_url("**/search?**")


def distances(page: Any) -> list[float]:
    texts = page.locator("#results .card .distance").all_inner_texts()
    return [float(t.split()[0]) for t in texts]


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def switch_scheme(page: Any, scheme: str) -> None:
    """Emulate a colour scheme and wait until the page has restyled (it does so a moment
    after the emulation call returns)."""
    page.emulate_media(color_scheme=scheme)
    # Both a background and a text colour must have switched (one run saw the footer's dark
    # background with its light-scheme text), then two frames so the page has painted.
    page.wait_for_function(
        """(dark) => {
          const sum = (el, prop) => getComputedStyle(el)[prop].match(/\\d+/g)
            .slice(0, 3).map(Number).reduce((a, b) => a + b, 0);
          const footer = document.querySelector(".site-footer") || document.body;
          return (sum(document.body, "backgroundColor") < 150) === dark
            && (sum(footer, "color") > 383) === dark;
        }""",
        arg=scheme == "dark",
    )
    page.evaluate(
        "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
    )


def send_suggestion(
    page: Any, base: str, name: str = "Keyboard Test Pharmacy", postal_code: str = "98101"
) -> None:
    page.goto(f"{base}/suggest/pharmacy")
    page.fill("#name", name)
    page.fill("#phone", "206-555-0199")
    if postal_code:
        page.fill("#postal_code", postal_code)
    page.click("form.listing-form button[type=submit]")
    page.wait_for_url("**/suggest/sent/**")


def sign_in(page: Any, app: Flask, base: str) -> None:
    """Create a moderator account and sign in as it, the way a person does: the moderation
    page sends them to the login form, found by its labels."""
    with app.app_context():
        builders.user("mod", PASSWORD)
        db.session.remove()
    page.goto(f"{base}/moderation/")
    assert "/login" in page.url, "sent to sign in first"
    page.get_by_label("Name").fill("mod")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/moderation/$"))


@contextmanager
def seeded_server(database_url: str, **settings: Any) -> Iterator[LiveServer]:
    """A live server with CSRF on and the sample data, and these settings."""
    from directory import seeding

    app = make_app(database_url, WTF_CSRF_ENABLED=True, **settings)
    with app.app_context():
        seeding.load()
        db.session.remove()
    with LiveServer(app) as server:
        yield server
    with app.app_context():
        db.engine.dispose()
