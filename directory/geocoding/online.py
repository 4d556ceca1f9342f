"""Geocoding as the app uses it: offline by default, optionally an online service (any that
geopy knows) in front of it. Every failure of the service is logged and the offline answer
is used instead, so a user never sees an error caused by a third party."""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import geopy.geocoders
from flask_babel import gettext as _
from geopy.exc import ConfigurationError, GeocoderNotFound
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders.base import Geocoder
from geopy.location import Location

from ..vocabulary import Precision
from .offline import NEAR_CITY_KM, get_offline
from .place import PRECISIONS, GeocodeInputError, Place
from .text import (
    ZIP_PLUS4_RE,
    check_lat_lon,
    clean_query,
    coordinates_label,
    fold,
    parse_coordinates,
)

logger = logging.getLogger(__name__)

# How many results we ask an online service for; cached as one list and sliced per call,
# so the cache key does not need to include the caller's limit.
ONLINE_FETCH_LIMIT = 10
# After an online failure we stop calling the service for a while: when it is down, every
# search would otherwise wait for the full timeout before falling back.
ONLINE_RETRY_AFTER_SECONDS = 30.0


class GeocodeCache(Protocol):
    """Storage for online results. ``[]`` is a cached miss; ``None`` means not cached."""

    def get(self, provider: str, query: str) -> list[dict] | None: ...

    def set(self, provider: str, query: str, places: list[dict]) -> None: ...


_OFFLINE_NAMES = frozenset({"", "offline", "none", "local"})
_MAX_CACHE_KEY = 250

# Most precise first; used to prefer an offline ZIP over an online town-level match.
_PRECISION_RANK = {p: rank for rank, p in enumerate(PRECISIONS)}

# Nominatim's "addresstype" (or "type") of a result, mapped to our precision.
_NOMINATIM_PRECISION: dict[str, Precision] = {
    "postcode": Precision.POSTAL_CODE,
    "city": Precision.CITY,
    "town": Precision.CITY,
    "village": Precision.CITY,
    "hamlet": Precision.CITY,
    "municipality": Precision.CITY,
    "suburb": Precision.CITY,
    "borough": Precision.CITY,
    "city_district": Precision.CITY,
    "quarter": Precision.CITY,
    "neighbourhood": Precision.CITY,
    "locality": Precision.CITY,
    "county": Precision.REGION,
    "state_district": Precision.REGION,
    "state": Precision.REGION,
    "province": Precision.REGION,
    "region": Precision.REGION,
    "country": Precision.REGION,
}


def _precision_from_rank(rank: object) -> Precision:
    """Nominatim's place_rank when the type says nothing ("administrative" boundaries).

    Ranks: 4 country, 5-12 state/county, 13-25 city down to neighbourhood, 26+ street and
    house (https://nominatim.org/release-docs/latest/customize/Ranking/).
    """
    if isinstance(rank, (int, float)) and not isinstance(rank, bool):
        if rank <= 12:
            return Precision.REGION
        if rank <= 25:
            return Precision.CITY
    return Precision.ADDRESS


def _cache_key(text: str) -> str:
    """Normalised query for the cache: case and spacing never change a geocoder's answer.

    Long keys (a full address) are shortened with a digest so that a cache with a limited
    key column cannot make two different addresses collide.
    """
    key = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    if len(key) > _MAX_CACHE_KEY:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
        key = f"{key[: _MAX_CACHE_KEY - 33]}#{digest}"
    return key


class Geocoding:
    """Geocoding as the app uses it; build one from config and share it.

    ``provider="offline"`` (the default) never touches the network. Any other provider
    ("nominatim", or any name ``geopy.geocoders.get_geocoder_for_service`` knows) is asked
    first for free-text searches and addresses; its answers (hits and misses) are cached
    through ``cache``, and any failure falls back to the offline answer with a warning.
    Coordinates, reverse labels and suggestions are always answered offline: they need
    no service, and a browser location must not be sent to a third party.
    """

    def __init__(
        self,
        provider: str = "offline",
        *,
        user_agent: str | None = None,
        timeout: float = 5.0,
        min_delay_seconds: float = 1.0,
        domain: str | None = None,
        scheme: str | None = None,
        cache: GeocodeCache | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.provider = (provider or "offline").strip().lower()
        self.timeout = timeout
        self.cache = cache
        self.offline = get_offline()
        self._online: Callable[..., Any] | None = None
        self._online_kwargs: dict[str, Any] = {}
        self._online_down_until = 0.0
        if self.provider in _OFFLINE_NAMES:
            self.provider = "offline"
            return
        geocoder = self._make_online(
            user_agent=user_agent,
            timeout=timeout,
            domain=domain,
            scheme=scheme,
            options=dict(options or {}),
        )
        # RateLimiter keeps us within the service's usage policy (Nominatim: 1 req/s)
        # and is thread-safe. No retries: a user is waiting, and the offline fallback is
        # better than a second timeout.
        self._online = RateLimiter(
            geocoder.geocode,
            min_delay_seconds=min_delay_seconds,
            max_retries=0,
            error_wait_seconds=max(min_delay_seconds, 0.0),
            swallow_exceptions=False,
        )
        parameters = _parameters(geocoder.geocode)
        if "exactly_one" in parameters:
            self._online_kwargs["exactly_one"] = False
        if "limit" in parameters:
            self._online_kwargs["limit"] = ONLINE_FETCH_LIMIT
        if "addressdetails" in parameters:
            # Country, ISO 3166-2 code and postcode for our Place fields.
            self._online_kwargs["addressdetails"] = True
        if "timeout" in parameters:
            self._online_kwargs["timeout"] = timeout

    def _make_online(
        self,
        *,
        user_agent: str | None,
        timeout: float,
        domain: str | None,
        scheme: str | None,
        options: dict[str, Any],
    ) -> Geocoder:
        try:
            cls = geopy.geocoders.get_geocoder_for_service(self.provider)
        except GeocoderNotFound as exc:
            raise ValueError(
                f"Unknown geocoding provider {self.provider!r}; use 'offline', 'nominatim' "
                "or another service name known to geopy."
            ) from exc
        if cls is geopy.geocoders.Nominatim and not (user_agent and user_agent.strip()):
            # Nominatim's usage policy requires an identifying User-Agent; geopy's
            # default one gets blocked, which would make every lookup fail slowly.
            raise ValueError(
                "The nominatim geocoding provider needs a user_agent that identifies this "
                "application (e.g. 'ldn-directory/1.0 (admin@example.org)')."
            )
        kwargs: dict[str, Any] = {"timeout": timeout, **options}
        if user_agent:
            kwargs["user_agent"] = user_agent
        if domain:
            kwargs["domain"] = domain
        if scheme:
            kwargs["scheme"] = scheme
        try:
            return cls(**kwargs)
        except (TypeError, ValueError, ConfigurationError) as exc:
            raise ValueError(
                f"Could not configure geocoding provider {self.provider!r}: {exc}"
            ) from exc

    @property
    def online(self) -> bool:
        return self._online is not None

    # -- public API ----------------------------------------------------------------------

    def places(self, query: str, limit: int = 5) -> list[Place]:
        text = clean_query(query)
        if limit < 1:
            return []
        # Coordinates need no service, and a bare ZIP is answered exactly from the USPS
        # data: neither is worth a rate-limited request to a third party.
        if (
            self._online is not None
            and parse_coordinates(text) is None
            and not ZIP_PLUS4_RE.fullmatch(text)
        ):
            found = self._online_places(_cache_key(text), text)
            if found:
                return found[:limit]
        return self.offline.places(text, limit)

    def suggestions(self, query: str, limit: int = 5) -> list[str]:
        return self.offline.suggestions(query, limit)

    def reverse_label(self, lat: float, lon: float) -> Place:
        lat, lon = check_lat_lon(lat, lon)
        return self.offline._coordinates_place(lat, lon)

    def address(
        self,
        street: str | None,
        city: str | None,
        region: str | None,
        postal_code: str | None,
        country: str,
    ) -> Place | None:
        fields = {
            "street": street,
            "city": city,
            "region": region,
            "postal_code": postal_code,
            "country": country,
        }
        clean: dict[str, str | None] = {}
        for name, value in fields.items():
            clean[name] = clean_query(value, what=name) if value and value.strip() else None
        if not clean["country"]:
            raise GeocodeInputError(_("Please choose a country."))
        offline = self.offline.address(
            clean["street"], clean["city"], clean["region"], clean["postal_code"], country
        )
        if self._online is not None:
            locality = " ".join(v for v in (clean["region"], clean["postal_code"]) if v)
            pieces = [clean["street"], clean["city"], locality, clean["country"]]
            text = ", ".join(p for p in pieces if p)
            query: Any = text
            if self.provider == "nominatim":
                # Structured search is more precise than free text for a known layout;
                # Nominatim matches state names far better than USPS codes.
                query = {
                    key: value
                    for key, value in (
                        ("street", clean["street"]),
                        ("city", clean["city"]),
                        ("state", self._state_name(clean["region"], country)),
                        ("postalcode", clean["postal_code"]),
                        ("country", clean["country"]),
                    )
                    if value
                }
            found = self._online_places("address|" + _cache_key(text), query)
            # A service that only recognised the town must not beat our exact ZIP.
            if found and (
                offline is None
                or _PRECISION_RANK[found[0].precision] <= _PRECISION_RANK[offline.precision]
            ):
                return found[0]
        return offline

    def _state_name(self, region: str | None, country: str) -> str | None:
        """ "AL" -> "Alabama" for US addresses; anything else unchanged."""
        if not region or fold(country) not in self.offline._index.us_aliases:
            return region
        for entry in self.offline._index.named(fold(region)):
            if entry.kind == Precision.REGION and entry.country == "US" and entry.admin1:
                return entry.name
        return region

    # -- online plumbing -------------------------------------------------------------------

    def _online_places(self, key: str, query: Any) -> list[Place] | None:
        """Online results (possibly cached); None when the service could not be used."""
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        if time.monotonic() < self._online_down_until:
            return None
        assert self._online is not None
        try:
            result = self._online(query, **self._online_kwargs)
        except Exception as exc:
            # GeopyError covers timeouts, refused connections and HTTP errors, but a
            # provider may also raise plain exceptions on malformed responses; none of it
            # may reach the user.
            self._online_down_until = time.monotonic() + ONLINE_RETRY_AFTER_SECONDS
            logger.warning(
                "online geocoder %r failed (%s: %s); using offline data",
                self.provider,
                type(exc).__name__,
                exc,
            )
            return None
        self._online_down_until = 0.0
        if result is None:
            locations: list[Location] = []
        elif isinstance(result, Location):
            locations = [result]
        else:
            locations = list(result)
        found: list[Place] = []
        for location in locations:
            place = self._from_location(location)
            if place is not None:
                found.append(place)
        self._cache_set(key, found)
        return found

    def _cache_get(self, key: str) -> list[Place] | None:
        if self.cache is None:
            return None
        try:
            cached = self.cache.get(self.provider, key)
            if cached is None:
                return None
            return [Place.from_dict(item) for item in cached]
        except Exception as exc:  # a broken cache must not break search
            logger.warning("geocode cache read failed for %r: %s", key, exc)
            return None

    def _cache_set(self, key: str, found: list[Place]) -> None:
        if self.cache is None:
            return
        try:
            self.cache.set(self.provider, key, [place.to_dict() for place in found])
        except Exception as exc:
            logger.warning("geocode cache write failed for %r: %s", key, exc)

    def _from_location(self, location: Location) -> Place | None:
        try:
            lat, lon = check_lat_lon(location.latitude, location.longitude)
        except GeocodeInputError:
            return None
        raw = location.raw if isinstance(location.raw, Mapping) else {}
        address = raw.get("address")
        details: Mapping[str, Any] = address if isinstance(address, Mapping) else {}
        kind = str(raw.get("addresstype") or raw.get("type") or "")
        precision = _NOMINATIM_PRECISION.get(kind) or _precision_from_rank(raw.get("place_rank"))
        country = str(details.get("country_code") or "").upper()
        region = details.get("ISO3166-2-lvl4")
        postal_code = details.get("postcode")
        if not country or (country == "US" and not region):
            # Services without address details: borrow country/state from the nearest
            # offline city, which is right for all but border-line cases.
            hit = self.offline._index.nearest(lat, lon, NEAR_CITY_KM)
            if hit is not None:
                country = country or hit[0].country
                if country == hit[0].country:
                    region = region or hit[0].region_code()
        label = str(location.address or "").strip() or coordinates_label(lat, lon)
        return Place(
            lat=lat,
            lon=lon,
            label=label,
            precision=precision,
            country=country,
            region=str(region) if country == "US" and region else None,
            postal_code=str(postal_code) if postal_code else None,
        )


def _parameters(func: Callable[..., Any]) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return frozenset()
