"""How listings and search outcomes look to the outside: the API's JSON shapes, and the words the pages say about
a listing and a search."""

from __future__ import annotations

import re
from typing import Any

from flask import url_for

from directory.availability import Window, availability
from directory.geo import Place, great_circle_km, km_to
from directory.models import Listing
from directory.search.documents import FACET_FIELDS, location_of
from directory.search.request import SearchRequest
from directory.search.results import Result, Results
from directory.search.text import FilterWord
from directory.vocabulary import vocabulary


def _confirmed_on(listing: Listing | Any) -> str | None:
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
    low, high = listing.fee_min, listing.fee_max
    if low is None and high is None:
        return ""
    fees = f"Up to ${high}" if low is None else f"${low}"
    if low is not None and high is not None and high != low:
        fees += f"–${high}"
    currency = CURRENCIES.get(listing.country)
    return fees if currency is None or listing.country == searched_country else f"{fees} {currency}"


def distance_words(listing: Listing, origin: Place, units: str) -> str | None:
    """How far a listing's office is from where a search was made, e.g. "2.3 miles from 11201 (Brooklyn, NY)", as
    the search measures it; None for a listing seen online only or without a point."""
    # Where the search places it: its own point, else its postcode's (most listings give only a postcode).
    point = location_of(listing.latitude, listing.longitude, listing.postcode) if listing.in_person else None
    if point is None:
        return None
    distance = km_to(units, great_circle_km(origin.lat, origin.lon, *point))
    where = f"{origin.postcode} ({origin.name})" if origin.postcode else origin.name
    return f"{distance:.1f} {'miles' if units == 'mi' else 'km'} from {where}"


# The kinds a card marks when a filter chose them: what the filters matched is the first thing a card says.
MATCHED_KINDS = ("age", "client_type", "specialty", "modality", "gender", "community")


def _slugs(listing: Listing, kind: str) -> list[str]:
    """A listing's slugs of one vocabulary kind (gender is one slug, or none)."""
    if kind == "gender":
        return [listing.gender] if listing.gender else []
    return getattr(listing, FACET_FIELDS[kind])


def matched_first(listing: Listing, request: SearchRequest) -> tuple[list[str], list[str]]:
    """A card's term names: (those the search's filters chose, of any kind a card marks; the listing's other
    specialties, then approaches)."""
    matched: list[str] = []
    rest: list[str] = []
    for kind in MATCHED_KINDS:
        for slug in _slugs(listing, kind):
            term = vocabulary.get(kind, slug)
            if term is None:
                continue
            if slug in request.filters[kind]:
                matched.append(term.name)
            elif kind in ("specialty", "modality"):
                rest.append(term.name)
    return matched, rest


def short_name(kind: str, slug: str) -> str:
    """A term's name for the middle of a sentence: "Teens (13-17)" as "teens", "LGBTQ+ affirming" as it is."""
    term = vocabulary.get(kind, slug)
    name = re.sub(r"\s*\(.*\)$", "", term.name) if term else slug
    # Lower only a word that is not an acronym: "Teens" to "teens", never "LGBTQ+" or "BIPOC".
    return name[0].lower() + name[1:] if len(name) > 1 and name[1].islower() else name


def sees_words(listing: Listing) -> str:
    """Who a therapist sees, said on a card: "Sees teens, adults · couples, families"; "" when the listing does
    not say."""
    parts = [", ".join(short_name(kind, slug) for slug in slugs)
             for kind, slugs in (("age", listing.ages), ("client_type", listing.client_types)) if slugs]
    return "Sees " + " · ".join(parts) if parts else ""


def gender_words(listing: Listing) -> str:
    """A therapist's gender as the profile says it: its vocabulary name, or as written when it names none."""
    term = vocabulary.get("gender", listing.gender) if listing.gender else None
    return term.name if term else listing.gender_unmapped


FORMAT_NAMES = {"in_person": "In person", "telehealth": "Online"}
SLIDING_SCALE_NAME = "Offers a sliding scale"
# Said "women therapists", not "woman therapists"; a gender not here is its name as it is ("non-binary").
GENDER_PLURALS = {"woman": "women", "man": "men"}


def filter_name(offer: FilterWord) -> str:
    """What a filter the text names is called: its vocabulary name ("Spanish") or the format's ("Online")."""
    if offer.kind == "format":
        return FORMAT_NAMES[offer.value]
    if offer.kind == "sliding_scale":
        return SLIDING_SCALE_NAME
    term = vocabulary.get(offer.kind, offer.value)
    return term.name if term else offer.value


def _community_therapists(slug: str) -> str:
    """Therapists of a community term, in words: "LGBTQ+ affirming therapists", "Christian faith-informed
    therapists", "therapists who work with veterans and military families"."""
    term = vocabulary.get("community", slug)
    name = term.name if term else slug
    if ":" in name:  # "Faith-informed: Christian"
        faith, which = (part.strip() for part in name.split(":", 1))
        return f"{which} {faith[0].lower()}{faith[1:]} therapists"
    short = short_name("community", slug)
    if short.endswith(("affirming", "centered")):
        return f"{short} therapists"
    return f"therapists who work with {short.lower()}"


def _therapists(offer: FilterWord) -> str:
    """The therapists a filter the text names keeps, in words: "Spanish-speaking therapists", "therapists who see
    teens"."""
    name = filter_name(offer)
    if offer.kind == "format":
        return "therapists offering online sessions" if offer.value == "telehealth" else \
            "therapists seeing clients in person"
    if offer.kind in ("age", "client_type"):
        return f"therapists who see {short_name(offer.kind, offer.value)}"
    if offer.kind == "community":
        return _community_therapists(offer.value)
    if offer.kind == "gender":
        return f"{GENDER_PLURALS.get(offer.value, short_name('gender', offer.value))} therapists"
    if offer.kind == "sliding_scale":
        return "therapists offering a sliding scale"
    return f"{name}-speaking therapists" if offer.kind == "language" else f"therapists who take {name}"


def offer_words(offer: FilterWord) -> str:
    """The page's offer of a filter the text names, e.g. "Filter by Spanish-speaking therapists?"."""
    return f"Filter by {_therapists(offer)}?"


# What `result_dict` reads of a listing, so that the API loads only these (reading another raises).
RESULT_COLUMNS = (Listing.external_id, Listing.slug, Listing.name, Listing.credentials, Listing.city, Listing.region,
                  Listing.postcode, Listing.country, Listing.modalities, Listing.specialties, Listing.telehealth,
                  Listing.in_person, Listing.accepting_new_clients, Listing.availability_confirmed_on)


def result_dict(result: Result, fresh: Window, profiles: str) -> dict[str, Any]:
    """One search result as the API returns it, its availability judged by the search's window; `profiles` is the
    profile pages' path, which its slug ends."""
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
        "url": profiles + listing.slug,
        "snippet": "".join(piece for piece, _ in result.snippet),
    }


def results_dict(results: Results) -> dict[str, Any]:
    """A page of search results as the API returns it."""
    origin = results.origin
    # One url_for a page, not one a result (20 took 0.4 ms of a 6 ms search): slugs are make_slug's letters, digits
    # and hyphens, which a path holds as they are.
    profiles = url_for("public.profile", slug="-").removesuffix("-")
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
        "results": [result_dict(result, results.request.fresh, profiles) for result in results.results],
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
        "ages": listing.ages,
        "client_types": listing.client_types,
        "communities": listing.communities,
        "gender": listing.gender,
        "gender_unmapped": listing.gender_unmapped,
        "bio": listing.bio,
        "photo_url": url_for("public.photo", digest=listing.photo) if listing.photo else None,
        "url": url_for("public.profile", slug=listing.slug),
        "updated_at": listing.updated_at.isoformat(timespec="seconds") + "Z",  # stored as naive UTC
    }
