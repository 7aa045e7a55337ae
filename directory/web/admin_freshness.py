"""The admin's freshness section: the overview of confirmations, asking one listing or every stale one, each
listing's history, and the outbox of the embedded default (messages written to files, their tokens masked)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from sqlalchemy import func, select

from directory import db, mail
from directory.audit import commit_event
from directory.confirmations import freshness, requests
from directory.models import ConfirmationOptOut, Listing
from directory.web import app_state
from directory.web.security import admin_required, current_admin, safe_next

bp = Blueprint("freshness", __name__, url_prefix="/admin/freshness")
FAILED_ROWS = 200


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def count_stale_to_ask() -> int:
    """How many emails "ask every stale listing" would send now (ASK_BATCH at most a click)."""
    query = requests.stale_selection(_app()).limit(requests.ASK_BATCH)
    return db.session().scalar(select(func.count()).select_from(query.subquery())) or 0


@bp.get("")
@admin_required
def overview() -> str:
    """Confirmed lately, asked and not answered, failed or refused mail, unsubscribed, the answer rate."""
    session = db.session()
    return render_template("admin/freshness.html", target=freshness.TARGET_SHARE,
                           summary=freshness.freshness(session, app_state.today(), current_app.config["NOW"](),
                                                       current_app.config["CONFIRMATION_LINK_DAYS"]),
                           failed=freshness.failed_requests(session, FAILED_ROWS), to_ask=count_stale_to_ask(),
                           outbox=None if current_app.config["MAIL_SERVER"] else mail.outbox(_app()),
                           mask=freshness.mask_links)


@bp.post("/ask")
@admin_required
def ask() -> ResponseReturnValue:
    """Email one listing (`listing_id`, whenever it was last asked) or every stale one (`all`, ASK_BATCH at most a
    click) to confirm."""
    session = db.session()
    if request.form.get("all"):
        ids = requests.ask(session, _app(), requests.stale_selection(_app()))
    else:
        listing_id = request.form.get("listing_id", type=int) or 0
        listing = session.get(Listing, listing_id) if 0 < listing_id < 2**31 else None
        if listing is None:
            abort(404, description="No such listing.")
        if not listing.email or session.get(ConfirmationOptOut, listing.id) is not None:
            flash(f"{listing.name} has no email address or asked for no more emails: nothing was sent.", "error")
            return redirect(_back())
        ids = requests.record(session, _app(), [listing])
    commit_event(session, current_admin() or "", "ask-confirmation", f"{len(ids)} listing(s)")
    try:
        requests.queue_sending(_app(), ids)
    except RedisError as exc:
        # Recorded: the schedule queues them once the queue is back (see sending.lost).
        flash(f"{len(ids)} confirmation email(s) recorded, but the job queue (Redis) cannot be reached ({exc}): they "
              "are sent once it is back.", "error")
        return redirect(_back())
    flash(f"{len(ids)} confirmation email(s) queued.", "info")
    return redirect(_back())


def _back() -> str:
    """Where the form came from, when it is an admin page (never another site); else the overview."""
    back = safe_next(request.form.get("back"), "")
    return back if back.startswith("/admin/") else url_for("freshness.overview")


@bp.get("/listings/<id:listing_id>")
@admin_required
def listing_history(listing_id: int) -> str:
    """One listing's confirmation requests and answers."""
    session = db.session()
    listing = session.get(Listing, listing_id)
    if listing is None:
        abort(404, description="No such listing.")
    return render_template("admin/confirmation_history.html", listing=listing,
                           requests=freshness.history(session, listing_id),
                           unsubscribed=session.get(ConfirmationOptOut, listing_id))
