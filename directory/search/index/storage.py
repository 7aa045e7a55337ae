"""The index on disk: generations behind an atomically switched `current` link, one writer at a time through a
file lock, writes committed whole or not at all, rebuilds built aside and switched to, and each thread's snapshot
of the live generation for reading."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import index as whoosh_index

from directory import file_lock
from directory.search.index.fields import make_schema
from directory.search.index.segments import ParallelWriter
from directory.search.index.snapshot import IndexSnapshot, ThreadSnapshots
from directory.search.index.whoosh_internals import numeric_column
from directory.search.index.whoosh_segment_writer import TermBufferedWriter

log = logging.getLogger(__name__)

CURRENT = "current"
CLAIMS = ".claims"  # one lock file per generation, held by the process building it
APPLIED = ".applied"  # one file per generation: the number of the last change-log row it has applied
FIRST_BUILD_TIMEOUT = 600.0  # seconds a starting process waits for another's first build of the index
PARALLEL_BATCH = 5000
# Each writer process's budget for buffered postings (an estimate, see whoosh_segment_writer.POSTING_BYTES) before it
# spills a sorted run to disk. By that estimate a 100k import never spills. A 1M import's processes together peaked
# at 1.71 GB with 512 and 1.46 GB with 384; the spilling this adds cost no measurable time.
WRITER_LIMITMB = 320


class IndexBusy(RuntimeError):
    """Another writer held the index longer than the lock timeout."""


class RebuildFailed(RuntimeError):
    """A rebuilt index did not hold the documents it should; the live index was left in place."""


def _segment_writer(ix: Any, bulk: bool, timeout: float) -> TermBufferedWriter | ParallelWriter:
    """A writer on `ix`; `bulk` indexes in two worker processes, for thousands of documents."""
    if bulk:
        return ParallelWriter(ix, procs=2, limitmb=WRITER_LIMITMB, timeout=timeout)
    return TermBufferedWriter(ix, timeout=timeout)


def _docnums_of(reader: Any, ids: list[int]) -> list[int]:
    """The docnums of the documents of listings `ids` in an index reader, deleted ones included (deleting one again
    changes nothing), found by the `pk` column."""
    # A column read at once (8 bytes a document: a few milliseconds at 1M) rather than a unique `id` term a listing:
    # those terms were most of a segment's terms and 12% of an index worker's time.
    wanted = np.asarray(ids, dtype=np.int64)
    return [offset + docnum for leaf, offset in reader.leaf_readers()
            for docnum in np.flatnonzero(np.isin(numeric_column(leaf, "pk", np.int64), wanted)).tolist()]


def _write_into(writer: TermBufferedWriter | ParallelWriter, replace_ids: Iterable[int],
                docs: Iterable[dict[str, Any]]) -> None:
    """Delete the committed documents of the listings `replace_ids` in `writer`, then add `docs`."""
    replace_ids = list(replace_ids)
    if replace_ids:
        reader = writer.reader()
        try:
            for docnum in _docnums_of(reader, replace_ids):
                writer.delete_document(docnum)
        finally:
            reader.close()
    for doc in docs:
        writer.add_document(**doc)


def _commit_or_cancel(writer: TermBufferedWriter | ParallelWriter) -> None:
    """Commit; when that fails (a full disk, say), cancel, so that the writer's own lock on the index is freed
    instead of blocking every later writer in this process."""
    try:
        writer.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            writer.cancel()
        raise


class IndexWrite:
    """An open write to the live index, holding the writer lock until it is committed or cancelled."""

    def __init__(self, writer: TermBufferedWriter | ParallelWriter, held: contextlib.ExitStack) -> None:
        self._writer = writer
        self._held = held

    def write(self, replace_ids: Iterable[int], docs: Iterable[dict[str, Any]]) -> None:
        """Remove the committed documents of the listings `replace_ids` and add `docs`; a listing must not be
        replaced twice."""
        _write_into(self._writer, replace_ids, docs)

    def commit(self) -> None:
        """Make everything written visible to new searches, and free the lock."""
        with self._held:
            _commit_or_cancel(self._writer)

    def cancel(self) -> None:
        """Discard everything written, and free the lock."""
        with self._held:
            self._writer.cancel()


class SearchIndex:
    """The on-disk index under one directory, shared by the web workers and the CLI."""

    def __init__(self, root: Path, lock_timeout: float = 10.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout
        self._snapshots = ThreadSnapshots()

    # Writers --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the cross-process writer lock; raise IndexBusy when it is not free within the timeout."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".write.lock", "a+") as handle:
            if not file_lock.acquire(handle, self.lock_timeout if timeout is None else timeout):
                raise IndexBusy("the search index is being written by another process")
            try:
                yield
            finally:
                file_lock.release(handle)

    def _generation_path(self) -> Path | None:
        try:
            return self.root / os.readlink(self.root / CURRENT)
        except FileNotFoundError:
            return None

    def generation(self) -> str | None:
        """The live generation's name, or None when there is no index."""
        path = self._generation_path()
        return path.name if path is not None else None

    def exists(self) -> bool:
        """Whether a live index is in place."""
        return self._generation_path() is not None

    def fields_outdated(self) -> set[str]:
        """The fields of this code's schema that the live index lacks or analyses otherwise, and those it has that
        this code's schema dropped: written by an older version, it must be rebuilt. An index's table of contents
        keeps each field's analyzer as the generation was created with it, so an index from before accent folding
        names `text`; one from before listings were found by their `pk` column names `id`."""
        path = self._generation_path()
        if path is None:
            return set()
        written = whoosh_index.open_dir(str(path)).schema
        schema = make_schema()
        return {name for name, field in schema.items()
                if name not in written or getattr(written[name], "analyzer", None) != getattr(field, "analyzer", None)
                } | {name for name in written.names() if name not in schema}

    def ensure(self) -> None:
        """Create an empty live index when there is none; never touches an existing one."""
        if self.exists():
            return
        with self.write_lock():
            if not self.exists():
                with self._new_generation() as path:
                    self._switch_to(path)

    def build_once(self, build: Callable[[], Any]) -> None:
        """Run `build` (which makes the live index) unless there is one with every field, analysed as this code
        does (see fields_outdated); of several processes starting on a fresh (or older) index folder at once, the
        first builds and the others wait for it, then find the index in place.

        The lock is taken even when the index exists: a process that came a moment late must not start serving
        while the first one is still filling the index it just made."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".first-build.lock", "a+") as handle:
            if not file_lock.acquire(handle, FIRST_BUILD_TIMEOUT):
                raise IndexBusy(f"another process has been building the first index for over {FIRST_BUILD_TIMEOUT:g} s")
            try:
                if not self.exists() or self.fields_outdated():
                    build()
            finally:
                file_lock.release(handle)

    @contextlib.contextmanager
    def _new_generation(self) -> Iterator[Path]:
        """A new, empty generation folder, claimed by this process until the block ends: `_prune` in any process
        leaves a claimed generation alone, so a build is never deleted under its builder."""
        name = f"gen-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        claims = self.root / CLAIMS
        claims.mkdir(parents=True, exist_ok=True)
        # Claimed before the folder exists, so no pruning process can ever see it unclaimed.
        path = self.root / name
        with open(claims / name, "a+") as claim:
            file_lock.acquire(claim, 0)  # a fresh name: nobody else can hold it
            try:
                path.mkdir()
                whoosh_index.create_in(str(path), make_schema())
                yield path
            finally:
                if not path.exists():  # a failed build removed its folder
                    (claims / name).unlink(missing_ok=True)
                file_lock.release(claim)

    def _switch_to(self, generation: Path) -> None:
        # A symlink replaced by rename is atomic: a reader sees the old or the new generation, never neither.
        tmp = self.root / f".current-{uuid.uuid4().hex}"
        os.symlink(generation.name, tmp)
        os.replace(tmp, self.root / CURRENT)

    def write(self, replace_ids: Iterable[int], docs: Iterable[dict[str, Any]]) -> None:
        """Remove the documents of the listings `replace_ids`, then add `docs` (read as they come), in one commit."""
        with self.write_lock():
            self.write_locked(replace_ids, docs)

    def begin_write(self, bulk: bool) -> IndexWrite:
        """Take the writer lock and start a write that searches see only once it is committed.

        `bulk` writes through worker processes: for writes of thousands of documents.
        """
        held = contextlib.ExitStack()
        held.enter_context(self.write_lock())
        try:
            return IndexWrite(self._open_writer(bulk), held)
        except BaseException:
            held.close()
            raise

    def _open_writer(self, bulk: bool) -> TermBufferedWriter | ParallelWriter:
        path = self._generation_path()
        if path is None:
            raise RuntimeError("no search index: run `flask --app app index rebuild`")
        return _segment_writer(whoosh_index.open_dir(str(path)), bulk, self.lock_timeout)

    def write_locked(self, replace_ids: Iterable[int], docs: Iterable[dict[str, Any]]) -> None:
        """`write`, for a caller that holds the writer lock."""
        replace_ids = list(replace_ids)
        docs = iter(docs)
        first = next(docs, None)
        if not replace_ids and first is None:
            return
        writer = self._open_writer(bulk=len(replace_ids) >= PARALLEL_BATCH)
        try:
            _write_into(writer, replace_ids, itertools.chain([first] if first is not None else [], docs))
        except BaseException:
            writer.cancel()
            raise
        _commit_or_cancel(writer)

    def rebuild(
        self,
        docs: Iterable[dict[str, Any]],
        expected: Callable[[], int],
        catch_up: Callable[[Callable[[list[int], Iterator[dict[str, Any]]], None]], None],
    ) -> int:
        """Build a complete index aside, check it holds `expected()` documents, then switch to it.

        `catch_up` runs under the writer lock right after the switch, with a function that writes the changes
        committed while the build ran. Returns the new index's document count.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._new_generation() as path:
            try:
                ix = whoosh_index.open_dir(str(path))
                # Two processes build two segments side by side; the index is aside, so nothing contends for it.
                with _segment_writer(ix, bulk=True, timeout=0.0) as writer:
                    for doc in docs:
                        writer.add_document(**doc)
                count = whoosh_index.open_dir(str(path)).doc_count()
                if count != expected():
                    raise RebuildFailed(f"the new index holds {count} documents, the database {expected()}")
                with self.write_lock():
                    previous = self._generation_path()
                    self._switch_to(path)
                    catch_up(self.write_locked)
                    self._prune(keep={path, previous})
            except BaseException:
                if self._generation_path() != path:
                    shutil.rmtree(path, ignore_errors=True)
                raise
        return count

    def applied_change(self) -> int | None:
        """The number of the last change-log row the live generation has applied, or None when it recorded none
        (built before the log existed)."""
        path = self._generation_path()
        try:
            return int((self.root / APPLIED / path.name).read_text()) if path is not None else None
        except (FileNotFoundError, ValueError):
            return None

    def record_applied_change(self, seq: int) -> None:
        """Record that the live generation has applied the change log up to `seq` (the caller holds the writer
        lock). Whoosh keeps no metadata with a commit, so this is written after it: a process killed between the
        two replays a few changes, which rewrites them as they are."""
        path = self._generation_path()
        assert path is not None
        folder = self.root / APPLIED
        folder.mkdir(exist_ok=True)
        draft = folder / f".{path.name}.{uuid.uuid4().hex}"
        draft.write_text(str(seq))
        os.replace(draft, folder / path.name)

    def _prune(self, keep: set[Path | None]) -> None:
        """Delete the generations no reader needs: all but `keep` (the new one and the previous, which a reader
        elsewhere may still be on until its next request) and those another process is still building."""
        claims = self.root / CLAIMS
        for child in self.root.glob("gen-*"):
            if child in keep:
                continue
            with open(claims / child.name, "a+") as claim:
                if not file_lock.acquire(claim, 0):
                    continue  # being built: its builder will switch to it or delete it
                try:
                    shutil.rmtree(child, ignore_errors=True)
                    (self.root / APPLIED / child.name).unlink(missing_ok=True)
                    (claims / child.name).unlink(missing_ok=True)
                finally:
                    file_lock.release(claim)

    # Readers --------------------------------------------------------------------------------------

    def snapshot(self) -> IndexSnapshot:
        """This thread's up-to-date snapshot of the live generation, reopened when the index changed or switched."""
        path = self._generation_path()
        if path is None:
            self.ensure()
            path = self._generation_path()
        assert path is not None
        return self._snapshots.current(path.name, lambda: whoosh_index.open_dir(str(path)).searcher())

    def close(self) -> None:
        """Close this thread's snapshot."""
        self._snapshots.close()

    def stamps_of(self, ids: Iterable[int]) -> dict[int, float]:
        """Listing id → the version the index holds, for those of `ids` it holds."""
        snapshot = self.snapshot()
        pks, stamps = snapshot.column("pk"), snapshot.column("stamp")
        docs = snapshot.every_doc()
        docs = docs[np.isin(pks[docs], np.asarray(list(ids), dtype=np.int64))]
        return dict(zip(pks[docs].tolist(), stamps[docs].tolist(), strict=True))

    def stamps(self) -> dict[int, float]:
        """Listing id → the version the index holds, for drift checks."""
        snapshot = self.snapshot()
        pks, stamps = snapshot.column("pk"), snapshot.column("stamp")
        docs = snapshot.every_doc()
        return dict(zip(pks[docs].tolist(), stamps[docs].tolist(), strict=True))
