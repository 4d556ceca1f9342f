"""Jinja filters and globals that turn stored values into plain words."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import select

from . import i18n, regions, validation
from .extensions import db
from .forms import SearchForm
from .i18n import gettext as _
from .i18n import ngettext
from .listings import FIELD_LABELS, detail_url
from .models import Condition, DosageForm, Filler
from .vocabulary import (
    FlagType,
    Guidance,
    Kind,
    Precision,
    SRPolicy,
    Status,
    Term,
    Tone,
    VerifyMethod,
)


def ago(day: date | None, today: date | None = None) -> str:
    """'3 months ago' style, coarse on purpose: patients want a feel for freshness, not a count."""
    if day is None:
        return _("never")
    today = today or date.today()
    days = (today - day).days
    if days < 0:
        return _("in the future")
    if days == 0:
        return _("today")
    if days == 1:
        return _("yesterday")
    if days < 14:
        return ngettext("%(num)d day ago", "%(num)d days ago", days)
    if days < 60:
        return ngettext("%(num)d week ago", "%(num)d weeks ago", days // 7)
    months = round(days / 30.44)
    if months < 24:
        return ngettext("%(num)d month ago", "%(num)d months ago", months)
    # Rounded like the months above, so 23.6 months reads "2 years ago", never "1 years ago".
    years = max(2, round(days / 365.25))
    return ngettext("%(num)d year ago", "%(num)d years ago", years)


def verified_text(day: date | None) -> str:
    if day is None:
        return _("Not yet verified by a moderator")
    return _("Verified %(ago)s (%(date)s)", ago=ago(day), date=day.isoformat())


_VOCABULARY_TABLES: dict[str, type[DosageForm] | type[Filler] | type[Condition]] = {
    "dosage_forms": DosageForm,
    "fillers": Filler,
    "conditions": Condition,
}
_TERMS: dict[str, type[Term]] = {
    "sr_policy": SRPolicy,
    "status": Status,
    "geo_precision": Precision,
    "method": VerifyMethod,  # a verification's, in the history
    "type": FlagType,  # a flag's, in the history
}


def _vocabulary_names(field: str) -> dict[str, str]:
    """code -> name of a vocabulary table, read once per request (the tables are small)."""
    cache: dict[str, dict[str, str]] = g.setdefault("_vocabulary_names", {})
    if field not in cache:
        model = _VOCABULARY_TABLES[field]
        cache[field] = {
            code: name for code, name in db.session.execute(select(model.code, model.name))
        }
    return cache[field]


def value_words(value: Any, field: str) -> str:
    """A listing field's stored value as a moderator reads it: "Makes immediate-release LDN
    only", "Microcrystalline cellulose (Avicel)", "Washington", "(206) 555-0100"; never the
    code. Used by the review's diff, what was sent, and a listing's history."""
    if field == "fillers" and value is None:
        return "not known"
    if value is None or value == "":
        return "(empty)"
    if value is True or value is False:
        return "yes" if value else "no"
    if field in _VOCABULARY_TABLES:
        names = _vocabulary_names(field)
        return ", ".join(names.get(code, code) for code in value) if value else "none"
    if field in ("ships_to", "licensed_in"):
        return ", ".join(regions.region_name(code) for code in value) if value else "none"
    if field in _TERMS:
        term = _TERMS[field].parse(value)
        return term.label if term else str(value)
    if field == "region":
        return regions.region_name(value)
    if field == "country":
        return regions.country_name(value)
    if field == "phone":
        return validation.format_phone(value)
    if isinstance(value, list):
        return ", ".join(map(str, value)) if value else "none"
    return str(value)


def month_year(day: date | None) -> str:
    return i18n.month_year(day) if day else ""


def empty_search_form() -> SearchForm:
    """The search form for pages that show it without a search of their own (404)."""
    return SearchForm.from_args({})


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        ago=ago,
        verified_text=verified_text,
        month_year=month_year,
        region_name=regions.shown_region_name,
        country_name=regions.country_name,
        phone=validation.format_phone,
        tel_uri=validation.tel_uri,
        value_words=value_words,
        field_label=lambda name: FIELD_LABELS.get(name, name.replace("_", " ")),
    )
    app.jinja_env.globals.update(
        Guidance=Guidance,
        Kind=Kind,
        Precision=Precision,
        Tone=Tone,
        listing_url=detail_url,
        empty_search_form=empty_search_form,
        config_value=lambda name: current_app.config.get(name),
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
