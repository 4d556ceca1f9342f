"""The OpenAPI 3.1 description of /api/v1. tests/test_api.py validates it and checks real
responses against these schemas, so it cannot drift from the code unnoticed."""

from __future__ import annotations

from typing import Any

from .geomath import LAT_RANGE, LON_RANGE
from .search import (
    BOTH,
    DEFAULT_RADIUS,
    DEFAULT_UNIT,
    FLAG_FILTERS,
    KINDS,
    MAX_PAGE,
    MAX_RADIUS,
    MIN_RADIUS,
    UNITS,
)
from .spatial import TOTAL_CAP
from .vocabulary import FlagType, Guidance, Kind, Precision, SRPolicy, Status, Term

_nullable_str = {"type": ["string", "null"]}
_str_list = {"type": "array", "items": {"type": "string"}}


def _one_of(term: type[Term], *, nullable: bool = False) -> dict[str, Any]:
    if nullable:
        return {"type": ["string", "null"], "enum": [*term.values(), None]}
    return {"type": "string", "enum": term.values()}


FLAG = {
    "type": "object",
    "required": ["type", "label", "source", "as_of"],
    "properties": {
        "type": _one_of(FlagType),
        "label": {"type": "string"},
        "source": {"type": "string"},
        "as_of": {"type": "string", "format": "date"},
        "url": _nullable_str,
    },
}

LISTING: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "kind",
        "name",
        "url",
        "address",
        "lat",
        "lon",
        "flags",
        "status",
        "verified_on",
        "needs_reconfirming",
        "country",
        "phone",
        "website",
        "email",
    ],
    "properties": {
        "id": {"type": "integer"},
        "kind": _one_of(Kind),
        "name": {"type": "string"},
        "url": {"type": "string", "description": "The listing's page on this site."},
        "address": {"type": "string"},
        "street": _nullable_str,
        "city": _nullable_str,
        "region": _nullable_str,
        "postal_code": _nullable_str,
        "country": {"type": "string"},
        "lat": {"type": ["number", "null"]},
        "lon": {"type": ["number", "null"]},
        "geo_precision": _one_of(Precision, nullable=True),
        "phone": {
            **_nullable_str,
            "description": "E.164, like +12065550100 (an extension as ;ext=12)",
            "examples": ["+12065550100"],
        },
        "website": _nullable_str,
        "email": _nullable_str,
        "status": _one_of(Status),
        "verified_on": {"type": ["string", "null"], "format": "date"},
        "needs_reconfirming": {
            "type": "boolean",
            "description": "Not verified in the last 12 months: call to confirm.",
        },
        "is_sample": {"type": "boolean"},
        "flags": {"type": "array", "items": FLAG},
        "makes_ldn": {
            "type": ["boolean", "null"],
            "description": "Pharmacies: null means not yet confirmed that it makes LDN (e.g. "
            "listed from the NPI registry as a compounding pharmacy): call first. The "
            "'confirmed' filter leaves these out.",
        },
        "dosage_forms": _str_list,
        "sr_policy": _one_of(SRPolicy, nullable=True),
        "fillers": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "description": "Filler codes; null means unknown (not 'none').",
        },
        "price_notes": _nullable_str,
        "mail_order": {"type": "boolean"},
        "ships_to": _str_list,
        "credentials": _nullable_str,
        "specialty": _nullable_str,
        "practice": _nullable_str,
        "telehealth": {"type": "boolean"},
        "telehealth_only": {"type": "boolean"},
        "licensed_in": _str_list,
        "npi": _nullable_str,
        "accepting_new_patients": {"type": ["boolean", "null"]},
        "conditions": _str_list,
        "dosing_notes": _nullable_str,
    },
}

# A search result: the listing's summary as its card shows it (directory/cards.py), with where
# it ships or is licensed (why it is "also available"). Price and dosing notes, NPI and email
# are on /api/v1/listings/{id}.
_LEFT_TO_THE_FULL_LISTING = {"email", "npi", "price_notes", "dosing_notes"}
_RESULT_FIELDS = [name for name in LISTING["properties"] if name not in _LEFT_TO_THE_FULL_LISTING]
RESULT = {
    "type": "object",
    # Closed, so a field added to the summary must be added here too (tests check responses).
    "additionalProperties": False,
    "required": [
        *(name for name in LISTING["required"] if name not in _LEFT_TO_THE_FULL_LISTING),
        "distance",
    ],
    "properties": {
        **{name: LISTING["properties"][name] for name in _RESULT_FIELDS},
        "distance": {
            "type": ["number", "null"],
            "description": "In the search's unit, one decimal; null in also_available.",
        },
        "filler_guidance": {
            **_one_of(Guidance, nullable=True),
            "description": "Pharmacies: the strictest guidance among the fillers it uses; "
            "null when the fillers are unknown.",
        },
    },
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "suggestions": _str_list,
            },
        }
    },
}

SEARCH_RESPONSE = {
    "type": "object",
    "required": ["origin", "radius", "unit", "total", "page", "results"],
    "properties": {
        "origin": {
            "type": "object",
            "required": ["lat", "lon", "label", "precision"],
            "properties": {
                "lat": {"type": "number"},
                "lon": {"type": "number"},
                "label": {"type": "string"},
                "precision": _one_of(Precision),
                "region": _nullable_str,
                "country": {"type": "string"},
            },
        },
        "radius": {"type": "number"},
        "unit": {"type": "string", "enum": list(UNITS)},
        "kind": {"type": "string", "enum": list(KINDS)},
        "filters": _str_list,
        "total": {
            "type": "integer",
            "description": f"Matches within the radius (at most {TOTAL_CAP}).",
        },
        "total_capped": {
            "type": "boolean",
            "description": f"True when there are more than {TOTAL_CAP}.",
        },
        "region_only": {
            "type": "boolean",
            "description": "The place is a whole state or country (origin precision "
            "'region'): too big to measure distances from, so results is empty; "
            "also_available still lists who serves it. Ask for a ZIP code or town.",
        },
        "page": {"type": "integer"},
        "pages": {"type": "integer"},
        "page_size": {"type": "integer"},
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}},
        "also_available": {
            "type": "array",
            "description": "Mail-order pharmacies shipping to, and telehealth prescribers "
            "licensed in, the searcher's state or country, not already in results. "
            "Page 1 only (empty on later pages); left out with also_available=0.",
            "items": {"$ref": "#/components/schemas/Result"},
        },
        "other_places": {
            "type": "array",
            "description": "Other places an ambiguous name could mean; search again by lat/lon.",
            "items": {
                "type": "object",
                "required": ["label", "lat", "lon", "precision"],
                "properties": {
                    "label": {"type": "string"},
                    "lat": {"type": "number"},
                    "lon": {"type": "number"},
                    "precision": {"type": "string"},
                },
            },
        },
    },
}


def _param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def document() -> dict[str, Any]:
    flag_params = [
        _param(
            name,
            f"{label} (applies to {applies if applies != 'both' else 'all'}).",
            {"type": "string", "enum": ["0", "1"]},
        )
        for name, (applies, label) in FLAG_FILTERS.items()
    ]
    error_response = {
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LDN Directory API",
            "version": "1.0.0",
            "description": "Published compounding pharmacies that make Low Dose Naltrexone and "
            "the prescribers of LDN. Read-only. Not medical advice.",
        },
        "paths": {
            "/api/v1/search": {
                "get": {
                    "operationId": "search",
                    "summary": "Listings near a place, nearest first, 20 a page.",
                    "parameters": [
                        _param(
                            "near",
                            "A ZIP code, 'City, ST', an address or 'lat, lon'. "
                            "Required unless lat and lon are given.",
                            {"type": "string", "maxLength": 200},
                        ),
                        _param(
                            "lat",
                            "Latitude of the searcher (with lon); ignored when near is given.",
                            {"type": "number", "minimum": LAT_RANGE[0], "maximum": LAT_RANGE[1]},
                        ),
                        _param(
                            "lon",
                            "Longitude of the searcher (with lat).",
                            {"type": "number", "minimum": LON_RANGE[0], "maximum": LON_RANGE[1]},
                        ),
                        _param(
                            "radius",
                            "How far to look.",
                            {
                                "type": "number",
                                "minimum": MIN_RADIUS,
                                "maximum": MAX_RADIUS,
                                "default": DEFAULT_RADIUS,
                            },
                        ),
                        _param(
                            "unit",
                            "Unit of radius and distances.",
                            {"type": "string", "enum": list(UNITS), "default": DEFAULT_UNIT},
                        ),
                        _param(
                            "kind",
                            "What to look for.",
                            {"type": "string", "enum": list(KINDS), "default": BOTH},
                        ),
                        _param(
                            "page",
                            "Page of results.",
                            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 1},
                        ),
                        *flag_params,
                        _param(
                            "dosage_form",
                            "Pharmacies that make this form (code).",
                            {"type": "string"},
                        ),
                        _param(
                            "condition",
                            "Prescribers who treat this condition (code).",
                            {"type": "string"},
                        ),
                        _param(
                            "also_available",
                            "0 leaves the also_available section out of the response (and "
                            "the work of finding it); 1, the default, includes it.",
                            {"type": "string", "enum": ["0", "1"], "default": "1"},
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "Results.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/SearchResponse"}
                                }
                            },
                        },
                        "400": {"description": "A parameter is invalid.", **error_response},
                        "422": {
                            "description": "The place was not found; see suggestions.",
                            **error_response,
                        },
                        "429": {"description": "Too many requests.", **error_response},
                    },
                }
            },
            "/api/v1/listings/{id}": {
                "get": {
                    "operationId": "getListing",
                    "summary": "One published listing with every public field.",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The listing.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Listing"}
                                }
                            },
                        },
                        "404": {"description": "No such listing.", **error_response},
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Listing": LISTING,
                "Result": RESULT,
                "SearchResponse": SEARCH_RESPONSE,
                "Error": ERROR,
            }
        },
    }
