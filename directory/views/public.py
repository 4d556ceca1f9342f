"""Pages for patients and caregivers: home, search results and listing pages."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request
from sqlalchemy import select

from .. import search as search_service
from ..extensions import db
from ..geo import geocoder
from ..listings import detail_url, json_ld
from ..models import Kind, Listing, public_listing

bp = Blueprint("public", __name__)


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    return render_template("public/home.html")


def _listing_or_404(listing_id: int, kind: Kind) -> Listing:
    listing = public_listing(listing_id)
    if listing is None or listing.kind != kind:
        abort(404)
    return listing


def _detail(listing_id: int, slug: str | None, kind: Kind):  # type: ignore[no-untyped-def]
    listing = _listing_or_404(listing_id, kind)
    if slug != listing.slug:
        # One canonical address per listing, even after a rename.
        return redirect(detail_url(listing), code=301)
    return render_template("public/listing.html", listing=listing, json_ld=json_ld(listing))


@bp.get("/pharmacies/<int:listing_id>")
@bp.get("/pharmacies/<int:listing_id>-<slug>")
def pharmacy(listing_id: int, slug: str | None = None):  # type: ignore[no-untyped-def]
    return _detail(listing_id, slug, Kind.PHARMACY)


@bp.get("/prescribers/<int:listing_id>")
@bp.get("/prescribers/<int:listing_id>-<slug>")
def prescriber(listing_id: int, slug: str | None = None):  # type: ignore[no-untyped-def]
    return _detail(listing_id, slug, Kind.PRESCRIBER)


@bp.get("/about")
def about():  # type: ignore[no-untyped-def]
    return render_template("public/about.html")


@bp.get("/search")
def search():  # type: ignore[no-untyped-def]
    context = search_page_context(request.args)
    status = 200 if context.get("result") or not context.get("errors") else 400
    return render_template("public/results.html", **context), status


def search_page_context(args) -> dict:  # type: ignore[no-untyped-def]
    """Everything the results page shows; a bad search renders the same page with messages."""
    try:
        params = search_service.parse(args, search_service.vocab_codes())
        result = search_service.run(params, geocoder())
    except search_service.SearchError as exc:
        params = exc.params or search_service.Params()
        return {
            "params": params,
            "raw_near": (args.get("near") or "")[:200],
            "errors": exc.errors,
            "suggestions": exc.suggestions,
            "result": None,
        }
    return {
        "params": params,
        "raw_near": params.near,
        "errors": {},
        "suggestions": [],
        "result": result,
    }


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """For load balancers: the app answers and can reach its database."""
    db.session.execute(select(1))
    return jsonify(status="ok")
