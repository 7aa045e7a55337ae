"""The admin's freshness section: the overview of confirmations, asking one listing or every stale one, each
listing's history, and the outbox of the embedded default (messages written to files, their tokens masked)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from directory import db, mail
from directory.audit import commit_event
from directory.confirmations import freshness, requests
from directory.models import ConfirmationOptOut, Listing
from directory.web import app_state
from directory.web.security import admin_required, current_admin

bp = Blueprint("freshness", __name__, url_prefix="/admin/freshness")
FAILED_ROWS = 200


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def stale_selection() -> Any:
    """Who "ask every stale listing" asks: claims older than STALE_AFTER_DAYS, not asked within the interval."""
    cutoff = app_state.today() - dt.timedelta(days=current_app.config["STALE_AFTER_DAYS"])
    return requests.selection(cutoff, requests.interval_start(_app()))


def count_stale_to_ask() -> int:
    """How many emails "ask every stale listing" would send now."""
    return db.session().scalar(select(func.count()).select_from(stale_selection().subquery())) or 0


@bp.get("")
@admin_required
def overview() -> str:
    """Confirmed lately, asked and not answered, failed or refused mail, unsubscribed, the answer rate."""
    session = db.session()
    return render_template("admin/freshness.html", target=freshness.TARGET_SHARE,
                           summary=freshness.freshness(session, app_state.today(), current_app.config["NOW"]()),
                           failed=freshness.failed_requests(session, FAILED_ROWS), to_ask=count_stale_to_ask(),
                           outbox=None if current_app.config["MAIL_SERVER"] else mail.outbox(_app()),
                           mask=freshness.mask_links)


@bp.post("/ask")
@admin_required
def ask() -> ResponseReturnValue:
    """Email one listing (`listing_id`, whenever it was last asked) or every stale one (`all`) to confirm."""
    session = db.session()
    if request.form.get("all"):
        listings = session.scalars(stale_selection()).all()
    else:
        listing_id = request.form.get("listing_id", type=int) or 0
        listing = session.get(Listing, listing_id) if 0 < listing_id < 2**31 else None
        if listing is None:
            abort(404, description="No such listing.")
        if not listing.email or session.get(ConfirmationOptOut, listing.id) is not None:
            flash(f"{listing.name} has no email address or asked for no more emails: nothing was sent.", "error")
            return redirect(_back())
        listings = [listing]
    requests.queue_sending(_app(), requests.record(session, _app(), listings))
    commit_event(session, current_admin() or "", "ask-confirmation", f"{len(listings)} listing(s)")
    flash(f"{len(listings)} confirmation email(s) queued.", "info")
    return redirect(_back())


def _back() -> str:
    """Where the form came from, when it is an admin page (never another site); else the overview."""
    back = request.form.get("back", "")
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
