"""The error pages people can actually meet: an expired form (400), too many suggestions
(429), a server fault (500) and a wrong address (404). Same layout, plain words, a way on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from directory.extensions import db
from directory.models import Submission
from tests.browser.helpers import describe, run_axe, screenshot, send_suggestion
from tests.conftest import LiveServer, make_app

pytestmark = pytest.mark.browser


@pytest.fixture
def strict_server(database_url: str) -> Iterator[LiveServer]:
    """CSRF and rate limits on, as in production, one suggestion an hour, and a route that
    fails."""
    app = make_app(
        database_url,
        WTF_CSRF_ENABLED=True,
        RATELIMIT_ENABLED=True,
        SUBMISSION_RATE_LIMIT="1 per hour",
        MAP_TILE_URL="",
    )

    def broken() -> str:
        raise RuntimeError("a fault, on purpose, for the 500 page")

    app.add_url_rule("/broken-on-purpose", "broken", broken)
    with LiveServer(app) as server:
        yield server
    with app.app_context():
        db.engine.dispose()


def check_page(page: Any, heading: str, way_on: str = "main a[href='/']") -> None:
    """way_on: what leads back to searching; the 404 page offers the search box itself."""
    # The response has arrived, but the page may not be drawn yet: wait for its heading
    # before reading anything else (the form page before it had an h1 of its own).
    expect(page.locator("h1")).to_have_text(heading)
    assert page.locator("h1").count() == 1
    assert page.locator("header.site-header").count() == 1, "in the site's layout"
    assert page.locator(way_on).count() == 1, way_on
    violations = run_axe(page)
    assert not violations, describe(violations)


def test_error_pages(open_page: Callable[..., Any], strict_server: LiveServer) -> None:
    base = strict_server.url
    page = open_page(expected_server_errors=("/broken-on-purpose",))

    page.goto(f"{base}/suggest/pharmacy")
    page.fill("#name", "Expired Form Pharmacy")
    page.fill("#phone", "206-555-0150")
    page.evaluate("() => { document.querySelector('input[name=csrf_token]').value = 'stale'; }")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("form.listing-form button[type=submit]")
    assert posted.value.status == 400
    check_page(page, "That didn't work")
    assert "Nothing was saved" in page.locator("main").inner_text()

    send_suggestion(page, base)  # the one allowed this hour
    page.goto(f"{base}/suggest/pharmacy")
    page.fill("#name", "One Too Many Pharmacy")
    page.fill("#phone", "206-555-0151")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("form.listing-form button[type=submit]")
    assert posted.value.status == 429
    check_page(page, "Please wait a little")

    response = page.goto(f"{base}/broken-on-purpose")
    assert response is not None and response.status == 500
    check_page(page, "Something went wrong on our side")

    response = page.goto(f"{base}/pharmacies/999999")
    assert response is not None and response.status == 404
    check_page(page, "We couldn't find that page", way_on="main #near")


def test_a_suggestion_sent_while_the_database_is_locked_is_kept_and_sent_again(
    open_page: Callable[..., Any], sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds SQLite's write lock past the busy timeout: the visitor gets a
    plain 503 page that still has what they typed, and one button sends it once the lock
    is gone."""
    import sqlite3

    from directory import db as directory_db
    from directory import seeding

    monkeypatch.setattr(directory_db, "BUSY_TIMEOUT_MS", 300)
    app = make_app(sqlite_url, WTF_CSRF_ENABLED=True, MAP_TILE_URL="")
    with app.app_context():
        seeding.load()
        db.session.remove()
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    with LiveServer(app) as server:
        page = open_page(expected_server_errors=("/suggest/pharmacy",))
        page.goto(f"{server.url}/suggest/pharmacy")
        page.fill("#name", "Patient Typed This Pharmacy")
        page.fill("#phone", "206-555-0177")
        page.fill("#postal_code", "98101")
        holder.execute("BEGIN EXCLUSIVE")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.click("form.listing-form button[type=submit]")
        assert posted.value.status == 503
        assert posted.value.headers["retry-after"].isdigit()
        check_page(page, "Please try again in a minute")
        expect(page.locator("dl.typed")).to_contain_text("Patient Typed This Pharmacy")
        expect(page.locator("dl.typed")).to_contain_text("206-555-0177")
        screenshot(page, "database-locked-503")

        holder.execute("ROLLBACK")
        page.get_by_role("button", name="Send it again").click()
        page.wait_for_url("**/suggest/sent/**")
        expect(page.locator("h1")).to_have_text("Thank you, we have it")
    holder.close()
    with app.app_context():
        names = [s.data["name"] for s in db.session.scalars(select(Submission))]
        db.engine.dispose()
    assert names == ["Patient Typed This Pharmacy"]
