"""Uploaded import files: kept under their SHA-256 in the instance folder from the preview until their confirmed
import ends (or a day, when nobody confirms them), previewed with a dry run, imported in the background."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from directory.imports.csv_reading import UnusableFile
from directory.imports.lock import ImportBusy, ImportLock
from directory.imports.pipeline import run_import
from directory.imports.report import ImportMode, ImportReport
from directory.imports.runs import UNFINISHED, mark_failed
from directory.models import ImportRun

UPLOAD_RETENTION_SECONDS = 24 * 3600  # a previewed file that was never confirmed is kept this long
_DIGEST = re.compile(r"[0-9a-f]{64}")
log = logging.getLogger(__name__)


class Uploads:
    """The upload store of an instance folder."""

    def __init__(self, instance_path: str | os.PathLike[str]) -> None:
        self._folder = Path(instance_path) / "uploads"

    def folder(self) -> Path:
        """The folder holding the uploads, made when missing."""
        self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder

    def keep(self, data: bytes) -> tuple[str, Path]:
        """Store an uploaded file under its SHA-256 (deleting first the previews nobody confirmed): its digest and
        its path."""
        self.prune()
        digest = hashlib.sha256(data).hexdigest()
        path = self.folder() / f"{digest}.csv"
        path.write_bytes(data)
        return digest, path

    def keep_errors(self, digest: str, errors_csv: str) -> None:
        """Store the rejected rows of an upload's preview beside it."""
        (self.folder() / f"{digest}.errors.csv").write_text(errors_csv, encoding="utf-8")

    def upload(self, digest: str) -> Path | None:
        """The upload with this digest, or None when it is gone; raises ValueError for a digest that is not a
        SHA-256 in hex (never a path outside the store)."""
        return self._existing(digest, ".csv")

    def errors(self, digest: str) -> Path | None:
        """The rejected rows of the upload with this digest, or None; raises ValueError as `upload` does."""
        return self._existing(digest, ".errors.csv")

    def _existing(self, digest: str, suffix: str) -> Path | None:
        if not _DIGEST.fullmatch(digest):
            raise ValueError(f"not an upload digest: {digest[:100]!r}")
        path = self.folder() / f"{digest}{suffix}"
        return path if path.exists() else None

    def forget(self, path: Path) -> None:
        """Delete an upload and its errors file: its import ended, or it could never be imported."""
        path.unlink(missing_ok=True)
        path.with_suffix(".errors.csv").unlink(missing_ok=True)

    def prune(self) -> None:
        """Delete the uploads older than UPLOAD_RETENTION_SECONDS."""
        # Previews nobody confirmed: nothing else would ever delete them.
        cutoff = time.time() - UPLOAD_RETENTION_SECONDS
        for old in self.folder().iterdir():
            with contextlib.suppress(FileNotFoundError):
                if old.stat().st_mtime < cutoff:
                    old.unlink()


def preview_upload(factory: sessionmaker[Session], uploads: Uploads, data: bytes, *, filename: str, mode: ImportMode,
                   actor: str, lock: ImportLock) -> tuple[str, ImportReport]:
    """Keep an uploaded file and dry-run its import in `mode`: its digest, to confirm it by, and the report. Raises
    UnusableFile or ImportBusy, having deleted the upload again."""
    digest, path = uploads.keep(data)
    try:
        report = run_import(factory, path, filename=filename, actor=actor, mode=dataclasses.replace(mode, dry_run=True),
                            lock=lock)
    except (UnusableFile, ImportBusy):
        uploads.forget(path)
        raise
    if report.errors_csv:
        uploads.keep_errors(digest, report.errors_csv)
    return digest, report


def run_uploaded_import(factory: sessionmaker[Session], uploads: Uploads, path: Path, *, filename: str,
                        mode: ImportMode, actor: str, run_id: int, lock: ImportLock) -> None:
    """Run a confirmed upload's import, recorded as `run_id` by `record_run`, to its end, for a background thread:
    an import that cannot start or stops on an error says why in the history, and the upload is deleted (the run
    keeps the file's name, size and SHA-256, and its rejected rows)."""
    try:
        run_import(factory, path, filename=filename, mode=mode, actor=actor, run_id=run_id, lock=lock)
    except (ImportBusy, UnusableFile) as exc:
        _mark_failed(factory, run_id, str(exc))
    except Exception:
        log.exception("import %s failed", run_id)
        _mark_failed(factory, run_id, "an unexpected error stopped it", only_unfinished=True)
    finally:
        uploads.forget(path)


def _mark_failed(factory: sessionmaker[Session], run_id: int, message: str, only_unfinished: bool = False) -> None:
    # In a session of its own: the import's was closed with whatever stopped it.
    with factory() as session:
        run = session.get(ImportRun, run_id)
        if run is not None and (run.status in UNFINISHED or not only_unfinished):
            mark_failed(session, run, message)
