"""The OpenAPI 3.1 document of /api/v1, built from the same limits and patterns the request parser enforces.

`VERSION` is the contract's version: it changes whenever the document does (see the README for what counts as a
breaking change, which also changes the major number).
"""

from __future__ import annotations

from typing import Any

from directory.geo import POSTCODE_PATTERN
from directory.search.facets import FACETS
from directory.search.request import (
    FORMATS,
    MAX_FEE,
    MAX_FILTER_VALUES,
    MAX_LOCATION_CHARS,
    MAX_PAGE,
    MAX_PER_PAGE,
    MAX_QUERY_CHARS,
    MAX_QUERY_TERMS,
    MAX_RADIUS,
    QUERY_PATTERN,
    SORTS,
)
from directory.search.text import FILTER_KINDS
from directory.vocabulary import KINDS, vocabulary

VERSION = "6.2.0"
# What each error status means, with the codes its body may carry. Every operation lists the statuses it returns.
ERRORS = {
    "400": ("Bad input: the parameter named in the message is malformed, out of range or unknown. A query "
            "parameter the operation does not list (a misspelt `specialities`, a tracking `utm_source`) is refused "
            "with `invalid_parameter`, never ignored; every operation but the search takes none.",
            ["invalid_parameter", "query_too_long", "invalid_postcode"]),
    "404": ("No such published listing.", ["not_found"]),
    "405": ("The method is not GET (or HEAD); the Allow header lists the ones that are.", ["method_not_allowed"]),
    "422": ("Well formed, but it names nowhere we know: a postcode missing from the packaged data, a location "
            "with digits that is neither a place nor a postcode (`invalid_postcode`), a place name that names no "
            "place (`choices` are close names) or several (`choices` are the places, most populous first; each, as "
            "a location, names one).", ["unknown_postcode", "invalid_postcode", "unknown_place", "ambiguous_place"]),
    "503": ("The database is busy with an import, or the index is being rebuilt; try again in a minute.",
            ["service_unavailable"]),
}
_EMPTY = "An empty value is the same as leaving the parameter out."


def _string(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def _object(properties: dict[str, dict[str, Any]], description: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object whose every property is typed and, unless `optional`, required; no other property appears."""
    return {"type": "object", "description": description, "properties": properties,
            "required": [name for name in properties if name not in optional], "additionalProperties": False}


_STRINGS = {"type": "array", "items": {"type": "string"}}


def _slugs(kind: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string", "enum": vocabulary.slugs(kind)},
            "description": f"{kind} slugs, as /api/v1/vocabulary lists them."}


_AVAILABILITY = _string(
    "accepting_new_clients as it counts today: `accepting` or `not_accepting` while availability_confirmed_on is "
    "within STALE_AFTER_DAYS (default 90) days before today, today included; `unconfirmed` when it is null, after "
    "today, or older.", enum=["accepting", "not_accepting", "unconfirmed"])
_COMMON = {
    "id": _string("The listing's id (its external_id), as /api/v1/therapists/{id} takes it."),
    "slug": _string("The profile page's name: /therapists/{slug}."),
    "name": _string("The therapist's name."),
    "credentials": _string("Degrees and licences, e.g. \"LMFT\"; may be empty."),
    "city": _string("May be empty."),
    "region": _string("State or province code; may be empty."),
    "postcode": _string("ZIP or postal code as listed."),
    "country": _string("Country of the practice.", enum=["US", "CA"]),
    "modalities": {**_STRINGS, "description": "Approach slugs."},
    "specialties": {**_STRINGS, "description": "Specialty slugs."},
    "telehealth": {"type": "boolean", "description": "Sees clients online."},
    "in_person": {"type": "boolean", "description": "Sees clients in person."},
    "accepting_new_clients": {"type": "boolean", "description": "The listing's own claim; see `availability`."},
    "availability_confirmed_on": _nullable(_string("When the claim was last confirmed (ISO date).", format="date")),
    "availability": _AVAILABILITY,
    "url": _string("The profile page's path."),
}
_RESULT = _object({
    **_COMMON,
    "distance": _nullable({"type": "number", "minimum": 0,
                           "description": "From the origin in `units`, rounded to 0.1; null without a postcode."}),
    "snippet": _string("Part of the bio around the first matched word; the bio's start without words."),
}, "One search result.")
_LISTING = _object({
    **_COMMON,
    "license_number": _string("May be empty."),
    "license_region": _string("The state or province of the licence; online clients must be there. May be empty."),
    "email": _string("May be empty."),
    "phone": _string("May be empty."),
    "website": _string("May be empty."),
    "address": _string("May be empty."),
    "latitude": _nullable({"type": "number", "description": "The listing's own point; null means its postcode's."}),
    "longitude": _nullable({"type": "number", "description": "The listing's own point; null means its postcode's."}),
    "languages": {**_STRINGS, "description": "Language slugs."},
    "insurance": {**_STRINGS, "description": "Insurer slugs."},
    "fee_min": _nullable({"type": "integer", "description": "Lowest fee per session, in the country's dollars."}),
    "fee_max": _nullable({"type": "integer", "description": "Highest fee per session, in the country's dollars."}),
    "sliding_scale": {"type": "boolean", "description": "Offers reduced fees."},
    "ages": {**_STRINGS, "description": "Age slugs: the ages the therapist sees."},
    "client_types": {**_STRINGS, "description": "Client type slugs: individuals, couples, families, groups."},
    "communities": {**_STRINGS, "description": "Community slugs: claims about the practice, not the therapist's "
                                               "own identity."},
    "gender": _string("A gender slug; empty when not said or when it names none (see gender_unmapped).",
                      enum=["", *vocabulary.slugs("gender")]),
    "gender_unmapped": _string("The gender as the therapist wrote it when it names no gender slug; else empty."),
    "bio": _string("The therapist's statement; may be empty."),
    "photo_url": _nullable(_string("The portrait's path on this site, or null.")),
    "updated_at": _string("When the listing last changed (UTC).", format="date-time"),
}, "Every public field of a published listing.")
_ORIGIN = _object({
    "kind": _string("What the location was read as.", enum=["postcode", "place"]),
    "postcode": _nullable(_string("The postcode as understood (normalised); null for a place.")),
    "country": _string("", enum=["US", "CA"]),
    "region": _string("State or province code."),
    "lat": {"type": "number"},
    "lon": {"type": "number"},
    "place": _string("A readable name, e.g. \"Brooklyn, NY\"."),
    "centre": _nullable(_string("For a place, what its point is, e.g. \"the centre of the borough\"; null for a "
                                "postcode.")),
}, "Where distances are measured from: the postcode's point, or the place's.")
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_SEARCH = _object({
    "origin": {"oneOf": [{"type": "null"}, _ORIGIN]},
    "units": {"type": ["string", "null"], "enum": ["mi", "km", None], "description": "Null without a postcode."},
    "radius": _nullable({"type": "number", "description": "The radius searched, in `units`; null without a postcode."}),
    "sort": _string("The order used (relevance whenever there is no postcode).", enum=list(SORTS)),
    "total": {"type": "integer", "minimum": 0, "description": "Every match, on all pages."},
    "page": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
    "results": {"type": "array", "items": _RESULT, "maxItems": MAX_PER_PAGE},
    "facets": _object({kind: {**_COUNTS, "description": f"Matches per {kind} slug, with every filter applied but "
                                                        f"this {kind} selection."} for kind in FACETS},
                      "Disjunctive counts per filter value."),
    "suggestion": _nullable(_string("A respelling of `q` that finds listings, when `q` found none.")),
    "filter_offers": {"type": "array", "description": "Filters that words of `q` name (a language, an insurer, an "
                                                      "age, a client type, a community, a gender, a session format, "
                                                      "the sliding scale) and the request has not chosen.",
                      "items": _object({
                          "kind": _string("The filter parameter.", enum=[*FILTER_KINDS, "format", "sliding_scale"]),
                          "value": _string("The parameter's value: a slug, `in_person` or `telehealth` for format, "
                                           "`1` for sliding_scale."),
                          "name": _string("What to show, e.g. \"Spanish\"."),
                          "applied": {"type": "boolean", "description": "`q` was only these words, so the results "
                                                                        "are this filter's, as if `q` were empty."},
                      }, "A filter the text names.")},
}, "A page of results.")
_TERM = _object({"slug": _string("The filter value."), "name": _string("What to show."),
                 "synonyms": {**_STRINGS, "description": "Other spellings the CSV import accepts."}}, "A filter value.")
_VOCABULARY = _object({kind: {"type": "array", "items": _TERM} for kind in KINDS}, "Every filter value, by kind.")


def _param(name: str, schema: dict[str, Any], description: str, repeat: bool = False) -> dict[str, Any]:
    if repeat:
        schema = {"type": "array", "items": schema, "maxItems": MAX_FILTER_VALUES}
    return {"name": name, "in": "query", "required": False, "schema": schema, "allowEmptyValue": True,
            "description": f"{description} {_EMPTY}", **({"style": "form", "explode": True} if repeat else {})}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(status: str) -> dict[str, Any]:
    description, codes = ERRORS[status]
    fields = {"error": _string("A stable code.", enum=codes), "message": _string("Says what to change.")}
    if status == "422":
        fields["choices"] = {**_STRINGS, "minItems": 1, "description": "Locations to offer instead, e.g. "
                                                                       "\"Springfield, IL\"."}
    body = _object(fields, "An error.", optional=("choices",))
    response = _json(body, description)
    if status == "405":
        response["headers"] = {"Allow": {"required": True, "description": "The methods this path answers.",
                                         "schema": {"type": "string"}}}
    return response


# Refused by the HTTP server before the app sees it, so the body is the server's own page.
_TOO_LONG = {"description": "The request line is longer than the HTTP server takes (gunicorn's default: 4094 bytes).",
             "content": {"text/html": {"schema": {"type": "string"}}}}


def _operation(summary: str, description: str, ok: dict[str, Any], errors: list[str], **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "description": description, **extra,
                    "responses": {"200": ok, **{status: _error(status) for status in errors}, "414": _TOO_LONG}}}


def _search_parameters() -> list[dict[str, Any]]:
    filters = [_param(kind, {"type": "string", "enum": vocabulary.slugs(kind)},
                      f"{kind} slug; repeat for any of several (at most {MAX_FILTER_VALUES}).", True)
               for kind in KINDS]
    return [
        _param("location", {"type": "string", "maxLength": MAX_LOCATION_CHARS},
               "Where to search from: a postcode (as `postcode` takes it) or a US or Canadian place name, with or "
               "without its state or province (\"Brooklyn, NY\", \"st jerome\", \"Toronto\"). Accents, case, "
               "punctuation and St/Saint, Ste/Sainte, Mt/Mount, Ft/Fort do not matter; a place name followed by its "
               "postcode is the postcode. Only spaces: absent. Without `location` and `postcode` the search is "
               "national, by relevance."),
        _param("postcode", {"type": "string", "maxLength": MAX_LOCATION_CHARS, "pattern": POSTCODE_PATTERN},
               "US ZIP (12345 or 12345-6789) or Canadian postal code or FSA (A1A 1A1, A1A), in either case, "
               "spaces anywhere. Ignored when `location` is given."),
        _param("radius", {"type": "number", "minimum": 1, "maximum": MAX_RADIUS},
               "In `units`, written as a JSON number; default 25 mi or 40 km."),
        _param("units", {"type": "string", "enum": ["mi", "km"]}, "Default mi in the US, km in Canada."),
        _param("q", {"type": "string", "maxLength": MAX_QUERY_CHARS, "pattern": QUERY_PATTERN},
               f"Free text, at most {MAX_QUERY_CHARS} characters and {MAX_QUERY_TERMS} words (separated by "
               "spaces, tabs or newlines). Every word must match, stemmed and without its accents (Montréal finds "
               "Montreal); quoted or hyphenated words as a phrase."),
        *filters,
        _param("accepting", {"type": "string", "enum": ["1", "0"]},
               "1: only listings accepting new clients whose availability was confirmed within STALE_AFTER_DAYS "
               "(default 90) days of today. 0 is the default."),
        _param("max_fee", {"type": "integer", "minimum": 0, "maximum": MAX_FEE},
               "Up to this fee a session, written as a JSON integer: listings whose lowest fee (fee_min, else "
               "fee_max when only that is given) is at most this. With a location, in its country's dollars, and "
               "only listings of that country qualify; without one, each listing's own. A listing that gives no fee "
               "never qualifies."),
        _param("sliding_scale", {"type": "string", "enum": ["1", "0"]},
               "1: only listings offering a sliding scale. 0 is the default."),
        _param("format", {"type": "string", "enum": list(FORMATS)},
               "in_person: seen in person within the radius; telehealth: online and licensed in the postcode's "
               "state or province; any (default): either."),
        _param("sort", {"type": "string", "enum": list(SORTS)},
               "distance (default with a location: with format=any the in-person matches first, then those seen "
               "online only; in each, availability accepting first, then unconfirmed, then not_accepting, each by "
               "distance; ties by relevance, name, id) or relevance (availability as for distance, then relevance, "
               "distance, name, id). Without a location always relevance."),
        _param("page", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
               "1-based page, written as a JSON integer; default 1."),
        _param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
               "Results per page, written as a JSON integer; default 20."),
        _param("guided", {"type": "string", "enum": ["1", "0"]},
               "1: the search came from the guided match (/match), so the search page says why each of its filters "
               "was chosen. Taken, so that the page's links work here too; it changes nothing in the answer."),
    ]


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Therapist directory search API",
            "version": VERSION,
            "description": "Read-only JSON over GET. Any other path under /api/v1 answers 404 with the same error "
                           "body (`not_found`); any other method answers 405 with an Allow header. Query "
                           "parameters are taken as written: no trimming, no other spellings of a value; but "
                           "`location`, `postcode` and `q` are read without the format characters (Unicode "
                           "category Cf: zero-width spaces and joiners, direction marks, soft hyphens) that pasted "
                           "text carries, wherever they stand. Their lengths and patterns count them as written.",
        },
        "paths": {
            "/api/v1/search": _operation(
                "Search listings", "Published listings near a location (or nationally), filtered and paged.",
                _json(_SEARCH, "A page of results."), ["400", "405", "422", "503"],
                parameters=_search_parameters()),
            "/api/v1/therapists/{id}": _operation(
                "One published listing", "Every public field of the listing with that id.",
                _json(_LISTING, "The listing."), ["400", "404", "405", "503"],
                parameters=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                             "description": "The listing's id, as search results give it."}]),
            "/api/v1/vocabulary": _operation(
                "Filter values", "Every value the vocabulary filters take, by kind.",
                _json(_VOCABULARY, "Terms by kind."), ["400", "405"]),
            "/api/v1/openapi.json": _operation(
                "This document", "The OpenAPI 3.1 description of this API.",
                _json({"type": "object"}, "The document."), ["400", "405"]),
        },
    }
