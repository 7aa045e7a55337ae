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
from whoosh.searching import Searcher

from directory.search.schema import make_schema

log = logging.getLogger(__name__)

CURRENT = "current"
PARALLEL_BATCH = 5000


class IndexBusy(RuntimeError):
    """Another writer held the index longer than the lock timeout."""


class RebuildFailed(RuntimeError):
    """A rebuilt index did not hold the documents it should; the live index was left in place."""


class ColumnCache:
    """Column values per index segment, shared by all threads. A written segment never changes (deletions are
    kept apart), so its values stay valid until a merge retires it; then they are dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], list[Any]] = {}

    def values(self, searcher: Searcher, field: str, load: Callable[[Any], list[Any]] | None = None) -> list[Any]:
        """Values of a column (or what `load` reads from each segment) for every docnum of this searcher."""
        parts, live = [], set()
        for leaf, _offset in searcher.reader().leaf_readers():
            key = (leaf.segment().segment_id(), field)
            live.add(key)
            found = self._values.get(key)
            if found is None:
                found = (load(leaf) if load else list(leaf.column_reader(field))) if leaf.doc_count_all() else []
                with self._lock:
                    self._values[key] = found
            parts.append(found)
        with self._lock:
            for key in [k for k in self._values if k[1] == field and k not in live]:
                del self._values[key]
        return parts[0] if len(parts) == 1 else list(itertools.chain.from_iterable(parts))


@dataclass
class View:
    """A searcher plus the per-searcher caches that are only valid while the index does not change."""

    searcher: Searcher
    generation: str
    postings: dict[tuple[str, str], frozenset[int]]
    column_cache: ColumnCache
    columns: dict[str, Any] = field(default_factory=dict)
    all_docs: frozenset[int] | None = None

    def docs_with(self, field: str, term: str) -> frozenset[int]:
        """Document numbers holding a term, cached for the life of this searcher."""
        key = (field, term)
        found = self.postings.get(key)
        if found is None:
            reader = self.searcher.reader()
            if (field, term) in reader:
                found = frozenset(reader.postings(field, term).all_ids())
            else:
                found = frozenset()
            if len(self.postings) > 4096:
                self.postings.clear()
            self.postings[key] = found
        return found

    def column(self, name: str) -> Any:
        """Per-document values of a column field, indexed by docnum."""
        found = self.columns.get(name)
        if found is None:
            # An index with no documents has no column files; Whoosh then raises instead of returning nothing.
            empty = not self.searcher.reader().doc_count_all()
            found = self.columns[name] = {} if empty else self.column_cache.values(self.searcher, name)
        return found

    def array(self, name: str) -> np.ndarray:
        """A numeric column as a NumPy array, for vectorised arithmetic."""
        return self.cached(name + "[]", lambda: np.asarray(self.column(name) or [], dtype=np.float64))

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """A value derived from this searcher's documents, built once."""
        if key not in self.columns:
            self.columns[key] = build()
        return self.columns[key]

    def text_lengths(self) -> np.ndarray:
        """Each document's indexed length of the text field, as BM25 uses it."""
        def load(leaf: Any) -> list[int]:
            return [leaf.doc_field_length(d, "text") for d in range(leaf.doc_count_all())]

        return self.cached("text-lengths", lambda: np.asarray(
            self.column_cache.values(self.searcher, "text-lengths", load) if self.searcher.reader().doc_count_all() else [],
            dtype=np.float64))

    def term_weights(self, field: str, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(docnums, within-document frequencies) of a term, sorted by docnum."""
        def build() -> tuple[np.ndarray, np.ndarray]:
            reader = self.searcher.reader()
            if (field, term) not in reader:
                return np.empty(0, dtype=np.int64), np.empty(0)
            pairs = list(reader.postings(field, term).items_as("weight"))
            return (np.fromiter((d for d, _ in pairs), dtype=np.int64, count=len(pairs)),
                    np.fromiter((w for _, w in pairs), dtype=np.float64, count=len(pairs)))

        return self.cached(f"weights:{field}:{term}", build)

    def every_doc(self) -> frozenset[int]:
        """Every live document number."""
        if self.all_docs is None:
            self.all_docs = frozenset(self.searcher.reader().all_doc_ids())
        return self.all_docs


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

    def _write(self, replace_ids: Iterable[str], docs: Iterable[dict[str, Any]]) -> None:
        path = self._generation_path()
        if path is None:
            raise RuntimeError("no search index: run `flask --app app index rebuild`")
        replace_ids = list(replace_ids)
        docs = iter(docs)
        first = next(docs, None)
        if not replace_ids and first is None:
            return
        # A big batch (an import) is written by two processes into two new segments.
        parallel = {"procs": 2, "multisegment": True, "limitmb": 256} if len(replace_ids) >= PARALLEL_BATCH else {}
        with whoosh_index.open_dir(str(path)).writer(timeout=self.lock_timeout, **parallel) as writer:
            # Old versions are found through the id postings directly: update_document's delete_by_term runs a
            # scored search per document, which made bulk imports crawl.
            reader = writer.reader()
            try:
                for doc_id in replace_ids:
                    if ("id", doc_id) in reader:
                        for docnum in reader.postings("id", doc_id).all_ids():
                            writer.delete_document(docnum)
            finally:
                reader.close()
            for doc in itertools.chain([first] if first is not None else [], docs):
                writer.add_document(**doc)

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
            with ix.writer(procs=2, multisegment=True, limitmb=256) as writer:
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
        view: View | None = getattr(self._local, "view", None)
        if view is not None and view.generation == path.name:
            fresh = view.searcher.refresh()  # closes what the old searcher no longer shares
            if fresh is view.searcher:
                return view
            view = View(fresh, path.name, {}, self._columns)
        else:
            if view is not None:
                view.searcher.close()
            view = View(whoosh_index.open_dir(str(path)).searcher(), path.name, {}, self._columns)
        self._local.view = view
        return view

    def close(self) -> None:
        """Close this thread's searcher."""
        view = getattr(self._local, "view", None)
        if view is not None:
            view.searcher.close()
            self._local.view = None

    def stamps(self) -> dict[int, float]:
        """Listing id → the version the index holds, for drift checks."""
        view = self.view()
        pks, stamps = view.column("pk"), view.column("stamp")
        return {pks[d]: stamps[d] for d in view.every_doc()}
