"""The JSON API under /api/v1."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, request

from directory import db
from directory.listings import published_by_external_id
from directory.search.request import PARAMETERS, InvalidRequest, parse, refuse_unknown
from directory.search.results import find
from directory.vocabulary import KINDS, vocabulary
from directory.web.app_state import current_index, fresh_window
from directory.web.errors import api_error
from directory.web.openapi import openapi_document
from directory.web.presenters import RESULT_COLUMNS, listing_dict, results_dict

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# The query parameters each endpoint takes; the others take none. A name outside these is refused rather than
# ignored, so that a client whose filter was misspelt ("specialities") learns it instead of getting everyone.
TAKES = {"api.search": PARAMETERS}


@bp.before_request
def refuse_unknown_parameters() -> Any:
    """A 400 naming any query parameter the endpoint does not take (`invalid_parameter`); None lets it through."""
    rule = request.url_rule.rule if request.url_rule else request.path  # the route, not a client's long id
    try:
        refuse_unknown(request.args, TAKES.get(request.endpoint or "", ()), rule)
    except InvalidRequest as exc:
        return api_error(exc.status, exc.code, exc.message)
    return None


@bp.get("/search")
def search() -> Any:
    """Search listings by location (postcode or place), radius, filters and free text."""
    try:
        # Only what the answer shows, as rows: 20 whole listings took 1.6 ms to load at 100k, these 0.3-0.6.
        results = find(current_index(), db.session(), parse(request.args, fresh_window()), RESULT_COLUMNS)
    except InvalidRequest as exc:
        return api_error(exc.status, exc.code, exc.message, exc.choices)
    return jsonify(results_dict(results))


@bp.get("/therapists/<external_id>")
def therapist(external_id: str) -> Response:
    """One published listing by its id.

    :raise 404: when there is no such published listing.
    """
    listing = published_by_external_id(db.session(), external_id)
    if listing is None:
        abort(404, description=f"No published listing with id {external_id[:100]!r}.")
    return jsonify(listing_dict(listing, fresh_window()))


@bp.get("/vocabulary")
def vocabulary_terms() -> Response:
    """Every filter value: modalities, specialties, languages and insurers, with names and synonyms."""
    return jsonify({kind: [term.as_dict() for term in vocabulary.terms[kind].values()] for kind in KINDS})


@bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 description of this API."""
    return jsonify(openapi_document())
