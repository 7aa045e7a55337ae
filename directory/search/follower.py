"""The index follower: applies the listing change log to the index, in order, from the number the live generation
has applied, so that a change another process committed, or one its own process failed to index (killed between
the database commit and the index commit, a busy or full disk), reaches search without anyone running a command.

One follower runs per index folder: a thread of whichever process holds the folder's follower lock. The other
processes' threads stand by and try the lock every STANDBY_SECONDS, so one takes over within that when the holder
dies (the operating system frees a dead process's lock).

The commit path still writes the index itself right after each commit: an admin sees an edit on the next page
load without waiting for a poll, and an import streams its listings into the index while its transaction runs.
So the follower finds most rows already applied: it compares the version the index holds of each listing with the
database's and writes only those that differ. Each index write reopens every worker's snapshot, and a row already
applied costs a read instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from directory import file_lock
from directory.background import BackgroundThread
from directory.models import utcnow
from directory.search import change_log
from directory.search.index.storage import IndexBusy, SearchIndex
from directory.search.sync import check, check_listings, repair_changes
from directory.search.wakeups import Wakeups

log = logging.getLogger(__name__)

# Polled: a query for rows after a number is an index range scan of well under a millisecond, so twice a second
# costs nothing, and a change committed elsewhere is searchable here about half a second later at most (on
# PostgreSQL a commit's notification wakes the follower sooner). Writes are at least this far apart, so a burst of
# commits goes into one index write.
POLL_SECONDS = 0.5
STANDBY_SECONDS = 1.0
BATCH = 5000  # rows applied per index write, so the writer lock is never held for long
LOCK_WAIT = 1.0  # seconds a poll waits for the writer lock (an import holds it for its whole transaction)
LOCK_FILE = ".follower.lock"


def follow_once(session_factory: sessionmaker[Session], index: SearchIndex, limit: int = BATCH,
                lock_wait: float = LOCK_WAIT) -> int:
    """Apply the next `limit` rows of the change log to the index; return how many rows were applied. Raises
    IndexBusy when another writer keeps the index longer than `lock_wait` seconds."""
    if not index.exists():
        return 0  # nothing to follow into: the next start builds the index
    with index.write_lock(timeout=lock_wait), session_factory() as session:
        applied = index.applied_change()
        latest = change_log.latest(session)
        if applied is None or latest < applied or applied < change_log.pruned_through(session):
            # An index from before the log, whose record was lost, that has applied more than this database's log
            # holds (the database was restored from an older backup), or that is behind rows pruned since (its node
            # was down longer than the retention): compared whole with the database once, then followed.
            index.write_locked(*repair_changes(session, check(session, index)))
            index.record_applied_change(latest)
            return 0
        rows = change_log.after(session, applied, limit)
        if not rows:
            return 0
        drift = check_listings(session, index, sorted({listing_id for _, listing_id in rows}))
        if not drift.clean:
            index.write_locked(*repair_changes(session, drift))
            log.info("the index lacked %d of the %d changes up to %d: written", len(drift.missing + drift.extra +
                                                                              drift.stale), len(rows), rows[-1][0])
        index.record_applied_change(rows[-1][0])
        return len(rows)


def catch_up(session_factory: sessionmaker[Session], index: SearchIndex, lock_wait: float,
             seconds: float | None = None) -> bool:
    """Apply the change log that the index lacks (at start, before serving), for at most `seconds`; whether it
    got to the end."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while follow_once(session_factory, index, lock_wait=lock_wait):
        if deadline is not None and time.monotonic() > deadline:
            return False
    return True


def status(session_factory: sessionmaker[Session], index: SearchIndex) -> dict[str, Any]:
    """Where the index stands against the change log, and whether a follower runs."""
    applied = index.applied_change()
    with session_factory() as session:
        latest = change_log.latest(session)
        behind, first = change_log.oldest_after(session, applied or 0)
    lag_seconds = (utcnow() - first.at).total_seconds() if first is not None else 0.0
    running, pid = running_follower(index.root)
    return {"generation": index.generation(), "applied": applied, "latest": latest,
            "lag_rows": behind if applied is not None else None,
            "lag_seconds": round(lag_seconds, 3) if applied is not None else None,
            "follower": {"running": running, "pid": pid}}


def running_follower(root: Path) -> tuple[bool, int | None]:
    """Whether a follower of the index folder `root` runs, and its process id (None for a moment after it took
    over, before it has written its id)."""
    path = root / LOCK_FILE
    if not path.exists():
        return False, None
    with open(path, "a+") as handle:
        if file_lock.acquire(handle, 0):
            file_lock.release(handle)
            return False, None
        handle.seek(0)
        written = handle.read().strip()
    return True, int(written) if written.isdigit() else None


class Follower(BackgroundThread):
    """A daemon thread that follows the change log for one index while this process holds the follower lock
    (standing by until then); stopping it frees the lock."""

    def __init__(self, session_factory: sessionmaker[Session], index: SearchIndex,
                 poll: float = POLL_SECONDS) -> None:
        super().__init__("index-follower")
        self._factory = session_factory
        self._index = index
        self._poll = poll
        self._failing = False
        self._wakeups = Wakeups(session_factory)

    def _run(self) -> None:
        try:
            self._follow_while_elected()
        except Exception:
            log.exception("the index follower stopped; the next start of this process runs one again")

    def _follow_while_elected(self) -> None:
        self._index.root.mkdir(parents=True, exist_ok=True)
        with open(self._index.root / LOCK_FILE, "a+") as handle:
            while not file_lock.acquire(handle, 0):
                if self._stop.wait(STANDBY_SECONDS):
                    return
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(str(os.getpid()))
                handle.flush()
                log.info("following the change log for %s (process %d)", self._index.root, os.getpid())
                stepped = 0.0
                while not self._stop.is_set():
                    self._wakeups.wait(self._poll, self._stop)
                    # Woken by a commit: still a poll after the last write at the earliest, so that a burst of
                    # commits (ten edits a second) goes into one index write rather than one each.
                    self._stop.wait(max(0.0, stepped + self._poll - time.monotonic()))
                    if not self._stop.is_set():
                        stepped = time.monotonic()
                        self._step()
            finally:
                self._wakeups.close()
                file_lock.release(handle)
                with contextlib.suppress(Exception):
                    self._index.close()

    def _step(self) -> None:
        try:
            while follow_once(self._factory, self._index) == BATCH and not self._stop.is_set():
                pass
            self._failing = False
        except IndexBusy:
            pass  # another writer (an import, a rebuild) has the index: try at the next poll
        except Exception:
            # A database that went away for a moment, a full disk: the log keeps every change; try again, telling
            # once per outage rather than twice a second.
            if not self._failing:
                log.exception("the index follower could not apply the change log; retrying every poll")
            self._failing = True
