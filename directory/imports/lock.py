"""The import lock: one import at a time per instance, shared by the web and the CLI.

A file lock in the instance folder, which the operating system frees when its holder dies. Everything that takes
the lock or asks about it goes through ImportLock, so that it can become a database lock without its callers changing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from directory import file_lock


class ImportBusy(RuntimeError):
    """Another import holds the import lock."""

    def __init__(self, holder: dict[str, str]) -> None:
        super().__init__(f"An import is running (started by {holder.get('by', 'someone')} "
                         f"at {holder.get('at', 'an unknown time')})")
        self.holder = holder


class ImportLock:
    """The one-import-at-a-time lock of an instance folder."""

    def __init__(self, instance_path: str | os.PathLike[str]) -> None:
        self.path = Path(instance_path) / "import.lock"

    @contextlib.contextmanager
    def _file(self) -> Iterator[IO[str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            yield handle

    @contextlib.contextmanager
    def held(self, holder: str) -> Iterator[None]:
        """Hold the lock, signed by `holder` and the time; raise ImportBusy naming who holds it."""
        with self._file() as handle:
            if not file_lock.acquire(handle, timeout=0):
                raise ImportBusy(_holder(handle)) from None
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps({"by": holder, "at": dt.datetime.now().isoformat(timespec="seconds")}))
                handle.flush()
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                file_lock.release(handle)

    @contextlib.contextmanager
    def held_if_free(self) -> Iterator[bool]:
        """Hold the lock, unsigned, while the body runs and yield True; yield False at once when an import holds it."""
        with self._file() as handle:
            if not file_lock.acquire(handle, 0):
                yield False
                return
            try:
                yield True
            finally:
                file_lock.release(handle)

    def held_by(self) -> dict[str, str] | None:
        """Who holds the lock and since when (`by`, `at`; either may be missing), or None when it is free."""
        with self._file() as handle:
            if not file_lock.acquire(handle, 0):
                return _holder(handle)
            file_lock.release(handle)
            return None

    def check_free(self) -> None:
        """Raise ImportBusy, naming who holds the lock, when an import is running now."""
        holder = self.held_by()
        if holder is not None:
            raise ImportBusy(holder)


def _holder(handle: IO[str]) -> dict[str, str]:
    # The holder writes who and when just after taking the lock: give it a moment before saying "someone".
    for _ in range(40):
        handle.seek(0)
        try:
            info = json.loads(handle.read() or "{}")
        except ValueError:
            info = {}
        if info:
            return info
        time.sleep(0.025)
    return {}
