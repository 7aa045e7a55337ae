"""Running a search: candidates from geo cells and facet terms first, exact distance, text scored among them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from directory.availability import Window
from directory.geo import Place, cells_covering, great_circle_km, great_circle_km_many, km_to, to_km
from directory.search.docsets import contains, intersect, union
from directory.search.reading import View
from directory.search.request import SearchRequest
from directory.search.schema import ACCEPTING_FLAG, FORMAT_FLAG, IN_PERSON_FLAG, TELEHEALTH_FLAG, licence_term
from directory.search.writing import SearchIndex
from directory.search.text import Phrase, TextQuery, suggest, text_query
from directory.vocabulary import vocabulary

FACETS = ("modality", "specialty", "language", "insurance")  # each counted as if its own filter were unset
# Relative margin around the radius and the page cutoff inside which vectorised distances are re-checked exactly.
SLACK = 1e-9
ONLINE_AFTER = 1e6  # added to an online-only result's distance for ordering: more than any distance on Earth
PYTHON_ORDERING = 20000  # up to this many tied candidates, names are compared directly; beyond, by rank


@dataclass(frozen=True)
class Hit:
    """One result: which listing, and how far (in the outcome's units; None without an origin)."""

    listing_id: int
    distance: float | None


@dataclass(frozen=True)
class Summary:
    """What a search answer says around its page of results."""

    request: SearchRequest
    origin: Place | None
    units: str | None
    radius: float | None
    sort: str
    total: int
    facets: dict[str, dict[str, int]]
    suggestion: str | None
    nearby: int | None  # of the total, in-person matches within the radius (None without an origin)


@dataclass(frozen=True)
class Outcome(Summary):
    """The engine's answer: the summary, the page of hits, and the parsed text (for snippets)."""

    hits: list[Hit]
    text: TextQuery


def _any_of(view: View, field: str, values: Iterable[str]) -> np.ndarray:
    """Docnums holding at least one of the terms, sorted."""
    return union([view.docs_with(field, value) for value in values])


def _scores(view: View, text: TextQuery, docs: np.ndarray) -> np.ndarray:
    if text.query is None:
        return np.zeros(len(docs))
    return view.scores(text.query, text.stems, docs)


def _text_matches(view: View, text: TextQuery, candidates: np.ndarray) -> np.ndarray:
    """Candidates holding every word (rarest first, so the set shrinks fastest), then each phrase checked by
    position."""
    found = candidates
    for stem in sorted(text.stems, key=lambda stem: view.doc_frequency("text", stem)):
        if not len(found):
            break
        found = view.narrow("text", stem, found)
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
    return km_to(units, great_circle_km_many(origin.lat, origin.lon, view.column("lat")[docs], view.column("lon")[docs]))


def _exact(view: View, origin: Place, units: str, docnum: int) -> float:
    lat, lon = float(view.column("lat")[docnum]), float(view.column("lon")[docnum])
    return km_to(units, great_circle_km(origin.lat, origin.lon, lat, lon))


@dataclass(frozen=True)
class Scope:
    """The listings a search may return before filters (sorted docnums), with an origin their distances, and which
    of them are in-person matches within the radius (the rest are online only)."""

    docs: np.ndarray
    distances: np.ndarray | None = None
    near: np.ndarray | None = None

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
        near = intersect([cells, view.docs_with("flag", IN_PERSON_FLAG)])
        away = _approximate(view, origin, units, near)
        keep = away <= radius * (1 + SLACK)
        for i in np.flatnonzero(keep & (away > radius * (1 - SLACK))).tolist():
            away[i] = _exact(view, origin, units, int(near[i]))
            keep[i] = away[i] <= radius
        near = near[keep]
        docs.append(near)
        distances.append(away[keep])
    if request.format in ("any", "telehealth"):
        remote = intersect([view.docs_with("licence", licence_term(origin.region)),
                            view.docs_with("flag", TELEHEALTH_FLAG)])
        remote = remote[~contains(near, remote)]
        docs.append(remote)
        distances.append(_approximate(view, origin, units, remote))
    if len(docs) == 1:
        return Scope(docs[0], distances[0], near)
    merged = np.concatenate(docs)
    order = np.argsort(merged, kind="stable")
    return Scope(merged[order], np.concatenate(distances)[order], near)


def _national_scope(view: View, request: SearchRequest) -> Scope:
    if request.format == "any":
        return Scope(view.every_doc())
    return Scope(view.docs_with("flag", FORMAT_FLAG[request.format]))


def _accepting(view: View, fresh: Window) -> np.ndarray:
    """Listings accepting new clients whose claim was confirmed within the window (sorted docnums): a claim's
    freshness is decided on the day of the search, from the confirmation date the index holds."""
    docs = view.docs_with("flag", ACCEPTING_FLAG)
    confirmed = view.column("confirmed")[docs]
    return docs[(confirmed >= fresh.since.toordinal()) & (confirmed <= fresh.until.toordinal())]


def _facet_bits(view: View, kind: str) -> np.ndarray:
    """One bit per vocabulary term of `kind`, per document."""
    slugs = vocabulary.slugs(kind)
    assert len(slugs) <= 64, "facet bits are a uint64"
    bits = np.zeros(view.doc_count_all(), dtype=np.uint64)
    for bit, slug in enumerate(slugs):
        bits[view.docs_with(kind, slug)] |= np.uint64(1 << bit)
    return bits


def _facet_counts(view: View, kind: str, docs: np.ndarray) -> dict[str, int]:
    slugs = vocabulary.slugs(kind)
    if not len(docs):
        return dict.fromkeys(slugs, 0)
    masks = view.derived(f"facet-bits:{kind}", lambda: _facet_bits(view, kind))[docs]
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
        order = np.lexsort((view.derived("name-ranks", lambda: _name_ranks(view))[docs], secondary, primary))
    else:
        names, pks = view.column("sortname"), view.column("pk")
        order = np.asarray(sorted(range(len(docs)), key=lambda i: (
            primary[i], secondary[i], names[docs[i]], pks[docs[i]])), dtype=np.int64)
    return docs[order[start:stop]]


def search(index: SearchIndex, request: SearchRequest) -> Outcome:
    """Run a search: the page of hits the request asks for, its total, facets and spelling suggestion."""
    origin = request.origin
    view = index.view()
    units = radius = None
    if origin is not None:
        units, radius = request.units_for(origin.country), request.radius_for(origin.country)
        scope = _geo_scope(view, request, origin, units, radius)
    else:
        scope = _national_scope(view, request)

    base = intersect([scope.docs, _accepting(view, request.fresh)]) if request.accepting else scope.docs

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
    in_person = None if scope.near is None else contains(scope.near, matched)
    nearby = None if in_person is None else int(np.count_nonzero(in_person))

    sort = (request.sort or "distance") if origin is not None else "relevance"
    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    distances = scope.distances_of(matched)
    if sort == "distance" and origin is not None and units is not None:
        # In-person matches come first, then those seen online only ("34 within 10 miles, plus 12 online"): for
        # ordering, an online-only distance is pushed past every in-person one.
        online_after = np.zeros(len(matched))
        if in_person is not None and request.format == "any":
            online_after[~in_person] = ONLINE_AFTER
        # Relevance only breaks distance ties, so only the results that can reach this page are scored, and their
        # distances made exact first so that the order is geopy's.
        if len(matched) > stop:
            key = distances + online_after
            window = key <= np.partition(key, stop - 1)[stop - 1] * (1 + SLACK)
            matched, distances, online_after = matched[window], distances[window], online_after[window]
        distances = np.fromiter((_exact(view, origin, units, d) for d in matched.tolist()), dtype=np.float64,
                                count=len(matched))
        scores = _scores(view, text, matched)
        page = _page(view, matched, distances + online_after, -scores, start, stop)
    else:
        scores = _scores(view, text, matched)
        page = _page(view, matched, -scores, distances, start, stop)
    at = np.searchsorted(matched, page)
    shown: list[float | None] = [None] * len(page)
    if origin is not None and units is not None:
        # A distance sort made its window's distances exact already; a relevance sort still has approximations.
        shown = distances[at].tolist() if sort == "distance" else [_exact(view, origin, units, d) for d in page.tolist()]
    pks = view.column("pk")
    hits = [Hit(int(pks[d]), shown[i]) for i, d in enumerate(page.tolist())]
    suggestion = suggest(view, text.words) if text.query is not None and not total else None
    return Outcome(request, origin, units, radius, sort, total, facets, suggestion, nearby, hits, text)
