"""The shortlist: up to ten listings a searcher keeps to compare side by side, with no account; and the privacy
page, which says that this is all the site keeps about a searcher, and where.

It lives in the browser only: a cookie holding listing ids, signed so that a changed one is ignored, set only once
something is saved (search pages set none), and a share link (`/shortlist?ids=...`) that shows the same comparison
anywhere. Nothing about the searcher is stored on the server. Saving is a plain form POST; instead of a session and
its CSRF token, a save must come from this site's own pages (its Origin header, else its Referer), and the cookie is
SameSite=Lax, so another site can neither send one nor read the list.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, has_request_context, jsonify, redirect, render_template,
                   request, url_for)
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.wrappers import Response as BaseResponse
from sqlalchemy import select

from directory import db
from directory.models import Listing
from directory.vocabulary import vocabulary
from directory.web.presenters import availability_words, distance_words, fee_words, gender_words, sees_words
from directory.web.app_state import fresh_window
from directory.web.public import searched_from
from directory.web.security import csrf, safe_next

R = TypeVar("R", bound=BaseResponse)
bp = Blueprint("shortlist", __name__)
COOKIE = "shortlist"
MAX_SAVED = 10
COOKIE_DAYS = 90  # the privacy page says so
MAX_ID = 2**31 - 1  # PostgreSQL's integer: a bigger id names no listing (and would be an error to query)


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="shortlist")


def saved_ids() -> list[int]:
    """The listing ids in this browser's shortlist cookie, in the order saved; none when it is absent or was
    changed outside the site (never an error)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return []
    try:
        ids = _signer().loads(raw)
    except BadSignature:
        return []
    if not isinstance(ids, list):
        return []
    return list(dict.fromkeys(i for i in ids if type(i) is int))[:MAX_SAVED]


def _listing_id(text: str) -> int | None:
    """A listing id written in ASCII digits, within the database's integer; None for anything else."""
    text = text.strip()
    return int(text) if re.fullmatch(r"[0-9]{1,10}", text) and int(text) <= MAX_ID else None


def _ids_param(text: str) -> list[int]:
    """The listing ids of a share link's `ids` (comma-separated), the first MAX_SAVED; anything else ignored."""
    ids = (_listing_id(part) for part in text.split(",")[:100])
    return list(dict.fromkeys(i for i in ids if i is not None))[:MAX_SAVED]


def _keeping(response: R, ids: list[int]) -> R:
    """The response with the shortlist cookie set to `ids` (deleted when there are none)."""
    secure = request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE"))  # (behind a TLS proxy)
    options: dict[str, Any] = {"path": "/", "httponly": True, "samesite": "Lax", "secure": secure}
    if ids:
        response.set_cookie(COOKIE, _signer().dumps(ids), max_age=COOKIE_DAYS * 24 * 3600, **options)
    else:
        response.delete_cookie(COOKIE, **options)
    return response


def _from_this_site() -> bool:
    """Whether a POST was sent by a page of this site: its Origin (every current browser sends one with a form
    POST), else its Referer, names this host."""
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    host = urlsplit(source).netloc if source != "null" else ""
    return bool(host) and host in (request.host, urlsplit(current_app.config["PUBLIC_BASE_URL"]).netloc)


def _wants_json() -> bool:
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"


def _posted_listing_id() -> int:
    """The `listing` field of a save or removal.

    :raise 400: when it is not a listing id.
    """
    listing_id = _listing_id(request.form.get("listing", ""))
    if listing_id is None:
        abort(400, description="Which listing? The form's `listing` field must be a listing number.")
    return listing_id


@bp.post("/shortlist")
@csrf.exempt
def save() -> Any:
    """Save a listing to the shortlist, or remove it (`action=remove`); back to `next`, or JSON for the page's
    script.

    :raise 403: when the form was not sent from a page of this site.
    :raise 404: when saving a listing that is not published.
    """
    if not _from_this_site():
        abort(403, description="The shortlist can only be changed from this site's own pages.")
    listing_id = _posted_listing_id()
    back = safe_next(request.form.get("next"), url_for("shortlist.page"))
    ids = saved_ids()
    listing = db.session().get(Listing, listing_id)
    name = listing.name if listing is not None else "This listing"
    if request.form.get("action") == "remove":
        ids = [i for i in ids if i != listing_id]
        saved, message, status = False, f"Removed {name} from your shortlist ({len(ids)} of {MAX_SAVED}).", 200
    elif listing is None or not listing.published:
        gone = "This listing does not exist or is no longer published."
        if _wants_json():
            return jsonify(ok=False, saved=False, count=len(ids), full=False, message=gone), 404
        abort(404, description=gone)
    elif listing_id in ids or len(ids) < MAX_SAVED:
        ids = [*ids, listing_id] if listing_id not in ids else ids
        saved, message, status = True, f"Saved {name} to your shortlist ({len(ids)} of {MAX_SAVED}).", 200
    else:
        saved, status = False, 409
        message = f"Your shortlist is full: it holds {MAX_SAVED} therapists. Remove one to save {name}."
    if _wants_json():
        answer = jsonify(ok=status == 200, saved=saved, count=len(ids), full=status == 409, message=message)
        return _keeping(answer, ids), status
    if status == 409:
        return _page(ids, shared=False, message=message, back=back), 409
    return _keeping(redirect(f"{back}#listing-{listing_id}", 303), ids)


@bp.post("/shortlist/clear")
@csrf.exempt
def clear() -> BaseResponse:
    """Empty the shortlist; back to `next`.

    :raise 403: when the form was not sent from a page of this site.
    """
    if not _from_this_site():
        abort(403, description="The shortlist can only be changed from this site's own pages.")
    return _keeping(redirect(safe_next(request.form.get("next"), url_for("shortlist.page")), 303), [])


@bp.get("/shortlist")
def page() -> str:
    """The shortlist side by side: this browser's, or a shared link's (`ids`), measured from `location`."""
    if "ids" in request.args:
        return _page(_ids_param(request.args.get("ids", "")), shared=True)
    return _page(saved_ids(), shared=False)


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the comparison: its label, each listed therapist's value, and whether they all agree."""

    label: str
    cells: list[str]

    @property
    def same(self) -> bool:
        """Whether every therapist compared (two or more) has the same value here."""
        return len(self.cells) > 1 and len(set(self.cells)) == 1


def _names(kind: str, slugs: list[str], none: str) -> str:
    names = [term.name if (term := vocabulary.get(kind, slug)) else slug for slug in slugs]
    return ", ".join(names) if names else none


def _availability(listing: Listing) -> str:
    state, words = availability_words(listing, fresh_window())
    on = listing.availability_confirmed_on
    return f"{words} ({on.strftime('%B %-d, %Y')})" if on is not None and state != "unconfirmed" else words


def _distance(listing: Listing, searched: Any) -> str:
    if not listing.in_person:
        return "Online only"
    return (distance_words(listing, *searched) if searched else None) or f"{listing.city}, {listing.region}"


def comparison(listed: list[Listing], searched: Any) -> list[Row]:
    """The comparison's rows for the listed therapists, in the order of `listed`."""
    country = searched[0].country if searched else None

    def row(label: str, value: Any) -> Row:
        return Row(label, [value(listing) for listing in listed])

    return [
        row("Distance" if searched else "Where", lambda item: _distance(item, searched)),
        row("Availability", _availability),
        row("Sessions", lambda item: "In person and online" if item.in_person and item.telehealth
            else "In person" if item.in_person else "Online only"),
        row("Fee per session", lambda item: fee_words(item, country) or "Ask the therapist"),
        row("Sliding scale", lambda item: "Yes" if item.sliding_scale else "No"),
        row("Insurance", lambda item: _names("insurance", item.insurance, "None listed")),
        row("Who they see", lambda item: sees_words(item).removeprefix("Sees ") or "Not listed"),
        row("Approaches", lambda item: _names("modality", item.modalities, "Not listed")),
        row("Specialties", lambda item: _names("specialty", item.specialties, "Not listed")),
        row("Languages", lambda item: _names("language", item.languages, "Not listed")),
        row("Gender", lambda item: gender_words(item) or "Not listed"),
        row("Communities", lambda item: _names("community", item.communities, "None listed")),
    ]


def _page(ids: list[int], *, shared: bool, message: str = "", back: str = "") -> str:
    """The comparison page for these ids (those no longer listed shown as such)."""
    found = {listing.id: listing for listing in db.session().scalars(select(Listing).where(Listing.id.in_(ids)))
             if listing.published} if ids else {}
    listed = [found[i] for i in ids if i in found]
    searched = searched_from()
    where = {key: request.args[key] for key in ("location", "units") if request.args.get(key)}
    share_url = url_for("shortlist.page", ids=",".join(str(i) for i in ids), **where, _external=True) if ids else ""
    return render_template("shortlist.html", entries=[(i, found.get(i)) for i in ids], listed=listed,
                           rows=comparison(listed, searched), shared=shared, message=message, share_url=share_url,
                           here=request.full_path.rstrip("?"), back=back, where=where, max_saved=MAX_SAVED)


@bp.get("/privacy")
def privacy() -> str:
    """What the site keeps about the people who search it (nothing but their own shortlist, in their browser), the
    cookies it sets, and what admins see."""
    return render_template("privacy.html", shortlist_days=COOKIE_DAYS, max_saved=MAX_SAVED)


@bp.after_app_request
def _varies_by_shortlist(response: R) -> R:
    # Every page shows which listings this browser saved: a shared cache must not hand one browser's page to another.
    if response.mimetype == "text/html":
        response.vary.add("Cookie")
    return response


@bp.app_context_processor
def _shortlist_state() -> dict[str, Any]:
    # Every page's Save buttons and the header's count read the request's cookie; no page but a save writes it.
    # The header's link carries the page's searched place, so that the comparison measures from it. (Emails are
    # rendered outside any request.)
    if not has_request_context():
        return {"saved_ids": [], "shortlist_where": {}}
    where = {key: request.args[key] for key in ("location", "units") if request.args.get(key)}
    if "location" not in where and request.args.get("postcode"):
        where["location"] = request.args["postcode"]
    return {"saved_ids": saved_ids(), "shortlist_where": where}
