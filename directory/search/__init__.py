"""Full-text and geo search over listings: schema, index storage, sync with the database, queries."""

from __future__ import annotations

from flask import Flask, current_app

from directory import db
from directory.listings import published_by_ids
from directory.models import Listing
from directory.search.engine import Hit, Outcome, search
from directory.search.index import SearchIndex
from directory.search.request import SearchRequest
from directory.search.sync import install, rebuild


def init_app(app: Flask) -> None:
    """Open the index directory and make database commits flow into it."""
    index = SearchIndex(app.config["INDEX_DIR"], lock_timeout=app.config["INDEX_LOCK_TIMEOUT"])
    app.extensions["search"] = index
    install(app.extensions["db"], index)


def current_index() -> SearchIndex:
    """The app's search index."""
    return current_app.extensions["search"]


def build_if_missing(app: Flask) -> None:
    """Build the index from the database when there is none yet (first start, or a fresh INDEX_DIR)."""
    index: SearchIndex = app.extensions["search"]
    if not index.exists():
        rebuild(app.extensions["db"], index)


def find(request: SearchRequest) -> tuple[Outcome, list[tuple[Hit, Listing]]]:
    """Run a search and load its page of listings from the database, paired with their hits in result order."""
    outcome = search(current_index(), request)
    listings = published_by_ids(db.session(), [hit.listing_id for hit in outcome.hits])
    return outcome, [(hit, listings[hit.listing_id]) for hit in outcome.hits if hit.listing_id in listings]
