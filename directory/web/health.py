"""Probes for load balancers and orchestrators: `/health` (the process answers) and `/ready` (it can serve what the
database holds: the database answers, the index is open, and it lags the change log by less than
READY_MAX_LAG_SECONDS). JSON, no secrets, no session cookie, never rate limited."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from directory import db
from directory.models import utcnow
from directory.search import change_log

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    """Liveness: 200 whenever this process answers."""
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready() -> ResponseReturnValue:
    """Readiness: 200 when the database answers, the index is open and its lag is under the bound, else 503, with
    each check's outcome."""
    checks: dict[str, Any] = {"database": "ok", "index": "ok", "lag_seconds": None,
                              "max_lag_seconds": current_app.config["READY_MAX_LAG_SECONDS"]}
    index = current_app.extensions["search"]
    if not index.exists():
        checks["index"] = "missing"
    try:
        with db.factory()() as session:
            session.execute(text("SELECT 1"))
            applied = index.applied_change()
            _behind, first = change_log.oldest_after(session, applied or 0)
            # None: the index has no record of the log (being built): not ready until it has.
            checks["lag_seconds"] = None if applied is None else (
                round((utcnow() - first.at).total_seconds(), 3) if first is not None else 0.0)
    except SQLAlchemyError as exc:
        # Only the kind of error: its message can hold the database's address.
        checks["database"] = f"unreachable ({type(exc).__name__})"
    lag = checks["lag_seconds"]
    ok = checks["database"] == "ok" and checks["index"] == "ok" and lag is not None and lag <= checks[
        "max_lag_seconds"]
    return jsonify({"status": "ready" if ok else "not ready", "checks": checks}), 200 if ok else 503
