"""Which language a page is in: ?lang=, the `lang` cookie, Accept-Language, English; the switch
on every page; moderation stays English; the HTTP cache keeps the languages apart."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskClient

from directory import i18n

from .conftest import html


def lang_of(client: FlaskClient, url: str, **kwargs: object) -> str:
    response = client.get(url, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, url
    return str(html(response).html["lang"])


def test_english_by_default_and_for_unknown_languages(client: FlaskClient) -> None:
    assert lang_of(client, "/") == "en"
    assert lang_of(client, "/", headers={"Accept-Language": "de-DE,de;q=0.9"}) == "en"
    assert lang_of(client, "/?lang=klingon") == "en"


def test_the_browser_language_is_followed(client: FlaskClient) -> None:
    assert lang_of(client, "/", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}) == "es"
    assert lang_of(client, "/about", headers={"Accept-Language": "en-US,es;q=0.5"}) == "en"


def test_a_shared_link_wins_and_the_choice_is_kept_in_a_cookie(client: FlaskClient) -> None:
    response = client.get("/?lang=es", headers={"Accept-Language": "en"})
    assert html(response).html["lang"] == "es"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=es") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    # The next page, without ?lang, keeps the choice over the browser's language.
    assert lang_of(client, "/about", headers={"Accept-Language": "en"}) == "es"
    assert lang_of(client, "/about?lang=en", headers={"Accept-Language": "es"}) == "en"
    assert lang_of(client, "/about", headers={"Accept-Language": "es"}) == "en"


def test_every_page_links_to_itself_in_the_other_language(client: FlaskClient) -> None:
    page = html(client.get("/search?near=60601&radius=25"))
    switch = page.select_one("nav.language-switch")
    assert switch is not None
    link = switch.select_one('a[hreflang="es"]')
    assert link is not None and link.get_text(strip=True) == "Español"
    href = str(link["href"])
    assert href.startswith("/search?") and "near=60601" in href and "lang=es" in href
    assert switch.select_one('strong[lang="en"]').get_text(strip=True) == "English"


def test_moderation_pages_stay_english(client: FlaskClient) -> None:
    assert lang_of(client, "/login?lang=es") == "en"


def test_cached_pages_vary_by_language(client: FlaskClient) -> None:
    english = client.get("/search?near=60601", headers={"Accept-Language": "en"})
    spanish = client.get("/search?near=60601", headers={"Accept-Language": "es"})
    assert "Accept-Language" in english.headers["Vary"]
    assert english.headers["ETag"] != spanish.headers["ETag"]
    # The English tag does not answer a Spanish request with a 304.
    again = client.get(
        "/search?near=60601",
        headers={"Accept-Language": "es", "If-None-Match": english.headers["ETag"]},
    )
    assert again.status_code == 200
    assert html(again).html["lang"] == "es"


def test_a_stale_catalogue_is_compiled(tmp_path: Path) -> None:
    po_dir = tmp_path / "es" / "LC_MESSAGES"
    po_dir.mkdir(parents=True)
    (po_dir / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Search"\nmsgstr "Buscar"\n',
        encoding="utf-8",
    )
    assert i18n.compile_catalogues(tmp_path) == [po_dir / "messages.mo"]
    assert b"Buscar" in (po_dir / "messages.mo").read_bytes()
    assert i18n.compile_catalogues(tmp_path) == []  # up to date: nothing to do
