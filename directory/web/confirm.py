"""The pages a therapist reaches from a confirmation email. Mail scanners open every link, so a GET only shows the
listing and one button; the POST (CSRF-protected) records the answer. One-click unsubscribe (RFC 8058) is the one
POST without a form, as mail clients send it. Rate limited per address and per listing."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from sqlalchemy import select

from directory import db
from directory.confirmations import links
from directory.confirmations.answers import LinkCheck, answer, check_link, opt_out
from directory.confirmations.requests import queue_sending, record
from directory.models import ConfirmationOptOut, ConfirmationRequest
from directory.web.security import csrf, limiter

bp = Blueprint("confirm", __name__)
log = logging.getLogger(__name__)
FRESH_LINK_INTERVAL = dt.timedelta(days=1)

# What each problem with a link is called, its status, and what to say.
PROBLEMS = {
    "invalid": (404, "This link does not work", "It was not made by this directory, or it was changed on the way."),
    "expired": (410, "This link has expired", "Links in our emails work for a limited time."),
    "used": (410, "This link was already used", "An answer was already recorded from this email."),
    "outdated": (410, "This listing changed since the email was sent",
                 "So that an old email cannot undo a newer change, its links stopped working."),
}


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _named_listing() -> int | None:
    """The listing the requested link names, when it was signed here."""
    said = links.read(_app(), (request.view_args or {}).get("token", ""))
    return said[1] if said else None


def _per_listing(view: Any) -> Any:
    """Rate limited per listing (for links signed here: others name none)."""
    return limiter.limit(lambda: current_app.config["LINK_LISTING_RATE_LIMIT"],
                         key_func=lambda: f"listing-link:{_named_listing()}",
                         exempt_when=lambda: _named_listing() is None)(view)


def _limited(view: Any) -> Any:
    """Rate limited per client address, and per listing."""
    return _per_listing(limiter.limit(lambda: current_app.config["LINK_RATE_LIMIT"])(view))


@bp.route("/listing-check/<token>", methods=["GET", "POST"])
@_limited
def listing_check(token: str) -> ResponseReturnValue:
    """A link of a confirmation email: the listing and one button (GET); the answer recorded (POST)."""
    link = check_link(db.session(), _app(), token)
    if link.problem and not (link.action == "unsubscribe" and link.problem != "invalid"):
        return _problem(link, token)
    if request.method != "POST":  # GET, and HEAD (which Flask routes here too): never a change
        return render_template("confirm/link.html", link=link, token=token)
    if link.action == "unsubscribe":
        opt_out(db.session(), _app(), link)
    elif not answer(db.session(), _app(), link):
        return _problem(LinkCheck("used", link.action, link.request, link.listing), token)
    return render_template("confirm/done.html", link=link)


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> ResponseReturnValue:
    """A List-Unsubscribe address opened in a browser: the page with the button."""
    return redirect(f"{links.PATH}{token}")


@bp.post("/unsubscribe/<token>")
@csrf.exempt
@_per_listing  # not per address: mail providers post everyone's one-click unsubscribes from a few
def one_click_unsubscribe(token: str) -> ResponseReturnValue:
    """One-click unsubscribe from a mail client (RFC 8058: a POST of List-Unsubscribe=One-Click, no form)."""
    if request.form.get("List-Unsubscribe") != "One-Click":
        abort(400, description="A one-click unsubscribe posts List-Unsubscribe=One-Click.")
    link = check_link(db.session(), _app(), token)
    if link.problem == "invalid" or link.action != "unsubscribe":
        return _problem(LinkCheck("invalid"), token)
    opt_out(db.session(), _app(), link)
    return render_template("confirm/done.html", link=link)


@bp.post("/listing-check/<token>/fresh")
@_limited
def fresh_link(token: str) -> ResponseReturnValue:
    """Send a fresh email to the listing's own address, for a link that stopped working (never to another)."""
    session = db.session()
    link = check_link(session, _app(), token)
    if link.problem in ("", "invalid") or link.listing is None:
        return _problem(LinkCheck("invalid"), token)
    listing = link.listing
    # One fresh email a day per listing at most (the one whose link failed does not count), and none to a listing
    # that unsubscribed or has no address now; the page says the same whatever happened, so it tells nobody what
    # the directory holds.
    assert link.request is not None
    since = max(current_app.config["NOW"]() - FRESH_LINK_INTERVAL, link.request.created_at)
    asked_recently = session.scalar(select(ConfirmationRequest.id).where(
        ConfirmationRequest.listing_id == listing.id, ConfirmationRequest.created_at > since).limit(1))
    if listing.email and listing.published and asked_recently is None \
            and session.get(ConfirmationOptOut, listing.id) is None:
        ids = record(session, _app(), [listing])
        try:
            queue_sending(_app(), ids)
        except RedisError:
            log.warning("fresh confirmation link %s recorded, not queued: Redis cannot be reached", ids)
    return render_template("confirm/fresh.html")


def _problem(link: LinkCheck, token: str) -> ResponseReturnValue:
    status, title, message = PROBLEMS[link.problem]
    return render_template("confirm/problem.html", title=title, message=message, token=token,
                           can_refresh=link.problem != "invalid"), status
