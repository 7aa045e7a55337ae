"""The audit log of admin actions.

Most events are part of the change they record and are committed with it. A sign-in records an event of its own,
and must not wait for the database: SQLite has one writer, which a big import holds for its whole write phase. When
the database stays busy for more than a moment, the event goes to a spool file in the instance folder, and is moved
into the table by the next sign-in that gets through or by a look at the audit page; nothing is lost.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from directory import file_lock
from directory.db import SQLITE_BUSY_TIMEOUT_MS, is_busy
from directory.models import AuditEvent, utcnow

log = logging.getLogger(__name__)

BUSY_WAIT_MS = 500  # how long a sign-in waits for SQLite's writer before spooling its event


def record_event(session: Session, actor: str, action: str, detail: str = "") -> None:
    """Add an audit event to the session; it is kept when the caller commits."""
    session.add(AuditEvent(actor=actor, action=action, detail=detail[:2000]))


def commit_event(session: Session, actor: str, action: str, detail: str = "") -> None:
    """Record an audit event of an action that changes nothing else (an export), and commit it."""
    record_event(session, actor, action, detail)
    session.commit()


def recent_events(session: Session, limit: int) -> Sequence[AuditEvent]:
    """The latest `limit` audit events, newest first."""
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).all()


def audit_spool_path(instance_path: str | os.PathLike[str]) -> Path:
    """Where the instance in this folder spools audit events while the database is busy."""
    return Path(instance_path) / "audit-spool.jsonl"


def record_event_now(factory: sessionmaker[Session], spool: Path, actor: str, action: str, detail: str = "") -> None:
    """Record an event in a transaction of its own without waiting on a busy database: spooled when it is busy."""
    event = {"at": utcnow().isoformat(), "actor": actor, "action": action, "detail": detail[:2000]}
    try:
        with _impatient_session(factory) as session:
            _add(session, [event])
            session.commit()
    except OperationalError as exc:
        if not is_busy(exc):
            raise
        _append(spool, event)
        return
    flush_spool(factory, spool)


def flush_spool(factory: sessionmaker[Session], spool: Path) -> None:
    """Move spooled events into the audit table; they stay spooled while the database is still busy."""
    if not spool.exists() or not spool.stat().st_size:
        return
    with open(spool, "a+") as handle:
        if not file_lock.acquire(handle, 0):
            return  # another process is moving them
        try:
            handle.seek(0)
            events = [json.loads(line) for line in handle.read().splitlines() if line.strip()]
            try:
                with _impatient_session(factory) as session:
                    _add(session, events)
                    session.commit()
            except OperationalError as exc:
                if not is_busy(exc):
                    raise
                return
            handle.truncate(0)
        finally:
            file_lock.release(handle)


@contextlib.contextmanager
def _impatient_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that waits at most BUSY_WAIT_MS for SQLite's writer (its connection gets the usual wait back)."""
    engine = factory.kw["bind"]
    with engine.connect() as connection:
        sqlite = engine.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
            connection.commit()  # ends the transaction that statement began, so that the session's commit is real
        try:
            with Session(bind=connection) as session:
                yield session
        finally:
            if sqlite:
                connection.rollback()
                connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")


def _add(session: Session, events: list[dict[str, str]]) -> None:
    for event in events:
        session.add(AuditEvent(at=dt.datetime.fromisoformat(event["at"]), actor=event["actor"],
                               action=event["action"], detail=event["detail"]))


def _append(spool: Path, event: dict[str, str]) -> None:
    spool.parent.mkdir(parents=True, exist_ok=True)
    with open(spool, "a") as handle:
        if not file_lock.acquire(handle, 5.0):
            log.error("audit spool %s stayed locked; event lost: %s", spool, event)
            return
        try:
            handle.write(json.dumps(event) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            file_lock.release(handle)
    log.warning("the database was busy: audit event %s of %s spooled to %s", event["action"], event["actor"], spool)
