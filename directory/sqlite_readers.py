"""Read-only SQLite connections for reference data (the postcode tables, the place table), one per thread, each
closed when its thread ends or its owner moves to another file. An sqlite3 connection cannot be shared across
threads, and one dropped without close() is a ResourceWarning from Python 3.13 on."""

from __future__ import annotations

import sqlite3
import threading


class _Held:
    """One thread's connection; closed when the thread's local storage drops it."""

    def __init__(self, uri: str) -> None:
        # Any thread may close it, since the last reference can go in another thread's garbage collection.
        self.connection = sqlite3.connect(uri, uri=True, check_same_thread=False)

    def __del__(self) -> None:
        self.connection.close()


class ThreadReaders:
    """A read-only connection per thread to the database at `uri` (a `file:` URI)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._local = threading.local()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        held = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = _Held(self.uri)
        return held.connection

