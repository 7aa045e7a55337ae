"""Running a search: candidates from geo cells and facet terms first, exact distance, text scored among them."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from whoosh.query import Query
from whoosh.searching import Searcher

from directory.geo import EARTH_RADIUS_KM, Place, cells_covering, great_circle_km, km_to, postcodes, to_km
from directory.search.index import SearchIndex, View
from directory.search.request import SearchRequest
from directory.search.schema import licence_term
from directory.search.text import TextQuery, suggest, text_query
from directory.vocabulary import vocabulary

FACETS = ("modality", "specialty")
# Relative margin around the radius and the page cutoff inside which vectorised distances are re-checked exactly.
SLACK = 1e-9
BM25_B, BM25_K1 = 0.75, 1.2  # Whoosh's BM25F defaults
BULK_SCORING = 2000  # from this many documents on, BM25 is computed over arrays


@dataclass(frozen=True)
class Hit:
    """One result: which listing, how far (in the outcome's units; None without an origin), how relevant."""

    listing_id: int
    distance: float | None
    score: float


@dataclass(frozen=True)
class Outcome:
    """A page of results with everything the page and the API show around it."""

    request: SearchRequest
    origin: Place | None
    units: str | None
    radius: float | None
    sort: str
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]
    suggestion: str | None
    text: TextQuery


def _intersect(sets: Iterable[frozenset[int] | set[int]]) -> set[int]:
    ordered = sorted(sets, key=len)
    result = set(ordered[0])
    for other in ordered[1:]:
        result.intersection_update(other)
    return result


def _any_of(view: View, field: str, values: Iterable[str]) -> set[int]:
    found: set[int] = set()
    for value in values:
        found.update(view.docs_with(field, value))
    return found


def _scores_among(searcher: Searcher, query: Query, candidates: set[int]) -> dict[int, float]:
    """BM25 scores of the candidates that match the text. Few candidates: skip along the posting lists to each;
    many: walk the postings once and keep the candidates."""
    matcher = query.matcher(searcher, searcher.context())
    scores: dict[int, float] = {}
    if len(candidates) * 8 > query.estimate_size(searcher.reader()):
        while matcher.is_active():
            docnum = matcher.id()
            if docnum in candidates:
                scores[docnum] = matcher.score()
            matcher.next()
        return scores
    for docnum in sorted(candidates):
        if not matcher.is_active():
            break
        if matcher.id() < docnum:
            matcher.skip_to(docnum)
            if not matcher.is_active():
                break
        if matcher.id() == docnum:
            scores[docnum] = matcher.score()
    return scores


def _bm25(view: View, text: TextQuery, docs: set[int]) -> dict[int, float]:
    """Whoosh's BM25F scores (same formula, same idf and quantised lengths), computed for many documents at once.
    Phrase queries and small sets use Whoosh's own matcher."""
    if text.query is None or not docs:
        return {}
    if text.has_phrase or len(docs) < BULK_SCORING:
        # A handful of documents (a page window): skipping to them in the postings beats loading whole lists.
        return _scores_among(view.searcher, text.query, docs)
    searcher = view.searcher
    docnums = np.sort(np.fromiter(docs, dtype=np.int64, count=len(docs)))
    lengths = view.text_lengths()[docnums]
    norm = BM25_K1 * ((1 - BM25_B) + BM25_B * lengths / (searcher.avg_field_length("text") or 1))
    total = np.zeros(len(docnums))
    for stem in text.stems:
        ids, weights = view.term_weights("text", stem)
        at = np.minimum(np.searchsorted(ids, docnums), max(len(ids) - 1, 0))
        tf = np.where(ids[at] == docnums, weights[at], 0.0) if len(ids) else np.zeros(len(docnums))
        total += searcher.idf("text", stem) * (tf * (BM25_K1 + 1)) / (tf + norm)
    return dict(zip(docnums.tolist(), total.tolist()))


def _text_matches(view: View, text: TextQuery, candidates: set[int]) -> set[int]:
    """Candidates holding every word: cached posting sets intersected in C; phrases then checked by position."""
    found = _intersect([candidates, *(view.docs_with("text", stem) for stem in text.stems)])
    if text.has_phrase and found:
        found = set(_scores_among(view.searcher, text.query, found))
    return found


def _nearest(distances: dict[int, float], matched: set[int], stop: int) -> set[int]:
    """The matched results whose distance is within that of the `stop`-th nearest (ties included)."""
    if len(matched) <= stop:
        return matched
    cutoff = heapq.nsmallest(stop, (distances[d] for d in matched))[-1] * (1 + SLACK)
    return {d for d in matched if distances[d] <= cutoff}


def _approximate(view: View, origin: Place, units: str, docs: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """(docnums, distances) by great_circle's formula vectorised; within a few ulps of geopy's numbers."""
    docnums = np.fromiter(docs, dtype=np.int64, count=len(docs))
    lat2, lng2 = np.radians(view.array("lat")[docnums]), np.radians(view.array("lon")[docnums])
    lat1, lng1 = math.radians(origin.lat), math.radians(origin.lon)
    sin_lat1, cos_lat1 = math.sin(lat1), math.cos(lat1)
    sin_lat2, cos_lat2 = np.sin(lat2), np.cos(lat2)
    delta = lng2 - lng1
    cos_delta, sin_delta = np.cos(delta), np.sin(delta)
    angle = np.arctan2(np.sqrt((cos_lat2 * sin_delta) ** 2 + (cos_lat1 * sin_lat2 - sin_lat1 * cos_lat2 * cos_delta) ** 2),
                       sin_lat1 * sin_lat2 + cos_lat1 * cos_lat2 * cos_delta)
    return docnums, km_to(units, EARTH_RADIUS_KM * angle)


def _exact(view: View, origin: Place, units: str, docnum: int) -> float:
    return km_to(units, great_circle_km(origin.lat, origin.lon, view.column("lat")[docnum], view.column("lon")[docnum]))


def _refine(view: View, origin: Place | None, units: str | None, distances: dict[int, float], docs: set[int]) -> None:
    """Replace approximate distances by geopy-exact ones for the results whose order or display needs them."""
    if origin is not None and units is not None:
        for docnum in docs:
            distances[docnum] = _exact(view, origin, units, docnum)


def _geo_scope(view: View, request: SearchRequest, origin: Place, units: str, radius: float) -> dict[int, float]:
    """Docnum → distance of every listing that is an in-person or telehealth match for this origin.

    Distances are vectorised approximations, exact to about 1e-15; only listings within that of the radius are
    decided with the exact formula, and _refine makes the distances of shown results exact.
    """
    scope: dict[int, float] = {}
    if request.format in ("any", "in_person"):
        cells = _any_of(view, "cell", cells_covering(origin.lat, origin.lon, to_km(units, radius)))
        near = _intersect([cells, view.docs_with("flag", "in_person")])
        if near:
            docnums, distances = _approximate(view, origin, units, near)
            keep = distances <= radius * (1 + SLACK)
            scope.update(zip(docnums[keep].tolist(), distances[keep].tolist()))
            for docnum in docnums[keep & (distances > radius * (1 - SLACK))].tolist():
                exact = _exact(view, origin, units, docnum)
                if exact <= radius:
                    scope[docnum] = exact
                else:
                    del scope[docnum]
    if request.format in ("any", "telehealth"):
        remote = _intersect([view.docs_with("licence", licence_term(origin.region)), view.docs_with("flag", "telehealth")])
        remote.difference_update(scope)
        if remote:
            docnums, distances = _approximate(view, origin, units, remote)
            scope.update(zip(docnums.tolist(), distances.tolist()))
    return scope


def _national_scope(view: View, request: SearchRequest) -> frozenset[int]:
    if request.format == "any":
        return view.every_doc()
    return view.docs_with("flag", request.format)


def _facet_bits(view: View, kind: str) -> np.ndarray:
    """One bit per vocabulary term of `kind`, per document."""
    slugs = vocabulary.slugs(kind)
    assert len(slugs) <= 64, "facet bits are a uint64"
    bits = np.zeros(view.searcher.reader().doc_count_all(), dtype=np.uint64)
    for bit, slug in enumerate(slugs):
        docs = view.docs_with(kind, slug)
        if docs:
            bits[np.fromiter(docs, dtype=np.int64, count=len(docs))] |= np.uint64(1 << bit)
    return bits


def _facet_counts(view: View, kind: str, docs: set[int]) -> dict[str, int]:
    slugs = vocabulary.slugs(kind)
    if not docs:
        return dict.fromkeys(slugs, 0)
    bits = view.cached(f"facet-bits:{kind}", lambda: _facet_bits(view, kind))
    masks = bits[np.fromiter(docs, dtype=np.int64, count=len(docs))]
    return {slug: int(np.count_nonzero(masks & np.uint64(1 << bit))) for bit, slug in enumerate(slugs)}


def _page(keys: dict[int, tuple[float, float]], view: View, start: int, stop: int) -> list[int]:
    """Docnums of results start..stop, ordered by key, then name, then listing id."""
    if not keys or start >= len(keys):
        return []
    # Only results whose primary key can reach the page need the name lookup for tie-breaking.
    cutoff = heapq.nsmallest(stop, keys.values())[-1] if stop < len(keys) else None
    names, pks = view.column("sortname"), view.column("pk")
    chosen = [d for d, k in keys.items() if cutoff is None or k <= cutoff]
    chosen.sort(key=lambda d: (keys[d], names[d], pks[d]))
    return chosen[start:stop]


def search(index: SearchIndex, request: SearchRequest) -> Outcome:
    """Run a search; raises PostcodeError for a malformed or unknown postcode."""
    origin = postcodes.lookup(request.postcode) if request.postcode else None
    view = index.view()
    units = radius = None
    distances: dict[int, float] = {}
    if origin is not None:
        units, radius = request.units_for(origin.country), request.radius_for(origin.country)
        distances = _geo_scope(view, request, origin, units, radius)
        scope: set[int] | frozenset[int] = set(distances)
    else:
        scope = _national_scope(view, request)

    narrowing: list[set[int] | frozenset[int]] = [scope]
    for kind in ("language", "insurance"):
        if request.filters[kind]:
            narrowing.append(_any_of(view, kind, request.filters[kind]))
    if request.accepting:
        narrowing.append(view.docs_with("flag", "accepting"))
    base = _intersect(narrowing)

    text = text_query(request.q)
    if text.query is not None:
        base = _text_matches(view, text, base)

    selected = {kind: _any_of(view, kind, request.filters[kind]) for kind in FACETS if request.filters[kind]}
    facets = {}
    for kind in FACETS:
        others = [selected[k] for k in FACETS if k != kind and k in selected]
        facets[kind] = _facet_counts(view, kind, _intersect([base, *others]))
    matched = _intersect([base, *selected.values()])

    sort = (request.sort or "distance") if origin is not None else "relevance"
    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    scores: dict[int, float] = {}
    if sort == "distance":
        # Relevance only breaks distance ties, so only the results that can reach this page are scored.
        window = _nearest(distances, matched, stop)
        _refine(view, origin, units, distances, window)
        if text.query is not None:
            scores = _bm25(view, text, window)
        keys = {d: (distances[d], -scores.get(d, 0.0)) for d in window}
    else:
        if text.query is not None:
            scores = _bm25(view, text, matched)
        keys = {d: (-scores.get(d, 0.0), distances.get(d, 0.0)) for d in matched}
    page = _page(keys, view, start, stop)
    _refine(view, origin, units, distances, set(page))
    pks = view.column("pk")
    hits = [Hit(pks[d], distances.get(d), scores.get(d, 0.0)) for d in page]
    suggestion = suggest(view.searcher, text.words) if text.query is not None and not matched else None
    return Outcome(request, origin, units, radius, sort, len(matched), hits, facets, suggestion, text)
