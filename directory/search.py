"""Search: from request-shaped parameters to ranked listings. No Flask request in here.

The HTML page, the JSON API and the CLI all call `parse()` then `run()`, so they agree on what
a valid search is, what each filter means and what the messages say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import and_, exists, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from . import spatial
from .extensions import db
from .geocoding import GeocodeInputError, Geocoding, Place, parse_coordinates
from .models import (
    STALE_AFTER,
    Filler,
    FlagType,
    Guidance,
    Kind,
    Listing,
    ListingRegion,
    RegionRole,
    ReliabilityFlag,
    SRPolicy,
    Status,
    listing_conditions,
    listing_dosage_forms,
    listing_fillers,
)

PAGE_SIZE = 20
MAX_PAGE = spatial.TOTAL_CAP // PAGE_SIZE
MAX_RADIUS = 500
DEFAULT_RADIUS = 25
UNITS = {"mi": spatial.KM_PER_MILE, "km": 1.0}
KINDS = ("both", "pharmacy", "prescriber")
ALSO_AVAILABLE_LIMIT = 20

# name -> (applies to, label). Booleans; each is a checkbox on the page and `name=1` in the API.
FLAG_FILTERS: dict[str, tuple[str, str]] = {
    "reliable": ("both", "On a curated reliable list"),
    "verified": ("both", "Checked by a moderator in the last 12 months"),
    "ir_only": ("pharmacy", "Makes immediate-release LDN only"),
    "safe_fillers": ("pharmacy", "Known fillers, none advised against"),
    "telehealth": ("prescriber", "Offers telehealth"),
    "accepting": ("prescriber", "Accepting new patients"),
}
CHOICE_FILTERS = ("dosage_form", "condition")
TRUE_VALUES = {"1", "true", "on", "yes", "y"}
FALSE_VALUES = {"", "0", "false", "off", "no", "n"}


@dataclass(frozen=True)
class Params:
    near: str = ""
    lat: float | None = None
    lon: float | None = None
    radius: float = DEFAULT_RADIUS
    unit: str = "mi"
    kind: str = "both"
    page: int = 1
    filters: frozenset[str] = frozenset()
    dosage_form: str | None = None
    condition: str | None = None

    @property
    def radius_km(self) -> float:
        return self.radius * UNITS[self.unit]

    def query_args(self, **changes: Any) -> dict[str, Any]:
        """The parameters as a query string mapping, for links to other pages or views."""
        p = replace(self, **changes)
        args: dict[str, Any] = {"radius": _fmt_number(p.radius), "unit": p.unit, "kind": p.kind}
        if p.lat is not None and p.lon is not None and not p.near:
            args.update(lat=f"{p.lat:.5f}", lon=f"{p.lon:.5f}")
        else:
            args["near"] = p.near
        args.update({name: "1" for name in sorted(p.filters)})
        if p.dosage_form:
            args["dosage_form"] = p.dosage_form
        if p.condition:
            args["condition"] = p.condition
        if p.page != 1:
            args["page"] = p.page
        return args


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class SearchError(ValueError):
    """Bad or unanswerable input. `errors` maps a parameter to a plain message for the user."""

    def __init__(
        self,
        errors: Mapping[str, str],
        *,
        code: str = "invalid_parameter",
        suggestions: list[str] | None = None,
        params: Params | None = None,
    ) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = dict(errors)
        self.code = code
        self.suggestions = suggestions or []
        self.params = params


def _number(raw: str, name: str, errors: dict[str, str], message: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        errors[name] = message
        return None
    if not math.isfinite(value):
        errors[name] = message
        return None
    return value


def parse(args: Mapping[str, str], vocab_codes: Mapping[str, set[str]] | None = None) -> Params:
    """Check raw parameters; raise SearchError naming every problem at once."""
    errors: dict[str, str] = {}
    near = (args.get("near") or "").strip()
    if len(near) > 200:
        errors["near"] = (
            "Please use a shorter place name: a ZIP code or a city and state is enough."
        )
        near = near[:200]
    lat = lon = None
    raw_lat, raw_lon = (args.get("lat") or "").strip(), (args.get("lon") or "").strip()
    if raw_lat or raw_lon:
        if not (raw_lat and raw_lon):
            errors["lat"] = "Latitude and longitude must be given together."
        else:
            lat = _number(raw_lat, "lat", errors, "Latitude must be a number between -90 and 90.")
            lon = _number(
                raw_lon, "lon", errors, "Longitude must be a number between -180 and 180."
            )
            if lat is not None and not -90 <= lat <= 90:
                errors["lat"] = "Latitude must be a number between -90 and 90."
            if lon is not None and not -180 <= lon <= 180:
                errors["lon"] = "Longitude must be a number between -180 and 180."
    raw_radius = (args.get("radius") or "").strip()
    radius: float = DEFAULT_RADIUS
    if raw_radius:
        value = _number(raw_radius, "radius", errors, "The distance must be a number, like 25.")
        if value is not None:
            if value <= 0 or value > MAX_RADIUS:
                errors["radius"] = f"The distance must be more than 0 and at most {MAX_RADIUS}."
            else:
                radius = value
    unit = (args.get("unit") or "mi").strip().lower()
    if unit not in UNITS:
        errors["unit"] = "The unit must be mi (miles) or km (kilometres)."
        unit = "mi"
    kind = (args.get("kind") or "both").strip().lower()
    if kind not in KINDS:
        errors["kind"] = "Choose pharmacies, prescribers or both."
        kind = "both"
    page = 1
    raw_page = (args.get("page") or "").strip()
    if raw_page:
        # ASCII digits only, and short: "²".isdigit() is True but int("²") raises, and int()
        # refuses strings of more than 4300 digits.
        if not (raw_page.isascii() and raw_page.isdigit() and len(raw_page) <= 6) or not (
            1 <= int(raw_page) <= MAX_PAGE
        ):
            errors["page"] = f"The page must be a whole number from 1 to {MAX_PAGE}."
        else:
            page = int(raw_page)
    filters = set()
    for name in FLAG_FILTERS:
        raw = (args.get(name) or "").strip().lower()
        if raw in TRUE_VALUES:
            filters.add(name)
        elif raw not in FALSE_VALUES:
            errors[name] = f"{name} must be 1 or 0."
    choices: dict[str, str | None] = {}
    for name in CHOICE_FILTERS:
        raw = (args.get(name) or "").strip()
        choices[name] = raw or None
        known = (vocab_codes or {}).get(name)
        if raw and known is not None and raw not in known:
            errors[name] = f"Unknown {name.replace('_', ' ')}: choose one from the list."
            choices[name] = None
    params = Params(
        near=near,
        lat=lat,
        lon=lon,
        radius=radius,
        unit=unit,
        kind=kind,
        page=page,
        filters=frozenset(filters),
        **choices,
    )
    if not near and (lat is None or lon is None) and "lat" not in errors and "lon" not in errors:
        errors["near"] = (
            "Please tell us where you are: a ZIP code, a city and state, or an address."
        )
    if errors:
        raise SearchError(errors, params=params)
    return params


def vocab_codes() -> dict[str, set[str]]:
    from .models import Condition, DosageForm

    return {
        "dosage_form": set(db.session.scalars(select(DosageForm.code))),
        "condition": set(db.session.scalars(select(Condition.code))),
    }


# --- filters ----------------------------------------------------------------------------------


def _only_for(kind: Kind, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # A pharmacy-only filter must not hide prescribers when searching for both, and vice versa.
    return or_(Listing.kind != kind, condition)


def conditions(params: Params, *, today: date | None = None) -> list[ColumnElement[bool]]:
    today = today or date.today()
    out: list[ColumnElement[bool]] = [Listing.status != Status.CLOSED]
    if params.kind != "both":
        out.append(Listing.kind == Kind(params.kind))
    f = params.filters
    if "reliable" in f:
        out.append(
            exists().where(
                ReliabilityFlag.listing_id == Listing.id,
                ReliabilityFlag.type == FlagType.CURATED_LIST,
            )
        )
    if "verified" in f:
        out.append(Listing.verified_on >= today - STALE_AFTER)
    if "ir_only" in f:
        out.append(_only_for(Kind.PHARMACY, Listing.sr_policy == SRPolicy.IR_ONLY))
    if "safe_fillers" in f:
        advised_against = exists().where(
            listing_fillers.c.listing_id == Listing.id,
            listing_fillers.c.filler_code == Filler.code,
            Filler.guidance == Guidance.ADVISED_AGAINST,
        )
        out.append(_only_for(Kind.PHARMACY, and_(Listing.fillers_known, not_(advised_against))))
    if "telehealth" in f:
        out.append(_only_for(Kind.PRESCRIBER, Listing.telehealth))
    if "accepting" in f:
        out.append(_only_for(Kind.PRESCRIBER, Listing.accepting_new_patients.is_(True)))
    if params.dosage_form:
        out.append(
            _only_for(
                Kind.PHARMACY,
                exists().where(
                    listing_dosage_forms.c.listing_id == Listing.id,
                    listing_dosage_forms.c.dosage_form_code == params.dosage_form,
                ),
            )
        )
    if params.condition:
        out.append(
            _only_for(
                Kind.PRESCRIBER,
                exists().where(
                    listing_conditions.c.listing_id == Listing.id,
                    listing_conditions.c.condition_code == params.condition,
                ),
            )
        )
    return out


# --- running a search -------------------------------------------------------------------------


@dataclass
class Hit:
    listing: Listing
    distance: float  # in the search's unit


@dataclass
class Result:
    params: Params
    origin: Place
    hits: list[Hit]
    total: int
    total_capped: bool
    also_available: list[Listing] = field(default_factory=list)
    other_places: list[Place] = field(default_factory=list)

    @property
    def place_name(self) -> str:
        """The origin for "near X" sentences: a browser location's label already says "near"."""
        return self.origin.label.removeprefix("near ")

    @property
    def pages(self) -> int:
        return max(1, min(MAX_PAGE, math.ceil(self.total / PAGE_SIZE)))


def locate(params: Params, geocoding: Geocoding) -> tuple[Place, list[Place]]:
    """The search origin and, for ambiguous names, the other places it could have meant."""
    if params.lat is not None and params.lon is not None and not params.near:
        return geocoding.reverse_label(params.lat, params.lon), []
    try:
        coords = parse_coordinates(params.near)
        if coords is not None:
            return geocoding.reverse_label(*coords), []
        places = geocoding.places(params.near, limit=6)
    except GeocodeInputError as exc:
        raise SearchError({"near": str(exc)}, params=params) from None
    if places and _only_the_region_matched(params.near, places[0]):
        # "Seatle, WA" would otherwise search from the middle of Washington state, which
        # looks like an answer but isn't one: ask instead, with "Seattle, WA" as a suggestion.
        places = []
    if not places:
        suggestions = geocoding.suggestions(params.near)
        raise SearchError(
            {"near": f"We couldn't find '{params.near}'. Try a ZIP code, or a city and state."},
            code="place_not_found",
            suggestions=suggestions,
            params=params,
        )
    return places[0], places[1:]


def _only_the_region_matched(query: str, best: Place) -> bool:
    first = query.split(",", 1)[0].strip().casefold()
    return "," in query and best.precision == "region" and first not in best.label.casefold()


def run(params: Params, geocoding: Geocoding, *, today: date | None = None) -> Result:
    origin, others = locate(params, geocoding)
    conds = conditions(params, today=today)
    # Telehealth-only prescribers have no office to travel to: never on the distance list.
    distance_conds = [*conds, Listing.telehealth_only.is_(False)]
    found = spatial.nearest(
        origin.lat,
        origin.lon,
        params.radius_km,
        distance_conds,
        limit=PAGE_SIZE,
        offset=(params.page - 1) * PAGE_SIZE,
    )
    by_id = _load([i for i, _ in found.hits])
    per_unit = UNITS[params.unit]
    hits = [Hit(by_id[i], km / per_unit) for i, km in found.hits if i in by_id]
    return Result(
        params=params,
        origin=origin,
        hits=hits,
        total=found.total,
        total_capped=found.total_capped,
        also_available=also_available(origin, params, conds) if params.page == 1 else [],
        other_places=others,
    )


def _load(ids: list[int]) -> dict[int, Listing]:
    if not ids:
        return {}
    return {
        listing.id: listing
        for listing in db.session.scalars(select(Listing).where(Listing.id.in_(ids)))
    }


def also_available(
    origin: Place, params: Params, conds: list[ColumnElement[bool]]
) -> list[Listing]:
    """Mail-order pharmacies that ship to the searcher's state or country, and telehealth
    prescribers licensed there, that are not already on the distance list: on a curated list
    first, then the most recently verified (Listing.reach_rank)."""
    codes = [c for c in (origin.region, origin.country) if c]
    if not codes:
        return []
    reach: list[tuple[RegionRole, ColumnElement[bool]]] = []
    if params.kind in ("both", "pharmacy"):
        reach.append((RegionRole.SHIPS_TO, and_(Listing.kind == Kind.PHARMACY, Listing.mail_order)))
    if params.kind in ("both", "prescriber"):
        reach.append(
            (RegionRole.LICENSED_IN, and_(Listing.kind == Kind.PRESCRIBER, Listing.telehealth))
        )
    beyond_radius = or_(
        Listing.lat.is_(None),
        Listing.telehealth_only,
        spatial.sql_distance_km(origin.lat, origin.lon) > params.radius_km,
    )
    # One walk of the (role, code, rank) index per stream, best first, stopping at a page's
    # worth: the cost no longer grows with how many listings reach the state.
    ranked: dict[int, tuple[int, int]] = {}
    for role, condition in reach:
        for code in codes:
            rows = db.session.execute(
                select(ListingRegion.listing_id, ListingRegion.rank)
                .join(Listing, Listing.id == ListingRegion.listing_id)
                .where(ListingRegion.role == role, ListingRegion.code == code)
                .where(condition, beyond_radius, *conds)
                .order_by(ListingRegion.rank.desc(), ListingRegion.listing_id)
                .limit(ALSO_AVAILABLE_LIMIT)
            )
            for listing_id, rank in rows:
                ranked[listing_id] = (-rank, listing_id)
    best = sorted(ranked, key=ranked.__getitem__)[:ALSO_AVAILABLE_LIMIT]
    by_id = _load(best)
    return [by_id[i] for i in best if i in by_id]
