"""Uploaded import files: kept in the database (so that any node can confirm a preview made on another) from the
preview until their confirmed import ends, or a day when nobody confirms them; previewed with a dry run, imported in
the background."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from directory.imports.csv_reading import UnusableFile
from directory.imports.lock import ImportBusy, ImportLock
from directory.imports.pipeline import run_import
from directory.imports.report import ImportMode, ImportReport
from directory.imports.runs import UNFINISHED, mark_failed
from directory.models import ImportRun, PendingUpload, utcnow

UPLOAD_RETENTION = dt.timedelta(hours=24)  # a previewed file that was never confirmed is kept this long
# Previews awaiting confirmation kept at most (the oldest go first): each is at most MAX_CONTENT_LENGTH (20 MB by
# default), so they hold at most 400 MB of the database. Confirmed ones go when their import ends.
MAX_PENDING_UPLOADS = 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)


class Uploads:
    """The uploads awaiting confirmation or import, in the database."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def keep(self, data: bytes) -> str:
        """Store an uploaded file under its SHA-256 (deleting first the previews nobody confirmed in time, and the
        oldest beyond MAX_PENDING_UPLOADS): its digest."""
        digest = hashlib.sha256(data).hexdigest()
        with self._factory() as session:
            self._prune(session)
            kept = session.execute(update(PendingUpload).where(PendingUpload.digest == digest).values(kept_at=utcnow()))
            if not kept.rowcount:  # type: ignore[attr-defined]
                session.add(PendingUpload(digest=digest, data=data, errors_csv="", kept_at=utcnow(), confirmed=False))
            try:
                session.flush()
            except IntegrityError:
                session.rollback()  # the same file uploaded twice at once: one row serves both
            waiting = select(PendingUpload.digest).where(~PendingUpload.confirmed)
            oldest = waiting.order_by(PendingUpload.kept_at.desc()).offset(MAX_PENDING_UPLOADS)
            # Unconfirmed, checked again on the row itself: one confirmed meanwhile is not the subquery's any more.
            session.execute(delete(PendingUpload).where(~PendingUpload.confirmed,
                                                        PendingUpload.digest.in_(oldest.scalar_subquery())))
            session.commit()
        return digest

    def keep_errors(self, digest: str, errors_csv: str) -> None:
        """Store the rejected rows of an upload's preview beside it."""
        with self._factory() as session:
            session.execute(update(PendingUpload).where(PendingUpload.digest == digest).values(errors_csv=errors_csv))
            session.commit()

    def errors(self, digest: str) -> str | None:
        """The rejected rows of the upload with this digest, or None when it is gone; raises ValueError for a digest
        that is not a SHA-256 in hex."""
        with self._factory() as session:
            return session.scalar(select(PendingUpload.errors_csv).where(PendingUpload.digest == _checked(digest)))

    def confirm(self, digest: str) -> int | None:
        """Mark an upload confirmed (its import is queued: kept until it ends, a day at most from now); its size, or
        None when it is gone. Raises ValueError as `errors` does."""
        with self._factory() as session:
            size = session.scalar(update(PendingUpload).where(PendingUpload.digest == _checked(digest))
                                  .values(confirmed=True, kept_at=utcnow())
                                  .returning(func.length(PendingUpload.data)))
            session.commit()
            return size

    @contextlib.contextmanager
    def as_file(self, digest: str) -> Iterator[Path | None]:
        """An upload in a temporary file for the body (the import reads a file), or None when it is gone."""
        with self._factory() as session:
            data = session.scalar(select(PendingUpload.data).where(PendingUpload.digest == _checked(digest)))
        if data is None:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="directory-upload-") as folder:
            path = Path(folder) / f"{digest}.csv"
            path.write_bytes(data)
            del data
            yield path

    def forget(self, digest: str, *, only_unconfirmed: bool = False) -> None:
        """Delete an upload: its import ended, or it could never be imported (`only_unconfirmed`: unless someone
        confirmed the same file meanwhile)."""
        with self._factory() as session:
            gone = delete(PendingUpload).where(PendingUpload.digest == digest)
            session.execute(gone.where(~PendingUpload.confirmed) if only_unconfirmed else gone)
            session.commit()

    def prune(self) -> None:
        """Delete the uploads kept longer than UPLOAD_RETENTION."""
        with self._factory() as session:
            self._prune(session)
            session.commit()

    @staticmethod
    def _prune(session: Session) -> None:
        # Previews nobody confirmed, and confirmed ones whose job never ran: nothing else would ever delete them.
        session.execute(delete(PendingUpload).where(PendingUpload.kept_at < utcnow() - UPLOAD_RETENTION))


def _checked(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not an upload digest: {digest[:100]!r}")
    return digest


def preview_upload(factory: sessionmaker[Session], uploads: Uploads, data: bytes, *, filename: str, mode: ImportMode,
                   actor: str, lock: ImportLock) -> tuple[str, ImportReport]:
    """Keep an uploaded file and dry-run its import in `mode`: its digest, to confirm it by, and the report. Raises
    UnusableFile or ImportBusy, having deleted the upload again."""
    lock.check_free()  # before storing up to MAX_CONTENT_LENGTH that a running import would only make wait
    digest = uploads.keep(data)
    try:
        with uploads.as_file(digest) as path:
            if path is None:
                raise UnusableFile("it was deleted while being checked (many other uploads at once); upload it again")
            report = run_import(factory, path, filename=filename, actor=actor,
                                mode=dataclasses.replace(mode, dry_run=True), lock=lock)
    except (UnusableFile, ImportBusy):
        uploads.forget(digest, only_unconfirmed=True)
        raise
    if report.errors_csv:
        uploads.keep_errors(digest, report.errors_csv)
    return digest, report


def run_uploaded_import(factory: sessionmaker[Session], uploads: Uploads, digest: str, *, filename: str,
                        mode: ImportMode, actor: str, run_id: int, lock: ImportLock) -> None:
    """Run a confirmed upload's import, recorded as `run_id` by `record_run`, to its end, for a background job: an
    import that cannot start or stops on an error says why in the history, and the upload is deleted (the run keeps
    the file's name, size and SHA-256, and its rejected rows)."""
    try:
        with uploads.as_file(digest) as path:
            if path is None:
                _mark_failed(factory, run_id, "The uploaded file is gone (deleted when its import ended, or a day "
                                              "after its preview): upload it again.")
                return
            run_import(factory, path, filename=filename, mode=mode, actor=actor, run_id=run_id, lock=lock)
    except ImportBusy as exc:
        # Kept: retrying its job (the admin's failed jobs page) can still run it.
        _mark_failed(factory, run_id, f"{exc}. Retry it when that one has finished.")
        return
    except UnusableFile as exc:
        _mark_failed(factory, run_id, str(exc))
    except Exception:
        log.exception("import %s failed", run_id)
        _mark_failed(factory, run_id, "an unexpected error stopped it", only_unfinished=True)
    uploads.forget(digest)


def _mark_failed(factory: sessionmaker[Session], run_id: int, message: str, only_unfinished: bool = False) -> None:
    # In a session of its own: the import's was closed with whatever stopped it.
    with factory() as session:
        run = session.get(ImportRun, run_id)
        if run is not None and (run.status in UNFINISHED or not only_unfinished):
            mark_failed(session, run, message)
