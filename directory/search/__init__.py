"""Full-text and geo search over listings: schema, index storage, sync with the database, queries."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app

from directory import db
from directory.search import results
from directory.search.request import SearchRequest
from directory.search.results import Results
from directory.search.sync import install, rebuild
from directory.search.writing import SearchIndex


def init_app(app: Flask) -> None:
    """Open the index directory and make database commits flow into it."""
    index = SearchIndex(app.config["INDEX_DIR"], lock_timeout=app.config["INDEX_LOCK_TIMEOUT"])
    app.extensions["search"] = index
    install(db.factory(app), index)


def current_index() -> SearchIndex:
    """The app's search index."""
    return current_app.extensions["search"]


def build_if_missing(app: Flask, then: Callable[[], object]) -> None:
    """Build the index from the database when there is none yet (first start, or a fresh INDEX_DIR), then run
    `then` (loading sample data, say); when several processes start at once, one does both and the others wait."""
    index: SearchIndex = app.extensions["search"]

    def first_build() -> None:
        rebuild(db.factory(app), index)
        then()

    index.build_once(first_build)


def find(request: SearchRequest) -> Results:
    """Run a search on the app's index: the page of results and everything shown around it."""
    return results.find(current_index(), request)
