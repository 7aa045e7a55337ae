"""The tests' own reading of free text, independent of the engine's analyzer: what a listing is found by, and
whether a query's words and phrases are in it.

Words are runs of letters and digits, lower-cased, without accents (decomposed, then the combining marks dropped:
"Côté" is "cote"); one letter long or a stop word, a word is dropped and not counted as a position (the engine
renumbers around them too). Where the engine stems, the oracle knows only the word families written out below: every
form of the queried words that the sample's text and the vocabulary write and that stemming makes one word, checked by
hand against them. Not modelled: stemming of any other word (no query of the tests needs it), a dotted abbreviation
("e.g.") being one word in the engine and two here (no query spans one), and letters that Unicode does not decompose
but the engine folds (ø, ł) or folds otherwise (ß, which it makes "s"): no text of the tests writes them.
"""

from __future__ import annotations

import re
import unicodedata

from directory.models import Listing
from directory.vocabulary import vocabulary

STOP_WORDS = frozenset("a an and are as at be by can for from have if in is it may not of on or tbd that the this to "
                       "us we when will with yet you your".split())
FAMILIES = [("depression", "depressive"), ("teen", "teens"), ("base", "based"), ("couple", "couples")]
SAME_WORD = {form: family[0] for family in FAMILIES for form in family}
_LETTERS_AND_DIGITS = re.compile(r"[^\W_]+")
_CHUNKS = re.compile(r'"([^"]*)"|([^\s"]+)')  # a quoted phrase, or a bare word (hyphenated: a phrase too)


def _unaccented(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def words_of(text: str) -> list[str]:
    """The words of a text as the oracle reads them, in order."""
    return [SAME_WORD.get(word, word) for word in _LETTERS_AND_DIGITS.findall(_unaccented(text).casefold())
            if len(word) > 1 and word not in STOP_WORDS]


def listing_words(listing: Listing) -> list[str]:
    """The words a listing is found by: its name, city and bio, and the slug, name and synonyms of each of its
    approaches and specialties."""
    pieces = [listing.name, listing.city, listing.bio]
    for kind, slugs in (("modality", listing.modalities), ("specialty", listing.specialties)):
        for slug in slugs:
            term = vocabulary.get(kind, slug)
            if term is not None:
                pieces += [slug.replace("-", " "), term.name, *term.synonyms]
    return words_of("\n".join(piece for piece in pieces if piece))


def _holds_in_order(words: list[str], chunk: list[str]) -> bool:
    return any(words[start:start + len(chunk)] == chunk for start in range(len(words) - len(chunk) + 1))


def matches(q: str, listing: Listing) -> bool:
    """Whether every chunk of the query (a bare word, or a quoted or hyphenated phrase: its words side by side, in
    order) is in the listing's words."""
    words = listing_words(listing)
    chunks = [words_of(quoted or bare) for quoted, bare in _CHUNKS.findall(q)]
    return all(_holds_in_order(words, chunk) for chunk in chunks if chunk)
