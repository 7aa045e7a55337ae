"""What views and commands read from the running app for the domain, which takes it as arguments: the search index
the factory opened, and today with its availability window by the app's CLOCK and STALE_AFTER_DAYS."""

from __future__ import annotations

import datetime as dt

from flask import current_app

from directory.availability import Window, window_on
from directory.search.index.storage import SearchIndex


def current_index() -> SearchIndex:
    """The app's search index."""
    return current_app.extensions["search"]


def today() -> dt.date:
    """Today by the app's one clock (config CLOCK, a function returning a date), so tests can fix the day."""
    return current_app.config["CLOCK"]()


def fresh_window() -> Window:
    """Today's availability window, by the app's clock and STALE_AFTER_DAYS."""
    return window_on(today(), current_app.config["STALE_AFTER_DAYS"])
