"""How listings and search outcomes look to the outside: the API's JSON shapes."""

from __future__ import annotations

from typing import Any

from flask import url_for

from directory.availability import Window, availability
from directory.geo import Place, great_circle_km, km_to
from directory.models import Listing
from directory.search.request import SearchRequest
from directory.search.results import Result, Results
from directory.search.text import FilterWord
from directory.vocabulary import vocabulary


def _confirmed_on(listing: Listing) -> str | None:
    return listing.availability_confirmed_on.isoformat() if listing.availability_confirmed_on else None


def availability_words(listing: Listing, fresh: Window) -> tuple[str, str]:
    """(state, words) for a card or profile, e.g. ("accepting", "Accepting new clients · confirmed 12 days ago")."""
    confirmed_on = listing.availability_confirmed_on
    state = availability(listing.accepting_new_clients, confirmed_on, fresh)
    if confirmed_on is None:
        return state, "Availability never confirmed"
    if confirmed_on > fresh.until:
        return state, "Availability not confirmed (its date is in the future)"
    if state == "unconfirmed":
        return state, f"Availability not confirmed since {confirmed_on.strftime('%B %Y')}"
    days = (fresh.until - confirmed_on).days
    ago = "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"
    claim = "Accepting new clients" if state == "accepting" else "Not accepting new clients"
    return state, f"{claim} · confirmed {ago}"


CURRENCIES = {"US": "USD", "CA": "CAD"}


def fee_words(listing: Listing, searched_country: str | None) -> str:
    """A listing's fees per session, e.g. "$90–$140", naming the currency ("$110 CAD") unless the reader searched
    in the listing's own country, where "$" can only mean one thing; "" when the listing gives no fee."""
    if not listing.fee_min:
        return ""
    fees = f"${listing.fee_min}"
    if listing.fee_max and listing.fee_max != listing.fee_min:
        fees += f"–${listing.fee_max}"
    currency = CURRENCIES.get(listing.country)
    return fees if currency is None or listing.country == searched_country else f"{fees} {currency}"


def distance_words(listing: Listing, origin: Place, units: str) -> str | None:
    """How far a listing's office is from where a search was made, e.g. "2.3 miles from 11201 (Brooklyn, NY)", as
    the search measures it; None for a listing seen online only or without a point."""
    if not listing.in_person or listing.latitude is None or listing.longitude is None:
        return None
    distance = km_to(units, great_circle_km(origin.lat, origin.lon, listing.latitude, listing.longitude))
    where = f"{origin.postcode} ({origin.name})" if origin.postcode else origin.name
    return f"{distance:.1f} {'miles' if units == 'mi' else 'km'} from {where}"


def matched_first(listing: Listing, request: SearchRequest) -> tuple[list[str], list[str]]:
    """A card's specialty and approach names: (those the search's filters chose, the others), specialties first."""
    matched: list[str] = []
    rest: list[str] = []
    for kind, slugs in (("specialty", listing.specialties), ("modality", listing.modalities)):
        for slug in slugs:
            term = vocabulary.get(kind, slug)
            if term is not None:
                (matched if slug in request.filters[kind] else rest).append(term.name)
    return matched, rest


FORMAT_NAMES = {"in_person": "In person", "telehealth": "Online"}


def filter_name(offer: FilterWord) -> str:
    """What a filter the text names is called: its vocabulary name ("Spanish") or the format's ("Online")."""
    if offer.kind == "format":
        return FORMAT_NAMES[offer.value]
    term = vocabulary.get(offer.kind, offer.value)
    return term.name if term else offer.value


def offer_words(offer: FilterWord) -> str:
    """The page's offer of a filter the text names, e.g. "Filter by Spanish-speaking therapists?"."""
    name = filter_name(offer)
    who = {"language": f"{name}-speaking therapists", "insurance": f"therapists who take {name}",
           "format": "therapists offering online sessions" if offer.value == "telehealth"
           else "therapists seeing clients in person"}[offer.kind]
    return f"Filter by {who}?"


def result_dict(result: Result, fresh: Window) -> dict[str, Any]:
    """One search result as the API returns it, its availability judged by the search's window."""
    listing = result.listing
    return {
        "id": listing.external_id,
        "slug": listing.slug,
        "name": listing.name,
        "credentials": listing.credentials,
        "distance": None if result.distance is None else round(result.distance, 1),
        "city": listing.city,
        "region": listing.region,
        "postcode": listing.postcode,
        "country": listing.country,
        "modalities": listing.modalities,
        "specialties": listing.specialties,
        "telehealth": listing.telehealth,
        "in_person": listing.in_person,
        "accepting_new_clients": listing.accepting_new_clients,
        "availability_confirmed_on": _confirmed_on(listing),
        "availability": availability(listing.accepting_new_clients, listing.availability_confirmed_on, fresh),
        "url": url_for("public.profile", slug=listing.slug),
        "snippet": "".join(piece for piece, _ in result.snippet),
    }


def results_dict(results: Results) -> dict[str, Any]:
    """A page of search results as the API returns it."""
    origin = results.origin
    return {
        "origin": None if origin is None else {
            "kind": "place" if origin.precision == "place" else "postcode",
            "postcode": origin.postcode or None, "country": origin.country, "region": origin.region,
            "lat": origin.lat, "lon": origin.lon, "place": origin.name, "centre": origin.centre or None,
        },
        "units": results.units,
        "radius": results.radius,
        "sort": results.sort,
        "total": results.total,
        "page": results.request.page,
        "per_page": results.request.per_page,
        "results": [result_dict(result, results.request.fresh) for result in results.results],
        "facets": results.facets,
        "suggestion": results.suggestion,
        "filter_offers": [{"kind": offer.kind, "value": offer.value, "name": filter_name(offer),
                           "applied": offer == results.applied} for offer in results.offers],
    }


def listing_dict(listing: Listing, fresh: Window) -> dict[str, Any]:
    """Every public field of a listing, and its availability judged by today's window."""
    return {
        "id": listing.external_id,
        "slug": listing.slug,
        "name": listing.name,
        "credentials": listing.credentials,
        "license_number": listing.license_number,
        "license_region": listing.license_region,
        "email": listing.email,
        "phone": listing.phone,
        "website": listing.website,
        "address": listing.address,
        "city": listing.city,
        "region": listing.region,
        "postcode": listing.postcode,
        "country": listing.country,
        "latitude": listing.latitude,
        "longitude": listing.longitude,
        "modalities": listing.modalities,
        "specialties": listing.specialties,
        "languages": listing.languages,
        "insurance": listing.insurance,
        "telehealth": listing.telehealth,
        "in_person": listing.in_person,
        "accepting_new_clients": listing.accepting_new_clients,
        "availability_confirmed_on": _confirmed_on(listing),
        "availability": availability(listing.accepting_new_clients, listing.availability_confirmed_on, fresh),
        "fee_min": listing.fee_min,
        "fee_max": listing.fee_max,
        "sliding_scale": listing.sliding_scale,
        "gender": listing.gender,
        "bio": listing.bio,
        "photo_url": url_for("public.photo", digest=listing.photo) if listing.photo else None,
        "url": url_for("public.profile", slug=listing.slug),
        "updated_at": listing.updated_at.isoformat(timespec="seconds") + "Z",  # stored as naive UTC
    }
