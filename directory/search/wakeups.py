"""Wake-ups for the index follower: on PostgreSQL, the notification (LISTEN/NOTIFY) that every commit writing
change-log rows sends, so that a follower applies it at once rather than at its next poll. A notification is not
stored: one sent while nobody listened is lost, so the follower still polls, and a node that was down catches up
from its recorded number. On SQLite, and while the database cannot be reached, only the poll."""

from __future__ import annotations

import threading

import psycopg
from sqlalchemy.orm import Session, sessionmaker

from directory.search.change_log import CHANNEL

CONNECT_TIMEOUT = 5  # seconds


class Wakeups:
    """A listening connection of its own (never one of the pool's), opened at the first wait."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        bind = session_factory.kw.get("bind")
        self._url = bind.url if bind is not None and bind.dialect.name == "postgresql" else None
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Return after `seconds`, or as soon as a commit notifies, or `stop` is set (within `seconds`)."""
        if self._url is None:
            stop.wait(seconds)
            return
        try:
            if self._connection is None or self._connection.closed:
                self._connection = psycopg.connect(self._url.set(drivername="postgresql").render_as_string(
                    hide_password=False), autocommit=True, connect_timeout=CONNECT_TIMEOUT)
                self._connection.execute(f"LISTEN {CHANNEL}")
            for _notification in self._connection.notifies(timeout=seconds, stop_after=1):
                pass
        except psycopg.Error:
            # The database went away: the follower's step reports it; wait as a poll would, and connect again.
            self.close()
            stop.wait(seconds)

    def close(self) -> None:
        """Close the listening connection, if open."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
