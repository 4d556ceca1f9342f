"""HTTP caching: ETags from the data version, 304s before the search runs, who may cache what."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from flask import Flask
from sqlalchemy import event

from directory import dataversion, httpcache
from directory.extensions import db
from directory.models import Role
from directory.moderation import upkeep
from tests import builders
from tests.conftest import html

SEARCH = "/search?near=35233&radius=25"
API = "/api/v1/search?near=35233&radius=25"


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_every_cacheable_endpoint_is_a_route(app) -> None:
    assert httpcache.CACHEABLE <= {rule.endpoint for rule in app.url_map.iter_rules()}


@pytest.mark.parametrize("url", [SEARCH, API])
def test_search_answers_are_public_for_a_minute_with_a_weak_etag(client, url) -> None:
    builders.pharmacy()
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=60"
    assert response.headers["ETag"].startswith('W/"')
    assert {"Cookie", "Accept-Encoding"} <= set(response.vary)
    assert "Set-Cookie" not in response.headers


def test_listing_pages_and_api_listing_carry_the_etag(client) -> None:
    listing = builders.pharmacy()
    for url in (f"/pharmacies/{listing.id}-{listing.slug}", f"/api/v1/listings/{listing.id}"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "public, max-age=60"
        assert response.headers["ETag"].startswith('W/"')


def test_the_current_etag_gets_a_304_from_one_statement(app, client, monkeypatch) -> None:
    builders.pharmacy()
    first = client.get(SEARCH)
    etag = first.headers["ETag"]
    reads: list[int] = []
    real_current = dataversion.current

    def counted() -> int:
        reads.append(real_current())
        return reads[-1]

    monkeypatch.setattr(dataversion, "current", counted)
    with statements(app) as seen:
        again = client.get(SEARCH, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=60"
    # The data version's row only, read once on a raw pooled connection (which SQLAlchemy's
    # statement events don't see): no session, no geocoding, no search, no cards.
    assert len(reads) == 1
    assert seen == []


def test_a_moderators_change_shows_to_the_next_request_with_the_old_etag(app, client) -> None:
    listing = builders.pharmacy(name="Cached Compounding")
    moderator = builders.user("mod", "correct horse battery", Role.MODERATOR)
    first = client.get(SEARCH)
    assert "Cached Compounding" in first.get_data(as_text=True)
    upkeep.set_status(listing.id, moderator, "closed", "Phoned: they closed in May.")
    after = client.get(SEARCH, headers={"If-None-Match": first.headers["ETag"]})
    assert after.status_code == 200
    assert after.headers["ETag"] != first.headers["ETag"]
    assert "Cached Compounding" not in after.get_data(as_text=True)


def test_every_audited_write_raises_the_version(app) -> None:
    listing = builders.pharmacy()
    moderator = builders.user("mod", "correct horse battery", Role.MODERATOR)
    before = dataversion.current()
    upkeep.set_status(listing.id, moderator, "closed", "Phoned: closed.")
    assert dataversion.current() == before + 1


def test_seeding_raises_the_version_when_it_changes_something(app) -> None:
    from directory import seeding

    before = dataversion.current()
    seeding.load(samples=True)
    after = dataversion.current()
    assert after > before
    seeding.load(samples=True)  # nothing new
    assert dataversion.current() == after


def test_a_rolled_back_write_leaves_the_version(app) -> None:
    db.session.commit()
    before = dataversion.current()
    dataversion.bump()
    db.session.rollback()
    assert dataversion.current() == before


def test_a_transaction_raises_the_version_once_however_many_changes_it_audits(app) -> None:
    db.session.commit()
    before = dataversion.current()
    dataversion.bump()
    dataversion.bump()
    dataversion.bump()
    db.session.commit()
    assert dataversion.current() == before + 1
    dataversion.bump()  # a new transaction bumps again
    db.session.commit()
    assert dataversion.current() == before + 2


def test_a_savepoint_rolled_back_takes_its_bump_and_the_next_change_bumps_again(app) -> None:
    db.session.commit()
    before = dataversion.current()
    nested = db.session.begin_nested()
    dataversion.bump()
    nested.rollback()
    dataversion.bump()
    db.session.commit()
    assert dataversion.current() == before + 1


def test_a_public_suggestion_leaves_the_version_and_cached_pages(app, client) -> None:
    from directory import moderation
    from directory.geocoding import Geocoding
    from directory.models import AuditEntry, Kind

    builders.pharmacy(name="Cached Compounding")
    first = client.get(SEARCH)
    before = dataversion.current()
    sub, created = moderation.submit(
        listing_kind=Kind.PHARMACY,
        data={"name": "Waiting Compounding", "city": "Birmingham", "region": "US-AL"},
        geocoding=Geocoding(),
    )
    assert created
    # Pending: nothing public changed, so the version holds and the old ETag is still good.
    assert dataversion.current() == before
    assert db.session.query(AuditEntry).filter_by(submission_id=sub.id).one().action == "submitted"
    again = client.get(SEARCH, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_signed_in_pages_are_private_and_never_304(client, auth) -> None:
    builders.pharmacy()
    public_etag = client.get(SEARCH).headers["ETag"]
    auth.sign_in_as("mod", Role.MODERATOR)
    response = client.get(SEARCH, headers={"If-None-Match": public_etag})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-cache"
    assert "ETag" not in response.headers
    assert "Queue" in [a.get_text() for a in html(response).select("nav a")]
    assert "Cookie" in response.vary


def test_moderation_pages_are_not_stored(client, auth) -> None:
    auth.sign_in_as("mod", Role.MODERATOR)
    assert client.get("/moderation/").headers["Cache-Control"] == "no-store"


def test_a_bad_search_is_not_cached_publicly(client) -> None:
    response = client.get("/search?near=35233&radius=9999")
    assert response.status_code == 400
    assert "ETag" not in response.headers
    assert response.headers.get("Cache-Control") != "public, max-age=60"


# --- compression and static files ---------------------------------------------------------------


@pytest.mark.parametrize(("accept", "encoding"), [("br, gzip", "br"), ("gzip", "gzip")])
def test_pages_are_compressed_as_the_client_asks(client, accept, encoding) -> None:
    import gzip

    import brotli

    builders.pharmacy(name="Squeezed Compounding")
    plain = client.get(SEARCH, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    packed = client.get(SEARCH, headers={"Accept-Encoding": accept})
    assert packed.headers["Content-Encoding"] == encoding
    body = brotli.decompress(packed.data) if encoding == "br" else gzip.decompress(packed.data)
    assert body == plain.data
    assert len(packed.data) < len(plain.data) / 2
    assert packed.headers["ETag"] == plain.headers["ETag"]  # weak: the same page either way


def test_static_urls_carry_the_files_hash_and_are_immutable(app, client) -> None:
    builders.pharmacy()
    page = html(client.get(SEARCH))
    urls = [t["href"] for t in page.select("link[rel=stylesheet]")] + [
        t["src"] for t in page.select("script[src]")
    ]
    assert urls and all("?v=" in u for u in urls), urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        stale = client.get(url.split("?")[0] + "?v=000000000000")
        assert "immutable" not in stale.headers.get("Cache-Control", "")
    css = client.get(urls[0], headers={"Accept-Encoding": "br"})
    assert css.headers["Content-Encoding"] == "br"


def test_a_changed_static_file_gets_a_new_url(app, tmp_path) -> None:
    (tmp_path / "a.css").write_text("p { color: red }")
    first = httpcache.static_hash(str(tmp_path), "a.css")
    (tmp_path / "b.css").write_text("p { color: blue }")
    assert first and first != httpcache.static_hash(str(tmp_path), "b.css")
    assert httpcache.static_hash(str(tmp_path), "missing.css") is None
