"""What a search shows: the page of listings with their distances and snippets, and everything around them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import QueryableAttribute, Session

from directory.listings import published_by_ids, published_rows_by_ids
from directory.models import Listing
from directory.search.engine import Summary, search
from directory.search.index.storage import SearchIndex
from directory.search.request import SearchRequest
from directory.search.text import snippet


@dataclass(frozen=True)
class Result:
    """One listing of the page (or a named tuple of the columns that were asked for), as far away as `distance` (None
    without an origin), with a bio excerpt whose matched words are marked: (piece, marked) pairs."""

    listing: Listing | Any
    distance: float | None
    snippet: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class Results(Summary):
    """A page of results with everything the page and the API show around it."""

    results: list[Result]


def find(index: SearchIndex, session: Session, request: SearchRequest,
         columns: tuple[QueryableAttribute[Any], ...] = ()) -> Results:
    """Run a search on `index` and load its page of listings through `session`, in result order: with `columns`,
    named tuples of only those (and the bio, for the snippets)."""
    outcome = search(index, request)
    ids = [hit.listing_id for hit in outcome.hits]
    listings: Mapping[int, Any] = (published_rows_by_ids(session, ids, (*columns, Listing.bio))
                                   if columns else published_by_ids(session, ids))
    shown = [Result(listing, hit.distance, tuple(snippet(listing.bio, outcome.text.stems)))
             for hit in outcome.hits if (listing := listings.get(hit.listing_id)) is not None]
    summary = {f.name: getattr(outcome, f.name) for f in dataclasses.fields(Summary)}
    return Results(**summary, results=shown)
