"""Input that a database cannot store or compare, refused at the edge alike on SQLite and PostgreSQL.

PostgreSQL rejects a NUL character in text and an integer beyond its 32-bit `integer` columns with an error that
would surface as a 500; SQLite would store or compare them. Refused here, before any query: a NUL in the path is
a page that cannot exist (404), a NUL in a query-string or form value is a bad request (400), and a path id
beyond the integer range cannot name a row (404, through the `id` converter's bounds). The public search is the
exception for values: its parameters only meet the index and the vocabulary, never a database, and its free text
takes any character as a word separator.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter

from directory.web.errors import api_error

MAX_ID = 2**31 - 1  # PostgreSQL's `integer`, the type of every primary key
SEARCH_ENDPOINTS = {"public.home", "api.search"}


class RowId(IntegerConverter):
    """A path segment naming a database row: digits from 1 to MAX_ID, anything else matches no route."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


def _refuse_nul() -> Any:
    if "\x00" in request.path:
        abort(404)
    if request.endpoint in SEARCH_ENDPOINTS:
        return None
    values = [*request.args.items(multi=True), *(request.form.items(multi=True) if request.form else [])]
    named = next((name for name, value in values if "\x00" in name or "\x00" in value), None)
    if named is None:
        return None
    message = f"The value of {named.replace(chr(0), '')[:40]!r} contains a NUL character, which no text may hold."
    if request.path.startswith("/api/"):
        return api_error(400, "invalid_parameter", message)
    abort(400, description=message)


def init_app(app: Flask) -> None:
    """Register the `id` path converter and the NUL check that runs before every view."""
    app.url_map.converters["id"] = RowId
    app.before_request(_refuse_nul)
