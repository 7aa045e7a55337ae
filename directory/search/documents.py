"""Where a listing becomes a search document: the one function from a row to what the index holds, used by sync,
rebuild and the benchmark alike, and the values it is made of (location, bio words, sort name, version stamp)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Protocol

from directory.availability import day_number
from directory.geo import PostcodeError, cell_terms, postcodes
from directory.search.index.fields import (
    ACCEPTING_FLAG,
    IN_PERSON_FLAG,
    NO_FEE,
    SLIDING_SCALE_FLAG,
    SPELLING_WORDS,
    TELEHEALTH_FLAG,
    TEXT_KINDS,
    licence_term,
)
from directory.search.index.whoosh_internals import composed, stem_of
from directory.vocabulary import vocabulary

# The listing attribute holding each vocabulary kind's slugs: a list, but gender's is one slug or "".
FACET_FIELDS = {"modality": "modalities", "specialty": "specialties", "language": "languages", "insurance": "insurance",
                "age": "ages", "client_type": "client_types", "community": "communities", "gender": "gender"}
_LETTERS = re.compile(r"[^\W\d_]{3,}")


class ListingValues(Protocol):
    """What a document is made of: a `Listing`, or the column values of one just inserted without the ORM (an
    import's new rows), which also hold FACET_FIELDS' attributes."""

    id: int
    name: str
    city: str
    bio: str
    postcode: str
    country: str
    license_region: str
    latitude: float | None
    longitude: float | None
    published: bool
    telehealth: bool
    in_person: bool
    accepting_new_clients: bool
    sliding_scale: bool
    fee_min: int | None
    fee_max: int | None
    availability_confirmed_on: dt.date | None
    updated_at: dt.datetime


def stamp(updated_at: dt.datetime) -> float:
    """The version of a listing row that the index records, to detect stale documents."""
    return (updated_at - dt.datetime(1970, 1, 1)).total_seconds()


def location_of(latitude: float | None, longitude: float | None, postcode: str) -> tuple[float, float] | None:
    """Own coordinates when both are given, else the postcode's centroid, else None."""
    if latitude is not None and longitude is not None:
        return latitude, longitude
    try:
        place = postcodes.lookup(postcode)
    except PostcodeError:
        return None
    return place.lat, place.lon


def lowest_fee(listing: ListingValues) -> int:
    """The least a session costs as far as the listing says (fee_min, else fee_max, which the least is under), or
    NO_FEE: a listing that names no fee is never under a fee ceiling."""
    given = [fee for fee in (listing.fee_min, listing.fee_max) if fee is not None]
    return min(given) if given else NO_FEE


def sort_name(name: str) -> bytes:
    """The key that orders equal-distance, equal-score results by name."""
    return name.casefold().encode("utf-8")


def bio_words(listing: ListingValues) -> list[str]:
    """The bio's words that a spelling suggestion may offer, unstemmed: those written in lower case, never the
    listing's own name or city. A capitalised word may be a person or a place ("women" must not become "Owen"), and
    after "Dr." even a sentence's first word may be; a common word is written in lower case in some bio."""
    words = set(_LETTERS.findall(listing.bio)) - set(_LETTERS.findall(f"{listing.name} {listing.city}".casefold()))
    return sorted(word for word in words if word.islower() and stem_of(word))


def listing_document(listing: ListingValues) -> dict[str, Any] | None:
    """The index document of a listing, or None when it must not be searchable (unpublished or unplaceable)."""
    location = listing.published and location_of(listing.latitude, listing.longitude, listing.postcode)
    if not location:
        return None
    lat, lon = location
    text = [listing.name, listing.city, listing.bio]
    for kind in TEXT_KINDS:
        text += [vocabulary.search_text(kind, slug) for slug in getattr(listing, FACET_FIELDS[kind])
                 if vocabulary.get(kind, slug)]
    flags = [name for name, on in (
        (TELEHEALTH_FLAG, listing.telehealth), (IN_PERSON_FLAG, listing.in_person),
        (ACCEPTING_FLAG, listing.accepting_new_clients), (SLIDING_SCALE_FLAG, listing.sliding_scale),
    ) if on]
    doc: dict[str, Any] = {
        "text": composed("\n".join(t for t in text if t)),
        "cell": " ".join(cell_terms(lat, lon)),
        "licence": licence_term(listing.license_region),
        "flag": " ".join(flags),
        SPELLING_WORDS: " ".join(bio_words(listing)),
        "pk": listing.id,
        "lat": lat,
        "lon": lon,
        "sortname": sort_name(listing.name),
        "stamp": stamp(listing.updated_at),
        "confirmed": day_number(listing.availability_confirmed_on),
        "fee": lowest_fee(listing),
        "country": listing.country,
    }
    for field, attr in FACET_FIELDS.items():
        value = getattr(listing, attr)
        doc[field] = value if isinstance(value, str) else " ".join(value)
    return doc
