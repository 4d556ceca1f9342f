"""A volunteer on a phone works through the call list: ten imported pharmacies confirmed in a
row, each save opening the next one, without going back to the list."""

from __future__ import annotations

import re

from sqlalchemy import select

from directory.extensions import db
from directory.models import Listing
from tests import builders
from tests.browser.helpers import PHONE, screenshot, sign_in

MONTANA = {"city": "Billings", "region": "US-MT", "postal_code": "59101", "country": "US"}


def test_a_volunteer_confirms_ten_pharmacies_in_a_row_on_a_phone(live_server, open_page) -> None:
    base, app = live_server.url, live_server.app
    with app.app_context():
        ids = [
            builders.pharmacy(
                name=f"Big Sky Compounding {n}",
                lat=45.78 + n * 0.5,  # spread out: each is far from the others
                lon=-108.5,
                makes_ldn=None,
                sr_policy=None,
                fillers=None,
                dosage_forms=[],
                **MONTANA,
            ).id
            for n in range(10)
        ]
        db.session.remove()

    page = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    sign_in(page, app, base)
    page.get_by_role("link", name="To confirm (call list)").click()
    page.get_by_label("State").select_option(label="Montana")
    page.get_by_role("button", name="Show").click()
    assert "10 listings to confirm" in page.locator(".call-count").inner_text()
    assert "No confirmed pharmacy within 25 miles" in page.locator(".call-list").inner_text()
    screenshot(page, "calls-list-phone")
    page.get_by_role("button", name="Call Big Sky Compounding 0").click()

    for n in range(10):
        page.wait_for_url(re.compile(rf"/moderation/calls/{ids[n]}\?state=US-MT$"))
        assert page.locator("h1").inner_text() == f"Big Sky Compounding {n}"
        assert page.locator(".call-phone a").get_attribute("href").startswith("tel:")
        page.get_by_label("They answered: save their answers").check()
        page.get_by_label("Makes immediate-release LDN only").check()
        page.get_by_label("Microcrystalline cellulose").check()
        page.get_by_label("Capsules").check()
        if n == 0:
            screenshot(page, "calls-confirm-phone")
            # Everything fits the phone's width: nothing scrolls sideways.
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.get_by_role("button", name="Save and open the next one").click()

    page.wait_for_url(re.compile(r"/moderation/calls/\?state=US-MT$"))
    assert "That was the last one" in page.locator(".flashes").inner_text()
    assert "Nothing left to confirm here" in page.locator("main").inner_text()
    with app.app_context():
        confirmed = db.session.scalars(select(Listing).where(Listing.id.in_(ids))).all()
        assert all(
            x.makes_ldn and x.verified_on and x.sr_policy.value == "ir_only" for x in confirmed
        )
        db.session.remove()

    # A patient in Billings now finds them as confirmed.
    patient = open_page(viewport=PHONE)
    patient.goto(f"{base}/search?near=59101&radius=25&filter=confirmed")
    assert "Big Sky Compounding 0" in patient.locator("main").inner_text()
