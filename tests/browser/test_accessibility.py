"""axe-core (WCAG 2.1 A and AA) on every kind of page, in the light colour scheme and again
(colour rules only) in the dark one.

Pages are checked in three groups, one live server each, and every page in a group is checked
before the test fails, so one run lists all the problems."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from directory.models import Kind
from tests.browser.helpers import (
    describe,
    listing_path,
    run_axe,
    send_suggestion,
    sign_in,
    switch_scheme,
)
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def audit(page: Any, name: str) -> list[str]:
    """Problems on the page now: axe violations in both schemes, and the one-h1 rule."""
    problems = []
    if page.locator("h1").count() != 1:
        problems.append(f"{name}: {page.locator('h1').count()} h1 elements, not one")
    switch_scheme(page, "light")
    violations = run_axe(page)
    if violations:
        problems.append(f"{name} (light):\n{describe(violations)}")
    switch_scheme(page, "dark")
    violations = run_axe(page, colours_only=True)
    if violations:
        problems.append(f"{name} (dark):\n{describe(violations)}")
    return problems


def audit_urls(page: Any, urls: Iterable[tuple[str, str]]) -> list[str]:
    problems = []
    for name, url in urls:
        page.goto(url)
        problems += audit(page, name)
    return problems


def test_public_pages(open_page: Callable[..., Any], live_server: LiveServer) -> None:
    base, app = live_server.url, live_server.app
    page = open_page()
    problems = audit_urls(
        page,
        [
            ("home", f"{base}/"),
            ("results", f"{base}/search?near=98101"),
            (
                "results-filtered",
                f"{base}/search?near=98101&kind=pharmacy&ir_only=1&safe_fillers=1",
            ),
            ("pharmacy", base + listing_path(app, Kind.PHARMACY)),
            ("prescriber", base + listing_path(app, Kind.PRESCRIBER)),
            ("about", f"{base}/about"),
            ("search-with-errors", f"{base}/search?near=zzqqxx+nowhere&radius=9999"),
            ("not-found", f"{base}/no-such-page"),
        ],
    )
    assert not problems, "\n".join(problems)


def correction_path(app: Any) -> str:
    listing_id = listing_path(app, Kind.PHARMACY).split("/")[2].split("-")[0]
    return f"/suggest/correction/{listing_id}"


def test_suggestion_forms(open_page: Callable[..., Any], live_server: LiveServer) -> None:
    base = live_server.url
    page = open_page()
    problems = audit_urls(
        page,
        [
            ("suggest-pharmacy", f"{base}/suggest/pharmacy"),
            ("suggest-prescriber", f"{base}/suggest/prescriber"),
        ],
    )
    # Sent back with errors: the summary, the messages by the fields, aria-invalid.
    page.fill("#npi", "123")
    page.click("form.listing-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    assert page.locator("[aria-invalid=true]").count() >= 2
    problems += audit(page, "prescriber-form-with-errors")
    page.goto(f"{base}/suggest/pharmacy")
    page.click("form.listing-form button[type=submit]")
    page.wait_for_selector("#error-summary")
    problems += audit(page, "pharmacy-form-with-errors")
    send_suggestion(page, base)
    problems += audit(page, "suggestion-sent")
    # The correction form: "What's wrong?" first, then its full edit opened.
    problems += audit_urls(page, [("correction", base + correction_path(live_server.app))])
    page.locator("details.full-edit > summary").click()
    problems += audit(page, "correction-full-edit")
    assert not problems, "\n".join(problems)


def test_moderation_pages(open_page: Callable[..., Any], live_server: LiveServer) -> None:
    base = live_server.url
    page = open_page()
    send_suggestion(page, base)
    page.goto(f"{base}/login")
    problems = audit(page, "login")
    sign_in(page, live_server.app, base)
    assert page.locator(".queue-table").count() == 1
    problems += audit(page, "moderation-queue")
    page.click(".queue-table tbody a")
    page.wait_for_url("**/moderation/submissions/**")
    problems += audit(page, "moderation-review")
    assert not problems, "\n".join(problems)
