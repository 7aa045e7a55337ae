"""Sets of documents as sorted NumPy arrays of docnums: membership, intersection, union."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def contains(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each value, whether it is in `sorted_ids`."""
    if not len(sorted_ids):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return sorted_ids[at] == values


def intersect(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """Docnums in every one of the sorted arrays, sorted; the smallest is looked up in the others."""
    ordered = sorted(arrays, key=len)
    result = ordered[0]
    for other in ordered[1:]:
        if not len(result):
            break
        result = result[contains(other, result)]
    return result


def union(arrays: list[np.ndarray]) -> np.ndarray:
    """Docnums in any of the sorted arrays, sorted."""
    if len(arrays) == 1:
        return arrays[0]
    if not arrays:
        return np.empty(0, dtype=np.int32)
    # Sorted, then each value kept where it differs from the one before: NumPy 2's np.unique hashes instead, about
    # 13x slower here (0.90 ms against 0.07 for the 9,106 docnums of the cells within 25 miles of 10001 at 100k).
    merged = np.sort(np.concatenate(arrays))
    first = np.ones(len(merged), dtype=bool)
    first[1:] = merged[1:] != merged[:-1]
    return merged[first]
