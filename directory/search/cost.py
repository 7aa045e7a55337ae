"""What a session costs, as a search filters by it: a fee ceiling ("up to $120 a session") and "offers a sliding
scale". A ceiling is in the currency of the search's country, so with an origin only listings of that country can
be under it; without one, each listing's fees are read in its own country's currency. A listing that names no fee
is never under a ceiling."""

from __future__ import annotations

import numpy as np

from directory.search.index.fields import SLIDING_SCALE_FLAG
from directory.search.index.snapshot import IndexSnapshot
from directory.search.request import SearchRequest


def within_cost(snapshot: IndexSnapshot, request: SearchRequest) -> list[np.ndarray]:
    """The sets of listings (sorted docnums) the request's cost filters keep, one per filter chosen."""
    kept = []
    if request.sliding_scale:
        kept.append(snapshot.docs_with("flag", SLIDING_SCALE_FLAG))
    if request.max_fee is not None:
        priced = snapshot.every_doc() if request.origin is None else snapshot.docs_with("country",
                                                                                         request.origin.country)
        kept.append(priced[snapshot.column("fee")[priced] <= request.max_fee])
    return kept

