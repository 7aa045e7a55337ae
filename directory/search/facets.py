"""Facets: the vocabulary filters (approach, specialty, language, insurance, age, client type, community, gender) a
search narrows by, and the counts shown beside each of their values, each kind counted as if its own filter were
unset."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from directory.search.index.snapshot import IndexSnapshot
from directory.vocabulary import KINDS, vocabulary

FACETS = KINDS  # each counted as if its own filter were unset
_BITS_OF_BYTE = (np.arange(256)[:, None] >> np.arange(8)) & 1  # [value, bit]: whether that byte value has that bit


def filtered(snapshot: IndexSnapshot, base: np.ndarray, filters: Mapping[str, tuple[str, ...]]
             ) -> tuple[np.ndarray, dict[str, dict[str, int]]]:
    """Those of `base` (sorted docnums) holding a value of every kind chosen, and each kind's counts: how many of
    `base` hold each of its values, among those the other kinds' choices keep."""
    # Each choice is checked as a bit of the facet masks the counts read anyway, a lookup per document of `base`:
    # intersecting sorted lists took a binary search per document per kind (age + community's engine 0.98 ms a
    # search at 100k so, 0.74-0.82 this way).
    holds = {kind: (_masks(snapshot, kind)[base] & np.uint64(_bits_of(kind, filters[kind]))) != 0
             for kind in FACETS if filters[kind]}
    among_all = base[np.logical_and.reduce(list(holds.values()))] if holds else base
    counts = {}
    for kind in FACETS:
        among = among_all
        if kind in holds:
            others = [held for other, held in holds.items() if other != kind]
            among = base[np.logical_and.reduce(others)] if others else base
        counts[kind] = _kind_counts(snapshot, kind, among)
    return among_all, counts


def _bits_of(kind: str, slugs: tuple[str, ...]) -> int:
    """The facet mask bits of a kind's slugs."""
    bit = {slug: 1 << i for i, slug in enumerate(vocabulary.slugs(kind))}
    bits = 0
    for slug in slugs:
        bits |= bit[slug]
    return bits


def _masks(snapshot: IndexSnapshot, kind: str) -> np.ndarray:
    """Each document's facet mask of `kind`, built once a snapshot."""
    return snapshot.derived(f"facet-bits:{kind}", lambda: _facet_masks(snapshot, kind))


def _facet_masks(snapshot: IndexSnapshot, kind: str) -> np.ndarray:
    """One bit per vocabulary term of `kind`, per document."""
    slugs = vocabulary.slugs(kind)
    assert len(slugs) <= 64, "facet bits are a uint64"
    bits = np.zeros(snapshot.doc_count_all(), dtype=np.uint64)
    for bit, slug in enumerate(slugs):
        bits[snapshot.docs_with(kind, slug)] |= np.uint64(1 << bit)
    return bits


def _kind_counts(snapshot: IndexSnapshot, kind: str, docs: np.ndarray) -> dict[str, int]:
    slugs = vocabulary.slugs(kind)
    if not len(docs):
        return dict.fromkeys(slugs, 0)
    masks = _masks(snapshot, kind)[docs]
    # Byte i of a little-endian mask holds bits 8i..8i+7: counting each byte's values, then weighting every value by
    # the bits it has set, counts eight terms at once (2-3x faster than a pass per term, 100 to 60k documents).
    planes = masks.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)
    counts = np.concatenate([np.bincount(planes[:, byte], minlength=256) @ _BITS_OF_BYTE
                             for byte in range((len(slugs) + 7) // 8)])
    return dict(zip(slugs, counts[:len(slugs)].tolist(), strict=True))
