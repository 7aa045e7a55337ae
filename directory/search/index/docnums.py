"""Each term's document numbers as packed arrays in a file beside a segment's Whoosh postings.

Whoosh stores a posting block as one zlib-compressed pickle of its ids, weights and positions, so reading a common
word's documents means unpickling every position too: about 55 µs per 128 postings, over 100 ms for a word in
300k of a million listings. Here the same document numbers are stored as delta-coded integers of the narrowest
width that holds them and read with NumPy in about a millisecond. This module owns the file's format; where the
file lives (beside its segment, deleted with it) is Whoosh's naming, in whoosh_internals.
"""

from __future__ import annotations

import mmap
import pickle
import struct
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

EXT = ".ids"
_TRAILER = struct.Struct("<Q")  # where the term table starts
_WIDTHS = (np.uint8, np.uint16, np.uint32)


class DocnumWriter:
    """Writes one segment's docnum file, a term at a time."""

    def __init__(self, out: BinaryIO) -> None:
        self._file = out
        self._offset = 0
        # (field, term bytes) → (first docnum, count, byte offset of the deltas, NumPy type code of the deltas)
        self._table: dict[tuple[str, bytes], tuple[int, int, int, str]] = {}

    def add(self, field: str, term: bytes, docnums: Sequence[int]) -> None:
        """Record a term's docnums (sorted, as in its postings)."""
        ids = np.asarray(docnums, dtype=np.int64)
        deltas = np.diff(ids)
        largest = int(deltas.max()) if len(deltas) else 0
        width = next(w for w in _WIDTHS if largest <= np.iinfo(w).max)
        data = deltas.astype(width).tobytes()
        self._table[(field, term)] = (int(ids[0]), len(ids), self._offset, np.dtype(width).char)
        self._file.write(data)
        self._offset += len(data)

    def close(self) -> None:
        """Write the term table and close the file."""
        self._file.write(pickle.dumps(self._table, pickle.HIGHEST_PROTOCOL))
        self._file.write(_TRAILER.pack(self._offset))
        self._file.close()


class DocnumReader:
    """One segment's docnum file, mapped into memory."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as handle:
            self._data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        (start,) = _TRAILER.unpack_from(self._data, len(self._data) - _TRAILER.size)
        self._table: dict[tuple[str, bytes], tuple[int, int, int, str]] = pickle.loads(
            self._data[start:len(self._data) - _TRAILER.size])

    def docnums(self, field: str, term: bytes) -> np.ndarray:
        """The term's docnums in this segment (deleted ones included), sorted; empty when it has none."""
        found = self._table.get((field, term))
        if found is None:
            return np.empty(0, dtype=np.int32)
        first, count, offset, code = found
        ids = np.empty(count, dtype=np.int32)
        ids[0] = first
        np.cumsum(np.frombuffer(self._data, dtype=code, count=count - 1, offset=offset), dtype=np.int32, out=ids[1:])
        ids[1:] += first
        return ids
