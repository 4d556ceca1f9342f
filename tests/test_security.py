"""Security headers on every page, debug off, request size limits."""

import re

import pytest

from directory import hsds
from directory.models import Role
from tests import builders
from tests.conftest import html, make_app


def _pages(app):
    """One concrete URL for every GET route, ids filled with real listings."""
    p = builders.pharmacy()
    d = builders.prescriber()
    fill = {"listing_id": p.id, "slug": p.slug, "reference": "LDN-ABCDEF", "kind": "pharmacy"}
    fill |= {"service_id": hsds.listing_uuid(p.id, "service"), "name": "ldn-directory-hsds.json"}
    urls = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        values = {arg: fill.get(arg, 1) for arg in rule.arguments}
        if rule.endpoint == "public.prescriber":
            values.update(listing_id=d.id, slug=d.slug)
        urls.add(
            re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m, v=values: str(v[m.group(1)]), rule.rule)
        )
    urls.add("/search?near=35233")
    urls.add("/no-such-page")
    return sorted(urls)


# What the sweep's URLs answer a signed-in admin when not 200: a search without a place is 400,
# /login sends a signed-in user on, ids with no row are 404, a URL without its slug redirects.
NOT_200 = {
    "/api/v1/search": 400,
    "/search": 400,
    "/login": 302,
    "/moderation/submissions/1": 404,
    "/moderation/submissions/1/edit": 404,
    "/no-such-page": 404,
    "/pharmacies/1": 301,
    "/prescribers/2": 301,
}


def test_every_page_sends_the_security_headers(app, client, auth) -> None:
    auth.sign_in_as("boss", Role.ADMIN)
    pages = _pages(app)
    assert len(pages) >= 20
    for url in pages:
        response = client.get(url)
        assert response.status_code == NOT_200.get(url, 200), url
        h = response.headers
        csp = h.get("Content-Security-Policy", "")
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp, url
        assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp, url
        assert "object-src 'none'" in csp, url
        assert h.get("X-Content-Type-Options") == "nosniff", url
        assert h.get("Referrer-Policy") == "strict-origin-when-cross-origin", url
        assert "max-age=" in h.get("Strict-Transport-Security", ""), url
        if url.startswith(("/moderation", "/login")):
            assert h.get("Cache-Control") == "no-store", url


def test_no_inline_script_or_style_in_any_page(app, client) -> None:
    for url in _pages(app):
        page = html(client.get(url))
        for script in page.select("script"):
            assert script.get("src") or script.get("type") == "application/ld+json", url
        assert not page.select("[style]"), url
        assert not page.select("style"), url
        assert not [a for a in page.select("[onclick],[onload],[onsubmit]")], url


def test_tiles_are_allowed_as_images_only(database_url) -> None:
    app = make_app(database_url, MAP_TILE_URL="https://tiles.example.org/{z}/{x}/{y}.png")
    with app.app_context():
        csp = app.test_client().get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://tiles.example.org" in csp
    assert "tiles.example.org" not in csp.split("img-src")[0]


def test_no_hsts_in_development(database_url, monkeypatch) -> None:
    monkeypatch.setenv("DIRECTORY_ENV", "development")
    app = make_app(database_url)
    with app.app_context():
        assert "Strict-Transport-Security" not in app.test_client().get("/").headers
        assert app.config["SESSION_COOKIE_SECURE"] is False


def test_debug_is_off_by_default(app) -> None:
    assert app.debug is False


def test_oversized_request_is_413_not_500(database_url) -> None:
    app = make_app(database_url, MAX_CONTENT_LENGTH=1024)
    with app.app_context():
        response = app.test_client().post("/suggest/pharmacy", data={"name": "x" * 5000})
    assert response.status_code == 413
    assert b"more than we can accept" in response.data


@pytest.mark.parametrize("path", ["/api/v1/listings/99999", "/api/v1/nope"])
def test_api_errors_are_json(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"]


def test_huge_ids_are_404_not_an_overflow(client) -> None:
    assert client.get("/pharmacies/99999999999999999999999999-x").status_code == 404
    assert client.get("/api/v1/listings/99999999999999999999999").status_code == 404


def test_nul_bytes_are_refused_with_400(client) -> None:
    assert client.get("/search", query_string={"near": "Seattle\x00"}).status_code == 400
    assert client.post("/suggest/pharmacy", data={"name": "A\x00B"}).status_code == 400
