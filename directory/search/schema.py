"""The index schema and the one function that turns a listing into its index document."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from whoosh import columns
from whoosh.analysis import StemmingAnalyzer
from whoosh.fields import COLUMN, ID, KEYWORD, TEXT, Schema
from whoosh.formats import Positions
from whoosh.system import pack_uint

from directory.geo import PostcodeError, cell_terms, postcodes, region_country
from directory.models import Listing
from directory.vocabulary import vocabulary

TEXT_ANALYZER = StemmingAnalyzer()
_WORDS = TEXT_ANALYZER.items[0].expression  # the analyzer's own tokenizer pattern


_POSITIONS = Positions()
_KEYWORD_TOKENS = re.compile(r"[^ \t\r\n]+")  # the pattern of Whoosh's space-separated keyword tokenizer


@functools.lru_cache(maxsize=200_000)
def _encoded_positions(positions: tuple[int, ...]) -> bytes:
    """A posting's positions as a TEXT field's format encodes them; most are one of a few hundred."""
    return _POSITIONS.encode(positions)


@functools.lru_cache(maxsize=200_000)
def _stem_of(word: str) -> str | None:
    """What the analyzer makes of one word: its stem, or None when it is a stopword or too short."""
    return next((token.text for token in TEXT_ANALYZER(word)), None)


class FastText(TEXT):
    """A TEXT field whose indexing gives exactly what the analyzer would, about twice as fast.

    Whoosh passes every token through a chain of generators; here each distinct word goes through the analyzer
    once (cached) and a document is a regex scan plus dictionary lookups. Positions are numbered as the analyzer's
    stop filter numbers them.
    """

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        """(term, frequency, weight, encoded positions) for each distinct stem of `value`."""
        positions: dict[str, list[int]] = {}
        at = None
        for raw, match in enumerate(_WORDS.finditer(value)):
            stem = _stem_of(match.group())
            if stem is not None:
                # The stop filter keeps the first kept word's own position and counts on from there.
                at = raw if at is None else at + 1
                positions.setdefault(stem, []).append(at)
        for stem, found in positions.items():
            yield stem.encode("utf-8"), len(found), float(len(found)), _encoded_positions(tuple(found))


class FastKeyword(KEYWORD):
    """A space-separated KEYWORD field that indexes exactly as Whoosh's, without its token-object pipeline."""

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        """(term, frequency, weight, encoded frequency) for each distinct word of `value`."""
        boost = self.format.field_boost
        for word, freq in Counter(_KEYWORD_TOKENS.findall(value)).items():
            yield word.encode("utf-8"), freq, float(freq) * boost, pack_uint(freq)

FACET_FIELDS = {"modality": "modalities", "specialty": "specialties", "language": "languages", "insurance": "insurance"}
TEXT_KINDS = ("modality", "specialty")  # the vocabulary kinds whose names and synonyms are in a listing's text


def make_schema() -> Schema:
    """Index fields: terms for filtering and text, columns for what ranking needs; display data stays in the DB."""
    return Schema(
        id=ID(unique=True),
        text=FastText(analyzer=TEXT_ANALYZER),
        cell=FastKeyword(),
        modality=FastKeyword(),
        specialty=FastKeyword(),
        language=FastKeyword(),
        insurance=FastKeyword(),
        licence=ID(),
        flag=FastKeyword(),
        pk=COLUMN(columns.NumericColumn("q")),
        lat=COLUMN(columns.NumericColumn("d")),
        lon=COLUMN(columns.NumericColumn("d")),
        sortname=COLUMN(columns.VarBytesColumn()),
        stamp=COLUMN(columns.NumericColumn("d")),
    )


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


def licence_term(region: str) -> str:
    """The term for "licensed in this state or province"; regions are prefixed by country to stay unambiguous."""
    country = region_country(region)
    return f"{country}-{region}" if country else ""


def sort_name(name: str) -> bytes:
    """The key that orders equal-distance, equal-score results by name."""
    return name.casefold().encode("utf-8")


def listing_document(listing: Listing) -> dict[str, Any] | None:
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
        ("telehealth", listing.telehealth), ("in_person", listing.in_person), ("accepting", listing.accepting_new_clients)
    ) if on]
    doc: dict[str, Any] = {
        "id": str(listing.id),
        "text": "\n".join(t for t in text if t),
        "cell": " ".join(cell_terms(lat, lon)),
        "licence": licence_term(listing.license_region),
        "flag": " ".join(flags),
        "pk": listing.id,
        "lat": lat,
        "lon": lon,
        "sortname": sort_name(listing.name),
        "stamp": stamp(listing.updated_at),
    }
    for field, attr in FACET_FIELDS.items():
        doc[field] = " ".join(getattr(listing, attr))
    return doc
