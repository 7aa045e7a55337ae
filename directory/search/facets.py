"""Facets: the vocabulary filters (approach, specialty, language, insurance, age, client type, community, gender) a
search narrows by, and the counts shown beside each of their values, each kind counted as if its own filter were
unset."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from directory.search.index.docsets import intersect
from directory.search.index.snapshot import IndexSnapshot
from directory.vocabulary import KINDS, vocabulary

FACETS = KINDS  # each counted as if its own filter were unset
_BITS_OF_BYTE = (np.arange(256)[:, None] >> np.arange(8)) & 1  # [value, bit]: whether that byte value has that bit


def selected(snapshot: IndexSnapshot, filters: Mapping[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """For each kind with values chosen, the listings holding any of them (sorted docnums)."""
    return {kind: snapshot.docs_with_any(kind, filters[kind]) for kind in FACETS if filters[kind]}


def facet_counts(snapshot: IndexSnapshot, base: np.ndarray, chosen: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """For each kind, how many of `base` hold each of its values, among those the other kinds' choices keep."""
    # Every kind not chosen is counted among the same documents: intersected once, not once a kind.
    among_all = intersect([base, *chosen.values()])
    among = {kind: intersect([base, *(docs for other, docs in chosen.items() if other != kind)]) for kind in chosen}
    return {kind: _kind_counts(snapshot, kind, among.get(kind, among_all)) for kind in FACETS}


def _facet_bits(snapshot: IndexSnapshot, kind: str) -> np.ndarray:
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
    masks = snapshot.derived(f"facet-bits:{kind}", lambda: _facet_bits(snapshot, kind))[docs]
    # Byte i of a little-endian mask holds bits 8i..8i+7: counting each byte's values, then weighting every value by
    # the bits it has set, counts eight terms at once (2-3x faster than a pass per term, 100 to 60k documents).
    planes = masks.astype("<u8", copy=False).view(np.uint8).reshape(-1, 8)
    counts = np.concatenate([np.bincount(planes[:, byte], minlength=256) @ _BITS_OF_BYTE
                             for byte in range((len(slugs) + 7) // 8)])
    return dict(zip(slugs, counts[:len(slugs)].tolist(), strict=True))
