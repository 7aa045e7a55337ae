"""The writing half of the Whoosh seam (see whoosh_internals.py, which holds the version check this module runs
by importing it, and the tests that compare both halves with Whoosh's own results).

What it relies on, and why:

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
"""

from __future__ import annotations

import heapq
import itertools
import operator
import pickle
import uuid
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from whoosh.index import FileIndex, open_dir
from whoosh.writing import SegmentWriter

from directory.search.index.whoosh_internals import docnum_file, stem_of  # its version check covers this module
from directory.search.index.docnums import EXT as DOCNUM_EXT
from directory.search.index.docnums import DocnumWriter
from directory.search.index.fields import SPELLING_STEMS_FIELD, SPELLING_WORDS


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
        self._spelling: set[str] = set()  # the documents' spelling words, kept whole: a vocabulary, not postings

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
        self._spelling.update(fields.get(SPELLING_WORDS, "").split())
        self._added = True
        self.docnum += 1
        self._buffered += added
        if self._buffered > self._limit:
            self._spill()

    def add_reader(self, reader: Any) -> None:
        """Merge a segment's documents in (Whoosh's add_reader), and its spelling words (those whose stem no live
        document holds are dropped when the segment is written)."""
        for leaf, _ in reader.leaf_readers():
            merged = docnum_file(leaf)
            self._spelling.update(merged.words if merged is not None else ())
        super().add_reader(reader)

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
                # Joined as arrays, not Python lists: a million-posting term is a copy of its parts, not a million
                # objects (a 1M import's workers merge about ten spilled runs each).
                docnums, weights = array("I"), array("d")
                for part in parts:
                    docnums.extend(part[2])
                    weights.extend(part[3])
                yield name, tbytes, docnums, weights, [v for part in parts for v in part[4]]

    def _flush_segment(self) -> None:
        self.perdocwriter.close()
        reader = self.per_document_reader()
        docnum_writer = DocnumWriter(self.newsegment.create_file(self.storage, DOCNUM_EXT))
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
                    docnum_writer.add(name, tbytes, docnums, weights if field.scorable else None)
                fieldwriter.finish_field()
        finally:
            reader.close()
            docnum_writer.close(word for word in self._spelling
                                if (stem := stem_of(word)) and docnum_writer.holds(SPELLING_STEMS_FIELD, stem.encode()))
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
