"""What a moderator decides is what happens, in real Chromium: a patient reports that a
pharmacy has closed, one decision closes it (it leaves search, its page explains); a
correction that only retypes the phone shows no phone change."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from directory.extensions import db
from tests import builders
from tests.browser.helpers import screenshot, sign_in
from tests.browser.test_flows import api_names

pytestmark = pytest.mark.browser
ZIP = "35233"


def _pharmacy(live_server: Any, **values: Any) -> int:
    with live_server.app.app_context():
        listing = builders.pharmacy(**values)
        ident = listing.id
        db.session.remove()
    return ident


def _report(page: Any, base: str, listing_id: int, problem: str, phone: str | None = None) -> str:
    page.goto(f"{base}/pharmacies/{listing_id}")
    page.get_by_role("link", name="Suggest a correction or report a problem").click()
    page.get_by_label(problem).check()
    if phone is not None:
        page.get_by_label("Phone", exact=True).fill(phone)  # the full edit opened itself
    page.get_by_role("button", name="Send for review").click()
    page.wait_for_url(re.compile(r"/suggest/sent/"))
    return page.locator(".reference strong").inner_text()


def test_a_closed_report_closes_the_listing_in_one_decision(live_server, open_page) -> None:
    base = live_server.url
    ident = _pharmacy(live_server, name="Shuttered Compounding", phone="(205) 555-0188")
    patient = open_page()
    assert "Shuttered Compounding" in api_names(base, ZIP)
    reference = _report(patient, base, ident, "It has closed")

    mod = open_page()
    sign_in(mod, live_server.app, base)
    mod.get_by_role("link", name=reference).click()
    assert "Problem reported: It has closed" in mod.locator("main").inner_text()
    screenshot(mod, "decisions-closed-report")
    # One step: the button says what it does, and does it.
    mod.get_by_role("button", name="Mark closed and resolve").click()
    mod.wait_for_url(re.compile(r"/moderation/$"))
    said = mod.locator(".flashes").inner_text()
    assert f"Closed Shuttered Compounding and resolved {reference}" in said
    assert "no longer appears in search" in said and "live" not in said

    assert "Shuttered Compounding" not in api_names(base, ZIP)
    patient.goto(f"{base}/search?near={ZIP}")
    assert "Shuttered Compounding" not in patient.locator("main").inner_text()
    patient.goto(f"{base}/pharmacies/{ident}")
    assert "has closed" in patient.locator("main").inner_text()

    mod.goto(f"{base}/moderation/listings/{ident}")
    history = mod.locator("ol.history").inner_text()
    assert "closed the listing on a problem report" in history and reference in history
    mod.locator("ol.history details summary").first.click()
    assert "Open → Closed" in mod.locator("ol.history details").first.inner_text()


def test_a_correction_shows_only_real_changes(live_server, open_page) -> None:
    base = live_server.url
    ident = _pharmacy(live_server, name="Retyped Phone Pharmacy", phone="+1 205-555-0177")
    patient = open_page()
    # The form shows the stored E.164 number as people write it; retyping it another way is
    # the same number.
    patient.goto(f"{base}/pharmacies/{ident}")
    link = patient.locator("a.tel").first
    assert link.get_attribute("href") == "tel:+12055550177"
    assert link.inner_text().endswith("(205) 555-0177")
    reference = _report(patient, base, ident, "Some details are wrong", phone="205.555.0177")

    mod = open_page()
    sign_in(mod, live_server.app, base)
    mod.get_by_role("link", name=reference).click()
    main = mod.locator("main").inner_text()
    assert "The submitted values are the same as the published ones" in main
    assert mod.locator("table.diff").count() == 0
    assert mod.locator("#approve-form input[name=fields]").count() == 0
    path: Path = screenshot(mod, "decisions-no-false-phone-change")
    assert path.exists()
