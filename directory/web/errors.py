"""Error responses in one place: JSON `{"error", "message"}` under /api, site-styled pages elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed, ServiceUnavailable

from directory import db
from directory.search.index.snapshot import OutdatedIndex

log = logging.getLogger(__name__)


def api_error(status: int, code: str, message: str, choices: tuple[str, ...] = ()) -> tuple[Response, int]:
    """A JSON error response; `choices` (what a place name may have meant) only when there are some."""
    body: dict[str, object] = {"error": code, "message": message}
    if choices:
        body["choices"] = list(choices)
    return jsonify(body), status


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _http_error(exc: HTTPException) -> tuple[Response, int]:
    status = exc.code or 500
    if status == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"] / (1024 * 1024)
        exc.description = f"The upload is larger than the {limit:g} MB limit. Split the file and import the parts."
    if _wants_json():
        code = (exc.name or "error").lower().replace(" ", "_")
        response, status = api_error(status, code, exc.description or exc.name)
    else:
        response = current_app.make_response(
            render_template("error.html", status=status, title=exc.name, message=exc.description))
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # RFC 9110 requires it on every 405
    return response, status


def _rollback() -> None:
    db_session = g.get("db_session")
    if db_session is not None:
        try:
            db_session.rollback()
        except Exception:  # a session whose commit succeeded before the error cannot roll back; nothing is lost
            log.exception("rolling back after an error failed")


def _unexpected_error(exc: Exception) -> tuple[Response, int]:
    log.exception("unhandled error on %s", request.path)
    _rollback()
    return _http_error(InternalServerError())


def _database_busy(exc: OperationalError) -> tuple[Response, int]:
    if not db.is_busy(exc):
        return _unexpected_error(exc)
    # SQLite allows one writer, which a big import holds for its write phase; on PostgreSQL an import holds the rows
    # it changed. Said plainly, before gunicorn's worker timeout.
    log.warning("database busy on %s", request.path)
    _rollback()
    return _http_error(ServiceUnavailable("The database is busy writing an import. Nothing was saved; "
                                          "please try again in a minute."))


def _outdated_index(exc: OutdatedIndex) -> tuple[Response, int]:
    # An operator's job, not a bug: say so (and log it) instead of a bare 500.
    log.error("%s", exc)
    return _http_error(ServiceUnavailable("Search is being rebuilt; please try again in a few minutes."))


def _refuse_options() -> None:
    # Flask answers OPTIONS on every path by itself. Nothing here is called from another origin (no CORS), so there
    # is no preflight to answer: OPTIONS gets the 405 that every method a path does not take gets, with its Allow.
    if request.method == "OPTIONS" and request.url_rule is not None:
        methods = request.url_rule.methods or set()
        raise MethodNotAllowed(valid_methods=sorted(methods - {"OPTIONS"}))


def init_app(app: Flask) -> None:
    """Register the error handlers, and the refusal of OPTIONS."""
    app.before_request(_refuse_options)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OutdatedIndex, _outdated_index)
    app.register_error_handler(OperationalError, _database_busy)
    app.register_error_handler(Exception, _unexpected_error)
