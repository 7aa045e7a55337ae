"""Index storage: generations on disk behind an atomically switched `current` link, one writer at a time."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.searching import Searcher

from directory.search.docnums import DocnumReader, open_docnums
from directory.search.docsets import contains, union
from directory.search.schema import make_schema
from directory.search.segments import ParallelWriter, TermBufferedWriter

log = logging.getLogger(__name__)

CURRENT = "current"
PARALLEL_BATCH = 5000
# Each writer process's budget for buffered postings (an estimate, see segments.POSTING_BYTES) before it spills a
# sorted run to disk. By that estimate a 100k import never spills. A 1M import's processes together peaked at
# 1.71 GB with 512 and 1.46 GB with 384; the spilling this adds cost no measurable time.
WRITER_LIMITMB = 320


class IndexBusy(RuntimeError):
    """Another writer held the index longer than the lock timeout."""


class RebuildFailed(RuntimeError):
    """A rebuilt index did not hold the documents it should; the live index was left in place."""


# Numeric columns are held as NumPy arrays (8 bytes a value instead of a Python float's 32); the rest as lists.
NUMERIC_COLUMNS = {"pk": np.int64, "lat": np.float64, "lon": np.float64, "stamp": np.float64}


class ColumnCache:
    """Column values per index segment, shared by all threads. A written segment never changes (deletions are
    kept apart), so its values stay valid until a merge retires it; then they are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], Any] = {}

    def values(self, searcher: Searcher, field: str, load: Callable[[Any], Any]) -> Any:
        """What `load` reads from each segment (an array or a list), joined for every docnum of this searcher."""
        parts, live = [], set()
        for leaf, _offset in searcher.reader().leaf_readers():
            if leaf.segment() is None:  # the reader of an index with no segments yet
                parts.append(load(leaf))
                continue
            key = (leaf.segment().segment_id(), field)
            live.add(key)
            found = self._values.get(key)
            if found is None:
                found = load(leaf)
                with self._lock:
                    self._values[key] = found
            parts.append(found)
        with self._lock:
            for key in [k for k in self._values if k[1] == field and k not in live]:
                del self._values[key]
        if len(parts) == 1:
            return parts[0]
        if isinstance(parts[0], np.ndarray):
            return np.concatenate(parts)
        return list(itertools.chain.from_iterable(parts))


POSTINGS_CACHE_BYTES = 256 * 2**20  # per searcher; at 1M listings a broad term is a few MB


def _raw_matcher(leaf: Any, field: str, term: str) -> Any:
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


def _leaf_postings(leaf: Any, field: str, term: str, weights: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted docnums (deleted ones included) of a term in one segment, and their weights when asked for, read a
    block at a time.

    Whoosh's own iteration costs about a microsecond per posting in Python; decoding each block's delta-coded ids
    with NumPy makes a cold term of 100k ids a few milliseconds instead of a tenth of a second.
    """
    matcher = _raw_matcher(leaf, field, term)
    if not isinstance(matcher, W3LeafMatcher):
        pairs = list(matcher.items_as("weight")) if weights else [(d, 1.0) for d in matcher.all_ids()]
        return (np.fromiter((d for d, _ in pairs), dtype=np.int32, count=len(pairs)),
                np.fromiter((w for _, w in pairs), dtype=np.float64, count=len(pairs)) if weights else None)
    id_blocks, weight_blocks = [], []
    while matcher.is_active():
        id_blocks.append(_block_ids(matcher))
        if weights:
            matcher._read_weights()
            weight_blocks.append(np.asarray(matcher._weights, dtype=np.float64))
        matcher._next_block()
    if not id_blocks:
        return np.empty(0, dtype=np.int32), np.empty(0) if weights else None
    return np.concatenate(id_blocks), np.concatenate(weight_blocks) if weights else None


@dataclass
class View:
    """A searcher plus the per-searcher caches that are only valid while the index does not change.

    Sets of documents are sorted NumPy arrays of docnums (int32): a twentieth of the memory of Python sets, and
    intersections run in C.
    """

    searcher: Searcher
    generation: str
    column_cache: ColumnCache
    postings: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    postings_bytes: int = 0
    columns: dict[str, Any] = field(default_factory=dict)

    def docs_with(self, field: str, term: str) -> np.ndarray:
        """Live document numbers holding a term, sorted, cached for the life of this searcher."""
        return self._bounded((field, term, "ids"), lambda: self._postings(field, term, weights=False)[0])

    def term_weights(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(docnums, within-document frequencies) of a live term, sorted by docnum."""
        return self._bounded((field, term, "weights"), lambda: self._postings(field, term, weights=True))

    def docs_with_among(self, field: str, term: str, candidates: np.ndarray) -> np.ndarray:
        """Those of the candidates (sorted live docnums) that hold a term.

        From the term's whole list when it is cached or its segments have docnum files (a millisecond's read even
        for a common word). In an index written before docnum files, only the posting blocks whose docnum range
        holds a candidate are decoded: the index is built in postcode order, so the listings near one place are a
        few runs of docnums and a search there reads a small part of a common word's postings.
        """
        cached = self.postings.get((field, term, "ids"))
        if cached is None and self._listable(field) and None not in self.docnum_files():
            cached = self.docs_with(field, term)  # a whole list from docnum files costs less than the block walk
        if cached is not None:
            return candidates[contains(cached, candidates)]
        found = []
        for leaf, offset in self.searcher.reader().leaf_readers():
            local = candidates[(candidates >= offset) & (candidates < offset + leaf.doc_count_all())] - offset
            if not len(local) or (field, term) not in leaf:
                continue
            matcher = _raw_matcher(leaf, field, term)
            if not isinstance(matcher, W3LeafMatcher):
                ids = np.fromiter(matcher.all_ids(), dtype=np.int32)
            else:
                blocks = [_block_ids(matcher) for _ in _blocks_spanning(matcher, local)]
                ids = np.concatenate(blocks) if blocks else np.empty(0, dtype=np.int32)
            found.append(local[contains(ids, local)] + np.int32(offset))
        return union(found) if found else np.empty(0, dtype=np.int32)

    def _bounded(self, key: tuple[str, str, str], build: Callable[[], Any]) -> Any:
        found = self.postings.get(key)
        if found is None:
            found = build()
            size = sum(a.nbytes for a in found) if isinstance(found, tuple) else found.nbytes
            if self.postings_bytes + size > POSTINGS_CACHE_BYTES:
                self.postings.clear()
                self.postings_bytes = 0
            self.postings[key] = found
            self.postings_bytes += size
        return found

    def docnum_files(self) -> list[DocnumReader | None]:
        """Per segment, its docnum file, or None for a segment written without one."""
        return self.cached("docnum-files", lambda: self.column_cache.values(
            self.searcher, "docnum-files", lambda leaf: [open_docnums(leaf)]))

    def _listable(self, field: str) -> bool:
        return not self.searcher.schema[field].unique  # docnum files leave out the unique key

    def _postings(self, field: str, term: str, weights: bool) -> tuple[np.ndarray, np.ndarray]:
        ids_parts, weight_parts = [], []
        files = self.docnum_files() if not weights and self._listable(field) else None
        tbytes = self.searcher.schema[field].to_bytes(term)
        for i, ((leaf, offset), deleted) in enumerate(zip(self.searcher.reader().leaf_readers(), self.deleted())):
            docnum_file = files[i] if files else None
            if docnum_file is not None:
                ids, leaf_weights = docnum_file.docnums(field, tbytes), None
            elif (field, term) not in leaf:
                continue
            else:
                ids, leaf_weights = _leaf_postings(leaf, field, term, weights)
            if deleted is not None:
                live = ~deleted[ids]
                ids = ids[live]
                leaf_weights = leaf_weights[live] if leaf_weights is not None else None
            ids_parts.append(ids + np.int32(offset) if offset else ids)
            weight_parts.append(leaf_weights)
        if not ids_parts:
            return np.empty(0, dtype=np.int32), np.empty(0)
        ids = ids_parts[0] if len(ids_parts) == 1 else np.concatenate(ids_parts)
        if not weights:
            return ids, np.empty(0)
        return ids, weight_parts[0] if len(weight_parts) == 1 else np.concatenate(weight_parts)

    def positions(self, field: str, term: str, docs: np.ndarray) -> dict[int, frozenset[int]]:
        """Docnum → positions of a term, for the given sorted docnums that hold it. Only the posting blocks whose
        docnum range holds some of those documents are decoded."""
        found: dict[int, frozenset[int]] = {}
        for leaf, offset in self.searcher.reader().leaf_readers():
            wanted = docs[(docs >= offset) & (docs < offset + leaf.doc_count_all())] - offset
            if not len(wanted) or (field, term) not in leaf:
                continue
            decode = leaf.schema[field].format.decode_positions
            matcher = _raw_matcher(leaf, field, term)
            if not isinstance(matcher, W3LeafMatcher):
                wanted_set = set(wanted.tolist())
                found.update((d + offset, frozenset(decode(v))) for d, v in matcher.all_items() if d in wanted_set)
                continue
            for _ in _blocks_spanning(matcher, wanted):
                ids = _block_ids(matcher)
                hit = np.flatnonzero(np.isin(ids, wanted, assume_unique=True))
                if len(hit):
                    matcher._read_values()
                    for i in hit.tolist():
                        found[int(ids[i]) + offset] = frozenset(decode(matcher._values[i]))
        return found

    def deleted(self) -> list[np.ndarray | None]:
        """Per segment, a boolean mask of deleted docnums, or None when the segment has no deletions."""
        def build() -> list[np.ndarray | None]:
            masks: list[np.ndarray | None] = []
            for leaf, _offset in self.searcher.reader().leaf_readers():
                if not leaf.has_deletions():
                    masks.append(None)
                    continue
                mask = np.zeros(leaf.doc_count_all(), dtype=bool)
                mask[np.fromiter(leaf.segment().deleted_docs(), dtype=np.int64)] = True
                masks.append(mask)
            return masks

        return self.cached("deleted", build)

    def column(self, name: str) -> Any:
        """Per-document values of a column field, indexed by docnum: an array for numbers, else a list."""
        dtype = NUMERIC_COLUMNS.get(name)

        def load(leaf: Any) -> Any:
            # A segment with no documents has no column files; Whoosh then raises instead of returning nothing.
            count = leaf.doc_count_all()
            values = leaf.column_reader(name) if count else []
            return np.fromiter(values, dtype=dtype, count=count) if dtype else list(values)

        return self.cached("column:" + name, lambda: self.column_cache.values(self.searcher, name, load))

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """A value derived from this searcher's documents, built once."""
        if key not in self.columns:
            self.columns[key] = build()
        return self.columns[key]

    def text_lengths(self) -> np.ndarray:
        """Each document's indexed length of the text field, as BM25 uses it."""
        def load(leaf: Any) -> np.ndarray:
            count = leaf.doc_count_all()
            return np.fromiter((leaf.doc_field_length(d, "text") for d in range(count)), dtype=np.float64, count=count)

        return self.cached("text-lengths", lambda: self.column_cache.values(self.searcher, "text-lengths", load))

    def every_doc(self) -> np.ndarray:
        """Every live document number, sorted."""
        def build() -> np.ndarray:
            parts = []
            for (leaf, offset), deleted in zip(self.searcher.reader().leaf_readers(), self.deleted()):
                ids = np.arange(offset, offset + leaf.doc_count_all(), dtype=np.int32)
                parts.append(ids if deleted is None else ids[~deleted])
            return np.concatenate(parts) if parts else np.empty(0, dtype=np.int32)

        return self.cached("every-doc", build)


class _ThreadSlot:
    """One thread's view. When the thread ends its slot is dropped, and the searcher's open files are closed with it
    instead of being left to the garbage collector."""

    def __init__(self) -> None:
        self.view: View | None = None

    def __del__(self) -> None:
        if self.view is not None:
            self.view.searcher.close()


def _new_writer(ix: Any, bulk: bool, timeout: float) -> TermBufferedWriter:
    """A writer on `ix`; `bulk` indexes in two worker processes, for thousands of documents."""
    # Segments are written as separate files, never one compound file: Whoosh reads a compound file by copying each
    # part into memory, so every search process held its own copy of all postings (3.4 GB per worker at 1M listings).
    if bulk:
        return ParallelWriter(ix, procs=2, limitmb=WRITER_LIMITMB, timeout=timeout, compound=False)
    return TermBufferedWriter(ix, timeout=timeout, compound=False)


def _replace(writer: TermBufferedWriter, replace_ids: Iterable[str], docs: Iterable[dict[str, Any]]) -> None:
    """Delete the committed documents of `replace_ids` in `writer`, then add `docs`."""
    # Old versions are found through the id postings directly: update_document's delete_by_term runs a scored
    # search per document, which made bulk imports crawl.
    reader = writer.reader()
    try:
        for doc_id in replace_ids:
            if ("id", doc_id) in reader:
                for docnum in reader.postings("id", doc_id).all_ids():
                    writer.delete_document(docnum)
    finally:
        reader.close()
    for doc in docs:
        writer.add_document(**doc)


class IndexWrite:
    """An open write to the live index, holding the writer lock until it is committed or cancelled."""

    def __init__(self, writer: TermBufferedWriter, held: contextlib.ExitStack) -> None:
        self._writer = writer
        self._held = held

    def replace(self, replace_ids: Iterable[str], docs: Iterable[dict[str, Any]]) -> None:
        """Remove the committed documents of `replace_ids` and add `docs`; an id must not be replaced twice."""
        _replace(self._writer, replace_ids, docs)

    def commit(self) -> None:
        """Make everything written visible to new searches, and free the lock."""
        with self._held:
            self._writer.commit()

    def cancel(self) -> None:
        """Discard everything written, and free the lock."""
        with self._held:
            self._writer.cancel()


class SearchIndex:
    """The on-disk index under one directory, shared by the web workers and the CLI."""

    def __init__(self, root: Path, lock_timeout: float = 30.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self._local = threading.local()
        self._columns = ColumnCache()

    # Writers --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the cross-process writer lock; raise IndexBusy when it is not free within the timeout."""
        self.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + (self.lock_timeout if timeout is None else timeout)
        with open(self.root / ".write.lock", "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IndexBusy("the search index is being written by another process") from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _generation_path(self) -> Path | None:
        try:
            return self.root / os.readlink(self.root / CURRENT)
        except FileNotFoundError:
            return None

    def exists(self) -> bool:
        """Whether a live index is in place."""
        return self._generation_path() is not None

    def ensure(self) -> None:
        """Create an empty live index when there is none; never touches an existing one."""
        if self.exists():
            return
        with self.write_lock():
            if not self.exists():
                self._switch_to(self._new_generation())

    def _new_generation(self) -> Path:
        path = self.root / f"gen-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        whoosh_index.create_in(str(path), make_schema())
        return path

    def _switch_to(self, generation: Path) -> None:
        # A symlink replaced by rename is atomic: a reader sees the old or the new generation, never neither.
        tmp = self.root / f".current-{uuid.uuid4().hex}"
        os.symlink(generation.name, tmp)
        os.replace(tmp, self.root / CURRENT)

    def apply(self, replace_ids: Iterable[str], docs: Iterable[dict[str, Any]]) -> None:
        """Remove the documents of `replace_ids`, then add `docs` (read as they come), in one commit."""
        with self.write_lock():
            self._write(replace_ids, docs)

    def open_write(self, bulk: bool) -> IndexWrite:
        """Take the writer lock and start a write that searches see only once it is committed.

        `bulk` writes through worker processes: for writes of thousands of documents.
        """
        held = contextlib.ExitStack()
        held.enter_context(self.write_lock())
        try:
            return IndexWrite(self._writer(bulk), held)
        except BaseException:
            held.close()
            raise

    def _writer(self, bulk: bool) -> TermBufferedWriter:
        path = self._generation_path()
        if path is None:
            raise RuntimeError("no search index: run `flask --app app index rebuild`")
        return _new_writer(whoosh_index.open_dir(str(path)), bulk, self.lock_timeout)

    def _write(self, replace_ids: Iterable[str], docs: Iterable[dict[str, Any]]) -> None:
        replace_ids = list(replace_ids)
        docs = iter(docs)
        first = next(docs, None)
        if not replace_ids and first is None:
            return
        with self._writer(bulk=len(replace_ids) >= PARALLEL_BATCH) as writer:
            _replace(writer, replace_ids, itertools.chain([first] if first is not None else [], docs))

    def rebuild(
        self,
        docs: Iterable[dict[str, Any]],
        expected: Callable[[], int],
        catch_up: Callable[[Callable[[list[str], Iterator[dict[str, Any]]], None]], None],
    ) -> int:
        """Build a complete index aside, check it holds `expected()` documents, then switch to it.

        `catch_up` runs under the writer lock right after the switch, with a function that writes the changes
        committed while the build ran. Returns the new index's document count.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._new_generation()
        try:
            ix = whoosh_index.open_dir(str(path))
            # Two processes build two segments side by side; the index is aside, so nothing else contends for it.
            with _new_writer(ix, bulk=True, timeout=0.0) as writer:
                for doc in docs:
                    writer.add_document(**doc)
            count = whoosh_index.open_dir(str(path)).doc_count()
            if count != expected():
                raise RebuildFailed(f"the new index holds {count} documents, the database {expected()}")
            with self.write_lock():
                previous = self._generation_path()
                self._switch_to(path)
                catch_up(self._write)
                self._prune(keep={path, previous})
        except BaseException:
            if self._generation_path() != path:
                shutil.rmtree(path, ignore_errors=True)
            raise
        return count

    def _prune(self, keep: set[Path | None]) -> None:
        # The previous generation stays: a reader elsewhere may still be on it until its next request.
        for child in self.root.glob("gen-*"):
            if child not in keep:
                shutil.rmtree(child, ignore_errors=True)

    # Readers --------------------------------------------------------------------------------------

    def view(self) -> View:
        """An up-to-date searcher for this thread, reopened when the index changed or was switched."""
        path = self._generation_path()
        if path is None:
            self.ensure()
            path = self._generation_path()
        assert path is not None
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _ThreadSlot()
        view = slot.view
        if view is not None and view.generation == path.name and view.searcher.up_to_date():
            return view
        if view is not None:
            # Not Searcher.refresh(): Whoosh 2.7.4 keys the readers it could reuse by generation but looks them up
            # by segment id, so it reuses none and leaves some open. Segment columns stay cached either way.
            view.searcher.close()
        slot.view = view = View(whoosh_index.open_dir(str(path)).searcher(), path.name, self._columns)
        return view

    def close(self) -> None:
        """Close this thread's searcher."""
        slot = getattr(self._local, "slot", None)
        if slot is not None and slot.view is not None:
            slot.view.searcher.close()
            slot.view = None

    def stamps(self) -> dict[int, float]:
        """Listing id → the version the index holds, for drift checks."""
        view = self.view()
        pks, stamps = view.column("pk"), view.column("stamp")
        docs = view.every_doc()
        return dict(zip(pks[docs].tolist(), stamps[docs].tolist()))
