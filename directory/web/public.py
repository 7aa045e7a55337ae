"""The public pages: the search form with results, and therapist profiles."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from directory import db
from directory.listings import published_by_slug
from directory.search import find
from directory.search.request import RADIUS_CHOICES, InvalidRequest, parse
from directory.vocabulary import vocabulary

bp = Blueprint("public", __name__)
SEARCH_KEYS = ("postcode", "q", "modality", "specialty", "language", "insurance", "accepting", "format")


def search_url(**changes: object) -> str:
    """The current search's URL with some parameters replaced (another page, corrected text)."""
    args = MultiDict(request.args)
    for key, value in changes.items():
        args.setlist(key, [str(value)])
    return url_for("public.home", **args.to_dict(flat=False))


@bp.get("/")
def home() -> Any:
    """The search form, and results once something was asked."""
    context: dict[str, Any] = {
        "vocabulary": vocabulary, "radius_choices": RADIUS_CHOICES, "args": request.args,
        "outcome": None, "error": None, "search_url": search_url,
    }
    if not any(request.args.get(key) for key in SEARCH_KEYS):
        return render_template("home.html", **context)
    try:
        context["outcome"] = find(parse(request.args))
    except InvalidRequest as exc:
        context["error"] = exc.message
        return render_template("home.html", **context), 400
    return render_template("home.html", **context)


@bp.get("/therapists/<slug>")
def profile(slug: str) -> str:
    """A therapist's public profile.

    :raise 404: when there is no such published listing.
    """
    listing = published_by_slug(db.session(), slug)
    if listing is None:
        abort(404, description="This listing does not exist or is no longer published.")
    return render_template("profile.html", listing=listing, vocabulary=vocabulary)
