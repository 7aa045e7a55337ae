"""The OpenAPI 3 document of /api/v1, built from the same limits the request parser enforces."""

from __future__ import annotations

from typing import Any

from directory.search.engine import FACETS
from directory.search.request import FORMATS, MAX_PAGE, MAX_PER_PAGE, MAX_QUERY_CHARS, MAX_RADIUS, SORTS
from directory.vocabulary import KINDS, vocabulary


def _param(name: str, schema: dict[str, Any], description: str, repeat: bool = False) -> dict[str, Any]:
    if repeat:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description,
            **({"style": "form", "explode": True} if repeat else {})}


_ERROR = {"type": "object", "required": ["error", "message"],
          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_AVAILABILITY = {
    "type": "string", "enum": ["accepting", "not_accepting", "unconfirmed"],
    "description": "accepting_new_clients as it counts today: `unconfirmed` when availability_confirmed_on is null, "
                   "after today, or more than STALE_AFTER_DAYS (default 90) days ago.",
}
_RESULT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"},
        "credentials": {"type": "string"}, "distance": {"type": ["number", "null"]},
        "city": {"type": "string"}, "region": {"type": "string"}, "postcode": {"type": "string"},
        "country": {"type": "string", "enum": ["US", "CA"]}, "modalities": _STRINGS, "specialties": _STRINGS,
        "telehealth": {"type": "boolean"}, "in_person": {"type": "boolean"},
        "accepting_new_clients": {"type": "boolean"},
        "availability_confirmed_on": {"type": ["string", "null"], "format": "date"},
        "availability": _AVAILABILITY,
        "url": {"type": "string"}, "snippet": {"type": "string"},
    },
}
_SEARCH = {
    "type": "object",
    "required": ["origin", "units", "radius", "sort", "total", "page", "per_page", "results", "facets", "suggestion"],
    "properties": {
        "origin": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
            "postcode": {"type": "string"}, "country": {"type": "string"}, "region": {"type": "string"},
            "lat": {"type": "number"}, "lon": {"type": "number"}, "place": {"type": "string"}}}]},
        "units": {"type": ["string", "null"], "enum": ["mi", "km", None]},
        "radius": {"type": ["number", "null"]},
        "sort": {"type": "string", "enum": list(SORTS)},
        "total": {"type": "integer"}, "page": {"type": "integer"}, "per_page": {"type": "integer"},
        "results": {"type": "array", "items": _RESULT},
        "facets": {"type": "object", "properties": {
            kind: {"type": "object", "additionalProperties": {"type": "integer"}} for kind in FACETS}},
        "suggestion": {"type": ["string", "null"]},
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    filters = [
        _param(kind, {"type": "string", "enum": vocabulary.slugs(kind)}, f"{kind} slug; repeat for any-of.", True)
        for kind in KINDS
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Therapist directory search API", "version": "1"},
        "paths": {
            "/api/v1/search": {"get": {
                "summary": "Search listings",
                "parameters": [
                    _param("postcode", {"type": "string"}, "US ZIP (12345, 12345-6789) or Canadian postal code."),
                    _param("radius", {"type": "number", "minimum": 1, "maximum": MAX_RADIUS},
                           "Radius in `units`; default 25 mi or 40 km."),
                    _param("units", {"type": "string", "enum": ["mi", "km"]}, "Default mi in the US, km in Canada."),
                    _param("q", {"type": "string", "maxLength": MAX_QUERY_CHARS},
                           "Free text; every word must match; quotes for phrases."),
                    *filters,
                    _param("accepting", {"type": "string", "enum": ["1", "0"]},
                           "Only listings accepting new clients whose availability was confirmed within "
                           "STALE_AFTER_DAYS (default 90) days of today."),
                    _param("format", {"type": "string", "enum": list(FORMATS)}, "In-person, telehealth or any."),
                    _param("sort", {"type": "string", "enum": list(SORTS)},
                           "Default distance with a postcode, relevance without."),
                    _param("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, "1-based page."),
                    _param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}, "Default 20."),
                ],
                "responses": {"200": _json(_SEARCH, "Results"), "400": _json(_ERROR, "Bad input")},
            }},
            "/api/v1/therapists/{id}": {"get": {
                "summary": "One published listing",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object"}, "The listing"), "404": _json(_ERROR, "Not found")},
            }},
            "/api/v1/vocabulary": {"get": {
                "summary": "Filter values",
                "responses": {"200": _json({"type": "object"}, "Terms by kind")},
            }},
        },
    }
