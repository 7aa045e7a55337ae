"""CSV imports: one at a time, validated in full, written in one transaction, indexed after the commit."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from directory.audit import record_event
from directory.csv_format import Issue, ParsedFile, UnusableFile, check_record, errors_csv, parse_file
from directory.listings import make_slug
from directory.models import ImportRun, Listing

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 1000
FLUSH_EVERY = 2000


class ImportBusy(RuntimeError):
    """Another import holds the import lock."""


@dataclass(frozen=True)
class ImportMode:
    """How to import: preview only, keep the valid rows when some are bad, unpublish listings not in the file."""

    dry_run: bool = False
    skip_invalid: bool = False
    replace: bool = False

    @property
    def label(self) -> str:
        """A short name for history and messages, e.g. "skip-invalid+replace"."""
        parts = [name for name, on in (("dry-run", self.dry_run), ("skip-invalid", self.skip_invalid),
                                       ("replace", self.replace)) if on]
        return "+".join(parts) or "strict"


@dataclass
class ImportReport:
    """What an import did, or (dry run, rejected) would have done."""

    mode: ImportMode
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unpublished: int = 0
    rejected: int = 0
    written: bool = False
    warnings: list[Issue] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    errors_csv: str = ""
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the CLI's --json)."""
        return {
            "mode": self.mode.label, "written": self.written, "rows": self.rows, "created": self.created,
            "updated": self.updated, "unchanged": self.unchanged, "unpublished": self.unpublished,
            "rejected": self.rejected, "warnings": [w.as_dict() for w in self.warnings],
            "errors": [e.as_dict() for e in self.errors], "run_id": self.run_id,
        }


def _holder(handle: Any) -> dict[str, str]:
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


@contextlib.contextmanager
def import_lock(path: Path, holder: str) -> Iterator[None]:
    """Hold the one-import-at-a-time lock; raise ImportBusy naming who holds it. The OS frees it if we die."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _holder(handle)
            raise ImportBusy(
                f"An import is running (started by {info.get('by', 'someone')} at {info.get('at', 'an unknown time')})"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"by": holder, "at": dt.datetime.now().isoformat(timespec="seconds")}))
            handle.flush()
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _validate(parsed: ParsedFile, report: ImportReport, progress: Progress | None) -> dict[str, tuple[int, dict[str, Any]]]:
    """Valid rows by external id (line, fields); every problem goes into the report."""
    errors = list(parsed.errors)
    warnings = list(parsed.warnings)
    lines_by_id: dict[str, list[int]] = {}
    checked = []
    for done, record in enumerate(parsed.records, 1):
        fields, row_errors, row_warnings = check_record(record)
        errors += row_errors
        warnings += row_warnings
        checked.append((record, fields, not row_errors))
        if record.values.get("external_id"):
            lines_by_id.setdefault(record.values["external_id"], []).append(record.line)
        if progress and done % PROGRESS_EVERY == 0:
            progress(done, len(parsed.records))
    valid: dict[str, tuple[int, dict[str, Any]]] = {}
    for record, fields, ok in checked:
        lines = lines_by_id.get(record.values.get("external_id", ""), [])
        if len(lines) > 1:
            others = ", ".join(str(n) for n in lines if n != record.line)
            errors.append(Issue(record.line, record.values["external_id"], "external_id",
                                f"the same external_id is also on line {others}"))
        elif ok:
            valid[fields["external_id"]] = (record.line, fields)
    errors.sort(key=lambda issue: issue.line)
    report.errors, report.warnings = errors, warnings
    report.rows = len(parsed.records)
    report.rejected = len({issue.line for issue in errors if issue.line > 0})
    report.errors_csv = errors_csv(parsed, errors) if errors else ""
    return valid


def _existing(session: Session, ids: list[str], everything: bool) -> dict[str, Listing]:
    if everything:
        return {listing.external_id: listing for listing in session.scalars(select(Listing))}
    found: dict[str, Listing] = {}
    for start in range(0, len(ids), 500):
        for listing in session.scalars(select(Listing).where(Listing.external_id.in_(ids[start:start + 500]))):
            found[listing.external_id] = listing
    return found


def _free_slugs(session: Session, wanted: dict[str, tuple[str, str]]) -> dict[str, str]:
    """A unique slug for each new external id (name, city given), checked against the database in bulk."""
    slugs = {external_id: make_slug(name, city, external_id) for external_id, (name, city) in wanted.items()}
    candidates = list(slugs.values())
    taken: set[str] = set()
    for start in range(0, len(candidates), 500):
        taken.update(session.scalars(select(Listing.slug).where(Listing.slug.in_(candidates[start:start + 500]))))
    seen: set[str] = set()
    for external_id, slug in slugs.items():
        while slug in taken or slug in seen:
            # Rehashing the slug itself gives a new, still stable suffix.
            slug = make_slug(*wanted[external_id], slug)
        seen.add(slug)
        slugs[external_id] = slug
    return slugs


def _apply(session: Session, valid: dict[str, tuple[int, dict[str, Any]]], mode: ImportMode,
           report: ImportReport) -> None:
    """Create, update and (in replace mode) unpublish; in a dry run only count what would change."""
    with session.no_autoflush:
        existing = _existing(session, list(valid), everything=mode.replace)
        new = {external_id: (fields["name"], fields.get("city", ""))
               for external_id, (_line, fields) in valid.items() if external_id not in existing}
        report.created = len(new)
        slugs = {} if mode.dry_run else _free_slugs(session, new)
        written: list[Listing] = []
        for external_id, (_line, fields) in valid.items():
            listing = existing.pop(external_id, None) if not mode.replace else existing.get(external_id)
            if listing is None:
                if not mode.dry_run:
                    written.append(Listing(**fields, slug=slugs[external_id]))
                    session.add(written[-1])
            else:
                changes = {name: value for name, value in fields.items() if getattr(listing, name) != value}
                if not changes:
                    report.unchanged += 1
                    continue
                report.updated += 1
                if not mode.dry_run:
                    for name, value in changes.items():
                        setattr(listing, name, value)
                    written.append(listing)
            if len(written) >= FLUSH_EVERY:
                _flush_out(session, written)
        _flush_out(session, written)
        if mode.replace:
            for external_id, listing in existing.items():
                if external_id not in valid and listing.published:
                    report.unpublished += 1
                    if not mode.dry_run:
                        listing.published = False


def _flush_out(session: Session, listings: list[Listing]) -> None:
    # Sent to the database (still inside the one transaction) and let go, so a big import does not hold
    # every row as an object until the commit.
    if listings:
        session.flush()
        for listing in listings:
            session.expunge(listing)
        listings.clear()


def _mark_interrupted(session: Session, keep: int | None) -> None:
    # Holding the lock means no other import is running, so any other run still marked as running died midway.
    session.execute(update(ImportRun).where(ImportRun.status.in_(("running", "indexing")), ImportRun.id != (keep or 0))
                    .values(status="interrupted", finished_at=dt.datetime.now()))
    session.commit()


def run_import(
    session_factory: sessionmaker[Session],
    data: bytes,
    *,
    filename: str,
    mode: ImportMode,
    actor: str,
    lock_path: Path,
    progress: Progress | None = None,
    run_id: int | None = None,
) -> ImportReport:
    """Import a CSV file. Raises ImportBusy when another import runs, UnusableFile when it is not a listings CSV.

    Everything is validated before anything is written; the database changes are one transaction and the index
    follows after the commit. `run_id` continues a run recorded by `record_run` (the web's background imports).
    """
    report = ImportReport(mode)
    with import_lock(lock_path, actor), session_factory() as session:
        _mark_interrupted(session, keep=run_id)
        if run_id is not None:
            run = session.get(ImportRun, run_id)
        else:
            run = None if mode.dry_run else record_run(session, data, filename, mode, actor)

        def note_progress(done: int, total: int) -> None:
            if run is not None:
                run.rows_done, run.rows_total = done, total
                session.commit()  # its own short transaction: nothing of the import is written yet
            if progress:
                progress(done, total)

        try:
            parsed = parse_file(data)
        except UnusableFile as exc:
            if run is not None:
                _finish(session, run, report, status="failed", message=str(exc))
            raise
        note_progress(0, len(parsed.records))
        valid = _validate(parsed, report, note_progress)
        report.run_id = run.id if run is not None else None
        if report.errors and not mode.skip_invalid:
            # Strict mode: count what the valid rows would do, write nothing.
            _apply(session, valid, ImportMode(dry_run=True, replace=mode.replace), report)
            session.rollback()
            if run is not None:
                _finish(session, run, report, status="rejected", message="rows were invalid; nothing was written")
            return report
        _apply(session, valid, mode, report)
        if mode.dry_run:
            session.rollback()
            return report
        assert run is not None
        run.rows_done = report.rows
        record_event(session, actor, "import", f"{filename}: {summary(report)}")
        _finish(session, run, report, status="indexing", message="")
        report.written = True
        run.status = "done"
        session.commit()
    return report


def record_run(session: Session, data: bytes, filename: str, mode: ImportMode, actor: str) -> ImportRun:
    """Record the start of an import in the history."""
    run = ImportRun(actor=actor, filename=filename[:300], size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                    mode=mode.label, status="running")
    session.add(run)
    session.commit()
    return run


def _finish(session: Session, run: ImportRun, report: ImportReport, status: str, message: str) -> None:
    run.status = status
    run.message = message
    run.finished_at = dt.datetime.now()
    for name in ("created", "updated", "unchanged", "unpublished", "rejected"):
        setattr(run, name, getattr(report, name))
    run.warnings = len(report.warnings)
    run.errors_csv = report.errors_csv
    session.commit()


def summary(report: ImportReport) -> str:
    """One line of counts."""
    return (f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.unpublished} unpublished, {report.rejected} rejected")

