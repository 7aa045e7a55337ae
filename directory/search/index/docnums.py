"""Each term's document numbers as packed arrays in a file beside a segment's Whoosh postings.

Whoosh stores a posting block as one zlib-compressed pickle of its ids, weights and positions, so reading a common
word's documents means unpickling every position too: about 55 µs per 128 postings, over 100 ms for a word in
300k of a million listings. Here the same document numbers are stored as delta-coded integers of the narrowest
width that holds them and read with NumPy in about a millisecond. A scored field's terms also keep their weights
(within-document frequencies, which BM25 needs) the same way, so that a national text search need not decode every
block of a common word either. The file also keeps the segment's spelling words (see fields.SPELLING_WORDS). This
module owns the file's format; where the file lives (beside its segment, deleted with it) is Whoosh's naming, in
whoosh_internals.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from collections.abc import Iterable, Sequence
from typing import Any, BinaryIO

import numpy as np

EXT = ".ids"
_TRAILER = struct.Struct("<Q")  # where the term table starts
_WIDTHS = (np.uint8, np.uint16, np.uint32)


class DocnumWriter:
    """Writes one segment's docnum file, a term at a time."""

    def __init__(self, out: BinaryIO) -> None:
        self._file = out
        self._offset = 0
        # (field, term bytes) → (first docnum, count, byte offset of the deltas, NumPy type code of the deltas), then
        # for a term with weights (byte offset of the weights, their type code). Files written before weights were
        # kept hold the first four only.
        self._table: dict[tuple[str, bytes], tuple[Any, ...]] = {}

    def add(self, field: str, term: bytes, docnums: Sequence[int], weights: Sequence[float] | None = None) -> None:
        """Record a term's docnums (sorted, as in its postings) and, for a scored field, their weights."""
        ids = np.asarray(docnums, dtype=np.int64)
        deltas = np.diff(ids)
        largest = int(deltas.max()) if len(deltas) else 0
        width = next(w for w in _WIDTHS if largest <= np.iinfo(w).max)
        entry: tuple[Any, ...] = (int(ids[0]), len(ids), self._offset, np.dtype(width).char)
        self._write(deltas.astype(width).tobytes())
        if weights is not None:
            stored = _narrowest(np.asarray(weights, dtype=np.float32))  # as Whoosh's blocks hold them
            entry += (self._offset, stored.dtype.char)
            self._write(stored.tobytes())
        self._table[(field, term)] = entry

    def holds(self, field: str, term: bytes) -> bool:
        """Whether a term was recorded."""
        return (field, term) in self._table

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._offset += len(data)

    def close(self, words: Iterable[str]) -> None:
        """Write the term table and the segment's spelling words, and close the file."""
        self._file.write(pickle.dumps((self._table, sorted(words)), pickle.HIGHEST_PROTOCOL))
        self._file.write(_TRAILER.pack(self._offset))
        self._file.close()


class DocnumReader:
    """One segment's docnum file, mapped into memory."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as handle:
            self._data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        (start,) = _TRAILER.unpack_from(self._data, len(self._data) - _TRAILER.size)
        stored = pickle.loads(self._data[start:len(self._data) - _TRAILER.size])
        # Files written before spelling words were kept hold the term table alone; their index is rebuilt at start
        # (it has the `words` field this code dropped), and meanwhile they offer no bio words.
        self._table: dict[tuple[str, bytes], tuple[Any, ...]] = stored[0] if isinstance(stored, tuple) else stored
        self.words: list[str] = stored[1] if isinstance(stored, tuple) else []

    def docnums(self, field: str, term: bytes) -> np.ndarray:
        """The term's docnums in this segment (deleted ones included), sorted; empty when it has none."""
        found = self._table.get((field, term))
        if found is None:
            return np.empty(0, dtype=np.int32)
        first, count, offset, code = found[:4]
        ids = np.empty(count, dtype=np.int32)
        ids[0] = first
        np.cumsum(np.frombuffer(self._data, dtype=code, count=count - 1, offset=offset), dtype=np.int32, out=ids[1:])
        ids[1:] += first
        return ids

    def weights(self, field: str, term: bytes) -> np.ndarray | None:
        """The term's weights in this segment, in docnum order (empty when it has no documents here), or None when
        the file keeps none for it (a field that is not scored, or a file written before weights were kept)."""
        found = self._table.get((field, term))
        if found is None:
            return np.empty(0)
        if len(found) == 4:
            return None
        count, offset, code = found[1], found[4], found[5]
        return np.frombuffer(self._data, dtype=code, count=count, offset=offset).astype(np.float64)


def _narrowest(weights: np.ndarray) -> np.ndarray:
    """Weights in the narrowest type that keeps each exactly: a word's count in a document is a small whole
    number, which a byte or two holds; anything else stays a 32-bit float."""
    if len(weights) and np.all(weights == np.round(weights)) and weights.min() >= 0:
        for width in _WIDTHS[:2]:
            if weights.max() <= np.iinfo(width).max:
                return weights.astype(width)
    return weights
