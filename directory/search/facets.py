"""Facets: the vocabulary filters (approach, specialty, language, insurance, age, client type, community, gender) a
search narrows by, and the counts shown beside each of their values, each kind counted as if its own filter were
unset."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from directory.search.index.snapshot import IndexSnapshot
from directory.vocabulary import KINDS, vocabulary

FACETS = KINDS  # each counted as if its own filter were unset
# [value, bit]: whether that byte value has that bit; as floats, since NumPy multiplies integer matrices without BLAS
# (4x slower here), and counts are exact in a float64 up to 2**53.
_BITS_OF_BYTE = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.float64)
_COLUMN = {kind: column for column, kind in enumerate(FACETS)}


def filtered(snapshot: IndexSnapshot, base: np.ndarray, filters: Mapping[str, tuple[str, ...]]
             ) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Those of `base` (sorted docnums) holding a value of every kind chosen, and each kind's counts: how many of
    `base` hold each of its values, among those the other kinds' choices keep."""
    # Each choice is checked as bits of the facet masks the counts read anyway, a lookup per document of `base`:
    # intersecting sorted lists took a binary search per document per kind.
    table = _mask_table(snapshot)
    holds = {kind: (table[base, _COLUMN[kind]] & np.uint64(_bits_of(kind, filters[kind]))) != 0
             for kind in FACETS if filters[kind]}
    among_all = base[np.logical_and.reduce(list(holds.values()))] if holds else base
    counts = _counts(table[among_all], FACETS)
    for kind in holds:
        others = [held for other, held in holds.items() if other != kind]
        among = base[np.logical_and.reduce(others)] if others else base
        counts.update(_counts(table[among, _COLUMN[kind]:_COLUMN[kind] + 1], (kind,)))
    return among_all, {kind: counts[kind] for kind in FACETS}


def _bits_of(kind: str, slugs: tuple[str, ...]) -> int:
    """The facet mask bits of a kind's slugs."""
    bit = {slug: 1 << i for i, slug in enumerate(vocabulary.slugs(kind))}
    return sum(bit[slug] for slug in slugs)


def _mask_table(snapshot: IndexSnapshot) -> np.ndarray:
    """Per document, a row of masks, one a kind: bit i of a kind's mask is whether the document holds its i-th
    vocabulary term. Built once a snapshot."""
    def build() -> np.ndarray:
        table = np.zeros((snapshot.doc_count_all(), len(FACETS)), dtype="<u8")
        for column, kind in enumerate(FACETS):
            slugs = vocabulary.slugs(kind)
            assert len(slugs) <= 64, "facet masks are a uint64"
            for bit, slug in enumerate(slugs):
                table[snapshot.docs_with(kind, slug), column] |= np.uint64(1 << bit)
        return table

    return snapshot.derived("facet-masks", build)


def _counts(rows: np.ndarray, kinds: tuple[str, ...]) -> dict[str, dict[str, int]]:
    """For each of `kinds`, how many of the mask rows (a column a kind, in that order) hold each of its values."""
    # Byte j of a little-endian mask holds its bits 8j..8j+7. Every byte a kind uses is numbered apart (its value
    # plus 256 times its place), so that one bincount counts every byte value of every kind; weighting each value by
    # the bits it has set then counts eight terms at once: three NumPy calls for all kinds, not a dozen for each.
    planes = rows.view(np.uint8).reshape(len(rows), 8 * len(kinds))
    used = [8 * column + byte for column, kind in enumerate(kinds)
            for byte in range((len(vocabulary.slugs(kind)) + 7) // 8)]
    numbered = planes[:, used].astype(np.intp) + 256 * np.arange(len(used))
    tallies = (np.bincount(numbered.ravel(), minlength=256 * len(used)).reshape(len(used), 256) @ _BITS_OF_BYTE
               ).astype(np.int64)
    counts, at = {}, 0
    for kind in kinds:
        slugs = vocabulary.slugs(kind)
        width = (len(slugs) + 7) // 8
        counts[kind] = dict(zip(slugs, tallies[at:at + width].ravel()[:len(slugs)].tolist(), strict=True))
        at += width
    return counts
