"""Pages for patients and caregivers: home, search results and listing pages."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request
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


def _detail(listing_id: int, slug: str | None, kind: Kind) -> ResponseReturnValue:
    listing = _listing_or_404(listing_id, kind)
    if slug != listing.slug:
        # One canonical address per listing, even after a rename.
        return redirect(detail_url(listing), code=301)
    return render_template(
        "public/listing.html",
        listing=listing,
        json_ld=json_ld(listing),
        registry=registry_entry(listing.id),
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
