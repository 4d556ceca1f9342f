"""Chromium through Playwright (sync API) against a real threaded server.

Debian's /usr/bin/chromium is driven directly; Playwright never downloads a browser. Every
page a test opens is watched: a console error or an uncaught exception fails the test, except
failed loads of map tiles (the test machines have no internet)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.helpers import (
    CHROMIUM,
    DESKTOP,
    LAUNCH_ARGS,
    TILE_HOST,
    TILE_URL,
    seeded_server,
)
from tests.conftest import LiveServer

# The longest any wait for a condition may take before the test fails. Waits end as soon as
# their condition holds, so this costs nothing when the machine is idle; on a shared 2-core
# machine with both cores busy, a first page (templates compiled, the gazetteer opened) took
# over 10 s, the old cap. Tests wait for conditions (expect, wait_for_url, wait_for), never
# for fixed times.
WAIT_MS = 60_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser tests need Debian's chromium at /usr/bin/chromium "
            "(apt-get install chromium; `make test` installs it when run as root)"
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A page plus what went wrong on it, as the browser's console saw it."""

    page: Any
    errors: list[str] = field(default_factory=list)
    # Pages that answered 4xx on purpose (a 404 page, a form sent back with errors): Chrome
    # logs "Failed to load resource" for them, which is not a fault of the page. A 5xx is
    # only excused on paths the test names in expected_server_errors.
    expected_server_errors: tuple[str, ...] = ()
    client_error_documents: set[str] = field(default_factory=set)

    def on_response(self, response: Any) -> None:
        if response.request.resource_type != "document":
            return
        if 400 <= response.status < 500 or (
            response.status >= 500 and urlsplit(response.url).path in self.expected_server_errors
        ):
            self.client_error_documents.add(response.url)

    def on_console(self, message: Any) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if urlsplit(url).netloc == TILE_HOST:
            return  # a map tile that could not load: expected offline
        if url in self.client_error_documents and message.text.startswith("Failed to load"):
            return
        self.errors.append(f"console: {message.text} ({url})")

    def on_page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """open_page(expected_server_errors=(), **context_options) -> a new page in its own
    context, watched for errors.

    At the end of the test every watched page must have had a clean console."""
    contexts: list[Any] = []
    watched: list[Watched] = []

    def _open(expected_server_errors: tuple[str, ...] = (), **options: Any) -> Any:
        options.setdefault("viewport", DESKTOP)
        context = browser.new_context(**options)
        # The map's tile server is never reachable in tests; fail those requests fast.
        context.route(f"http://{TILE_HOST}/**", lambda route: route.abort())
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.set_default_navigation_timeout(WAIT_MS)
        w = Watched(page, expected_server_errors=expected_server_errors)
        page.on("response", w.on_response)
        page.on("console", w.on_console)
        page.on("pageerror", w.on_page_error)
        watched.append(w)
        return page

    yield _open
    for context in contexts:
        context.close()
    problems = [e for w in watched for e in w.errors]
    assert not problems, "the browser reported errors:\n" + "\n".join(problems)


@pytest.fixture
def map_server(database_url: str) -> Iterator[LiveServer]:
    """Like live_server, but with the map switched on (tiles from an address that never answers)."""
    with seeded_server(database_url, MAP_TILE_URL=TILE_URL) as server:
        yield server
