"""The "accepting new clients" filter of a search. The rule is directory/availability.py's: a claim counts only
while it was confirmed within the window of the search's day. Here it is applied to what the index holds, the
accepting flag and each listing's confirmation day number, so that the answer changes at midnight without a write."""

from __future__ import annotations

import numpy as np

from directory.availability import Window
from directory.search.index.fields import ACCEPTING_FLAG
from directory.search.index.snapshot import IndexSnapshot


def accepting(snapshot: IndexSnapshot, fresh: Window) -> np.ndarray:
    """Listings accepting new clients whose claim was confirmed within the window (sorted docnums): a claim's
    freshness is decided on the day of the search, from the confirmation date the index holds."""
    docs = snapshot.docs_with("flag", ACCEPTING_FLAG)
    confirmed = snapshot.column("confirmed")[docs]
    return docs[(confirmed >= fresh.since.toordinal()) & (confirmed <= fresh.until.toordinal())]
