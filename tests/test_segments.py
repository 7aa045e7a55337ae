"""Bulk indexing in worker processes: the same documents as a plain writer, and failures raise instead of hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from whoosh import index as whoosh_index
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import FileIndex

from directory.search.index.segments import BATCH_SIZE, ParallelWriter, WorkerFailed

COUNT = 3 * BATCH_SIZE + 7


def make_index(path: Path) -> FileIndex:
    path.mkdir()
    return whoosh_index.create_in(str(path), Schema(id=ID(stored=True, unique=True), text=TEXT))


def stored_ids(ix: FileIndex) -> list[str]:
    with ix.searcher() as searcher:
        return sorted(fields["id"] for fields in searcher.all_stored_fields())


def delete_id(writer: ParallelWriter, doc_id: str) -> None:
    """Delete a committed document by its id, as the index's writes do."""
    with writer.reader() as reader:
        for docnum in reader.postings("id", doc_id).all_ids():
            writer.delete_document(docnum)


def test_workers_index_every_document_and_the_parent_keeps_its_deletions(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "ix")
    with ix.writer() as writer:
        writer.add_document(id="old-0", text="to be deleted")
        writer.add_document(id="old-1", text="to be kept")
    # Another thread holds a lock while the workers start: forking this process would have copied it held.
    held = threading.Lock()
    with held:
        with ParallelWriter(ix, procs=2, limitmb=32) as writer:
            delete_id(writer, "old-0")
            for n in range(COUNT):
                writer.add_document(id=f"new-{n}", text=f"word{n % 10} common")
    expected = sorted(["old-1", *(f"new-{n}" for n in range(COUNT))])
    assert stored_ids(ix) == expected
    with ix.searcher() as searcher:
        assert searcher.doc_frequency("text", "word3") == len([n for n in range(COUNT) if n % 10 == 3])
        assert len(searcher.reader().leaf_readers()) >= 2, "the workers did not write segments of their own"


def test_a_failing_worker_raises_and_leaves_the_index_as_it_was(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "ix")
    with ix.writer() as writer:
        writer.add_document(id="kept", text="before")
    with pytest.raises(WorkerFailed, match="UnknownFieldError"):
        with ParallelWriter(ix, procs=2, limitmb=32) as writer:
            delete_id(writer, "kept")
            for n in range(COUNT):
                writer.add_document(id=f"n{n}", **({"no_such_field": "x"} if n == BATCH_SIZE + 1 else {"text": "t"}))
    assert stored_ids(whoosh_index.open_dir(str(tmp_path / "ix"))) == ["kept"]
    with whoosh_index.open_dir(str(tmp_path / "ix")).writer() as writer:  # the lock was released
        writer.add_document(id="after", text="after")


def test_a_killed_worker_raises_instead_of_waiting_forever(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "ix")
    with pytest.raises(WorkerFailed, match="died"):
        with ParallelWriter(ix, procs=2, limitmb=32) as writer:
            for n in range(BATCH_SIZE):
                writer.add_document(id=f"n{n}", text="t")
            os.kill(writer._workers[0].pid, signal.SIGKILL)
            for n in range(BATCH_SIZE, 40 * BATCH_SIZE):
                writer.add_document(id=f"n{n}", text="t")
    assert stored_ids(whoosh_index.open_dir(str(tmp_path / "ix"))) == []


def test_a_process_whose_write_failed_still_exits(tmp_path: Path) -> None:
    # Unsent batches of dead workers once left a queue thread waiting for a reader, and the process never ended.
    script = tmp_path / "fail_then_exit.py"
    script.write_text(f"""
import os, signal
from whoosh import index
from whoosh.fields import ID, TEXT, Schema
from directory.models import Listing
from directory.sample import generate
from directory.search.documents import listing_document
from directory.search.index.fields import make_schema
from directory.search.index.segments import BATCH_SIZE, ParallelWriter, WorkerFailed

ix = index.create_in({str(tmp_path)!r}, Schema(id=ID, text=TEXT))
text = "words enough to fill a pipe " * 10
try:
    with ParallelWriter(ix, procs=2, limitmb=32) as writer:
        for n in range(BATCH_SIZE):
            writer.add_document(id=str(n), text=text)
        for worker in writer._workers:
            os.kill(worker.pid, signal.SIGKILL)
        for n in range(40 * BATCH_SIZE):
            writer.add_document(id=str(n), text=text)
except WorkerFailed:
    print("failed as expected")
""")
    repo = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": repo})
    assert done.returncode == 0 and "failed as expected" in done.stdout, done.stderr
