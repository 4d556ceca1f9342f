"""The core journeys in Spanish on a phone: search, filters, a listing, a suggestion with an
error; axe clean on each page, nothing left in English that the site itself says, and a
screenshot of each page (test-artifacts/screenshots/es-*.png)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.helpers import PHONE, describe, run_axe, screenshot
from tests.conftest import LiveServer

pytestmark = pytest.mark.browser

# The site's own English words that a Spanish page must not show (listing data aside).
ENGLISH = re.compile(
    r"\b(Search|Where are you|Distance and filters|Only show|Pharmacies|Prescribers|Verified|"
    r"Call to confirm|Fillers|within|nearest first|Suggest a|Please check|required|Not listed)\b"
)


def check(page: Any, name: str) -> str:
    """The page is in Spanish, axe finds nothing, and a screenshot is kept; returns its text."""
    assert page.locator("html").get_attribute("lang") == "es", name
    violations = run_axe(page)
    assert not violations, f"{name}:\n{describe(violations)}"
    screenshot(page, f"es-{name}")
    text = page.locator("body").inner_text()
    # The switch names each language in its own words: "English" is meant to be there.
    shown = text.replace("English", "")
    left = ENGLISH.findall(shown)
    assert not left, f"{name}: English left over: {left}"
    return text


def test_the_core_journeys_in_spanish_on_a_phone(
    open_page: Callable[..., Any], live_server: LiveServer
) -> None:
    page = open_page(
        viewport=PHONE, locale="es-MX", extra_http_headers={"Accept-Language": "es-MX,es"}
    )
    base = live_server.url

    # Search from the home page, by the Spanish words on the page.
    page.goto(f"{base}/")
    check(page, "home")
    page.get_by_label("¿Dónde está usted?").fill("98101")
    page.get_by_role("button", name="Buscar", exact=True).click()
    page.wait_for_url("**/search?**")
    text = check(page, "results")
    assert re.search(r"\d+ resultados a menos de 25 mi de Seattle", text)

    # Filters: pharmacies only, immediate-release only.
    page.locator(".filters summary").click()
    page.get_by_label("Qué busca").select_option("pharmacy")
    page.get_by_label("Solo prepara LDN de liberación inmediata").check()
    page.get_by_role("button", name="Actualizar resultados").click()
    page.wait_for_url("**ir_only=1**")
    text = check(page, "results-filtered")
    assert "Farmacias cerca de Seattle" in page.locator("h1").inner_text()
    assert "Solo prepara LDN de liberación inmediata" in text

    # A listing.
    page.locator("#results .card-title a").first.click()
    page.wait_for_url(re.compile(r"/pharmacies/\d+"))
    text = check(page, "listing")
    assert "Cómo prepara la LDN" in text and "Confiabilidad" in text

    # A suggestion with an error: the website without https://, and no name.
    page.goto(f"{base}/suggest/pharmacy")
    check(page, "suggest")
    page.get_by_label("Código postal (ZIP)").fill("98101")
    page.get_by_label("Sitio web").fill("not a web address")
    page.get_by_role("button", name="Enviar para revisión").click()
    page.locator("#error-summary").wait_for()
    text = check(page, "suggest-error")
    assert "Por favor, revise estas respuestas" in text
    assert "Por favor, escriba el nombre." in text
    assert "Escriba la dirección web completa, que empiece con https://" in text
