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
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from multiprocessing import forkserver, resource_tracker
from types import TracebackType
from typing import Any

from whoosh.index import FileIndex

from directory.search.index.whoosh_segment_writer import TermBufferedWriter

CONTEXT = multiprocessing.get_context("forkserver")
BATCH_SIZE = 1000  # documents per message to a worker
POLL_SECONDS = 1.0  # how often a waiting parent checks that its workers are alive (workers check 4 times as often)


class WorkerFailed(RuntimeError):
    """A worker process raised or died while indexing; nothing of the write was committed."""


_helpers_lock = threading.Lock()
_helpers_started = False


def _start_helpers() -> None:
    """Start multiprocessing's forkserver and resource tracker with /dev/null as their stdout and stderr.

    They, and the workers forked from the forkserver, would otherwise hold this process's output pipes open after it
    died: a caller waiting for the end of an import's output waited until they went too. Worker errors come back
    through the results queue, not their stderr. While the helpers start (once per process, a few milliseconds),
    output that other threads write is lost.
    """
    global _helpers_started
    with _helpers_lock:
        if _helpers_started:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            resource_tracker.ensure_running()
            forkserver.ensure_running()
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, devnull):
                os.close(fd)
        _helpers_started = True


def _exit_with_parent() -> None:
    """In a worker: end this process as soon as the process that started it is gone, whatever it was doing
    (blocked reading a batch that its dead parent only half sent, say)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        while parent.is_alive():
            time.sleep(POLL_SECONDS / 4)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _index_batches(index_dir: str, jobs: Any, results: Any, writer_options: dict[str, Any]) -> None:
    """A worker's life: index every batch it is sent into one new segment, then send back that segment."""
    _exit_with_parent()
    try:
        writer = TermBufferedWriter.unlocked(index_dir, **writer_options)
        while (batch := jobs.get()) is not None:
            for fields in batch:
                writer.add_document(**fields)
        results.put(("segment", writer.finish_segment()))
    except BaseException:
        results.put(("error", traceback.format_exc()))


class ParallelWriter:
    """An index writer whose added documents are indexed by `procs` worker processes into segments of their own;
    deletions and the commit happen here, in a writer that holds the index lock. Used as a context manager, it
    commits on success and cancels on an exception, as Whoosh's writers do."""

    def __init__(self, ix: FileIndex, procs: int, limitmb: int, **options: Any) -> None:
        _start_helpers()  # before the queues, whose locks start the resource tracker
        self._writer = TermBufferedWriter(ix, limitmb=limitmb, **options)
        self._folder = ix.storage.folder
        self._procs = procs
        self._worker_options = {"limitmb": limitmb}
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
                                     args=(self._folder, self._jobs, self._results, self._worker_options))
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

    def reader(self) -> Any:
        """A reader of the index as committed (for finding documents to delete)."""
        return self._writer.reader()

    def delete_document(self, docnum: int) -> None:
        """Delete a committed document; happens at the commit."""
        self._writer.delete_document(docnum)

    def commit(self) -> None:
        """Wait for the workers' segments and commit them with this writer's deletions, or cancel on failure."""
        try:
            segments = self._collect_segments()
        except BaseException:
            self.cancel()
            raise
        self._writer.commit_with(segments)

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
        self._writer.cancel()

    def __enter__(self) -> ParallelWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.cancel()
