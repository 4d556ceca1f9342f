"""Jinja filters and globals that turn stored values into plain words."""

from __future__ import annotations

from datetime import date

from flask import Flask, current_app

from . import regions
from .forms import SearchForm
from .listings import detail_url
from .vocabulary import Guidance, Kind, Precision, Tone


def ago(day: date | None, today: date | None = None) -> str:
    """'3 months ago' style, coarse on purpose: patients want a feel for freshness, not a count."""
    if day is None:
        return "never"
    today = today or date.today()
    days = (today - day).days
    if days < 0:
        return "in the future"
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    months = round(days / 30.44)
    if months < 24:
        return f"{months} months ago"
    # Rounded like the months above, so 23.6 months reads "2 years ago", never "1 years ago".
    return f"{max(2, round(days / 365.25))} years ago"


def verified_text(day: date | None) -> str:
    if day is None:
        return "Not yet verified by a moderator"
    return f"Verified {ago(day)} ({day.isoformat()})"


def month_year(day: date | None) -> str:
    return day.strftime("%B %Y") if day else ""


def empty_search_form() -> SearchForm:
    """The search form for pages that show it without a search of their own (404)."""
    return SearchForm.from_args({})


def init_app(app: Flask) -> None:
    app.jinja_env.filters.update(
        ago=ago,
        verified_text=verified_text,
        month_year=month_year,
        region_name=regions.region_name,
        country_name=regions.country_name,
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
