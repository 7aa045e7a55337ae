"""Sets of docnums as sorted arrays (directory/search/index/docsets.py) against Python's own sets."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from directory.search.index.docsets import contains, intersect, union

docsets = st.lists(st.sets(st.integers(0, 300), max_size=80), max_size=6)


def _array(values: set[int]) -> np.ndarray:
    return np.array(sorted(values), dtype=np.int32)


@given(docsets)
def test_union_intersection_and_membership_agree_with_python_sets(sets: list[set[int]]) -> None:
    arrays = [_array(values) for values in sets]
    united = union(arrays)
    assert united.tolist() == sorted(set().union(*sets)) and united.dtype == np.int32
    if sets:
        assert intersect(arrays).tolist() == sorted(set.intersection(*sets))
        probe = np.arange(0, 301, dtype=np.int32)
        assert contains(arrays[0], probe).tolist() == [value in sets[0] for value in range(301)]
