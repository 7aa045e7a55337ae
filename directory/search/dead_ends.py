"""Ways out of an empty answer: wider radii and the removal of each filter, each with how many it would find."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from directory.search.engine import search
from directory.search.index.storage import SearchIndex
from directory.search.request import RADIUS_CHOICES, SearchRequest
from directory.vocabulary import vocabulary

WIDER_RADII = 2  # how many of the next radius choices are offered
MAX_REMOVALS = 8  # filters offered for removal, the broad ones first: each costs one more search


@dataclass(frozen=True)
class WayOut:
    """A changed search that finds someone: what to say ("within 50 miles", "without Spanish"), the query
    parameters to set (an empty list removes one), and how many it finds."""

    label: str
    changes: dict[str, list[str]]
    total: int


def _removals(request: SearchRequest) -> list[tuple[str, dict[str, list[str]], SearchRequest]]:
    removals: list[tuple[str, dict[str, list[str]], SearchRequest]] = []
    if request.accepting:
        removals.append(("without “accepting new clients”", {"accepting": [], "page": []},
                         dataclasses.replace(request, accepting=False)))
    if request.format != "any":
        removals.append(("in person or online", {"format": [], "page": []}, dataclasses.replace(request, format="any")))
    if request.max_fee is not None:
        removals.append((f"at any fee (not only up to ${request.max_fee})", {"max_fee": [], "page": []},
                         dataclasses.replace(request, max_fee=None)))
    if request.sliding_scale:
        removals.append(("without “offers a sliding scale”", {"sliding_scale": [], "page": []},
                         dataclasses.replace(request, sliding_scale=False)))
    if request.q and request.origin is not None:  # without a place, no words means no search at all
        removals.append((f"without the words “{request.q}”", {"q": [], "page": []}, dataclasses.replace(request, q="")))
    for kind, values in request.filters.items():
        for value in values:
            term = vocabulary.get(kind, value)
            rest = tuple(v for v in values if v != value)
            narrower: dict[str, Any] = {kind: rest}
            removals.append((f"without {term.name if term else value}", {kind: list(rest), "page": []},
                             dataclasses.replace(request, **narrower)))
    return removals[:MAX_REMOVALS]


def ways_out(index: SearchIndex, request: SearchRequest) -> list[WayOut]:
    """For a search that found nobody: the next wider radii and each single filter removed, those that find
    someone, with their totals."""
    found = []
    candidates: list[tuple[str, dict[str, list[str]], SearchRequest]] = []
    if request.origin is not None and request.format != "telehealth":
        country = request.origin.country
        units, radius = request.units_for(country), request.radius_for(country)
        for wider in [r for r in RADIUS_CHOICES if r > radius][:WIDER_RADII]:
            candidates.append((f"within {wider} {'miles' if units == 'mi' else 'km'}",
                               {"radius": [str(wider)], "page": []}, dataclasses.replace(request, radius=wider)))
    candidates += _removals(request)
    for label, changes, changed in candidates:
        total = search(index, dataclasses.replace(changed, page=1, per_page=1)).total
        if total:
            found.append(WayOut(label, changes, total))
    return found
