"""Every use of Whoosh's internals, in one place: the project depends on Whoosh 2.7.4's file format, not only on
its API. Everything else in the project uses Whoosh's public API (fields, analyzers, queries, a searcher's
documented methods) or this module.

What this module relies on, and why:

- Fields: `FastText` and `FastKeyword` subclass Whoosh's TEXT and KEYWORD fields and replace their `index()` with
  code that yields exactly what Whoosh's token pipeline would (about twice as fast): they use the analyzer's
  tokenizer pattern (`TEXT_ANALYZER.items[0].expression`), the stop filter's position numbering, the
  Positions format's `encode` and `whoosh.system.pack_uint` for a keyword's frequency. Index tables of contents
  pickle the schema, so these classes keep the module name they were first written under (see below).
- Writing: `TermBufferedWriter` subclasses `whoosh.writing.SegmentWriter`; its `add_document` and `_flush_segment`
  are Whoosh's, changed so that each term's postings are buffered in arrays and reach the codec a block at a time
  (most of the cost of indexing). It uses the writer's `perdocwriter` (`start_doc`, `add_field`,
  `add_column_value`, `finish_doc`), `fieldwriter` (`start_field`, `start_term`, `finish_term`, `finish_field`)
  and its postings writer `_postwriter` with the block state (`_blocklimit`, `_ids`, `_weights`, `_maxweight`,
  `_values`, `_minlength`, `_maxlength`, `_write_block`), `per_document_reader().doc_field_length`, `docnum`,
  `newsegment`, `storage`, `_tempstorage`, `pool.iter_postings()` (5-tuples: field, term, docnum, weight, value,
  for segments merged in at commit), `_check_state`, `_check_fields`, `_doc_boost`, `_field_boost`, `_added`,
  `_close_segment`, `_finalize_segment`, `_merge_segments`, `_commit_toc` (which also deletes retired segments'
  files) and `_finish`. The keyword `_lk=False` opens a writer without the index lock, for worker processes whose
  segments (codec `Segment` objects, pickled between processes) the locking parent commits (`commit_with`).
  Segments are never compound files (see `TermBufferedWriter.__init__`).
- Reading: a segment's postings matcher is a `whoosh.codec.whoosh3.W3LeafMatcher` (unwrapped from the deletions
  filter through its `child`); `block_max_id()`, `_next_block`, `_read_data` (`_data[0]`: the block's ids as
  deltas), `_read_weights`/`_weights` and `_read_values`/`_values` decode one 128-posting block at a time, so
  NumPy handles ids and weights and positions are decoded only from the blocks that hold a wanted document.
  A segment reader's codec `Segment` gives its id and deleted documents (`segment_key`, `deleted_docnums`).
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
import heapq
import itertools
import operator
import os
import pickle
import re
import unicodedata
import uuid
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import whoosh
from whoosh.analysis import CharsetFilter, LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.fields import KEYWORD, TEXT
from whoosh.formats import Positions
from whoosh.index import FileIndex, open_dir
from whoosh.support.charset import accent_map
from whoosh.system import pack_uint
from whoosh.writing import SegmentWriter

from directory.search.index.docnums import EXT as DOCNUM_EXT
from directory.search.index.docnums import DocnumReader, DocnumWriter

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
_POSITIONS = Positions()
_KEYWORD_TOKENS = re.compile(r"[^ \t\r\n]+")  # the pattern of Whoosh's space-separated keyword tokenizer


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
        for raw, match in enumerate(_WORDS.finditer(value)):  # not stemmed_words: its generator costs 10% here
            stem = stem_of(match.group())
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


# An index's table of contents pickles its schema, naming each field's class by module. These classes lived in
# directory.search.schema before this module existed, and that module still hands them on for this alone: keeping
# the name lets indexes written before and after open with either version of the code.
FastText.__module__ = FastKeyword.__module__ = "directory.search.schema"


# Writing ------------------------------------------------------------------------------------------------------


class _TermPostings:
    """One term's postings in the order documents were added (so by docnum)."""

    __slots__ = ("docnums", "weights", "values")

    def __init__(self) -> None:
        self.docnums = array("I")
        self.weights = array("d")  # as the field gave them; Whoosh keeps a block's maximum at full precision
        self.values: list[bytes] = []


# (fieldname, term, docnums, weights, values) of one term, from the buffer, a spilled run or a merged segment.
TermRun = tuple[str, bytes, Sequence[int], Sequence[float], list[bytes]]
_KEY = operator.itemgetter(0, 1)
# What a buffered posting costs in memory, about: two array slots, a list slot, and its value when it has one.
# An estimate for deciding when to spill, not an accounting: text positions are mostly shared cached objects.
POSTING_BYTES = 24
VALUE_BYTES = 40


class TermBufferedWriter(SegmentWriter):
    """Whoosh's segment writer, writing the same segment files with a fraction of its Python work per posting.

    Whoosh puts every posting into a sorting pool as a tuple, sorts them all, then feeds them one at a time
    through the codec's writer, which checks each and asks for the document's field length on every call: most
    of the cost of indexing. Here each term's postings go straight into arrays as documents are added (already
    in docnum order, so only terms are sorted), and each 128-posting block is handed to the codec whole. The
    buffer spills to sorted runs on disk past `limitmb`. The postings written are the same as Whoosh's, and the
    files byte for byte when nothing spilled. Term vectors and separate spelling fields are not supported.
    """

    def __init__(self, ix: FileIndex, limitmb: int = 128, **options: Any) -> None:
        if any(field.vector or field.separate_spelling() for _, field in ix.schema.items()):
            raise ValueError("TermBufferedWriter does not write term vectors or separate spelling fields")
        # Never a compound file: Whoosh reads one by copying each part into memory, so every search process held
        # its own copy of all postings (3.4 GB per worker at 1M listings); and packing would hide the docnum file.
        super().__init__(ix, limitmb=limitmb, compound=False, **options)
        self._limit = limitmb * 1024 * 1024
        self._buffered = 0
        self._terms: dict[str, dict[bytes, _TermPostings]] = {}
        self._runs: list[str] = []

    def add_document(self, **fields: Any) -> None:
        """Index a document: what Whoosh's writer does, with postings buffered per term."""
        self._check_state()
        perdocwriter = self.perdocwriter
        docnum = self.docnum
        docboost = self._doc_boost(fields)
        names = sorted(name for name in fields if not name.startswith("_"))
        self._check_fields(self.schema, names)
        perdocwriter.start_doc(docnum)
        added = 0
        for name in names:
            value = fields[name]
            if value is None:
                continue
            field = self.schema[name]
            length = 0
            if field.indexed:
                boost = self._field_boost(fields, name, docboost)
                terms = self._terms.setdefault(name, {})
                for tbytes, freq, weight, vbytes in field.index(value):
                    postings = terms.get(tbytes)
                    if postings is None:
                        postings = terms[tbytes] = _TermPostings()
                    postings.docnums.append(docnum)
                    postings.weights.append(weight * boost)
                    postings.values.append(vbytes or b"")
                    length += freq
                    added += POSTING_BYTES + VALUE_BYTES if vbytes else POSTING_BYTES
                if not field.scorable:
                    length = 0
            perdocwriter.add_field(name, field, value if field.stored else None, length)
            if field.column_type:
                perdocwriter.add_column_value(name, field.column_type, field.to_column_value(value))
        perdocwriter.finish_doc()
        self._added = True
        self.docnum += 1
        self._buffered += added
        if self._buffered > self._limit:
            self._spill()

    def _sorted_buffer(self) -> Iterator[TermRun]:
        for name in sorted(self._terms):
            terms = self._terms[name]
            for tbytes in sorted(terms):
                postings = terms[tbytes]
                yield name, tbytes, postings.docnums, postings.weights, postings.values

    def _spill(self) -> None:
        path = f"{uuid.uuid4().hex}.terms"
        with self._tempstorage.create_file(path).raw_file() as out:
            for run in self._sorted_buffer():
                pickle.dump(run, out, pickle.HIGHEST_PROTOCOL)
        self._runs.append(path)
        self._terms = {}
        self._buffered = 0

    def _read_run(self, path: str) -> Iterator[TermRun]:
        with self._tempstorage.open_file(path).raw_file() as run:
            while True:
                try:
                    yield pickle.load(run)
                except EOFError:
                    return

    def _merged_postings(self) -> Iterator[TermRun]:
        """Every term's postings in (field, term) order: spilled runs, the buffer, then merged-in segments."""
        # Segments merged at commit (add_reader) put their postings in Whoosh's pool, numbered after every added
        # document; heapq.merge keeps equal terms in the order of its inputs, so concatenating keeps docnum order.
        pooled = ((name, tbytes, [p[2] for p in group], [p[3] for p in group], [p[4] or b"" for p in group])
                  for (name, tbytes), group in ((key, list(g)) for key, g in
                                                itertools.groupby(self.pool.iter_postings(), key=_KEY)))
        streams = [*(self._read_run(path) for path in self._runs), self._sorted_buffer(), pooled]
        for (name, tbytes), group in itertools.groupby(heapq.merge(*streams, key=_KEY), key=_KEY):
            parts = list(group)
            if len(parts) == 1:
                yield parts[0]
            else:
                yield (name, tbytes, [d for part in parts for d in part[2]], [w for part in parts for w in part[3]],
                       [v for part in parts for v in part[4]])

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        reader = self.per_document_reader()
        docnum_file = DocnumWriter(self.newsegment.create_file(self.storage, DOCNUM_EXT))
        try:
            doc_count = reader.doc_count_all()
            fieldwriter = self.fieldwriter
            for name, runs in itertools.groupby(self._merged_postings(), key=operator.itemgetter(0)):
                field = self.schema[name]
                lengths = [reader.doc_field_length(d, name) for d in range(doc_count)] if field.scorable else None
                fieldwriter.start_field(name, field)
                for _, tbytes, docnums, weights, values in runs:
                    fieldwriter.start_term(tbytes)
                    _add_blocks(fieldwriter._postwriter, docnums, weights, values, lengths)
                    fieldwriter.finish_term()
                    if not field.unique:  # a unique key's one-document terms are looked up, never listed
                        docnum_file.add(name, tbytes, docnums)
                fieldwriter.finish_field()
        finally:
            reader.close()
            docnum_file.close()
        self.fieldwriter.close()

    @classmethod
    def unlocked(cls, index_dir: str, **options: Any) -> TermBufferedWriter:
        """A writer for a worker process: it writes one segment (`finish_segment`) that a locking writer commits."""
        return cls(open_dir(index_dir), _lk=False, **options)

    def finish_segment(self) -> Any:
        """Write this writer's documents as a segment and return it, without committing (a worker's last step)."""
        return self._finalize_segment()

    def commit_with(self, segments: list[Any]) -> None:
        """Commit this writer's deletions and documents together with segments that worker processes wrote."""
        self._check_state()
        final = self._merge_segments(None, None, None) + segments
        if self._added:
            final.append(self._finalize_segment())
        else:
            self._close_segment()
        self._commit_toc(final)
        self._finish()

    def _close_segment(self) -> None:
        for path in self._runs:
            self._tempstorage.delete_file(path)
        self._runs = []
        super()._close_segment()


def _add_blocks(postwriter: Any, docnums: Sequence[int], weights: Sequence[float], values: list[bytes],
                lengths: list[int] | None) -> None:
    """Give the codec's postings writer one term's postings a block at a time, leaving it in the state that
    adding them one by one would (the last block is written by its finish_postings)."""
    size = postwriter._blocklimit
    for start in range(0, len(docnums), size):
        end = start + size
        postwriter._ids = array("I", docnums[start:end])
        block_weights = weights[start:end]
        postwriter._weights = array("f", block_weights)
        postwriter._maxweight = max(0, max(block_weights))
        postwriter._values = [value for value in values[start:end] if value]
        block_lengths = [lengths[d] for d in docnums[start:end] if lengths[d]] if lengths else []
        postwriter._minlength = min(block_lengths) if block_lengths else None
        postwriter._maxlength = max(block_lengths) if block_lengths else 0
        if end < len(docnums):
            postwriter._write_block()
