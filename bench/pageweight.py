"""Bytes over the wire for a results page in Chromium: first visit, then a later visit.

`python -m bench.pageweight [--size 100000] [--near "Chicago, IL"]` serves the bench database
with gunicorn (production settings), opens /search in Debian's Chromium through Playwright,
and sums what the network actually carried (CDP `Network.loadingFinished`
encodedDataLength: headers and the compressed body) for the page and everything it loads.
Then, in the same browser profile, a later visit: a search for another place, as someone
coming back another day would (the HTML is new, CSS and JS come from the cache), and a reload
of that page (the browser revalidates the HTML: a 304 when nothing changed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import generate
from .httpload import Gunicorn

CHROMIUM = Path("/usr/bin/chromium")


def visit(page: Any, cdp: Any, url: str) -> dict[str, Any]:
    sizes: dict[str, int] = {}
    urls: dict[str, str] = {}
    statuses: dict[str, int] = {}

    def on_response(event: dict[str, Any]) -> None:
        urls[event["requestId"]] = event["response"]["url"]
        statuses[event["requestId"]] = event["response"]["status"]

    def on_finished(event: dict[str, Any]) -> None:
        sizes[event["requestId"]] = int(event["encodedDataLength"])

    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.loadingFinished", on_finished)
    if url == "reload":
        page.reload(wait_until="networkidle")
    else:
        page.goto(url, wait_until="networkidle")
    cdp.remove_listener("Network.responseReceived", on_response)
    cdp.remove_listener("Network.loadingFinished", on_finished)
    files = [
        {"url": urls.get(k, "?").split("/", 3)[-1], "status": statuses.get(k), "bytes": v}
        for k, v in sizes.items()
    ]
    return {
        "bytes": sum(f["bytes"] for f in files),
        "cards": page.locator(".card").count(),
        "files": files,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--near", default="60601")
    parser.add_argument("--later", default="60614")
    parser.add_argument(
        "--locale", default="en-US", help="the browser's language (es-US: the Spanish pages)"
    )
    parser.add_argument("--screenshots", type=Path, help="a folder for screenshots of the pages")
    parser.add_argument("--output", type=Path, default=Path("bench/results/pageweight.json"))
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from tests.browser.helpers import LAUNCH_ARGS

    path, _meta, _built = generate.ensure_database(args.size)
    with Gunicorn(path, generate.DATA_DIR / "gunicorn-pageweight.log") as server:
        url = f"{server.base}/search?near={args.near}&radius=25"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            # The browser's language is what picks the page's (Accept-Language).
            context = browser.new_context(locale=args.locale)
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            first = visit(page, cdp, url)
            if args.screenshots:
                args.screenshots.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.screenshots / "first-visit.png"), full_page=True)
            later = visit(page, cdp, f"{server.base}/search?near={args.later}&radius=25")
            reload = visit(page, cdp, "reload")
            browser.close()
    out = {
        "url": url,
        "locale": args.locale,
        "first_visit": first,
        "later_visit": later,
        "reload": reload,
    }
    for name in ("first_visit", "later_visit", "reload"):
        v = out[name]
        print(f"{name}: {v['bytes']:,} bytes, {v['cards']} cards")
        for f in v["files"]:
            print(f"    {f['status']} {f['bytes']:>7,}  {f['url'][:90]}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
