"""The public pages: the search form with results, and therapist profiles."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from directory import db, photos
from directory.listings import published_by_slug
from directory.match import match
from directory.geo import Place
from directory.models import Listing
from directory.search.dead_ends import ways_out
from directory.search.request import DEFAULT_RADIUS, RADIUS_CHOICES, InvalidRequest, SearchRequest, parse
from directory.search.results import Results, find
from directory.search.text import FilterWord, text_query
from directory.vocabulary import vocabulary
from directory.web.app_state import current_index, fresh_window
from directory.web.distance_view import distance_view
from directory.web.match import from_starting_point
from directory.web.security import map_tiles
from directory.web.presenters import CURRENCIES, FORMAT_NAMES, SLIDING_SCALE_NAME, availability_words, \
    distance_words, fee_words, gender_words, matched_first, offer_words, sees_words

bp = Blueprint("public", __name__)
# What the panel holds: the vocabulary filters in the order of its groups (Who it is for, Approach, Specialty,
# Identity and community, Cost and insurance, Language), each with what its chips say before a value's name.
PANEL_KINDS = (("age", ""), ("client_type", ""), ("modality", ""), ("specialty", ""), ("gender", "Gender: "),
               ("community", ""), ("insurance", ""), ("language", ""))
SEARCH_KEYS = ("location", "postcode", "q", *(kind for kind, _ in PANEL_KINDS), "accepting", "format", "max_fee",
               "sliding_scale")
KEPT_BY_CLEAR_ALL = ("location", "postcode", "radius", "units", "q")
_TITLES = {"dr", "mr", "mrs", "ms", "mx", "prof"}


def search_url(**changes: Any) -> str:
    """The current search's URL with some parameters replaced: a value, a list of values (empty drops it)."""
    args = MultiDict(request.args)
    for key, value in changes.items():
        args.setlist(key, [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)])
    values: dict[str, Any] = args.to_dict(flat=False)
    return url_for("public.home", **values)


class Chip(NamedTuple):
    """An active filter as the page shows it: its chip's words, the URL without it, and what it is."""

    label: str
    url: str
    kind: str
    value: str
    name: str  # the value's own name, without the chip's prefix ("Woman", where the chip says "Gender: Woman")


def _chips(search: SearchRequest, applied: FilterWord | None) -> list[Chip]:
    """Each active filter. A filter the words chose goes with the words: its chip takes them out too, or they would
    choose it again."""
    chips: list[tuple[str, str, dict[str, Any], str, str]] = []  # prefix, name, changes, kind, value
    if search.accepting:
        chips.append(("", "Accepting new clients", {"accepting": []}, "accepting", "1"))
    if search.format != "any":
        chips.append(("", FORMAT_NAMES[search.format], {"format": []}, "format", search.format))
    for kind, prefix in PANEL_KINDS:
        chosen = search.filters[kind]
        for slug in chosen:
            term = vocabulary.get(kind, slug)
            chips.append((prefix, term.name if term else slug, {kind: [s for s in chosen if s != slug]}, kind, slug))
    if search.max_fee is not None:
        chips.append(("", f"Up to ${search.max_fee} a session", {"max_fee": []}, "max_fee", str(search.max_fee)))
    if search.sliding_scale:
        chips.append(("", SLIDING_SCALE_NAME, {"sliding_scale": []}, "sliding_scale", "1"))
    words = applied.kind if applied is not None else None
    return [Chip(prefix + name, search_url(**changes, page=[], **({"q": []} if kind == words else {})), kind, value,
                 name) for prefix, name, changes, kind, value in chips]


def _reasons(chips: list[Chip]) -> list[tuple[str, str]]:
    """For a search the guided match made (`guided=1`), why each of its filters was chosen, in plain words, with
    the URL without it (as its chip)."""
    if request.args.get("guided") != "1":
        return []
    return [(f"{chip.name}: {why}", chip.url) for chip in chips if (why := match.why(chip.kind, chip.value))]


def _order_words(outcome: Results) -> str:
    """How the page's results are ordered, said under its heading: the engine's order (search/engine.py)."""
    search = outcome.request
    if outcome.sort == "relevance" and text_query(search.q).query is not None and outcome.applied is None:
        within = "best match first"
    else:
        within = "nearest first" if outcome.origin is not None else "by name"
    grouped = outcome.sort == "distance" and search.format == "any" and 0 < (outcome.nearby or 0) < outcome.total
    if search.accepting:
        return f"Only those accepting new clients: in person first, then online, each {within}." if grouped else \
            f"Only those accepting new clients, {within}."
    standing = f"accepting new clients first, then availability unconfirmed, then not accepting, {within}."
    return f"In person first, then online; in each, {standing}" if grouped else standing[0].upper() + standing[1:]


def _offers(outcome: Results) -> list[tuple[str, str]]:
    """Each filter the text names as (the offer's words, the URL with that filter chosen and its words taken out of
    the text)."""
    search = outcome.request

    def url(offer: FilterWord) -> str:
        # A format and the sliding scale take one value ("1" for the sliding scale); a vocabulary filter adds it.
        single = offer.kind in ("format", "sliding_scale")
        chosen = offer.value if single else [*search.filters[offer.kind], offer.value]
        return search_url(**{offer.kind: chosen, "q": offer.rest or [], "page": []})

    return [(offer_words(offer), url(offer)) for offer in outcome.offers]


def _clear_all_url(applied: FilterWord | None = None) -> str:
    """The search without its filters: its place, radius, units and words, but not words that chose a filter."""
    kept: dict[str, Any] = {key: request.args.getlist(key) for key in KEPT_BY_CLEAR_ALL if request.args.get(key)
                            and not (key == "q" and applied is not None)}
    return url_for("public.home", **kept)


def _units(search: SearchRequest | None) -> str | None:
    """The unit the radius choices are shown in: as asked, else the searched country's, else None (miles in the
    US, km in Canada, decided by the postcode)."""
    if search is not None and search.origin is not None:
        return search.units_for(search.origin.country)
    return request.args.get("units") if request.args.get("units") in ("mi", "km") else None


def _picked(search: SearchRequest | None) -> dict[str, Any]:
    """What the panel shows as chosen: the parsed request's values, or the raw arguments when they could not be
    parsed (so that fixing one bad field keeps the others)."""
    if search is not None:
        return {**search.filters, "accepting": search.accepting, "format": search.format,
                "max_fee": "" if search.max_fee is None else str(search.max_fee), "sliding_scale": search.sliding_scale}
    return {**{kind: request.args.getlist(kind) for kind, _ in PANEL_KINDS},
            "accepting": request.args.get("accepting") == "1",
            "format": request.args.get("format", "any"),
            "max_fee": request.args.get("max_fee", "")[:20],
            "sliding_scale": request.args.get("sliding_scale") == "1"}


@bp.app_template_filter("tel_href")
def tel_href(phone: str) -> str:
    """A phone number as a tel: link: the first of several ("555-1234 / 555-9876"), its digits and a leading +,
    an extension dropped."""
    first = re.split(r"[/,;]", phone)[0]
    number = re.split(r"(?i)\s*(?:x|ext\.?)\s*\d+\s*$", first.strip())[0]
    return "tel:" + re.sub(r"[^\d+]", "", number)


@bp.app_template_filter("initials")
def initials(name: str) -> str:
    """The initials of a name for a placeholder portrait: its first and last words' first letters."""
    words = [w for w in re.split(r"[\s.,]+", name) if w[:1].isalpha() and w.casefold() not in _TITLES]
    return (words[0][0] + (words[-1][0] if len(words) > 1 else "")).upper() if words else "?"


@bp.app_context_processor
def _availability_wording() -> dict[str, Any]:
    # Read once per page, so every card of a page is judged on the same day as its search.
    fresh = fresh_window()

    def availability_of(listing: Listing) -> tuple[str, str]:
        return availability_words(listing, fresh)

    return {"availability_of": availability_of, "matched_first": matched_first, "fee_words": fee_words,
            "sees_words": sees_words}


def _profile_link_args(search: SearchRequest) -> dict[str, str]:
    """What a result card's link gives the profile to measure from: the searched location as typed (or the older
    `postcode`) and the units asked for, when the search had a place."""
    if search.origin is None:
        return {}
    where = " ".join((request.args.get("location") or "").split()) or request.args.get("postcode", "")
    return {"location": where, **({"units": search.units} if search.units else {})}


def searched_from() -> tuple[Place, str] | None:
    """The place and units of the search a profile was opened from (its link's `location` and `units`), resolved
    as the search resolves them; None when there is none or it does not resolve, which is never an error here."""
    if not request.args.get("location"):
        return None
    try:
        search = parse(MultiDict({key: request.args.get(key, "") for key in ("location", "units")}), fresh_window())
    except InvalidRequest:
        return None
    return None if search.origin is None else (search.origin, search.units_for(search.origin.country))


@bp.get("/")
def home() -> Any:
    """The search form, and results once something was asked."""
    if "start" in request.args:
        return redirect(from_starting_point(request.args), 303)
    context: dict[str, Any] = {
        "vocabulary": vocabulary, "radius_choices": RADIUS_CHOICES, "default_radius": DEFAULT_RADIUS,
        "args": request.args,
        "outcome": None, "error": None, "error_field": None, "needs_location": False, "ways_out": [],
        "chips": [], "search_url": search_url, "clear_all_url": _clear_all_url(), "units": _units(None),
        "picked": _picked(None), "profile_args": {}, "offers": [], "fee_currency": None, "reasons": [],
        "match": match, "view": None, "tiles": None,
    }
    if not any(request.args.get(key) for key in SEARCH_KEYS):
        return render_template("home.html", **context)
    try:
        search = parse(request.args, fresh_window())
    except InvalidRequest as exc:
        context.update(error=exc.message, error_field=exc.field, error_code=exc.code, error_choices=exc.choices)
        return render_template("home.html", **context), exc.status
    context.update(chips=_chips(search, None), units=_units(search), picked=_picked(search),
                   profile_args=_profile_link_args(search), fee_currency=_currency(search))
    text = text_query(search.q)
    if search.origin is None and (text.query is None or text.only_filter is not None):
        # Filters alone, or a word that is one ("Spanish"), would list every therapist in two countries: ask where.
        context["needs_location"] = True
        return render_template("home.html", **context)
    outcome = find(current_index(), db.session(), search)
    shown = outcome.ran  # a filter word that was the whole text chosen as its filter: the panel and chips show it
    chips = _chips(shown, outcome.applied)
    context.update(outcome=outcome, order_words=_order_words(outcome), offers=_offers(outcome), shown=shown,
                   chips=chips, reasons=_reasons(chips), picked=_picked(shown),
                   clear_all_url=_clear_all_url(outcome.applied))
    if not outcome.total:
        context["ways_out"] = ways_out(current_index(), search)
    first = (outcome.request.page - 1) * outcome.request.per_page + 1
    context.update(view=distance_view(outcome, first, context["profile_args"]), tiles=map_tiles())
    return render_template("home.html", **context)


def _currency(search: SearchRequest) -> str | None:
    """The currency a fee ceiling is in: the searched country's; None without a place (each listing's own)."""
    return None if search.origin is None else CURRENCIES.get(search.origin.country)


@bp.get("/photos/<digest>.jpg")
def photo(digest: str) -> Response:
    """A listing photo by its content hash: the same name always means the same bytes, so it is cached for a year.

    :raise 404: when there is no such photo.
    """
    data = photos.photo_bytes(db.session(), digest) if re.fullmatch(r"[0-9a-f]{64}", digest) else None
    if data is None:
        abort(404, description="No such photo.")
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


@bp.get("/therapists/<slug>")
def profile(slug: str) -> str:
    """A therapist's public profile.

    :raise 404: when there is no such published listing.
    """
    listing = published_by_slug(db.session(), slug)
    if listing is None:
        abort(404, description="This listing does not exist or is no longer published.")
    back = request.args.get("back", "")
    # Only a search of this site: anything else would make the link an open redirect.
    back_url = back if back.startswith("/?") else url_for("public.home")
    searched = searched_from()
    distance = distance_words(listing, *searched) if searched else None
    return render_template("profile.html", listing=listing, vocabulary=vocabulary, back_url=back_url,
                           distance=distance, searched_country=searched[0].country if searched else None,
                           gender=gender_words(listing))
