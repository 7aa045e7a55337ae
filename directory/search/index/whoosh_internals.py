"""Every use of Whoosh's internals, in one seam of two modules (this one, and `whoosh_segment_writer.py` for
writing): the project depends on Whoosh 2.7.4's file format, not only on its API. Everything else in the project
uses Whoosh's public API (fields, analyzers, queries, a searcher's documented methods) or this seam.

What this module relies on, and why:

- Fields: `FastText` and `FastKeyword` subclass Whoosh's TEXT and KEYWORD fields and replace their `index()` with
  code that yields exactly what Whoosh's token pipeline would (about twice as fast): they use the analyzer's
  tokenizer pattern (`TEXT_ANALYZER.items[0].expression`), the stop filter's position numbering, the
  Positions format's `encode` and `whoosh.system.pack_uint` for a keyword's frequency. Index tables of contents
  pickle the schema, so these classes keep the module name they were first written under (see below).
- Writing: see `whoosh_segment_writer.py`, the other half of this seam (it imports this module first, so the
  version check below covers it).
- Reading: a segment's postings matcher is a `whoosh.codec.whoosh3.W3LeafMatcher` (unwrapped from the deletions
  filter through its `child`); `block_max_id()`, `_next_block`, `_read_data` (`_data[0]`: the block's ids as
  deltas), `_read_weights`/`_weights` and `_read_values`/`_values` decode one 128-posting block at a time, so
  NumPy handles ids and weights and positions are decoded only from the blocks that hold a wanted document.
  A segment reader's codec `Segment` gives its id and deleted documents (`segment_key`, `deleted_docnums`).
- Columns: `column_reader(name, translate=False)` gives a COLUMN field's raw reader (its translation is the
  identity), an `EmptyColumnReader` when the segment has no such column (read the slow way, as before). A
  `NumericColumn.Reader` stores "!" + `_typecode` numbers (big-endian, standard sizes, `_fixedlen` bytes each) from
  `_basepos` in its file (`_dbfile.get(position, length)` gives bytes), one a document up to the last document whose
  value is not the default (`_count`); the rest read as `_default`. A `VarBytesColumn.Reader` stores its values
  one after another in document order from `_basepos`, with each document's length in `_lengths` (0 for none); the
  offsets it also stores past 2**15 documents are not needed. Field lengths are a numeric column of bytes
  (`LENGTHS_COLUMN`, named by `_lenfield`, from the segment reader's `_perdoc._cached_reader`; a 0 byte means no
  length, which `doc_field_length` gives as None), decoded by Whoosh's table `_length_byte_cache` (its
  `byte_to_length`). Only readers of exactly these classes are read this way: subclasses (compressed bytes) decode.
- Scoring: `bm25` is Whoosh's BM25F formula with its defaults, computed over arrays of documents.
- File naming: a docnum file is created with `Segment.create_file` and found with `Segment.make_filename`, so it
  is named after its segment, and Whoosh deletes it with the segment (its clean-up removes every file that starts
  with a retired segment's id).

The tests in tests/test_whoosh_internals.py compare each of these shortcuts with Whoosh's own results: the indexed
fields, the segment files byte for byte, the docnum lists, positions and BM25 scores. Run them before adding a version
to VERIFIED.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import whoosh
from whoosh.analysis import CharsetFilter, LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.codec.whoosh3 import LENGTHS_COLUMN, W3LeafMatcher, _lenfield
from whoosh.columns import NumericColumn, VarBytesColumn
from whoosh.fields import COLUMN, KEYWORD, TEXT
from whoosh.formats import Positions
from whoosh.support.charset import accent_map
from whoosh.system import pack_uint
from whoosh.util.numeric import _length_byte_cache

from directory.search.index.docnums import EXT as DOCNUM_EXT
from directory.search.index.docnums import DocnumReader

VERIFIED = {(2, 7, 4)}
BM25_B, BM25_K1 = 0.75, 1.2  # Whoosh's BM25F defaults


class UnverifiedWhoosh(RuntimeError):
    """The installed Whoosh is not a version whose internals this module was checked against."""


def check_version(version: tuple[int, ...]) -> None:
    """Refuse a Whoosh version this module was not verified against: its internals could differ silently."""
    if tuple(version[:3]) not in VERIFIED:
        found = ".".join(map(str, version))
        verified = ", ".join(".".join(map(str, v)) for v in sorted(VERIFIED))
        raise UnverifiedWhoosh(
            f"Whoosh {found} is installed, but the search index relies on internals verified only with Whoosh "
            f"{verified}; install a verified version (requirements.txt), or run tests/test_whoosh_internals.py "
            "against this one and add it to VERIFIED in directory/search/index/whoosh_internals.py."
        )


check_version(whoosh.__version__)


# Reading ------------------------------------------------------------------------------------------------------


def docnum_file(leaf: Any) -> DocnumReader | None:
    """The docnum file of a segment reader's segment, or None for a segment written without one."""
    segment = leaf.segment()
    folder = getattr(leaf.storage(), "folder", None) if segment is not None else None
    if folder is None:
        return None
    try:
        return DocnumReader(os.path.join(folder, segment.make_filename(DOCNUM_EXT)))
    except FileNotFoundError:
        return None


def segment_key(leaf: Any) -> str | None:
    """A name for a segment reader's segment that no other segment ever has, or None for an index without any."""
    segment = leaf.segment()
    return None if segment is None else segment.segment_id()


def deleted_docnums(leaf: Any) -> Iterator[int]:
    """The deleted document numbers of a segment reader's segment."""
    return iter(leaf.segment().deleted_docs())


def _stored_numbers(reader: NumericColumn.Reader, count: int, dtype: Any) -> np.ndarray:
    """Every document's value in a numeric column reader, read at once."""
    stored = reader._dbfile.get(reader._basepos, reader._count * reader._fixedlen)
    values = np.full(count, reader._default, dtype=dtype)
    values[:reader._count] = np.frombuffer(stored, dtype=">" + reader._typecode)
    return values


def _raw_column(leaf: Any, name: str, kind: type) -> Any:
    """The reader of a segment's COLUMN field when it is exactly a `kind` reader, else None."""
    if not isinstance(leaf.schema[name], COLUMN):
        return None
    reader = leaf.column_reader(name, translate=False)
    return reader if type(reader) is kind else None


def numeric_column(leaf: Any, name: str, dtype: Any) -> np.ndarray:
    """A segment reader's numeric column (a COLUMN field of a NumericColumn) for every document, as `dtype`."""
    # Whoosh's reader unpacks a value at a time in Python: the `pk` of 97k documents took 190 ms, and the columns a
    # search needs made the first search after a rebuild take 0.6 s at 100k.
    count = leaf.doc_count_all()
    # A segment with no documents has no column files; Whoosh then raises instead of returning nothing. A native-size
    # struct code ("l") has another width than NumPy's.
    reader = _raw_column(leaf, name, NumericColumn.Reader) if count else None
    if reader is None or np.dtype(">" + reader._typecode).itemsize != reader._fixedlen:
        return np.fromiter(leaf.column_reader(name) if count else [], dtype=dtype, count=count)
    return _stored_numbers(reader, count, dtype)


def bytes_column(leaf: Any, name: str) -> list[bytes]:
    """A segment reader's variable-length column (a COLUMN field of a VarBytesColumn) for every document."""
    # One read sliced by the stored lengths, rather than a seek and read a value (100 ms for 97k sort names).
    count = leaf.doc_count_all()
    reader = _raw_column(leaf, name, VarBytesColumn.Reader) if count else None
    if reader is None:
        return list(leaf.column_reader(name)) if count else []
    ends = list(itertools.accumulate(reader._lengths))
    values = reader._dbfile.get(reader._basepos, ends[-1])
    return [values[start:end] for start, end in itertools.pairwise([0, *ends])]


_BYTE_LENGTHS = np.asarray(_length_byte_cache, dtype=np.float64)  # Whoosh's byte_to_length as a table


def field_lengths(leaf: Any, field: str) -> np.ndarray:
    """Each document's length of a field in a segment as Whoosh's `doc_field_length` gives it (quantised to a byte),
    but 0 rather than None for a document without one."""
    # Read at once rather than a document at a time: 190 ms for the text of 97k documents, at the first text search
    # after a rebuild.
    count = leaf.doc_count_all()
    reader = leaf._perdoc._cached_reader(_lenfield(field), LENGTHS_COLUMN) if count else None
    if type(reader) is not NumericColumn.Reader:
        return np.fromiter((leaf.doc_field_length(d, field) for d in range(count)), dtype=np.float64, count=count)
    return _BYTE_LENGTHS[_stored_numbers(reader, count, np.uint8)]


def bm25(searcher: Any, stem_weights: Iterable[tuple[str, np.ndarray]], lengths: np.ndarray) -> np.ndarray:
    """Whoosh's BM25F score (whoosh.scoring.BM25F with its defaults) of many documents of the text field at once:
    for each stem, its idf and the documents' within-document frequencies (zero where absent); `lengths` are the
    documents' field lengths as `doc_field_length` gives them, which Whoosh quantises to a byte."""
    norm = BM25_K1 * ((1 - BM25_B) + BM25_B * lengths / (searcher.avg_field_length("text") or 1))
    total = np.zeros(len(lengths))
    for stem, tf in stem_weights:
        total += searcher.idf("text", stem) * (tf * (BM25_K1 + 1)) / (tf + norm)
    return total


def _segment_matcher(leaf: Any, field: str, term: str) -> Any:
    """A segment's matcher for a term, unwrapped from Whoosh's deletions filter (callers apply deletions)."""
    matcher = leaf.postings(field, term)
    return getattr(matcher, "child", matcher)


def _block_ids(matcher: W3LeafMatcher) -> np.ndarray:
    """The docnums of the matcher's current block, decoded from their deltas."""
    matcher._read_data()
    return np.cumsum(np.asarray(matcher._data[0], dtype=np.int32), dtype=np.int32)


def _blocks_spanning(matcher: W3LeafMatcher, docs: np.ndarray) -> Iterator[None]:
    """Moves the matcher through its blocks, stopping (yielding) at each whose docnum range holds one of the sorted
    `docs`; only block headers are read for the others."""
    low = 0
    while matcher.is_active():
        high = matcher.block_max_id()
        first = np.searchsorted(docs, low)
        if first < len(docs) and docs[first] <= high:
            yield
        low = high + 1
        matcher._next_block()


def segment_postings(leaf: Any, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted docnums (deleted ones included) of a term in one segment, with their weights, read a block at a time.

    Whoosh's own iteration costs about a microsecond per posting in Python; decoding each block with NumPy makes a
    cold term of 100k postings a few milliseconds instead of a tenth of a second.
    """
    matcher = _segment_matcher(leaf, field, term)
    if not isinstance(matcher, W3LeafMatcher):
        pairs = list(matcher.items_as("weight"))
        return (np.fromiter((d for d, _ in pairs), dtype=np.int32, count=len(pairs)),
                np.fromiter((w for _, w in pairs), dtype=np.float64, count=len(pairs)))
    id_blocks, weight_blocks = [], []
    while matcher.is_active():
        id_blocks.append(_block_ids(matcher))
        matcher._read_weights()
        weight_blocks.append(np.asarray(matcher._weights, dtype=np.float64))
        matcher._next_block()
    if not id_blocks:
        return np.empty(0, dtype=np.int32), np.empty(0)
    return np.concatenate(id_blocks), np.concatenate(weight_blocks)


def segment_positions(leaf: Any, field: str, term: str, wanted: np.ndarray) -> dict[int, frozenset[int]]:
    """Segment docnum → positions of a term, for those of the sorted segment docnums `wanted` that hold it. Only the
    posting blocks whose docnum range holds one of them are decoded."""
    decode = leaf.schema[field].format.decode_positions
    matcher = _segment_matcher(leaf, field, term)
    if not isinstance(matcher, W3LeafMatcher):
        wanted_set = set(wanted.tolist())
        return {d: frozenset(decode(v)) for d, v in matcher.all_items() if d in wanted_set}
    found: dict[int, frozenset[int]] = {}
    for _ in _blocks_spanning(matcher, wanted):
        ids = _block_ids(matcher)
        hit = np.flatnonzero(np.isin(ids, wanted, assume_unique=True))
        if len(hit):
            matcher._read_values()
            for i in hit.tolist():
                found[int(ids[i])] = frozenset(decode(matcher._values[i]))
    return found


# Fields -------------------------------------------------------------------------------------------------------

# Whoosh's StemmingAnalyzer with accents folded between lower-casing and the stop and stem filters, so that
# "Montréal" and "Montreal", "Chloé" and "Chloe" are one term, in the index and in queries alike, and an accented word
# stems as its plain spelling does. Whoosh's accent_map (Sphinx's table) also folds letters Unicode does not decompose
# (ø, ł, đ); it leaves œ and æ whole. The analyzer is pickled into the index's table of contents, so an index written
# with another one is found and rebuilt (SearchIndex.fields_outdated).
TEXT_ANALYZER = RegexTokenizer() | LowercaseFilter() | CharsetFilter(accent_map) | StopFilter() | StemFilter()
_WORDS = TEXT_ANALYZER.items[0].expression  # the analyzer's own tokenizer pattern
# The same pattern with its group not capturing, so that findall gives whole words: indexing a bio by findall rather
# than by match objects took 9% less of an index worker's time spent adding documents.
_WHOLE_WORDS = re.compile(_WORDS.pattern.replace("(", "(?:"), _WORDS.flags)
_POSITIONS = Positions()
_KEYWORD_TOKENS = re.compile(r"[^ \t\r\n]+")  # the pattern of Whoosh's space-separated keyword tokenizer


_packed_frequency = functools.lru_cache(maxsize=64)(pack_uint)  # a keyword's frequency as its format encodes it


@functools.lru_cache(maxsize=200_000)
def _encoded_positions(positions: tuple[int, ...]) -> bytes:
    """A posting's positions as a TEXT field's format encodes them; most are one of a few hundred."""
    return _POSITIONS.encode(positions)


def composed(text: str) -> str:
    """`text` with each accented letter as one character (NFC), as the analyzer must be given it: its tokenizer's
    `\\w` does not match a combining accent, so a decomposed "Montréal" (e + U+0301) would be the words "Montre" and
    "al"."""
    return unicodedata.normalize("NFC", text)


@functools.lru_cache(maxsize=200_000)
def stem_of(word: str) -> str | None:
    """What the analyzer makes of one word: its stem, or None when it is a stopword or too short."""
    return next((token.text for token in TEXT_ANALYZER(word)), None)


def stemmed_words(text: str) -> Iterator[tuple[str | None, int, int]]:
    """Each word of `text` as the text analyzer finds it, with its stem (None for a stopword or a one-letter word)
    and where it starts and ends: what `TEXT_ANALYZER(text, chars=True, removestops=False)` gives, without the
    token pipeline, which costs about a microsecond a word."""
    for match in _WORDS.finditer(text):
        yield stem_of(match.group()), match.start(), match.end()


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
        for raw, word in enumerate(_WHOLE_WORDS.findall(value)):  # not stemmed_words: its generator costs 10% here
            stem = stem_of(word)
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
        words = _KEYWORD_TOKENS.findall(value)
        # A listing's keywords are nearly always distinct (its cells, flags, spelling words): counting them only
        # when some repeat took 3% less of an index worker's time (6 µs of a document's 215).
        counts = dict.fromkeys(words, 1) if len(set(words)) == len(words) else Counter(words)
        for word, freq in counts.items():
            yield word.encode("utf-8"), freq, float(freq) * boost, _packed_frequency(freq)


# An index's table of contents pickles its schema, naming each field's class by module. These classes lived in
# directory.search.schema before this module existed, and that module still hands them on for this alone: keeping
# the name lets indexes written before and after open with either version of the code.
FastText.__module__ = FastKeyword.__module__ = "directory.search.schema"
