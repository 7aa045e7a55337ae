"""Running a search: candidates from geo cells and facet terms first, exact distance, text scored among them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from whoosh.query import Query
from whoosh.searching import Searcher

from directory.geo import EARTH_RADIUS_KM, Place, cells_covering, great_circle_km, km_to, postcodes, to_km
from directory.search.docsets import contains, intersect, union
from directory.search.index import SearchIndex, View
from directory.search.request import SearchRequest
from directory.search.schema import licence_term
from directory.search.text import Phrase, TextQuery, suggest, text_query
from directory.vocabulary import vocabulary

FACETS = ("modality", "specialty")
# Relative margin around the radius and the page cutoff inside which vectorised distances are re-checked exactly.
SLACK = 1e-9
BM25_B, BM25_K1 = 0.75, 1.2  # Whoosh's BM25F defaults
BULK_SCORING = 2000  # from this many documents on, BM25 is computed over arrays
NEAR_FRACTION = 8  # without docnum files, candidates fewer than 1/8 of a word's postings read only their blocks of it
PYTHON_ORDERING = 20000  # up to this many tied candidates, names are compared directly; beyond, by rank


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


def _any_of(view: View, field: str, values: Iterable[str]) -> np.ndarray:
    """Docnums holding at least one of the terms, sorted."""
    return union([view.docs_with(field, value) for value in values])


def _scores_among(searcher: Searcher, query: Query, candidates: np.ndarray) -> dict[int, float]:
    """BM25 scores of the candidates that match the text, by Whoosh's matcher. Few candidates: skip along the
    posting lists to each; many: walk the postings once and keep the candidates."""
    matcher = query.matcher(searcher, searcher.context())
    scores: dict[int, float] = {}
    if len(candidates) * 8 > query.estimate_size(searcher.reader()):
        wanted = set(candidates.tolist())
        while matcher.is_active():
            docnum = matcher.id()
            if docnum in wanted:
                scores[docnum] = matcher.score()
            matcher.next()
        return scores
    for docnum in candidates.tolist():
        if not matcher.is_active():
            break
        if matcher.id() < docnum:
            matcher.skip_to(docnum)
            if not matcher.is_active():
                break
        if matcher.id() == docnum:
            scores[docnum] = matcher.score()
    return scores


def _bm25(view: View, text: TextQuery, docs: np.ndarray) -> np.ndarray:
    """Whoosh's BM25F scores of sorted docnums (same formula, same idf and quantised lengths), computed for many
    documents at once; small sets use Whoosh's own matcher."""
    if text.query is None or not len(docs):
        return np.zeros(len(docs))
    searcher = view.searcher
    if len(docs) < BULK_SCORING:
        # A handful of documents (a page window): skipping to them in the postings beats loading whole lists.
        found = _scores_among(searcher, text.query, docs)
        return np.fromiter((found.get(d, 0.0) for d in docs.tolist()), dtype=np.float64, count=len(docs))
    lengths = view.text_lengths()[docs]
    norm = BM25_K1 * ((1 - BM25_B) + BM25_B * lengths / (searcher.avg_field_length("text") or 1))
    total = np.zeros(len(docs))
    for stem in text.stems:
        ids, weights = view.term_weights("text", stem)
        tf = np.zeros(len(docs))
        if len(ids):
            at = np.minimum(np.searchsorted(ids, docs), len(ids) - 1)
            tf = np.where(ids[at] == docs, weights[at], 0.0)
        total += searcher.idf("text", stem) * (tf * (BM25_K1 + 1)) / (tf + norm)
    return total


def _text_matches(view: View, text: TextQuery, candidates: np.ndarray) -> np.ndarray:
    """Candidates holding every word, then each phrase checked by position. Word lists come whole from docnum
    files and are cached; in an index without them, few candidates read only their part of each word's postings."""
    found = candidates
    frequency = {stem: view.searcher.doc_frequency("text", stem) for stem in text.stems}
    for stem in sorted(frequency, key=frequency.__getitem__):
        if not len(found):
            break
        if len(found) * NEAR_FRACTION < frequency[stem]:
            found = view.docs_with_among("text", stem, found)
        else:
            found = intersect([found, view.docs_with("text", stem)])
    for phrase in text.phrases:
        if not len(found):
            break
        found = found[_holds_phrase(view, phrase, found)]
    return found


def _holds_phrase(view: View, phrase: Phrase, docs: np.ndarray) -> np.ndarray:
    """For each of the docs (which hold every word of the phrase), whether the words occur in the phrase's order
    and spacing."""
    positions = [(view.positions("text", stem, docs), shift) for stem, shift in phrase]
    (first, _), rest = positions[0], positions[1:]
    return np.fromiter((any(all(start + shift in at[doc] for at, shift in rest) for start in first[doc])
                        for doc in docs.tolist()), dtype=bool, count=len(docs))


def _approximate(view: View, origin: Place, units: str, docs: np.ndarray) -> np.ndarray:
    """Distances by great_circle's formula vectorised; within a few ulps of geopy's numbers."""
    lat2, lng2 = np.radians(view.column("lat")[docs]), np.radians(view.column("lon")[docs])
    lat1, lng1 = math.radians(origin.lat), math.radians(origin.lon)
    sin_lat1, cos_lat1 = math.sin(lat1), math.cos(lat1)
    sin_lat2, cos_lat2 = np.sin(lat2), np.cos(lat2)
    delta = lng2 - lng1
    cos_delta, sin_delta = np.cos(delta), np.sin(delta)
    angle = np.arctan2(np.sqrt((cos_lat2 * sin_delta) ** 2 + (cos_lat1 * sin_lat2 - sin_lat1 * cos_lat2 * cos_delta) ** 2),
                       sin_lat1 * sin_lat2 + cos_lat1 * cos_lat2 * cos_delta)
    return km_to(units, EARTH_RADIUS_KM * angle)


def _exact(view: View, origin: Place, units: str, docnum: int) -> float:
    lat, lon = float(view.column("lat")[docnum]), float(view.column("lon")[docnum])
    return km_to(units, great_circle_km(origin.lat, origin.lon, lat, lon))


@dataclass(frozen=True)
class Scope:
    """The listings a search may return before filters (sorted docnums) and, with an origin, their distances."""

    docs: np.ndarray
    distances: np.ndarray | None = None

    def distances_of(self, docs: np.ndarray) -> np.ndarray:
        """Distances of a sorted subset of the scope (zeros without an origin)."""
        if self.distances is None:
            return np.zeros(len(docs))
        return self.distances[np.searchsorted(self.docs, docs)]


def _geo_scope(view: View, request: SearchRequest, origin: Place, units: str, radius: float) -> Scope:
    """Every listing that is an in-person or telehealth match for this origin, with its distance.

    Distances are vectorised approximations, exact to about 1e-15; only listings within that of the radius are
    decided with the exact formula, and the distances of shown results are made exact later.
    """
    docs, distances = [], []
    near = np.empty(0, dtype=np.int32)
    if request.format in ("any", "in_person"):
        cells = _any_of(view, "cell", cells_covering(origin.lat, origin.lon, to_km(units, radius)))
        near = intersect([cells, view.docs_with("flag", "in_person")])
        away = _approximate(view, origin, units, near)
        keep = away <= radius * (1 + SLACK)
        for i in np.flatnonzero(keep & (away > radius * (1 - SLACK))).tolist():
            away[i] = _exact(view, origin, units, int(near[i]))
            keep[i] = away[i] <= radius
        near = near[keep]
        docs.append(near)
        distances.append(away[keep])
    if request.format in ("any", "telehealth"):
        remote = intersect([view.docs_with("licence", licence_term(origin.region)), view.docs_with("flag", "telehealth")])
        remote = remote[~contains(near, remote)]
        docs.append(remote)
        distances.append(_approximate(view, origin, units, remote))
    if len(docs) == 1:
        return Scope(docs[0], distances[0])
    merged = np.concatenate(docs)
    order = np.argsort(merged, kind="stable")
    return Scope(merged[order], np.concatenate(distances)[order])


def _national_scope(view: View, request: SearchRequest) -> Scope:
    if request.format == "any":
        return Scope(view.every_doc())
    return Scope(view.docs_with("flag", request.format))


def _facet_bits(view: View, kind: str) -> np.ndarray:
    """One bit per vocabulary term of `kind`, per document."""
    slugs = vocabulary.slugs(kind)
    assert len(slugs) <= 64, "facet bits are a uint64"
    bits = np.zeros(view.searcher.reader().doc_count_all(), dtype=np.uint64)
    for bit, slug in enumerate(slugs):
        bits[view.docs_with(kind, slug)] |= np.uint64(1 << bit)
    return bits


def _facet_counts(view: View, kind: str, docs: np.ndarray) -> dict[str, int]:
    slugs = vocabulary.slugs(kind)
    if not len(docs):
        return dict.fromkeys(slugs, 0)
    masks = view.cached(f"facet-bits:{kind}", lambda: _facet_bits(view, kind))[docs]
    return {slug: int(np.count_nonzero(masks & np.uint64(1 << bit))) for bit, slug in enumerate(slugs)}


def _name_ranks(view: View) -> np.ndarray:
    """Each document's position in (name, listing id) order, for ordering many equal keys in NumPy."""
    names, pks = view.column("sortname"), view.column("pk").tolist()
    order = sorted(range(len(names)), key=lambda d: (names[d], pks[d]))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def _page(view: View, docs: np.ndarray, primary: np.ndarray, secondary: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Docnums of results start..stop, ordered by primary key, secondary key, then name, then listing id."""
    if start >= len(docs):
        return docs[:0]
    if stop < len(docs):
        # Only results whose primary key can reach the page take part in the ordering.
        keep = primary <= np.partition(primary, stop - 1)[stop - 1]
        docs, primary, secondary = docs[keep], primary[keep], secondary[keep]
    if len(docs) > PYTHON_ORDERING:
        order = np.lexsort((view.cached("name-ranks", lambda: _name_ranks(view))[docs], secondary, primary))
    else:
        names, pks = view.column("sortname"), view.column("pk")
        order = np.asarray(sorted(range(len(docs)), key=lambda i: (
            primary[i], secondary[i], names[docs[i]], pks[docs[i]])), dtype=np.int64)
    return docs[order[start:stop]]


def search(index: SearchIndex, request: SearchRequest) -> Outcome:
    """Run a search; raises PostcodeError for a malformed or unknown postcode."""
    origin = postcodes.lookup(request.postcode) if request.postcode else None
    view = index.view()
    units = radius = None
    if origin is not None:
        units, radius = request.units_for(origin.country), request.radius_for(origin.country)
        scope = _geo_scope(view, request, origin, units, radius)
    else:
        scope = _national_scope(view, request)

    narrowing = [scope.docs]
    for kind in ("language", "insurance"):
        if request.filters[kind]:
            narrowing.append(_any_of(view, kind, request.filters[kind]))
    if request.accepting:
        narrowing.append(view.docs_with("flag", "accepting"))
    base = intersect(narrowing)

    text = text_query(request.q)
    if text.query is not None:
        named = [intersect([base, view.docs_with(kind, slug)]) for kind, slug in text.terms]
        base = union([_text_matches(view, text, base), *named])

    selected = {kind: _any_of(view, kind, request.filters[kind]) for kind in FACETS if request.filters[kind]}
    facets = {}
    for kind in FACETS:
        others = [selected[k] for k in FACETS if k != kind and k in selected]
        facets[kind] = _facet_counts(view, kind, intersect([base, *others]))
    matched = intersect([base, *selected.values()])
    total = len(matched)

    sort = (request.sort or "distance") if origin is not None else "relevance"
    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    distances = scope.distances_of(matched)
    if sort == "distance" and origin is not None and units is not None:
        # Relevance only breaks distance ties, so only the results that can reach this page are scored, and their
        # distances made exact first so that the order is geopy's.
        if len(matched) > stop:
            window = distances <= np.partition(distances, stop - 1)[stop - 1] * (1 + SLACK)
            matched, distances = matched[window], distances[window]
        distances = np.fromiter((_exact(view, origin, units, d) for d in matched.tolist()), dtype=np.float64,
                                count=len(matched))
        scores = _bm25(view, text, matched)
        page = _page(view, matched, distances, -scores, start, stop)
    else:
        scores = _bm25(view, text, matched)
        page = _page(view, matched, -scores, distances, start, stop)
    at = np.searchsorted(matched, page)
    shown: list[float | None] = [None] * len(page)
    if origin is not None and units is not None:
        # A distance sort made its window's distances exact already; a relevance sort still has approximations.
        shown = distances[at].tolist() if sort == "distance" else [_exact(view, origin, units, d) for d in page.tolist()]
    pks, page_scores = view.column("pk"), scores[at].tolist()
    hits = [Hit(int(pks[d]), shown[i], page_scores[i]) for i, d in enumerate(page.tolist())]
    suggestion = suggest(view.searcher, text.words) if text.query is not None and not total else None
    return Outcome(request, origin, units, radius, sort, total, hits, facets, suggestion, text)
