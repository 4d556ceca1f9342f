"""Issue 12 in Chromium: signing out ends a copied session, the pending cap's message keeps what
was typed, and an admin changes a role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from directory.extensions import db
from directory.models import Role, User
from tests import builders
from tests.browser.helpers import screenshot, seeded_server, send_suggestion, sign_in
from tests.conftest import PASSWORD, LiveServer


def test_a_session_copied_before_sign_out_opens_nothing_after(live_server, open_page) -> None:
    base = live_server.url
    mod = open_page()
    sign_in(mod, live_server.app, base)
    copied = mod.context.cookies()
    assert any(c["name"] == "session" for c in copied)

    thief = open_page()
    thief.context.add_cookies(copied)
    thief.goto(f"{base}/moderation/")
    assert re.search(r"/moderation/$", thief.url), "the copy works while the session is live"

    mod.get_by_role("button", name=re.compile(r"^Sign out")).click()
    mod.wait_for_url(base + "/")
    assert "signed out" in mod.locator(".flashes").inner_text()
    screenshot(mod, "security-signed-out")

    thief.goto(f"{base}/moderation/")
    assert "/login" in thief.url, "the copied cookie must not open the moderation pages"
    screenshot(thief, "security-copied-cookie-after-sign-out")


@pytest.fixture
def capped_server(database_url: str) -> Iterator[LiveServer]:
    with seeded_server(database_url, MAP_TILE_URL="", PENDING_SUBMISSIONS_PER_ADDRESS=1) as server:
        yield server


def test_at_the_pending_cap_the_form_explains_and_keeps_what_was_typed(
    capped_server, open_page
) -> None:
    page: Any = open_page()
    send_suggestion(page, capped_server.url, name="First Capped Pharmacy")
    page.goto(f"{capped_server.url}/suggest/pharmacy")
    page.fill("#name", "Second Capped Pharmacy")
    page.fill("#phone", "206-555-0123")
    page.fill("#postal_code", "98101")
    with page.expect_navigation() as nav:
        page.click("form.listing-form button[type=submit]")
    assert nav.value.status == 429
    summary = page.locator("#error-summary")
    assert "waiting for a moderator" in summary.inner_text()
    assert page.input_value("#name") == "Second Capped Pharmacy"
    assert "555-0123" in page.input_value("#phone")  # kept (as the form writes phones)
    screenshot(page, "security-pending-cap")


def test_an_admin_changes_a_role_in_the_browser(live_server, open_page) -> None:
    base = live_server.url
    with live_server.app.app_context():
        builders.user("boss", PASSWORD, "admin")
        builders.user("helper", PASSWORD)
        db.session.remove()
    page = open_page()
    page.goto(f"{base}/login")
    page.get_by_label("Name").fill("boss")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/moderation/$"))
    page.goto(f"{base}/moderation/accounts")
    row = page.locator("tr", has_text="helper")
    row.get_by_label("Role").select_option("admin")
    row.get_by_role("button", name="Change role of helper").click()
    page.wait_for_url(re.compile(r"/moderation/accounts$"))
    assert "helper is now admin" in page.locator(".flashes").inner_text()
    screenshot(page, "security-role-changed")
    with live_server.app.app_context():
        helper = db.session.query(User).filter_by(username="helper").one()
        assert helper.role == Role.ADMIN
        db.session.remove()
