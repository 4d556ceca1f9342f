"""Search: from a search's parameters to ranked listings. No Flask request in here.

The HTML page, the JSON API and the CLI all bind their input to forms.SearchForm and call
`perform()`, so they agree on what a valid search is, what each filter means and what the
messages say. `run()` answers with cards (directory/cards.py), not ORM listings: a search
costs a few indexed statements, each built once per set of conditions (spatial.Criteria) and
run with new values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache
from typing import Any, Protocol

from flask_babel import gettext as _
from flask_babel import ngettext
from sqlalchemy import (
    ColumnExpressionArgument,
    Float,
    and_,
    bindparam,
    exists,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from . import cards, geomath, spatial
from .cards import Card
from .extensions import db
from .facts import fresh_since
from .geocoding import GeocodeInputError, Geocoding, Place, parse_coordinates
from .geocoding.text import foreign_postcode_message
from .i18n import N_
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
# "Search further away" when nothing is found: this many times the radius, up to MAX_RADIUS.
WIDER_RADIUS_FACTOR = 4
ALSO_AVAILABLE_LIMIT = 20
# The codes of a search that can't be answered (the API's error.code).
INVALID_PARAMETER = "invalid_parameter"
PLACE_NOT_FOUND = "place_not_found"


@dataclass(frozen=True)
class Unit:
    km: float  # kilometres in one unit
    name: str


UNITS = {"mi": Unit(geomath.KM_PER_MILE, N_("miles")), "km": Unit(1.0, N_("kilometres"))}
DEFAULT_UNIT = "mi"

# What a search looks for: both kinds of listing, or one; with the page's words for each.
BOTH = "both"
KIND_LABELS: dict[str, str] = {
    BOTH: N_("Pharmacies and prescribers"),
    Kind.PHARMACY: N_("Pharmacies"),
    Kind.PRESCRIBER: N_("Prescribers"),
}
KIND_CHOICES = [(str(kind), label) for kind, label in KIND_LABELS.items()]
KINDS = tuple(str(kind) for kind in KIND_LABELS)
# "Also available" says who it lists, by what the search looks for.
ALSO_AVAILABLE_WHO: dict[str, str] = {
    BOTH: N_("pharmacies mail LDN, or prescribers see patients by telehealth,"),
    Kind.PHARMACY: N_("pharmacies mail LDN"),
    Kind.PRESCRIBER: N_("prescribers see patients by video or phone"),
}

# name -> (applies to, label). Booleans; each is a checkbox on the page and `name=1` in the API.
FLAG_FILTERS: dict[str, tuple[str, str]] = {
    "reliable": (BOTH, N_("On a curated reliable list")),
    "verified": (BOTH, N_("Checked by a moderator in the last 12 months")),
    SRPolicy.IR_ONLY.value: (Kind.PHARMACY, SRPolicy.IR_ONLY.label),
    # In the words of the cards' filler badges: it keeps "fine" and "take care", drops
    # "advised against" and "fillers unknown".
    "safe_fillers": (Kind.PHARMACY, N_("Fillers known: fine or take care, none advised against")),
    # Pharmacies from the NPI registry are listed before anyone has asked whether they make
    # LDN (makes_ldn unknown); this shows only those someone has confirmed.
    "confirmed": (Kind.PHARMACY, N_("Confirmed to make LDN")),
    "telehealth": (Kind.PRESCRIBER, N_("Offers telehealth")),
    "accepting": (Kind.PRESCRIBER, N_("Accepting new patients")),
}
# name -> the kind it applies to; the value is a code from the vocabulary table of that name.
CHOICE_FILTERS: dict[str, Kind] = {"dosage_form": Kind.PHARMACY, "condition": Kind.PRESCRIBER}


@dataclass(frozen=True)
class Params:
    near: str = ""
    lat: float | None = None
    lon: float | None = None
    radius: float = DEFAULT_RADIUS
    unit: str = DEFAULT_UNIT
    kind: str = BOTH
    page: int = 1
    filters: frozenset[str] = frozenset()
    dosage_form: str | None = None
    condition: str | None = None

    @property
    def radius_km(self) -> float:
        return self.radius * UNITS[self.unit].km

    @property
    def radius_text(self) -> str:
        return format_number(self.radius)

    @property
    def looking_for(self) -> str:
        return KIND_LABELS[self.kind]

    def query_args(self, **changes: Any) -> dict[str, Any]:
        """The parameters as a query string mapping, for links to other pages or views."""
        p = replace(self, **changes)
        args: dict[str, Any] = {"radius": format_number(p.radius), "unit": p.unit, "kind": p.kind}
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


def format_number(value: float) -> str:
    """25.0 as "25", 2.5 as "2.5": how a radius is shown and linked."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class SearchError(ValueError):
    """A search that can't be answered. `errors` maps a parameter to a plain message."""

    def __init__(
        self,
        errors: Mapping[str, str],
        *,
        code: str = INVALID_PARAMETER,
        suggestions: list[str] | None = None,
    ) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = dict(errors)
        self.code = code
        self.suggestions = suggestions or []


# --- filters ----------------------------------------------------------------------------------


def _only_for(kind: Kind, condition: ColumnExpressionArgument[bool]) -> ColumnElement[bool]:
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
        # A pharmacy known not to make LDN (or a prescriber who told a volunteer they don't
        # prescribe it) is no answer to this search, whatever else it does (unknown still
        # shows: its card says to call first).
        Listing.makes_ldn.is_not(False),
    ]
    if kind != BOTH:
        out.append(Listing.kind == Kind.parse(kind))
    if distance_list:
        out.append(Listing.telehealth_only.is_(False))
    if "reliable" in f:
        out.append(Listing.on_curated_list.is_(True))
    if since is not None:
        out.append(Listing.verified_on >= since)
    if SRPolicy.IR_ONLY in f:
        out.append(_only_for(Kind.PHARMACY, Listing.sr_policy == SRPolicy.IR_ONLY))
    if "confirmed" in f:
        out.append(_only_for(Kind.PHARMACY, Listing.makes_ldn.is_(True)))
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

    @property
    def wider_radius(self) -> float | None:
        """The radius to offer when nothing was found, or None when it can't grow."""
        radius = self.params.radius
        return min(radius * WIDER_RADIUS_FACTOR, MAX_RADIUS) if radius < MAX_RADIUS else None

    @property
    def also_available_who(self) -> str:
        return ALSO_AVAILABLE_WHO[self.params.kind]


class SearchInput(Protocol):
    """What perform() needs of its input: forms.SearchForm, bound to a query string."""

    def validate(self) -> bool: ...

    def params(self) -> Params: ...

    def add_errors(self, errors: Mapping[str, str]) -> None: ...

    def messages(self) -> dict[str, str]: ...


@dataclass
class Outcome:
    """What one search came to: a result, or a message per parameter (and, for a place we
    couldn't find, suggestions). `params` is the search as understood, wrong values replaced
    by their defaults, so the page can show the form again with the choices kept."""

    params: Params
    result: Result | None = None
    errors: dict[str, str] = field(default_factory=dict)
    code: str = INVALID_PARAMETER
    suggestions: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        return "; ".join(self.errors.values())

    @property
    def error_summary(self) -> list[str]:
        """The messages listed above the form: none when the only one is about the place,
        which is shown next to its box."""
        return [] if list(self.errors) == ["near"] else list(self.errors.values())


def perform(
    form: SearchInput,
    geocoding: Geocoding,
    *,
    today: date | None = None,
    also_available: bool = True,
) -> Outcome:
    """Check the input and run the search: the one entry point of the page, API and CLI.
    Messages from running it (an unknown place, a page past the last) go on the form too.
    `also_available=False` skips that section (an API caller that said it doesn't want it)."""
    if not form.validate():
        return Outcome(form.params(), errors=form.messages())
    params = form.params()
    try:
        result = run(params, geocoding, today=today, also_available=also_available)
    except SearchError as exc:
        form.add_errors(exc.errors)
        return Outcome(params, errors=form.messages(), code=exc.code, suggestions=exc.suggestions)
    return Outcome(params, result)


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
        raise SearchError({"near": str(exc)}) from None
    if places and _only_the_region_matched(params.near, places[0]):
        # "Seatle, WA" would otherwise search from the middle of Washington state, which
        # looks like an answer but isn't one: ask instead, with "Seattle, WA" as a suggestion.
        places = []
    if not places:
        foreign = foreign_postcode_message(params.near)
        suggestions = [] if foreign else geocoding.suggestions(params.near)
        raise SearchError(
            {
                "near": foreign
                or _(
                    "We couldn't find '%(place)s'. Try a ZIP code, or a city and state.",
                    place=params.near,
                )
            },
            code=PLACE_NOT_FOUND,
            suggestions=suggestions,
        )
    return places[0], places[1:]


def _only_the_region_matched(query: str, best: Place) -> bool:
    first = query.split(",", 1)[0].strip().casefold()
    return "," in query and best.precision == "region" and first not in best.label.casefold()


def run(
    params: Params,
    geocoding: Geocoding,
    *,
    today: date | None = None,
    also_available: bool = True,
) -> Result:
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
                "page": ngettext(
                    "There is only 1 page of results for this search.",
                    "There are only %(num)d pages of results for this search.",
                    pages,
                )
            },
        )
    # "Also available": mail-order pharmacies that ship to the searcher's state or country,
    # and telehealth prescribers licensed there, that are not on the distance list. Page 1 only.
    reach = []
    if params.page == 1 and also_available:
        reach = _also_available_ids(origin, params, conditions(params, today=today))
    # One load of cards for both lists.
    by_id = cards.load([i for i, _ in found.hits] + reach)
    per_unit = UNITS[params.unit].km
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
    if kind in (BOTH, Kind.PHARMACY):
        streams.append(
            (RegionRole.SHIPS_TO, and_(Listing.kind == Kind.PHARMACY, Listing.mail_order))
        )
    if kind in (BOTH, Kind.PRESCRIBER):
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
        # Both columns descending, as the index holds them: with the id ascending PostgreSQL
        # sorted every listing of the first rank (thousands share rank 0, never verified)
        # before it could stop: 233 ms at 1M, against under 2 ms walking the index.
        .order_by(ListingRegion.rank.desc(), ListingRegion.listing_id.desc())
        .limit(ALSO_AVAILABLE_LIMIT)
        .subquery()
        for role, condition in _reach_streams(kind)
        for n in range(n_codes)
    ]
    return union_all(*(select(walk.c.listing_id, walk.c.rank) for walk in walks))


def _also_available_ids(origin: Place, params: Params, criteria: spatial.Criteria) -> list[int]:
    """Up to a page of listing ids, on a curated list first, then the most recently verified
    (Listing.reach_rank), then the most recently listed."""
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
    with spatial.index_walk():
        rows = db.session.execute(stmt, values).all()
    for listing_id, rank in rows:
        ranked[listing_id] = (-rank, -listing_id)
    return sorted(ranked, key=ranked.__getitem__)[:ALSO_AVAILABLE_LIMIT]
