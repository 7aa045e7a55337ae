"""Reading the index: a thread's snapshot of one index generation, the operations a search is made of (documents
holding a term or any of several, narrowing candidates by a word, positions, BM25 scores) and the caches behind
them."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from whoosh.query import Query
from whoosh.searching import Searcher

from directory.search.index.docnums import DocnumReader
from directory.search.index.docsets import contains, union
from directory.search.index.whoosh_internals import (
    bm25,
    bytes_column,
    deleted_docnums,
    docnum_file,
    field_lengths,
    numeric_column,
    segment_key,
    segment_positions,
    segment_postings,
)

# Numeric columns are held as NumPy arrays (8 bytes a value instead of a Python float's 32); the rest as lists.
NUMERIC_COLUMNS = {"pk": np.int64, "lat": np.float64, "lon": np.float64, "stamp": np.float64, "confirmed": np.int64,
                   "fee": np.int64}
TERM_POSTINGS_CACHE_BYTES = 256 * 2**20  # per searcher; at 1M listings a broad term is a few MB
BULK_SCORING = 2000  # from this many documents on, BM25 is computed over arrays


class OutdatedIndex(RuntimeError):
    """The live index generation was written by an older version (before docnum files, or without a field this
    one reads); `index check --repair` rebuilds it."""


class SegmentValueCache:
    """Values read from each index segment (columns, text lengths, docnum files), shared by all threads. A written
    segment never changes (deletions are kept apart), so its values stay valid until a merge retires it; then
    they are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], Any] = {}

    def values(self, searcher: Searcher, name: str, load: Callable[[Any], Any]) -> Any:
        """What `load` reads from each segment (an array or a list), joined for every docnum of this searcher."""
        parts, live = [], set()
        for leaf, _offset in searcher.reader().leaf_readers():
            segment = segment_key(leaf)
            if segment is None:  # the reader of an index with no segments yet
                parts.append(load(leaf))
                continue
            key = (segment, name)
            live.add(key)
            found = self._values.get(key)
            if found is None:
                found = load(leaf)
                with self._lock:
                    self._values[key] = found
            parts.append(found)
        with self._lock:
            for key in [k for k in self._values if k[1] == name and k not in live]:
                del self._values[key]
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], np.ndarray):
            return np.concatenate(parts)
        return list(itertools.chain.from_iterable(parts))


class _NoSegment:
    """The docnum file of the reader of an index with no segments yet: it lists no documents."""

    words = ()

    def docnums(self, field: str, term: bytes) -> np.ndarray:
        """No documents."""
        return np.empty(0, dtype=np.int32)

    def weights(self, field: str, term: bytes) -> np.ndarray:
        """No weights."""
        return np.empty(0)


class IndexSnapshot:
    """One index generation as a thread sees it: a Whoosh searcher plus caches that are valid while it is unchanged.

    Sets of documents are sorted NumPy arrays of docnums (int32): a twentieth of the memory of Python sets, and
    intersections run in C. Nothing outside this module touches the searcher.
    """

    def __init__(self, searcher: Searcher, generation: str, segment_values: SegmentValueCache) -> None:
        self._searcher = searcher
        self.generation = generation
        self._segment_values = segment_values
        # (field, term, "ids") → the term's live docnums; (field, term, "weights") → (docnums, frequencies)
        self.term_postings: dict[tuple[str, str, str], Any] = {}
        self._term_postings_bytes = 0
        # Per-document values of this snapshot: columns, deletion masks, docnum files, facet bits, name ranks, ...
        self._derived: dict[str, Any] = {}
        # Opened now, while the searcher's segments are sure to be on disk: a merge may delete a retired
        # segment's files later, and the open memory map keeps the docnum file readable.
        self._segment_docnums()

    def up_to_date(self) -> bool:
        """Whether no write was committed to this generation since the snapshot opened."""
        return self._searcher.up_to_date()

    def close(self) -> None:
        """Close the searcher's files."""
        self._searcher.close()

    def doc_count_all(self) -> int:
        """How many docnums there are, deleted ones included: the length of per-document arrays."""
        return self._searcher.reader().doc_count_all()

    def has_term(self, field: str, term: str) -> bool:
        """Whether any document of this generation (deleted ones included) holds the term."""
        return (field, term) in self._searcher.reader()

    def spelling_words(self) -> set[str]:
        """The spelling words of this generation's documents (fields.SPELLING_WORDS), those of documents deleted since
        their segment was written included."""
        return set().union(*(file.words for file in self._segment_docnums() if file is not None))

    def doc_frequency(self, field: str, term: str) -> int:
        """How many documents hold the term."""
        return self._searcher.doc_frequency(field, term)

    def outdated(self) -> bool:
        """Whether some segment was written before docnum files existed (the index must be rebuilt)."""
        return None in self._segment_docnums()

    def docs_with(self, field: str, term: str) -> np.ndarray:
        """Live document numbers holding a term, sorted, cached for the life of this snapshot. Read from the docnum
        files (a millisecond even for a common word at 1M listings)."""
        return self._bounded((field, term, "ids"), lambda: self._read_term(field, term, weights=False)[0])

    def holding(self, field: str, term: str) -> np.ndarray:
        """For every docnum, whether it is live and holds the term: for the common terms a search checks its
        candidates against (formats, accepting, a country), a lookup per candidate instead of a binary search in a
        list of tens of thousands."""
        def build() -> np.ndarray:
            held = np.zeros(self.doc_count_all(), dtype=bool)
            held[self.docs_with(field, term)] = True
            return held

        return self.derived(f"holding:{field}:{term}", build)

    def docs_with_any(self, field: str, terms: Iterable[str]) -> np.ndarray:
        """Live document numbers holding at least one of the terms, sorted."""
        return union([self.docs_with(field, term) for term in terms])

    def narrow(self, field: str, term: str, candidates: np.ndarray) -> np.ndarray:
        """Those of the candidates (sorted live docnums) that hold a term."""
        return candidates[contains(self.docs_with(field, term), candidates)]

    def positions(self, field: str, term: str, docs: np.ndarray) -> dict[int, frozenset[int]]:
        """Docnum → positions of a term, for the given sorted docnums that hold it. Only the posting blocks whose
        docnum range holds some of those documents are decoded (rebuilds index listings in postcode order, so
        neighbours have neighbouring docnums and a search near one place reads a few blocks of a common word)."""
        found: dict[int, frozenset[int]] = {}
        for leaf, offset in self._searcher.reader().leaf_readers():
            wanted = docs[(docs >= offset) & (docs < offset + leaf.doc_count_all())] - offset
            if len(wanted) and (field, term) in leaf:
                found.update((d + offset, at) for d, at in segment_positions(leaf, field, term, wanted).items())
        return found

    def scores(self, query: Query, stems: frozenset[str], docs: np.ndarray) -> np.ndarray:
        """Whoosh's BM25F scores of sorted docnums for a text query over `stems` (0 for a document without every
        word, as Whoosh's matcher leaves it): the matcher for a page window, the same formula (same idf and
        quantised lengths) over arrays for many documents or once the words' arrays are in memory."""
        if not len(docs):
            return np.zeros(0)
        in_memory = all(("text", stem, "weights") in self.term_postings for stem in stems)
        if len(docs) < BULK_SCORING and not in_memory:
            # A handful of documents (a page window): skipping to them in the postings beats loading whole lists;
            # once an earlier search has loaded every word's list, the arrays are faster still.
            found = self.whoosh_scores(query, docs)
            return np.fromiter((found.get(d, 0.0) for d in docs.tolist()), dtype=np.float64, count=len(docs))
        frequencies = []
        for stem in stems:
            ids, weights = self._term_weights("text", stem)
            tf = np.zeros(len(docs))
            if len(ids):
                at = np.minimum(np.searchsorted(ids, docs), len(ids) - 1)
                tf = np.where(ids[at] == docs, weights[at], 0.0)
            frequencies.append((stem, tf))
        # Which path scores a document must not change its score: a document a filter word found, without every
        # word, scores 0 here too, so an order never depends on what earlier searches left in memory.
        every_word = np.logical_and.reduce([tf > 0 for _, tf in frequencies])
        return np.where(every_word, bm25(self._searcher, frequencies, self._text_lengths()[docs]), 0.0)

    def whoosh_scores(self, query: Query, candidates: np.ndarray) -> dict[int, float]:
        """BM25 scores of the candidates that match the query, by Whoosh's matcher. Few candidates: skip along the
        posting lists to each; many: walk the postings once and keep the candidates."""
        searcher = self._searcher
        matcher = query.matcher(searcher, searcher.context())
        scores: dict[int, float] = {}
        if len(candidates) * 8 > query.estimate_size(searcher.reader()):
            wanted = set(candidates.tolist())
            while matcher.is_active():
                docnum = matcher.id()
                if docnum in wanted:
                    scores[docnum] = matcher.score()
                matcher.next()
            return scores
        for docnum in candidates.tolist():
            if not matcher.is_active():
                break
            if matcher.id() < docnum:
                matcher.skip_to(docnum)
                if not matcher.is_active():
                    break
            if matcher.id() == docnum:
                scores[docnum] = matcher.score()
        return scores

    def column(self, name: str) -> Any:
        """Per-document values of a column field, indexed by docnum: an array for numbers, else a list."""
        dtype = NUMERIC_COLUMNS.get(name)
        if name not in self._searcher.schema:
            raise OutdatedIndex(f"the search index was written by an older version without {name!r}: run "
                                "`index check --repair`")

        def load(leaf: Any) -> Any:
            return numeric_column(leaf, name, dtype) if dtype else bytes_column(leaf, name)

        return self.derived("column:" + name, lambda: self._segment_values.values(self._searcher, name, load))

    def derived(self, key: str, build: Callable[[], Any]) -> Any:
        """A value computed from this snapshot's documents (facet bits, name ranks, ...), built once per snapshot."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    def every_doc(self) -> np.ndarray:
        """Every live document number, sorted."""
        def build() -> np.ndarray:
            parts = []
            for (leaf, offset), deleted in zip(self._searcher.reader().leaf_readers(), self._deletion_masks(),
                                               strict=True):
                ids = np.arange(offset, offset + leaf.doc_count_all(), dtype=np.int32)
                parts.append(ids if deleted is None else ids[~deleted])
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)

        return self.derived("every-doc", build)

    def _bounded(self, key: tuple[str, str, str], build: Callable[[], Any]) -> Any:
        found = self.term_postings.get(key)
        if found is None:
            found = build()
            size = sum(a.nbytes for a in found) if isinstance(found, tuple) else found.nbytes
            if self._term_postings_bytes + size > TERM_POSTINGS_CACHE_BYTES:
                self.term_postings.clear()
                self._term_postings_bytes = 0
            self.term_postings[key] = found
            self._term_postings_bytes += size
        return found

    def _term_weights(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(docnums, within-document frequencies) of a live term, sorted by docnum."""
        return self._bounded((field, term, "weights"), lambda: self._read_term(field, term, weights=True))

    def _segment_docnums(self) -> list[DocnumReader | _NoSegment | None]:
        """Per segment, its docnum file, or None for a segment written without one."""
        def load(leaf: Any) -> list[DocnumReader | _NoSegment | None]:
            return [docnum_file(leaf) if segment_key(leaf) is not None else _NoSegment()]

        return self.derived("docnum-files", lambda: self._segment_values.values(self._searcher, "docnum-files", load))

    def _read_term(self, field: str, term: str, weights: bool) -> tuple[np.ndarray, np.ndarray]:
        if field not in self._searcher.schema:  # a field added since (age, gender): Whoosh would raise a KeyError
            raise OutdatedIndex(f"the search index was written by an older version without {field!r}: run "
                                "`index check --repair`")
        files = self._segment_docnums()
        if None in files and not weights:
            raise OutdatedIndex("the search index was written before docnum files: run `index check --repair`")
        tbytes = self._searcher.schema[field].to_bytes(term)
        ids_parts, weight_parts = [], []
        leaves = self._searcher.reader().leaf_readers()
        for i, ((leaf, offset), deleted) in enumerate(zip(leaves, self._deletion_masks(), strict=True)):
            file = files[i]
            stored = file.weights(field, tbytes) if file is not None and weights else np.empty(0)
            if file is not None and stored is not None:
                ids, leaf_weights = file.docnums(field, tbytes), stored
            elif (field, term) in leaf:  # weights from a segment written before docnum files kept them
                ids, leaf_weights = segment_postings(leaf, field, term)
            else:
                continue
            if deleted is not None:
                live = ~deleted[ids]
                ids = ids[live]
                leaf_weights = leaf_weights[live] if weights else leaf_weights
            ids_parts.append(ids + np.int32(offset) if offset else ids)
            weight_parts.append(leaf_weights)
        if not ids_parts:
            return np.empty(0, dtype=np.int32), np.empty(0)
        ids = ids_parts[0] if len(ids_parts) == 1 else np.concatenate(ids_parts)
        if not weights:
            return ids, np.empty(0)
        return ids, weight_parts[0] if len(weight_parts) == 1 else np.concatenate(weight_parts)

    def _deletion_masks(self) -> list[np.ndarray | None]:
        """Per segment, a boolean mask of deleted docnums, or None when the segment has no deletions."""
        def build() -> list[np.ndarray | None]:
            masks: list[np.ndarray | None] = []
            for leaf, _offset in self._searcher.reader().leaf_readers():
                if not leaf.has_deletions():
                    masks.append(None)
                    continue
                mask = np.zeros(leaf.doc_count_all(), dtype=bool)
                mask[np.fromiter(deleted_docnums(leaf), dtype=np.int64)] = True
                masks.append(mask)
            return masks

        return self.derived("deletion-masks", build)

    def _text_lengths(self) -> np.ndarray:
        """Each document's indexed length of the text field, as BM25 uses it."""
        return self.derived("text-lengths", lambda: self._segment_values.values(
            self._searcher, "text-lengths", lambda leaf: field_lengths(leaf, "text")))


class ThreadSnapshots:
    """Each thread's current snapshot of an index directory. When a thread ends its snapshot is dropped and its
    searcher's files are closed with it, instead of being left to the garbage collector."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.segment_values = SegmentValueCache()

    def current(self, generation: str, open_searcher: Callable[[], Searcher]) -> IndexSnapshot:
        """This thread's snapshot of `generation`, reopened when the generation changed or was written to."""
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _ThreadSlot()
        snapshot = slot.snapshot
        if snapshot is not None and snapshot.generation == generation and snapshot.up_to_date():
            return snapshot
        if snapshot is not None:
            # Not Searcher.refresh(): Whoosh 2.7.4 keys the readers it could reuse by generation but looks them up
            # by segment id, so it reuses none and leaves some open. Segment values stay cached either way.
            snapshot.close()
        slot.snapshot = snapshot = IndexSnapshot(open_searcher(), generation, self.segment_values)
        return snapshot

    def close(self) -> None:
        """Close this thread's snapshot."""
        slot = getattr(self._local, "slot", None)
        if slot is not None and slot.snapshot is not None:
            slot.snapshot.close()
            slot.snapshot = None


class _ThreadSlot:
    def __init__(self) -> None:
        self.snapshot: IndexSnapshot | None = None

    def __del__(self) -> None:
        if self.snapshot is not None:
            self.snapshot.close()
