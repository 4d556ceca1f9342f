"""What every geocoder answers with, and the one error a user may see."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..geomath import valid_lat_lon
from ..vocabulary import Precision

PRECISIONS = tuple(Precision.values())


class GeocodeInputError(ValueError):
    """The query cannot be used. ``str(error)`` is a sentence that can be shown to the user."""


@dataclass(frozen=True, slots=True)
class Place:
    """A geocoded place; plain data so it can be cached, serialised and compared."""

    lat: float
    lon: float
    label: str
    precision: str  # a Precision value, stored as a plain string
    country: str  # ISO 3166-1 alpha-2; "" when unknown (e.g. coordinates in the ocean)
    region: str | None = None  # ISO 3166-2 such as "US-AL"; only set for US places
    postal_code: str | None = None

    def __post_init__(self) -> None:
        # Validate here so that a corrupt cache entry or a bad provider response fails at
        # the boundary instead of producing NaN distances deep inside the search code.
        precision = Precision.parse(self.precision)
        if precision is None:
            raise ValueError(f"unknown precision {self.precision!r}")
        # Precision members are strings already; the plain value keeps reprs, caches and
        # JSON exactly as they were when callers passed strings.
        object.__setattr__(self, "precision", precision.value)
        if not (math.isfinite(self.lat) and math.isfinite(self.lon)):
            raise ValueError("coordinates must be finite numbers")
        if not valid_lat_lon(self.lat, self.lon):
            raise ValueError(f"coordinates out of range: {self.lat}, {self.lon}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "lat": self.lat,
            "lon": self.lon,
            "label": self.label,
            "precision": self.precision,
            "country": self.country,
            "region": self.region,
            "postal_code": self.postal_code,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Place:
        """Inverse of :meth:`to_dict`; tolerates missing optional keys and extra keys."""
        try:
            region = d.get("region")
            postal_code = d.get("postal_code")
            return cls(
                lat=float(d["lat"]),
                lon=float(d["lon"]),
                label=str(d["label"]),
                precision=str(d["precision"]),
                country=str(d.get("country") or ""),
                region=str(region) if region else None,
                postal_code=str(postal_code) if postal_code else None,
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a place: {exc}") from exc
