"""The import lock: one import at a time per database, shared by the web, the job workers and the CLI.

On PostgreSQL, a session advisory lock, so that every node of one database shares it; on SQLite (one machine), a file
lock in the instance folder. Either is freed when its holder dies (its connection closes, its process ends), so a
killed import never leaves one behind. Everything that takes the lock or asks about it goes through ImportLock.
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from flask import Flask
from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from directory import db, file_lock
from directory.models import ImportLockHolder

ADVISORY_LOCK_KEY = 4_242_004  # PostgreSQL's name of the lock (the migrations' is 4242001, the change log's 4242002)
# The holder writes who and when just after taking the lock: a reader gives it this long before saying "someone".
HOLDER_WAIT_SECONDS = 1.0
log = logging.getLogger(__name__)


class ImportBusy(RuntimeError):
    """Another import holds the import lock."""

    def __init__(self, holder: dict[str, str]) -> None:
        super().__init__(f"An import is running (started by {holder.get('by', 'someone')} "
                         f"at {holder.get('at', 'an unknown time')})")
        self.holder = holder


class ImportLock(abc.ABC):
    """The one-import-at-a-time lock."""

    @abc.abstractmethod
    def _taken(self) -> contextlib.AbstractContextManager[Callable[[dict[str, str]], None] | None]:
        """Take the lock without waiting, for the body: a function that signs it, or None when it is held."""

    @abc.abstractmethod
    def _holder(self) -> dict[str, str]:
        """Who holds the lock as signed (`by`, `at`), or {} when nobody signed it in time."""

    @contextlib.contextmanager
    def held(self, holder: str) -> Iterator[None]:
        """Hold the lock, signed by `holder` and the time; raise ImportBusy naming who holds it."""
        with self._taken() as sign:
            if sign is None:
                raise ImportBusy(self._holder())
            sign({"by": holder, "at": dt.datetime.now().isoformat(timespec="seconds")})
            yield

    @contextlib.contextmanager
    def held_if_free(self) -> Iterator[bool]:
        """Hold the lock, unsigned, while the body runs and yield True; yield False at once when an import holds it."""
        with self._taken() as sign:
            yield sign is not None

    def held_by(self) -> dict[str, str] | None:
        """Who holds the lock and since when (`by`, `at`; either may be missing), or None when it is free."""
        with self.held_if_free() as free:
            if free:
                return None
        return self._holder()

    def check_free(self) -> None:
        """Raise ImportBusy, naming who holds the lock, when an import is running now."""
        holder = self.held_by()
        if holder is not None:
            raise ImportBusy(holder)


def import_lock(app: Flask) -> ImportLock:
    """The import lock of an app's database."""
    engine = db.engine(app)
    if engine.dialect.name == "postgresql":
        return AdvisoryImportLock(engine)
    return FileImportLock(app.instance_path)


class FileImportLock(ImportLock):
    """The import lock as a file of the instance folder, holding its holder's signature."""

    def __init__(self, instance_path: str | os.PathLike[str]) -> None:
        self.path = Path(instance_path) / "import.lock"

    @contextlib.contextmanager
    def _file(self) -> Iterator[IO[str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+") as handle:
            yield handle

    @contextlib.contextmanager
    def _taken(self) -> Iterator[Callable[[dict[str, str]], None] | None]:
        with self._file() as handle:
            if not file_lock.acquire(handle, timeout=0):
                yield None
                return

            def sign(signature: dict[str, str]) -> None:
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(signature))
                handle.flush()
            try:
                yield sign
            finally:
                handle.seek(0)
                handle.truncate()
                file_lock.release(handle)

    def _holder(self) -> dict[str, str]:
        with self._file() as handle:
            return _first_signature(lambda: _read_signature(handle))


def _read_signature(handle: IO[str]) -> dict[str, str]:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except ValueError:
        return {}


class AdvisoryImportLock(ImportLock):
    """The import lock as a PostgreSQL session advisory lock, signed in a table beside it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def _taken(self) -> Iterator[Callable[[dict[str, str]], None] | None]:
        # A connection of its own, held for the whole import: the lock lives as long as its session, which a server's
        # idle_session_timeout must not end while the import works on its other connection.
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SET idle_session_timeout = 0"))
            if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}):
                yield None
                return
            try:
                yield lambda signature: _sign(connection, signature)
            finally:
                try:
                    connection.execute(delete(ImportLockHolder).where(
                        ImportLockHolder.backend_pid == func.pg_backend_pid()))
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                except Exception:
                    # The connection was lost (and the lock with it): say so, but never hide how the import ended,
                    # and never give the pool a connection that might still hold the lock.
                    log.exception("the import lock's connection failed; the lock is freed with it")
                    connection.invalidate()

    def held_by(self) -> dict[str, str] | None:
        """Who holds the lock and since when, or None when it is free, read from pg_locks without taking it (a
        try-lock here could make an import starting at that moment find it busy)."""
        with self.engine.connect() as connection:
            held = connection.scalar(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = :key "
                "AND objsubid = 1 AND granted"), {"key": ADVISORY_LOCK_KEY})
        return self._holder() if held else None

    def _holder(self) -> dict[str, str]:
        with self.engine.connect() as connection:
            def read() -> dict[str, str]:
                # The signature counts only when its connection is the one holding the lock now.
                row = connection.execute(text(
                    "SELECT h.holder, h.since FROM import_lock_holder h JOIN pg_locks l ON l.pid = h.backend_pid "
                    "WHERE l.locktype = 'advisory' AND l.classid = 0 AND l.objid = :key AND l.objsubid = 1 "
                    "AND l.granted"), {"key": ADVISORY_LOCK_KEY}).first()
                connection.rollback()  # each look sees the latest signature
                return {"by": row.holder, "at": row.since} if row else {}
            return _first_signature(read)


def _sign(connection: Connection, signature: dict[str, str]) -> None:
    connection.execute(delete(ImportLockHolder))
    connection.execute(insert(ImportLockHolder).values(
        id=1, backend_pid=connection.scalar(select(text("pg_backend_pid()"))), holder=signature["by"][:254],
        since=signature["at"]))


def _first_signature(read: Callable[[], dict[str, str]]) -> dict[str, str]:
    """The first signature `read` finds within HOLDER_WAIT_SECONDS, or {}."""
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        signature = read()
        if signature or time.monotonic() >= deadline:
            return signature
        time.sleep(0.025)
