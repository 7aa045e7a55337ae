"""Exclusive locks on files, shared between processes: the one loop that takes them.

Used by the search index's writer lock (which waits up to its timeout) and the import lock (which does not wait).
The operating system frees a lock when its process dies, so a killed writer or import never leaves one behind.
"""

from __future__ import annotations

import fcntl
import time
from typing import IO

POLL_SECONDS = 0.05


def acquire(handle: IO[str], timeout: float) -> bool:
    """Lock an open file exclusively, trying until `timeout` seconds have passed; False when it stayed taken."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)


def release(handle: IO[str]) -> None:
    """Free a lock taken with `acquire`."""
    fcntl.flock(handle, fcntl.LOCK_UN)
