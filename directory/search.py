"""Search: from request-shaped parameters to ranked listings. No Flask request in here.

The HTML page, the JSON API and the CLI all call `parse()` then `run()`, so they agree on what
a valid search is, what each filter means and what the messages say. `run()` answers with
cards (directory/cards.py), not ORM listings: a search costs a few indexed statements, each
built once per set of conditions (spatial.Criteria) and run with new values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import Float, and_, bindparam, exists, not_, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from . import cards, geomath, spatial
from .cards import Card
from .extensions import db
from .facts import fresh_since
from .geocoding import GeocodeInputError, Geocoding, Place, parse_coordinates
from .models import (
    Filler,
    Guidance,
    Kind,
    Listing,
    ListingRegion,
    RegionRole,
    SRPolicy,
    Status,
    listing_conditions,
    listing_dosage_forms,
    listing_fillers,
)

PAGE_SIZE = 20
MAX_PAGE = spatial.TOTAL_CAP // PAGE_SIZE
MIN_RADIUS = 1
MAX_RADIUS = 500
DEFAULT_RADIUS = 25.0
UNITS = {"mi": geomath.KM_PER_MILE, "km": 1.0}
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


# Plain decimal numbers only: float() would also take "1_0", "1e-7" and Arabic-Indic digits.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
# What people type when they mean "where I am": the place search can't answer that, the
# browser's location can.
HERE_WORDS = frozenset(
    {"near me", "me", "here", "nearby", "near", "my location", "current location", "my area"}
)


def _number(raw: str, name: str, errors: dict[str, str], message: str) -> float | None:
    if not _DECIMAL.fullmatch(raw):
        errors[name] = message
        return None
    return float(raw)


def parse(args: Mapping[str, str], vocab_codes: Mapping[str, set[str]] | None = None) -> Params:
    """Check raw parameters; raise SearchError naming every problem at once."""
    errors: dict[str, str] = {}
    near = (args.get("near") or "").strip()
    if len(near) > 200:
        errors["near"] = (
            "Please use a shorter place name: a ZIP code or a city and state is enough."
        )
        near = near[:200]
    if " ".join(re.findall(r"\w+", near.casefold())) in HERE_WORDS:
        errors["near"] = (
            "To search near where you are, use the “Use my location” button, "
            "or type your ZIP code or town."
        )
    lat = lon = None
    raw_lat, raw_lon = (args.get("lat") or "").strip(), (args.get("lon") or "").strip()
    # A typed place wins over a browser position (the form keeps the last one in hidden
    # fields), so a stale or broken position never blocks a new search.
    if (raw_lat or raw_lon) and not near:
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
            if value < MIN_RADIUS or value > MAX_RADIUS:
                errors["radius"] = (
                    f"The distance must be a number from {MIN_RADIUS} to {MAX_RADIUS}."
                )
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
        known = (vocab_codes or {}).get(name) if raw else None
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


class VocabCodes(Mapping[str, set[str]]):
    """The known codes for `dosage_form` and `condition`, read from the database only when a
    search names one (most don't), once per search."""

    def __init__(self) -> None:
        self._loaded: dict[str, set[str]] = {}

    def __getitem__(self, name: str) -> set[str]:
        if name not in self._loaded:
            from .models import Condition, DosageForm

            model = {"dosage_form": DosageForm, "condition": Condition}[name]
            self._loaded[name] = set(db.session.scalars(select(model.code)))
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(CHOICE_FILTERS)

    def __len__(self) -> int:
        return len(CHOICE_FILTERS)


def vocab_codes() -> VocabCodes:
    return VocabCodes()


# --- filters ----------------------------------------------------------------------------------


def _only_for(kind: Kind, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # A pharmacy-only filter must not hide prescribers when searching for both, and vice versa.
    return or_(Listing.kind != kind, condition)


def conditions(
    params: Params, *, today: date | None = None, distance_list: bool = False
) -> spatial.Criteria:
    """The listings a search may show, as clauses on `listings` with a key naming them (so
    the statements built from them are built once; see spatial.Criteria). With
    `distance_list`, also leave out telehealth-only prescribers: they have no office to travel
    to, so they never appear on the list sorted by distance."""
    since = fresh_since(today) if "verified" in params.filters else None
    return _criteria(
        params.kind,
        tuple(sorted(params.filters)),
        params.dosage_form,
        params.condition,
        since,
        distance_list,
    )


@lru_cache(maxsize=256)
def _criteria(
    kind: str,
    f: tuple[str, ...],
    dosage_form: str | None,
    condition: str | None,
    since: date | None,
    distance_list: bool,
) -> spatial.Criteria:
    out: list[ColumnElement[bool]] = [
        Listing.status != Status.CLOSED,
        # A pharmacy known not to make LDN is no answer to this search, whatever else it does
        # (unknown still shows: its card says to call first).
        _only_for(Kind.PHARMACY, Listing.makes_ldn.is_not(False)),
    ]
    if kind != "both":
        out.append(Listing.kind == Kind(kind))
    if distance_list:
        out.append(Listing.telehealth_only.is_(False))
    if "reliable" in f:
        out.append(Listing.on_curated_list.is_(True))
    if since is not None:
        out.append(Listing.verified_on >= since)
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
    if dosage_form:
        out.append(
            _only_for(
                Kind.PHARMACY,
                exists().where(
                    listing_dosage_forms.c.listing_id == Listing.id,
                    listing_dosage_forms.c.dosage_form_code == dosage_form,
                ),
            )
        )
    if condition:
        out.append(
            _only_for(
                Kind.PRESCRIBER,
                exists().where(
                    listing_conditions.c.listing_id == Listing.id,
                    listing_conditions.c.condition_code == condition,
                ),
            )
        )
    key = (kind, f, dosage_form, condition, since, distance_list)
    return spatial.Criteria(out, key=key)


# --- running a search -------------------------------------------------------------------------


@dataclass
class Hit:
    listing: Card
    distance: float  # in the search's unit


@dataclass
class Result:
    params: Params
    origin: Place
    hits: list[Hit]
    total: int
    total_capped: bool
    also_available: list[Card] = field(default_factory=list)
    other_places: list[Place] = field(default_factory=list)
    # The place is a whole state or country: there is no distance list (see run()).
    region_only: bool = False

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
    # "Alabama" or "USA" is no point to measure from: 25 miles around the middle of a state
    # says "nothing found" while its cities have pharmacies. Such a search gets no distance
    # list, the page asks for a ZIP code or town, and "also available" (which is by state or
    # country) answers what it can.
    region_only = origin.precision == "region"
    if region_only:
        found = spatial.Nearest(hits=[], total=0, total_capped=False)
    else:
        found = spatial.nearest(
            origin.lat,
            origin.lon,
            params.radius_km,
            conditions(params, today=today, distance_list=True),
            limit=PAGE_SIZE,
            offset=(params.page - 1) * PAGE_SIZE,
        )
    if params.page > 1 and not found.hits:
        pages = max(1, math.ceil(found.total / PAGE_SIZE))
        raise SearchError(
            {
                "page": f"There {'is only 1 page' if pages == 1 else f'are only {pages} pages'} "
                "of results for this search."
            },
            params=params,
        )
    # "Also available": mail-order pharmacies that ship to the searcher's state or country,
    # and telehealth prescribers licensed there, that are not on the distance list. Page 1 only.
    reach = []
    if params.page == 1:
        reach = _also_available_ids(origin, params, conditions(params, today=today))
    # One load of cards for both lists.
    by_id = cards.load([i for i, _ in found.hits] + reach)
    per_unit = UNITS[params.unit]
    return Result(
        params=params,
        origin=origin,
        hits=[Hit(by_id[i], km / per_unit) for i, km in found.hits if i in by_id],
        total=found.total,
        total_capped=found.total_capped,
        also_available=[by_id[i] for i in reach if i in by_id],
        other_places=others,
        region_only=region_only,
    )


def _reach_streams(kind: str) -> tuple[tuple[RegionRole, ColumnElement[bool]], ...]:
    streams: list[tuple[RegionRole, ColumnElement[bool]]] = []
    if kind in ("both", "pharmacy"):
        streams.append(
            (RegionRole.SHIPS_TO, and_(Listing.kind == Kind.PHARMACY, Listing.mail_order))
        )
    if kind in ("both", "prescriber"):
        streams.append(
            (RegionRole.LICENSED_IN, and_(Listing.kind == Kind.PRESCRIBER, Listing.telehealth))
        )
    return tuple(streams)


@lru_cache(maxsize=256)
def _also_available_statement(criteria: spatial.Criteria, kind: str, n_codes: int) -> Any:
    origin_lat, origin_lon = (
        bindparam("origin_lat", type_=Float),
        bindparam("origin_lon", type_=Float),
    )
    beyond_radius = or_(
        Listing.lat.is_(None),
        Listing.telehealth_only,
        spatial.sql_distance_km(origin_lat, origin_lon) > bindparam("radius_km", type_=Float),
    )
    # One walk of the (role, code, rank) index per stream and code, best first, each stopping
    # at a page's worth, all in one round trip: the cost does not grow with how many listings
    # reach the state.
    walks = [
        select(ListingRegion.listing_id, ListingRegion.rank)
        .join(Listing, Listing.id == ListingRegion.listing_id)
        .where(ListingRegion.role == role, ListingRegion.code == bindparam(f"code_{n}"))
        .where(condition, beyond_radius, *criteria.clauses)
        .order_by(ListingRegion.rank.desc(), ListingRegion.listing_id)
        .limit(ALSO_AVAILABLE_LIMIT)
        .subquery()
        for role, condition in _reach_streams(kind)
        for n in range(n_codes)
    ]
    return union_all(*(select(walk.c.listing_id, walk.c.rank) for walk in walks))


def _also_available_ids(origin: Place, params: Params, criteria: spatial.Criteria) -> list[int]:
    """Up to a page of listing ids, on a curated list first, then the most recently verified
    (Listing.reach_rank)."""
    codes = [c for c in (origin.region, origin.country) if c]
    if not codes:
        return []
    stmt = _also_available_statement(criteria, params.kind, len(codes))
    values: dict[str, Any] = {
        "origin_lat": origin.lat,
        "origin_lon": origin.lon,
        "radius_km": params.radius_km,
    }
    values.update({f"code_{n}": code for n, code in enumerate(codes)})
    ranked: dict[int, tuple[int, int]] = {}
    for listing_id, rank in db.session.execute(stmt, values):
        ranked[listing_id] = (-rank, listing_id)
    return sorted(ranked, key=ranked.__getitem__)[:ALSO_AVAILABLE_LIMIT]
