"""Free text: users' words turned into an index query (never parsed as query syntax), snippets, spelling."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import OSA
from whoosh.query import And, Query, Term

from directory.respelling import allowed_edits
from directory.search.index.fields import TEXT_ANALYZER, TEXT_KINDS
from directory.search.index.snapshot import IndexSnapshot
from directory.search.index.whoosh_internals import composed, stemmed_words
from directory.vocabulary import KINDS, vocabulary

FIELD = "text"
SNIPPET_CHARS = 200
# Unknown words respelled per search: each costs a scan of the word list (a 24-word near miss took 0.4 s); text with
# more unknown words than this is rarely a typo.
MAX_RESPELLED = 4
CANDIDATES = 20  # the closest words looked up in the index per respelled word, so at most 80 lookups a search
_CHUNKS = re.compile(r'"([^"]*)"|([^\s"]+)')


def _stems(text: str) -> list[str]:
    return [token.text for token in TEXT_ANALYZER(text)]


# A phrase as (stem, position relative to its first stem). The analyzer numbers positions after dropping stopwords,
# in queries and documents alike, so "fear of abandonment" and "fear abandonment" are the same phrase.
Phrase = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TextQuery:
    """A user's free text: the stems every match must hold, the phrases whose order must hold too, and an index
    query over the stems for scoring. Relevance is BM25 summed over the stems, phrase words included. When the
    whole text is a way of writing a modality or specialty, `terms` names it: listings with that term match too."""

    query: Query | None
    stems: frozenset[str]
    words: tuple[str, ...]
    phrases: tuple[Phrase, ...]
    terms: tuple[tuple[str, str], ...] = ()
    offers: tuple[FilterWord, ...] = ()

    @property
    def only_filter(self) -> FilterWord | None:
        """The filter the whole text names ("Spanish", "telehealth"), or None."""
        return self.offers[0] if len(self.offers) == 1 and not self.offers[0].rest else None


@dataclass(frozen=True)
class FilterWord:
    """Words of the text that name a filter value: `kind` is a vocabulary kind (language, insurance, age, client
    type, community, gender), "format" or "sliding_scale", `value` the slug, the format or "1", `rest` the text
    without these words (empty when they were the whole text)."""

    kind: str
    value: str
    words: str
    rest: str


# The session formats' words, written as the format filter's values are chosen. "office" and "video" alone are left
# out: a bio's "office hours" or "video games" are what such a search more likely means.
FORMAT_WORDS = {
    "online": "telehealth", "telehealth": "telehealth", "tele health": "telehealth", "teletherapy": "telehealth",
    "virtual": "telehealth", "virtually": "telehealth", "video sessions": "telehealth",
    "in person": "in_person", "face to face": "in_person", "in office": "in_person",
}
SLIDING_SCALE_WORDS = frozenset({"sliding scale", "sliding fee", "sliding scale fee", "sliding scale fees"})
# The vocabulary kinds whose names the text can name as a filter.
FILTER_KINDS = ("language", "insurance", "age", "client_type", "community", "gender")
_LONGEST_FILTER_WORDS = 4  # words of the longest name looked for: "Blue Cross Blue Shield"
# Names of one or two letters ("F", "NB", "M") are for spreadsheets: in free text they are initials or typos.
_SHORTEST_FILTER_WORD = 3
_LONGEST_TERM_WORDS = 6  # words of the longest approach or specialty name: "eye movement desensitization and ..."


def _format_key(words: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", words.casefold()))


def _named(words: str) -> tuple[str, str] | None:
    """The one filter value `words` name, as (kind, value), or None (none, or several: "Blue Cross")."""
    key = _format_key(words)
    if (fmt := FORMAT_WORDS.get(key)) is not None:
        return "format", fmt
    if key in SLIDING_SCALE_WORDS:
        return "sliding_scale", "1"
    if len(key) < _SHORTEST_FILTER_WORD:
        return None
    found = [(kind, slugs[0]) for kind in FILTER_KINDS if len(slugs := vocabulary.match(kind, words)) == 1]
    return found[0] if len(found) == 1 else None


def _inside_terms(words: list[str]) -> set[int]:
    """Positions of the words inside a run of two or more that names an approach or a specialty: "family" in
    "internal family systems" or "family conflict" is part of that name, not the families filter."""
    inside: set[int] = set()
    for at in range(len(words)):
        for length in range(min(_LONGEST_TERM_WORDS, len(words) - at), 1, -1):
            if any(len(vocabulary.match(kind, " ".join(words[at:at + length]))) == 1 for kind in TEXT_KINDS):
                inside.update(range(at, at + length))
                break
    return inside


def filter_words(q: str) -> tuple[FilterWord, ...]:
    """Every run of words in `q` that names a value of a filter (a language, an insurer, an age, a client type, a
    community, a gender, a session format or the sliding scale), longest first from the left, each with the text
    left without it."""
    words = q.replace('"', " ").split()
    inside_terms = _inside_terms(words)
    found: list[FilterWord] = []
    at = 0
    while at < len(words):
        for length in range(min(_LONGEST_FILTER_WORDS, len(words) - at), 0, -1):
            if inside_terms & set(range(at, at + length)):
                continue
            named = _named(" ".join(words[at:at + length]))
            if named is not None:
                rest = " ".join(words[:at] + words[at + length:])
                found.append(FilterWord(*named, " ".join(words[at:at + length]), rest))
                at += length
                break
        else:
            at += 1
    return tuple({(offer.kind, offer.value): offer for offer in reversed(found)}.values())[::-1]


def text_query(q: str) -> TextQuery:
    """Every word must match (stemmed, accents folded: "Montreal" finds "Montréal" and back); quoted words and
    hyphenated words must match as phrases."""
    q = composed(q)
    stems: list[str] = []
    words: list[str] = []
    phrases: list[Phrase] = []
    for quoted, bare in _CHUNKS.findall(q):
        chunk = quoted or bare
        tokens = [(t.text, t.pos) for t in TEXT_ANALYZER(chunk, positions=True)]
        stems += [stem for stem, _ in tokens if stem not in stems]
        words += [w.lower() for w in re.findall(r"\w+", chunk)]
        if len(tokens) > 1:
            phrases.append(tuple((stem, pos - tokens[0][1]) for stem, pos in tokens))
    terms: list[Query] = [Term(FIELD, stem) for stem in stems]
    query = None if not terms else terms[0] if len(terms) == 1 else And(terms)
    # "Trauma & PTSD", "compassion focussed therapy", "EMDR therapy": spellings the vocabulary matcher knows but
    # the listing's words may not hold. Only the kinds whose names are in the text: "Spanish" is a filter word, which
    # the engine applies as the language filter when it is the whole text (filter_words).
    named = tuple((kind, found[0]) for kind in TEXT_KINDS if len(found := vocabulary.match(kind, q)) == 1)
    return TextQuery(query, frozenset(stems), tuple(words), tuple(phrases), named, filter_words(q))


@functools.lru_cache(maxsize=1)
def _vocabulary_words() -> frozenset[str]:
    texts = [vocabulary.search_text(kind, slug) for kind in KINDS for slug in vocabulary.slugs(kind)]
    return frozenset(word for text in texts for word in re.findall(r"[a-z]{3,}", text.casefold()))


def spelling_words(snapshot: IndexSnapshot) -> list[str]:
    """Words a suggestion may offer: every vocabulary name and synonym and the words of this index's bios, never
    personal or place names (the index keeps bio words apart from names, see documents.bio_words)."""
    return snapshot.derived("spelling-words",
                            lambda: sorted(_vocabulary_words() | snapshot.spelling_words()))


def candidates(word: str, words: list[str], edits: int) -> list[tuple[str, int]]:
    """The closest words within `edits` (a transposition counts as one), closest first, at most CANDIDATES."""
    found = process.extract(word, words, scorer=OSA.distance, score_cutoff=edits, limit=CANDIDATES)
    return [(candidate, distance) for candidate, distance, _ in found]


def suggest(snapshot: IndexSnapshot, words: tuple[str, ...]) -> str | None:
    """A respelling of the user's words that the index knows, or None when there is nothing better."""
    def known(word: str) -> bool:
        return all(snapshot.has_term(FIELD, stem) for stem in _stems(word))

    def listings(word: str) -> int:
        return min((snapshot.doc_frequency(FIELD, stem) for stem in _stems(word)), default=0)

    corrected = []
    respelled = 0
    for word in words:
        if len(word) < 3 or word.isdigit() or known(word) or respelled == MAX_RESPELLED:
            corrected.append(word)
            continue
        respelled += 1
        edits = allowed_edits(word)
        found = [(distance, -listings(c), c) for c, distance in candidates(word, spelling_words(snapshot), edits)
                 if known(c)]
        corrected.append(min(found)[2] if found else word)
    return " ".join(corrected) if corrected != list(words) else None


def snippet(text: str, stems: frozenset[str]) -> list[tuple[str, bool]]:
    """A short excerpt of `text` as (piece, highlighted) pairs, centred on the first matched word. Words are matched
    as the index holds them (accents folded), and shown as the listing spells them."""
    text = composed(text)
    # Inside find(), for every shown result: the analyzer's token pipeline made this 85 µs a bio, 1.7 ms a page.
    spans = [(start, end) for stem, start, end in stemmed_words(text) if stem in stems] if stems else []
    start = 0
    if spans:
        start = max(0, spans[0][0] - SNIPPET_CHARS // 3)
        space = text.rfind(" ", 0, start)
        start = space + 1 if start and space >= 0 else start
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    pieces: list[tuple[str, bool]] = [("…", False)] if start else []
    cursor = start
    for first, last in spans:
        if first < cursor or last > end:
            continue
        pieces += [(text[cursor:first], False), (text[first:last], True)]
        cursor = last
    pieces.append((text[cursor:end], False))
    if end < len(text):
        pieces.append(("…", False))
    return [(piece, marked) for piece, marked in pieces if piece]
