"""Free text: users' words turned into an index query (never parsed as query syntax), snippets, spelling."""

from __future__ import annotations

import re
from dataclasses import dataclass

from whoosh.query import And, Phrase, Query, Term
from whoosh.searching import Searcher

from directory.search.schema import TEXT_ANALYZER

FIELD = "text"
SNIPPET_CHARS = 200
_CHUNKS = re.compile(r'"([^"]*)"|([^\s"]+)')


def _stems(text: str) -> list[str]:
    return [token.text for token in TEXT_ANALYZER(text)]


@dataclass(frozen=True)
class TextQuery:
    """A user's free text as an index query, plus the stems a snippet should highlight."""

    query: Query | None
    stems: frozenset[str]
    words: tuple[str, ...]


def text_query(q: str) -> TextQuery:
    """Every word must match (stemmed); quoted words and hyphenated words must match as phrases."""
    parts: list[Query] = []
    stems: set[str] = set()
    words: list[str] = []
    for quoted, bare in _CHUNKS.findall(q):
        chunk = quoted or bare
        chunk_stems = _stems(chunk)
        stems.update(chunk_stems)
        words += [w.lower() for w in re.findall(r"\w+", chunk)]
        if len(chunk_stems) == 1:
            parts.append(Term(FIELD, chunk_stems[0]))
        elif chunk_stems:
            parts.append(Phrase(FIELD, chunk_stems))
    query = None if not parts else parts[0] if len(parts) == 1 else And(parts)
    return TextQuery(query, frozenset(stems), tuple(words))


def suggest(searcher: Searcher, words: tuple[str, ...]) -> str | None:
    """A respelling of the user's words from words in the index, or None when nothing changes."""
    reader = searcher.reader()
    corrector = searcher.corrector(FIELD)
    corrected = []
    for word in words:
        stems = _stems(word)
        if len(word) < 3 or all((FIELD, stem) in reader for stem in stems):
            corrected.append(word)
        else:
            found = corrector.suggest(word, limit=1)
            corrected.append(found[0] if found else word)
    return " ".join(corrected) if corrected != list(words) else None


def snippet(text: str, stems: frozenset[str]) -> list[tuple[str, bool]]:
    """A short excerpt of `text` as (piece, highlighted) pairs, centred on the first matched word."""
    # The analyzer reuses one Token object, so copy the offsets out as it goes.
    spans = [(t.startchar, t.endchar) for t in TEXT_ANALYZER(text, chars=True, removestops=False)
             if t.text in stems] if stems else []
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
