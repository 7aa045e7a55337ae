"""Whether a listing's "accepting new clients" still counts: only while it was confirmed within STALE_AFTER_DAYS of
today. The rule is applied when it is read, never stored, because the answer changes every midnight."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from flask import current_app

Availability = Literal["accepting", "not_accepting", "unconfirmed"]
NEVER = 0  # the day number of "never confirmed": before every real date


def today() -> dt.date:
    """Today by the app's one clock (config CLOCK, a function returning a date), so tests can fix the day."""
    return current_app.config["CLOCK"]()


def fresh_since() -> dt.date:
    """The earliest confirmation date that still counts today."""
    return today() - dt.timedelta(days=current_app.config["STALE_AFTER_DAYS"])


def day_number(confirmed_on: dt.date | None) -> int:
    """A confirmation date as the index stores it: its ordinal, or NEVER."""
    return confirmed_on.toordinal() if confirmed_on else NEVER


def availability(accepting: bool, confirmed_on: dt.date | None, since: dt.date) -> Availability:
    """What a listing's claim means on a day whose window starts at `since`: a claim never or not recently
    confirmed is no claim at all, whichever way it points."""
    if confirmed_on is None or confirmed_on < since:
        return "unconfirmed"
    return "accepting" if accepting else "not_accepting"
