"""Bulk indexing in worker processes: the same documents as a plain writer, docnum files that match the postings,
and failures raise instead of hanging."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from whoosh import index as whoosh_index
from whoosh.fields import ID, TEXT, Schema
from whoosh.index import FileIndex
from whoosh.writing import SegmentWriter

from directory.models import Listing
from directory.sample import generate
from directory.search import docnums
from directory.search.schema import listing_document, make_schema
from directory.search.segments import BATCH_SIZE, TermBufferedWriter, ParallelWriter, WorkerFailed

COUNT = 3 * BATCH_SIZE + 7


def make_index(path: Path) -> FileIndex:
    path.mkdir()
    return whoosh_index.create_in(str(path), Schema(id=ID(stored=True, unique=True), text=TEXT))


def stored_ids(ix: FileIndex) -> list[str]:
    with ix.searcher() as searcher:
        return sorted(fields["id"] for fields in searcher.all_stored_fields())


def test_workers_index_every_document_and_the_parent_keeps_its_deletions(tmp_path: Path) -> None:
    ix = make_index(tmp_path / "ix")
    with ix.writer() as writer:
        writer.add_document(id="old-0", text="to be deleted")
        writer.add_document(id="old-1", text="to be kept")
    # Another thread holds a lock while the workers start: forking this process would have copied it held.
    held = threading.Lock()
    with held:
        with ParallelWriter(ix, procs=2, limitmb=32) as writer:
            writer.delete_by_term("id", "old-0")
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
            writer.delete_by_term("id", "kept")
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


def listing_documents(count: int, first_pk: int) -> list[dict[str, Any]]:
    stamp = dt.datetime(2026, 1, 1)
    listings = (Listing(id=first_pk + n, updated_at=stamp, **fields) for n, fields in enumerate(generate(count)))
    return [doc for listing in listings if (doc := listing_document(listing)) is not None]


def segment_contents(path: Path) -> dict[str, Any]:
    """The postings files of an index's one segment, byte for byte; and as read: every term's postings and
    statistics, the columns and the text lengths.

    Whoosh packs columns into one file in an order that varies from run to run, so those are compared as read.
    """
    ix = whoosh_index.open_dir(str(path))
    (segment,) = ix._segments()
    prefix = f"MAIN_{segment.segment_id().split('_')[-1]}"
    contents: dict[str, Any] = {p.suffix: p.read_bytes() for p in path.iterdir()
                                if p.name.startswith(prefix) and p.suffix not in (".col", docnums.EXT)}
    with ix.reader() as reader:
        for field, term in reader.all_terms():
            matcher = reader.postings(field, term)
            postings = []
            while matcher.is_active():
                postings.append((matcher.id(), matcher.weight(), matcher.value()))
                matcher.next()
            info = reader.term_info(field, term)
            stats = (info.weight(), info.doc_frequency(), info.min_length(), info.max_length(), info.max_weight())
            contents[f"{field}:{term!r}"] = (postings, stats)
        for name in ("pk", "lat", "lon", "sortname", "stamp"):
            contents[name] = list(reader.column_reader(name))
        contents["text lengths"] = [reader.doc_field_length(d, "text") for d in range(reader.doc_count_all())]
    return contents


def assert_docnum_file_lists_every_posting(path: Path) -> None:
    """The segment's docnum file gives, for every term but the unique key's, the docnums Whoosh's postings hold."""
    ix = whoosh_index.open_dir(str(path))
    with ix.reader() as reader:
        (leaf, _), = reader.leaf_readers()
        docnum_file = docnums.open_docnums(leaf)
        assert docnum_file is not None
        listed = 0
        for field, term in reader.all_terms():
            if field == "id":
                assert not len(docnum_file.docnums(field, term))
                continue
            found = docnum_file.docnums(field, term)
            assert found.dtype == np.int32 and found.tolist() == list(reader.postings(field, term).all_ids())
            listed += len(found)
        assert listed > 50 * reader.doc_count_all()
        assert not len(docnum_file.docnums("text", b"no-such-word"))


@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled-runs"])
def test_term_buffered_writer_writes_the_same_segment_as_whoosh(tmp_path: Path, spill: bool) -> None:
    # The real schema and documents, and two earlier segments that the commit merges in.
    earlier = [listing_documents(40, first_pk=10_000 + 100 * k) for k in range(2)]
    docs = listing_documents(1500, first_pk=1)
    written = {}
    for name, writer_class in (("whoosh", SegmentWriter), ("buffered", TermBufferedWriter)):
        path = tmp_path / name
        path.mkdir()
        ix = whoosh_index.create_in(str(path), make_schema())
        for batch in earlier:
            with ix.writer() as writer:
                for doc in batch:
                    writer.add_document(**doc)
        writer = writer_class(ix, compound=False)
        if spill and isinstance(writer, TermBufferedWriter):
            writer._limit = 64 * 1024  # a few hundred documents a run
        for doc in docs:
            writer.add_document(**doc)
        if spill and isinstance(writer, TermBufferedWriter):
            assert len(writer._runs) >= 3
        writer.commit(optimize=True)  # merges the earlier segments in through Whoosh's pool
        written[name] = segment_contents(path)
        if writer_class is TermBufferedWriter:
            assert_docnum_file_lists_every_posting(path)
        assert len(written[name]["pk"]) == len(docs) + 80
        assert not list(path.glob("*.terms")) and not list(Path(writer._tempstorage.folder).glob("*.terms"))
    assert {".trm", ".pst"} <= set(written["whoosh"])
    if spill:
        # Block data is pickled, and pickle writes a value that recurs in a block (one bytes object shared by
        # several postings) as a back-reference; values read back from a run are no longer shared, so the bytes
        # of the files differ while every decoded posting, above, is the same.
        for found in written.values():
            del found[".trm"], found[".pst"]
    assert written["buffered"] == written["whoosh"]


def test_a_process_whose_write_failed_still_exits(tmp_path: Path) -> None:
    # Unsent batches of dead workers once left a queue thread waiting for a reader, and the process never ended.
    script = tmp_path / "fail_then_exit.py"
    script.write_text(f"""
import os, signal
from whoosh import index
from whoosh.fields import ID, TEXT, Schema
from directory.models import Listing
from directory.sample import generate
from directory.search.schema import listing_document, make_schema
from directory.search.segments import BATCH_SIZE, ParallelWriter, WorkerFailed

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
