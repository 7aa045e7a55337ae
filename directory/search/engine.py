"""Running a search: where it reaches (radius.py), who is accepting (accepting.py), the words (text.py) and the
facet filters and counts (facets.py), then the page of hits in the order asked for (those accepting new clients
first, then unconfirmed, then not accepting, each nearest or most relevant first), with a spelling suggestion when
nothing matched."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from directory.geo import Place
from directory.search.accepting import STANDINGS, accepting, standings
from directory.search.cost import within_cost
from directory.search.facets import filtered
from directory.search.index.docsets import contains, intersect, union
from directory.search.index.snapshot import IndexSnapshot
from directory.search.index.storage import SearchIndex
from directory.search.radius import SLACK, Scope, exact_distances, scope_of
from directory.search.request import SearchRequest
from directory.search.text import FilterWord, Phrase, TextQuery, suggest, text_query

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
    offers: tuple[FilterWord, ...]  # filters the text names that the request has not chosen
    applied: FilterWord | None  # the filter the whole text named, applied in its place
    ran: SearchRequest  # the request as run: `request`, or with the applied filter chosen in place of its text


@dataclass(frozen=True)
class Outcome(Summary):
    """The engine's answer: the summary, the page of hits, and the parsed text (for snippets)."""

    hits: list[Hit]
    text: TextQuery


def _scores(snapshot: IndexSnapshot, text: TextQuery, docs: np.ndarray) -> np.ndarray:
    if text.query is None:
        return np.zeros(len(docs))
    return snapshot.scores(text.query, text.stems, docs)


def _text_matches(snapshot: IndexSnapshot, text: TextQuery, candidates: np.ndarray) -> np.ndarray:
    """Candidates holding every word (rarest first, so the set shrinks fastest), then each phrase checked by
    position."""
    found = candidates
    for stem in sorted(text.stems, key=lambda stem: snapshot.doc_frequency("text", stem)):
        if not len(found):
            break
        found = snapshot.narrow("text", stem, found)
    for phrase in text.phrases:
        if not len(found):
            break
        found = found[_holds_phrase(snapshot, phrase, found)]
    return found


def _holds_phrase(snapshot: IndexSnapshot, phrase: Phrase, docs: np.ndarray) -> np.ndarray:
    """For each of the docs (which hold every word of the phrase), whether the words occur in the phrase's order
    and spacing."""
    positions = [(snapshot.positions("text", stem, docs), shift) for stem, shift in phrase]
    (first, _), rest = positions[0], positions[1:]
    return np.fromiter((any(all(start + shift in at[doc] for at, shift in rest) for start in first[doc])
                        for doc in docs.tolist()), dtype=bool, count=len(docs))


def _name_ranks(snapshot: IndexSnapshot) -> np.ndarray:
    """Each document's position in (name, listing id) order, for ordering many equal keys in NumPy."""
    names, pks = snapshot.column("sortname"), snapshot.column("pk").tolist()
    order = sorted(range(len(names)), key=lambda d: (names[d], pks[d]))
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def _reaching(tiers: np.ndarray, key: np.ndarray, stop: int, slack: float = 0.0) -> np.ndarray:
    """Which results can be among the first `stop` in (tier, key) order: all of the tiers before the one the
    stop-th result falls in, and of that tier those whose key is at most its cutoff (for keys of at least 0, widened
    by `slack` relative to it)."""
    if stop >= len(key):
        return np.ones(len(key), dtype=bool)
    filled = np.cumsum(np.bincount(tiers))
    last = int(np.searchsorted(filled, stop))  # the tier of the stop-th result
    inside = tiers == last
    place = stop - 1 - (int(filled[last - 1]) if last else 0)  # of the stop-th result within its tier
    cutoff = np.partition(key[inside], place)[place]
    return (tiers < last) | (inside & (key <= cutoff * (1 + slack)))


def _page(snapshot: IndexSnapshot, docs: np.ndarray, tiers: np.ndarray, primary: np.ndarray, secondary: np.ndarray,
          start: int, stop: int) -> np.ndarray:
    """Docnums of results start..stop, ordered by tier (a small whole number), primary key, secondary key, then
    name, then listing id."""
    if start >= len(docs):
        return docs[:0]
    # Only results that can reach the page take part in the ordering.
    keep = _reaching(tiers, primary, stop)
    docs, tiers, primary, secondary = docs[keep], tiers[keep], primary[keep], secondary[keep]
    if len(docs) > PYTHON_ORDERING:
        names = snapshot.derived("name-ranks", lambda: _name_ranks(snapshot))[docs]
        order = np.lexsort((names, secondary, primary, tiers))
    else:
        sortnames, pks = snapshot.column("sortname"), snapshot.column("pk")
        order = np.asarray(sorted(range(len(docs)), key=lambda i: (
            tiers[i], primary[i], secondary[i], sortnames[docs[i]], pks[docs[i]])), dtype=np.int64)
    return docs[order[start:stop]]


def _nearest_first(snapshot: IndexSnapshot, scope: Scope, text: TextQuery, matched: np.ndarray,
                   standing: np.ndarray, online_only: np.ndarray | None, start: int,
                   stop: int) -> tuple[np.ndarray, list[float | None]]:
    """The page of results start..stop by standing then distance, relevance breaking ties, with their exact
    distances. With online_only, in-person matches come first, then those seen online only ("34 within 10 miles,
    plus 12 online"), each group ordered so."""
    assert scope.origin is not None and scope.units is not None
    tiers = standing if online_only is None else standing + STANDINGS * online_only
    # Relevance only breaks distance ties, so only the results that can reach this page are scored, and their
    # distances made exact first so that the order is geopy's.
    window = _reaching(tiers, scope.distances_of(matched), stop, SLACK)
    matched, tiers = matched[window], tiers[window]
    distances = exact_distances(snapshot, scope.origin, scope.units, matched)
    page = _page(snapshot, matched, tiers, distances, -_scores(snapshot, text, matched), start, stop)
    return page, distances[np.searchsorted(matched, page)].tolist()


def _most_relevant(snapshot: IndexSnapshot, scope: Scope, text: TextQuery, matched: np.ndarray,
                   standing: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, list[float | None]]:
    """The page of results start..stop by standing then relevance, distance breaking ties, with their exact
    distances (None without an origin)."""
    page = _page(snapshot, matched, standing, -_scores(snapshot, text, matched), scope.distances_of(matched),
                 start, stop)
    if scope.origin is None or scope.units is None:
        return page, [None] * len(page)
    return page, exact_distances(snapshot, scope.origin, scope.units, page).tolist()


def _chosen(request: SearchRequest, offer: FilterWord) -> bool:
    if offer.kind == "format":
        return request.format == offer.value
    if offer.kind == "sliding_scale":
        return request.sliding_scale
    return offer.value in request.filters[offer.kind]


def _with_filter(request: SearchRequest, offer: FilterWord) -> SearchRequest | None:
    """The request with the filter `offer` names chosen in place of its text, or None when another value of that
    filter is chosen: adding the word's value would widen the search (values of one filter are any of them), so
    the text stays words."""
    if offer.kind == "format":
        return None if request.format not in ("any", offer.value) else \
            dataclasses.replace(request, q="", format=offer.value)
    if offer.kind == "sliding_scale":
        return dataclasses.replace(request, q="", sliding_scale=True)
    chosen = request.filters[offer.kind]
    if chosen and offer.value not in chosen:
        return None
    return dataclasses.replace(request, q="", **{offer.kind: (offer.value,)})  # type: ignore[arg-type]


def search(index: SearchIndex, request: SearchRequest) -> Outcome:
    """Run a search: the page of hits the request asks for, its total, facets and spelling suggestion. Text that is
    only a filter's word ("Spanish", "telehealth") is that filter: the answer is the filter's, and says so."""
    text = text_query(request.q)
    offers = tuple(offer for offer in text.offers if not _chosen(request, offer))
    only = text.only_filter
    applying = None if only is None else _with_filter(request, only)
    if only is not None and applying is not None:
        outcome = _search(index, applying)
        return dataclasses.replace(outcome, request=request, offers=offers, applied=only)
    return dataclasses.replace(_search(index, request), offers=offers)


def _search(index: SearchIndex, request: SearchRequest) -> Outcome:
    snapshot = index.snapshot()
    scope = scope_of(snapshot, request)
    base = accepting(snapshot, request.fresh, scope.docs) if request.accepting else scope.docs
    base = within_cost(snapshot, request, base)

    text = text_query(request.q)
    if text.query is not None:
        named = [intersect([base, snapshot.docs_with(kind, slug)]) for kind, slug in text.terms]
        base = union([_text_matches(snapshot, text, base), *named])

    matched, facets = filtered(snapshot, base, request.filters)
    total = len(matched)
    in_person = None if scope.near is None else contains(scope.near, matched)
    nearby = None if in_person is None else int(np.count_nonzero(in_person))

    sort = (request.sort or "distance") if scope.origin is not None else "relevance"
    start = (request.page - 1) * request.per_page
    stop = start + request.per_page
    standing = standings(snapshot, request.fresh, matched)
    if sort == "distance":
        online_only = ~in_person if in_person is not None and request.format == "any" else None
        page, shown = _nearest_first(snapshot, scope, text, matched, standing, online_only, start, stop)
    else:
        page, shown = _most_relevant(snapshot, scope, text, matched, standing, start, stop)
    pks = snapshot.column("pk")
    hits = [Hit(int(pks[d]), shown[i]) for i, d in enumerate(page.tolist())]
    suggestion = suggest(snapshot, text.words) if text.query is not None and not total else None
    return Outcome(request, scope.origin, scope.units, scope.radius, sort, total, facets, suggestion, nearby, (),
                   None, request, hits, text)
