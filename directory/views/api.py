"""The read-only JSON API: /api/v1/search, /api/v1/listings/<id> and its OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from .. import cards, search
from ..errors import json_error
from ..forms import SearchForm
from ..geocoding.app import geocoder
from ..listings import public_dict
from ..models import public_listing
from ..openapi import document

bp = Blueprint("api", __name__, url_prefix="/api/v1")


# `also_available=0`: leave that section out. A caller that lists results near a point has no
# use for it, and finding and loading its 20 cards was a third of a search's cost.
ALSO_AVAILABLE = {"1": True, "0": False}


@bp.get("/search")
def search_listings() -> ResponseReturnValue:
    wants_also = ALSO_AVAILABLE.get(request.args.get("also_available", "1"))
    if wants_also is None:
        message = "also_available must be 1 (the default) or 0."
        return json_error(
            400, search.INVALID_PARAMETER, message, fields={"also_available": message}
        )
    outcome = search.perform(
        SearchForm.from_args(request.args), geocoder(), also_available=wants_also
    )
    result, params = outcome.result, outcome.params
    if result is None:
        extra: dict[str, Any] = {"fields": outcome.errors}
        not_found = outcome.code == search.PLACE_NOT_FOUND
        if not_found:
            extra["suggestions"] = outcome.suggestions
        status = 422 if not_found else 400
        return json_error(status, outcome.code, outcome.message, **extra)
    origin = result.origin
    body: dict[str, Any] = dict(
        origin={
            "lat": origin.lat,
            "lon": origin.lon,
            "label": origin.label,
            "precision": origin.precision,
            "region": origin.region,
            "country": origin.country,
        },
        radius=params.radius,
        unit=params.unit,
        kind=params.kind,
        filters=sorted(params.filters),
        total=result.total,
        total_capped=result.total_capped,
        region_only=result.region_only,
        page=params.page,
        pages=result.pages,
        page_size=search.PAGE_SIZE,
        results=[cards.summary(h.listing, h.distance) for h in result.hits],
        other_places=[
            {"label": p.label, "lat": p.lat, "lon": p.lon, "precision": p.precision}
            for p in result.other_places
        ],
    )
    if wants_also:
        body["also_available"] = [cards.summary(card) for card in result.also_available]
    return jsonify(body)


@bp.get("/listings/<int:listing_id>")
def listing(listing_id: int) -> ResponseReturnValue:
    found = public_listing(listing_id)
    if found is None:
        return json_error(404, "not_found", _("No listing with id %(id)d.", id=listing_id))
    return jsonify(public_dict(found, external=True))


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(document())
