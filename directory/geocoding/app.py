"""The app's geocoder: built once per app from configuration (the one place in the package
that reads config), its online answers cached in the database."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..db import writing
from ..extensions import db
from ..models import GeocodeCacheEntry
from .online import Geocoding


class DatabaseCache:
    """Online geocoder answers (and misses), so each question costs one request ever."""

    def get(self, provider: str, query: str) -> list[dict[str, Any]] | None:
        entry = db.session.scalar(
            select(GeocodeCacheEntry).where(
                GeocodeCacheEntry.provider == provider, GeocodeCacheEntry.query == query[:300]
            )
        )
        return None if entry is None else list(entry.result)

    def set(self, provider: str, query: str, places: list[dict[str, Any]]) -> None:
        try:
            with writing():
                db.session.add(
                    GeocodeCacheEntry(provider=provider, query=query[:300], result=places)
                )
        except IntegrityError:
            pass  # another worker cached the same answer first


def geocoder() -> Geocoding:
    """The current app's Geocoding, made from its config on first use."""
    existing: Geocoding | None = current_app.extensions.get("ldn_geocoding")
    if existing is None:
        cfg = current_app.config
        existing = Geocoding(
            cfg["GEOCODER"],
            user_agent=cfg.get("GEOCODER_USER_AGENT"),
            timeout=cfg.get("GEOCODER_TIMEOUT", 5.0),
            domain=cfg.get("GEOCODER_DOMAIN"),
            cache=DatabaseCache(),
        )
        current_app.extensions["ldn_geocoding"] = existing
    return existing
