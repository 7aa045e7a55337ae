"""The import history: a run is recorded when an import starts, follows its progress, and says how it ended."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer

from directory.imports.lock import ImportLock
from directory.imports.report import ImportMode, ImportReport
from directory.models import ImportRun, utcnow

UNFINISHED = ("running", "indexing")

# A web import is recorded before its background thread takes the import lock: a run this young may not hold it yet.
STARTUP_GRACE = dt.timedelta(seconds=30)


def record_run(session: Session, *, sha256: str, size: int, filename: str, mode: ImportMode, actor: str,
               status: str = "running") -> ImportRun:
    """Record the start of an import of a file (its SHA-256 and size) in the history ("queued": waiting for a job
    worker to start it)."""
    run = ImportRun(actor=actor, filename=filename[:300], size=size, sha256=sha256, mode=mode.label, status=status)
    session.add(run)
    session.commit()
    return run


def file_sha256(source: Path) -> str:
    """The SHA-256 of a file in hex, read a megabyte at a time."""
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recent_runs(session: Session, limit: int) -> Sequence[ImportRun]:
    """The latest `limit` imports of the history, newest first."""
    # Never the errors CSV: one run's can be tens of megabytes, and the lists show counts.
    return session.scalars(select(ImportRun).options(defer(ImportRun.errors_csv))
                           .order_by(ImportRun.id.desc()).limit(limit)).all()


def finish(session: Session, run: ImportRun, status: str, message: str, report: ImportReport | None = None,
           at: dt.datetime | None = None) -> None:
    """Record how a run ended (or, status "indexing", that its rows are written), with its report's counts when
    there is one, and commit."""
    run.status = status
    run.message = message
    run.finished_at = at or dt.datetime.now()
    if report is not None:
        for name in ("created", "updated", "unchanged", "unpublished", "rejected"):
            setattr(run, name, getattr(report, name))
        run.warnings = report.warnings.total
        run.errors_csv = report.errors_csv
    session.commit()


def mark_failed(session: Session, run: ImportRun, message: str, report: ImportReport | None = None,
                at: dt.datetime | None = None) -> None:
    """Record that a run failed, and why."""
    finish(session, run, "failed", message, report, at)


def mark_interrupted(session: Session, keep: int | None) -> None:
    """Mark every unfinished run but `keep` interrupted; only the holder of the import lock may, as it knows that no
    other import is running, so those runs died midway."""
    session.execute(update(ImportRun).where(ImportRun.status.in_(UNFINISHED), ImportRun.id != (keep or 0))
                    .values(status="interrupted", finished_at=dt.datetime.now()))
    session.commit()


def settle_if_dead(session: Session, run: ImportRun, lock: ImportLock) -> None:
    """Mark a run that says it is running as failed when no process runs it any more: the import lock is free (the
    operating system frees it when its holder dies, a web worker killed mid-import included)."""
    now = utcnow()
    if run.status not in UNFINISHED or now - run.started_at < STARTUP_GRACE:
        return
    with lock.held_if_free() as free:
        if not free:
            return  # an import is running: this one, or one that will mark this one interrupted
        session.refresh(run)
        if run.status == "running":
            message = "The import stopped before writing anything: the process running it ended."
        elif run.status == "indexing":
            message = ("The rows were written, but the import stopped while indexing them: the process running it "
                       "ended; the index follower writes them from the change log.")
        else:
            return
        mark_failed(session, run, message, at=now)
