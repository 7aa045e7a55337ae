"""Bulk indexing in worker processes, each writing a segment of its own: the path of rebuilds and big imports.

Whoosh's own MpWriter is not used, for two reasons seen in practice. It forks the calling process, and forking a
process whose other threads hold locks (a web worker serving searches, a test running searches during a rebuild)
can leave the child stuck on a lock nobody will release; the parent then waited on it forever. And when a child
fails, MpWriter blocks on a full job queue or drops that child's segment after a one-second wait. Here workers
start from a fresh forkserver process, and a worker that fails or dies raises in the parent, which cancels the
write: the index is left as it was.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import multiprocessing
import operator
import pickle
import queue
import traceback
import uuid
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from whoosh.index import FileIndex, open_dir
from whoosh.writing import SegmentWriter

from directory.search.docnums import DocnumWriter

CONTEXT = multiprocessing.get_context("forkserver")
BATCH_SIZE = 1000  # documents per message to a worker
POLL_SECONDS = 1.0  # how often a waiting parent checks that its workers are alive


class WorkerFailed(RuntimeError):
    """A worker process raised or died while indexing; nothing of the write was committed."""


def _next_batch(jobs: Any) -> list[dict[str, Any]] | None:
    """The next batch for this worker; exits when the process that started it is gone (killed mid-import)."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            return jobs.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                raise SystemExit("the indexing process is gone") from None


def _index_batches(index_dir: str, jobs: Any, results: Any, writer_options: dict[str, Any]) -> None:
    """A worker's life: index every batch it is sent into one new segment, then send back that segment."""
    try:
        writer = TermBufferedWriter(open_dir(index_dir), _lk=False, **writer_options)
        while (batch := _next_batch(jobs)) is not None:
            for fields in batch:
                writer.add_document(**fields)
        results.put(("segment", writer._finalize_segment()))
    except BaseException:
        results.put(("error", traceback.format_exc()))


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
        super().__init__(ix, limitmb=limitmb, **options)
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
        for (name, tbytes), parts in itertools.groupby(heapq.merge(*streams, key=_KEY), key=_KEY):
            parts = list(parts)
            if len(parts) == 1:
                yield parts[0]
            else:
                yield (name, tbytes, [d for part in parts for d in part[2]], [w for part in parts for w in part[3]],
                       [v for part in parts for v in part[4]])

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        reader = self.per_document_reader()
        docnum_file = DocnumWriter(self.newsegment, self.storage)
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


class ParallelWriter(TermBufferedWriter):
    """A Whoosh writer whose added documents are indexed by `procs` worker processes into segments of their own;
    deletions and the commit happen here, under this writer's lock."""

    def __init__(self, ix: FileIndex, procs: int, limitmb: int, **options: Any) -> None:
        super().__init__(ix, limitmb=limitmb, **options)
        self._procs = procs
        self._worker_options = {"limitmb": limitmb, "compound": options.get("compound", True)}
        self._jobs = CONTEXT.Queue(procs * 2)
        self._results = CONTEXT.Queue()
        self._workers: list[Any] = []
        self._batch: list[dict[str, Any]] = []
        self._segments: list[Any] = []

    def add_document(self, **fields: Any) -> None:
        """Queue a document for the workers."""
        self._batch.append(fields)
        if len(self._batch) >= BATCH_SIZE:
            self._send_batch()

    def _send_batch(self) -> None:
        if len(self._workers) < self._procs:
            worker = CONTEXT.Process(target=_index_batches, daemon=True,
                                     args=(self.storage.folder, self._jobs, self._results, self._worker_options))
            worker.start()
            self._workers.append(worker)
        self._put(self._batch)
        self._batch = []

    def _put(self, item: list[dict[str, Any]] | None) -> None:
        while True:
            try:
                self._jobs.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                self._check_workers()

    def _receive(self, timeout: float) -> None:
        """Take one worker's result within `timeout` (else queue.Empty): keep a segment, raise on a failure."""
        kind, payload = self._results.get(timeout=timeout)
        if kind == "error":
            raise WorkerFailed(payload)
        self._segments.append(payload)

    def _check_workers(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                self._receive(timeout=0)
        # A worker ends only after its result is in the pipe: a dead worker beyond those that sent one crashed.
        ended = [worker.exitcode for worker in self._workers if not worker.is_alive()]
        if len(ended) > len(self._segments):
            raise WorkerFailed(f"an indexing worker died (exit codes {ended})")

    def _collect_segments(self) -> list[Any]:
        if self._batch:
            self._send_batch()
        for _worker in self._workers:
            self._put(None)
        while len(self._segments) < len(self._workers):
            try:
                self._receive(timeout=POLL_SECONDS)
            except queue.Empty:
                self._check_workers()
        for worker in self._workers:
            worker.join()
        self._jobs.close()
        self._results.close()
        return self._segments

    def commit(self, mergetype: Any = None, optimize: bool | None = None, merge: bool | None = None) -> None:
        """Wait for the workers' segments and commit them with this writer's deletions, or cancel on failure."""
        try:
            segments = self._collect_segments()
        except BaseException:
            self.cancel()
            raise
        self._check_state()
        final = self._merge_segments(mergetype, optimize, merge) + segments
        if self._added:
            final.append(self._finalize_segment())
        else:
            self._close_segment()
        self._commit_toc(final)
        self._finish()

    def cancel(self) -> None:
        """Stop the workers and discard everything written."""
        for worker in self._workers:
            worker.kill()
            worker.join()
        self._workers = []
        # Batches the dead workers never took would stay buffered for the pipe, and the queue's feeder thread would
        # wait for a reader forever, keeping this process from exiting. At most procs * 2 are outstanding.
        with contextlib.suppress(queue.Empty):
            while True:
                self._jobs.get(timeout=0.2)
        self._jobs.close()
        self._results.close()
        super().cancel()
