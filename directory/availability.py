"""Whether a listing's "accepting new clients" still counts: only while it was confirmed within STALE_AFTER_DAYS of
today, and not after today (a date in the future is a typing error, not a confirmation). The rule is applied when it
is read, never stored, because the answer changes every midnight. Callers pass the day and the setting (the web
reads them from the app in web/app_state.py); a search applies the rule in search/accepting.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Availability = Literal["accepting", "not_accepting", "unconfirmed"]
NEVER = 0  # the day number of "never confirmed": before every real date


@dataclass(frozen=True)
class Window:
    """The confirmation dates whose claim counts on the day `until`: from `since` to `until`, both included."""

    since: dt.date
    until: dt.date

    def holds(self, confirmed_on: dt.date | None) -> bool:
        """Whether a confirmation on that date (None: never) still counts."""
        return confirmed_on is not None and self.since <= confirmed_on <= self.until


def window_on(today: dt.date, stale_after_days: int) -> Window:
    """The window that counts on `today`: confirmations of the last `stale_after_days` days, today included."""
    return Window(today - dt.timedelta(days=stale_after_days), today)


def day_number(confirmed_on: dt.date | None) -> int:
    """A confirmation date as the index stores it: its ordinal, or NEVER."""
    return confirmed_on.toordinal() if confirmed_on else NEVER


def availability(accepting: bool, confirmed_on: dt.date | None, fresh: Window) -> Availability:
    """What a listing's claim means in a window: a claim never, not recently or not yet confirmed is no claim at
    all, whichever way it points."""
    if not fresh.holds(confirmed_on):
        return "unconfirmed"
    return "accepting" if accepting else "not_accepting"
