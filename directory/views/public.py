"""Pages for patients and caregivers: home, search results and listing pages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from .. import health
from .. import search as search_service
from ..forms import SearchForm
from ..geocoding.app import geocoder
from ..listings import detail_url, json_ld
from ..models import Kind, Listing, public_listing
from ..nppes import registry_entry

bp = Blueprint("public", __name__)


@bp.get("/")
def home() -> ResponseReturnValue:
    return render_template("public/home.html", search_form=SearchForm.from_args({}))


def _listing_or_404(listing_id: int, kind: Kind) -> Listing:
    listing = public_listing(listing_id)
    if listing is None or listing.kind != kind:
        abort(404)
    return listing


# What a result card's link carries back to the search it came from (`?from=`): only the
# search's own parameters, each value cut short. The link back is always url_for of the search
# page, so no value can make it point anywhere else.
SEARCH_ARGS = frozenset(
    {"near", "lat", "lon", "radius", "unit", "kind", "page", "dosage_form", "condition"}
    | set(search_service.FLAG_FILTERS)
)
FROM = "from"
_MAX_FROM = 1000


def from_search(query_args: dict[str, object]) -> str:
    """The `from` value for a card's link: the search's query string."""
    return urlencode(query_args)


def _back_to_search(raw: str | None) -> str | None:
    """The search page a listing was opened from, or None (no `from`, or nothing usable in it).

    Why a parameter and not the Referer: a page that depended on the Referer would have to be
    `Vary: Referer`, which no cache can share; with the search in the address, each address is
    one page and caches as before (the ETag is per data version, so a copy is still
    revalidated with one cheap request). Search engines are pointed to the plain address by
    the page's canonical link."""
    if not raw or len(raw) > _MAX_FROM:
        return None
    args = [(k, v[:200]) for k, v in parse_qsl(raw, keep_blank_values=True) if k in SEARCH_ARGS]
    if not any(k in ("near", "lat") for k, _v in args):
        return None
    return url_for("public.search") + "?" + urlencode(args)


def _detail(listing_id: int, slug: str | None, kind: Kind) -> ResponseReturnValue:
    listing = _listing_or_404(listing_id, kind)
    back = request.args.get(FROM, type=str)
    if slug != listing.slug:
        # One canonical address per listing, even after a rename (the way back comes along).
        target = detail_url(listing) + (f"?{urlencode({FROM: back})}" if back else "")
        return redirect(target, code=301)
    return render_template(
        "public/listing.html",
        listing=listing,
        json_ld=json_ld(listing),
        registry=registry_entry(listing.id),
        back_to_search=_back_to_search(back),
    )


@bp.get("/pharmacies/<int:listing_id>")
@bp.get("/pharmacies/<int:listing_id>-<slug>")
def pharmacy(listing_id: int, slug: str | None = None) -> ResponseReturnValue:
    return _detail(listing_id, slug, Kind.PHARMACY)


@bp.get("/prescribers/<int:listing_id>")
@bp.get("/prescribers/<int:listing_id>-<slug>")
def prescriber(listing_id: int, slug: str | None = None) -> ResponseReturnValue:
    return _detail(listing_id, slug, Kind.PRESCRIBER)


@bp.get("/about")
def about() -> ResponseReturnValue:
    return render_template("public/about.html")


@bp.get("/search")
def search() -> ResponseReturnValue:
    """A bad search renders the same page, with each message next to its field."""
    form = SearchForm.from_args(request.args)
    outcome = search_service.perform(form, geocoder())
    return render_template(
        "public/results.html",
        search_form=form,
        outcome=outcome,
        params=outcome.params,
        result=outcome.result,
        # Each card's link carries this search, so the listing's breadcrumb leads back to it.
        back=from_search(outcome.params.query_args()) if outcome.result else None,
    ), (400 if outcome.errors else 200)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: the process answers. Touches nothing else, so a database outage never gets
    healthy workers restarted; /readyz is the check that looks further."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    ready, checks = health.readiness()
    return jsonify(status="ready" if ready else "not ready", checks=checks), (200 if ready else 503)
