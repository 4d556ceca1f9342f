"""Which language a page is in: ?lang=, the `lang` cookie, Accept-Language, English; the switch
on every page; moderation stays English; the HTTP cache keeps the languages apart."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from directory import i18n
from tests import builders

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


def test_after_a_form_is_sent_back_the_switch_opens_the_same_form(client: FlaskClient) -> None:
    response = client.post("/suggest/pharmacy", data={"name": ""})
    assert response.status_code == 400
    link = html(response).select_one('nav.language-switch a[hreflang="es"]')
    assert link is not None and link["href"] == "/suggest/pharmacy?lang=es"


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


# --- the Spanish catalogue and the Spanish pages ---------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "directory" / "translations" / "es" / "LC_MESSAGES" / "messages.po"
ES = {"Accept-Language": "es-MX,es;q=0.9"}
# English a Spanish page must not show: the site's own words on each page, not listing data.
ENGLISH_LEFT_OVER = (
    "Search",
    "Where are you?",
    "Distance and filters",
    "Only show",
    "Pharmacies",
    "Prescribers",
    "Not medical advice",
    "This is a directory",
    "Verified",
    "Call to confirm",
    "Fillers",
    "Makes immediate-release",
    "slow-release",
    "Not listed",
    "Suggest a",
    "within",
    "nearest first",
    "Skip to main content",
    "Open data",
    "Please check",
    "(required)",
    "Thank you",
    "Back to search",
)


def test_every_message_in_the_code_has_a_spanish_translation() -> None:
    """Extracts the messages as `make messages` does (babel.cfg) and checks each against the
    catalogue: present, translated (every plural form), not fuzzy, the same placeholders."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import read_po

    with (ROOT / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f)
    keywords = {
        "_": None,
        "gettext": None,
        "ngettext": (1, 2),
        "_l": None,
        "N_": None,
        "lazy_gettext": None,
        "_n": (1, 2),
        "lazy_ngettext": (1, 2),
    }
    found = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, options_map, keywords=keywords
        )
    }
    assert len(found) > 400  # the extraction itself worked
    with PO.open("rb") as f:
        catalog = read_po(f, locale="es")
    assert catalog.num_plurals == 2
    problems = []
    for message in sorted(found, key=str):
        entry = catalog.get(message[0] if isinstance(message, tuple) else message)
        if entry is None:
            problems.append(f"missing: {message!r}")
            continue
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if entry.fuzzy or not all(strings) or len(strings) != (2 if entry.pluralizable else 1):
            problems.append(f"untranslated or fuzzy: {message!r}")
        # The same placeholders as the English (a plural form may say "1" instead of %(num)d).
        wanted = placeholders(message[-1] if isinstance(message, tuple) else message)
        problems += [
            f"placeholders differ: {message!r} -> {string!r}"
            for string in strings
            if placeholders(string) != wanted
        ]
    # An entry nobody uses any more is dead weight for translators (`make messages` drops it).
    obsolete = [m.id for m in catalog.obsolete.values()]
    assert not problems and not obsolete, "\n".join(
        problems + [f"obsolete: {o!r}" for o in obsolete]
    )


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\(\w+\)\w", text)) - {"%(num)d"}


def visible_text(response: TestResponse) -> str:
    page = html(response)
    for hidden in page.select("script, style, [hidden], .hp, nav.language-switch"):
        hidden.decompose()
    return " ".join(page.get_text(" ").split())


def assert_spanish(response: TestResponse, *, allowed: tuple[str, ...] = ()) -> str:
    assert html(response).html["lang"] == "es"
    text = visible_text(response)
    left = [
        english
        for english in ENGLISH_LEFT_OVER
        if english not in allowed and re.search(rf"\b{re.escape(english)}\b", text)
    ]
    assert not left, f"English left on {response.request.path}: {left}\n{text}"
    return text


def test_the_main_public_pages_are_in_spanish(client: FlaskClient) -> None:
    pharmacy = builders.pharmacy(
        name="Farmacia Luna",
        sr_policy="ir_only",
        fillers=["mcc", "sucrose"],
        dosage_forms=["capsule"],
        verified_on=date.today() - timedelta(days=40),
        mail_order=True,
        ships_to=["US-NM", "US-NY"],
    )
    prescriber = builders.prescriber(
        name="Dra. Ana Rivera", conditions=["fibromyalgia"], accepting_new_patients=True
    )
    assert_spanish(client.get("/", headers=ES))
    assert_spanish(client.get("/about", headers=ES))
    assert_spanish(client.get("/open-data", headers=ES))
    results = assert_spanish(client.get("/search?near=35233&radius=25", headers=ES))
    assert "2 resultados a menos de 25 mi de" in results
    page = assert_spanish(
        client.get(f"/pharmacies/{pharmacy.id}", headers=ES, follow_redirects=True)
    )
    assert "Solo prepara LDN de liberación inmediata" in page
    assert "Celulosa microcristalina (Avicel)" in page and "Sacarosa (azúcar)" in page
    assert "Verificado hace 5 semanas" in page
    assert "Nuevo México, Nueva York" in page
    page = assert_spanish(
        client.get(f"/prescribers/{prescriber.id}", headers=ES, follow_redirects=True)
    )
    assert "Fibromialgia" in page and "Acepta pacientes nuevos" in page
    assert_spanish(client.get("/suggest/pharmacy", headers=ES))
    assert_spanish(client.get(f"/suggest/correction/{pharmacy.id}", headers=ES))
    assert_spanish(client.get("/no-such-page", headers=ES))
    # The same pages in English are unchanged.
    english = visible_text(client.get(f"/pharmacies/{pharmacy.id}", follow_redirects=True))
    assert "Makes immediate-release LDN only" in english and "Verified 5 weeks ago" in english


def test_counts_take_the_right_plural(app: Flask) -> None:
    from directory.templating import ago

    today = date(2026, 6, 1)
    # A fresh app context each: the language is cached on `g`, one per request in production.
    with app.app_context(), app.test_request_context("/?lang=es"):
        assert ago(today - timedelta(days=7), today) == "hace 7 días"
        assert ago(today - timedelta(days=14), today) == "hace 2 semanas"
        assert ago(today - timedelta(days=31), today) == "hace 4 semanas"
        assert ago(today - timedelta(days=400), today) == "hace 13 meses"
        assert ago(today - timedelta(days=1), today) == "ayer"
        assert i18n.month_year(date(2026, 3, 5)) == "marzo de 2026"
    with app.app_context(), app.test_request_context("/"):
        assert ago(today - timedelta(days=7), today) == "7 days ago"
        assert ago(today - timedelta(days=14), today) == "2 weeks ago"
        assert i18n.month_year(date(2026, 3, 5)) == "March 2026"


def test_one_result_and_several(client: FlaskClient) -> None:
    builders.pharmacy()
    one = visible_text(client.get("/search?near=35233", headers=ES))
    assert "1 resultado a menos de 25 mi de" in one
    builders.pharmacy()
    two = visible_text(client.get("/search?near=35233", headers=ES))
    assert "2 resultados a menos de 25 mi de" in two


def test_a_form_error_is_in_spanish(client: FlaskClient) -> None:
    client.get("/suggest/pharmacy?lang=es")  # the choice, kept in the cookie
    response = client.post(
        "/suggest/pharmacy",
        data={
            "name": "",
            "city": "Austin",
            "state": "US-TX",
            "country": "US",
            "website": "not a url",
            "makes_ldn": "yes",
            "sr_policy": "unknown",
            "mail_order": "no",
        },
    )
    assert response.status_code == 400
    text = visible_text(response)
    assert "Por favor, revise estas respuestas" in text
    assert "Por favor, escriba el nombre." in text
    assert "Escriba la dirección web completa, que empiece con https://" in text
    assert "Please" not in text
    # WTForms' own messages come in Spanish too (Flask-WTF's translations): an unknown choice.
    response = client.post(
        "/suggest/pharmacy",
        data={"name": "X", "city": "Austin", "makes_ldn": "maybe"},
    )
    assert "Opción inválida." in visible_text(response)


def test_the_api_message_follows_accept_language(client: FlaskClient) -> None:
    spanish = client.get("/api/v1/search?near=&radius=5000", headers=ES).get_json()["error"]
    english = client.get("/api/v1/search?near=&radius=5000").get_json()["error"]
    assert spanish["code"] == english["code"] == "invalid_parameter"  # machine fields: English
    assert set(spanish["fields"]) == set(english["fields"]) == {"near", "radius"}
    assert "La distancia debe ser un número del 1 al 500." in spanish["message"]
    assert "The distance must be a number from 1 to 500." in english["message"]
    missing = client.get("/api/v1/listings/999999", headers=ES).get_json()["error"]
    assert missing["message"] == "No hay ninguna ficha con el id 999999."
    # Results keep their machine values whatever the language.
    builders.pharmacy(sr_policy="ir_only")
    found = client.get("/api/v1/search?near=35233", headers=ES).get_json()
    assert found["results"][0]["sr_policy"] == "ir_only"
