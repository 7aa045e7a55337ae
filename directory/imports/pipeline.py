"""An import run, start to end: streamed from the file, checked row by row, written in one transaction, searchable
after the commit. The steps: scan the file's ids, check every row (spilling the valid ones), write them in batches."""

from __future__ import annotations

import logging
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from directory.audit import record_event
from directory.db import scalars_in_batches
from directory.imports.csv_reading import CsvFile, UnusableFile, open_csv
from directory.imports.csv_writing import ErrorsCsv
from directory.imports.lock import ImportBusy, ImportLock
from directory.imports.new_rows import insert_new
from directory.imports.report import ImportMode, ImportReport, summary
from directory.imports.row_rules import ADDED_TERMS, Issue, check_record
from directory.imports.runs import file_sha256, finish, mark_failed, mark_interrupted, record_run
from directory.listings import make_slug
from directory.models import ImportRun, Listing, utcnow
from directory.search.sync import index_failure, index_flushed

Progress = Callable[[int, int], None]
PROGRESS_EVERY = 1000
log = logging.getLogger(__name__)
FLUSH_EVERY = 2000


def run_import(
    session_factory: sessionmaker[Session],
    source: Path,
    *,
    filename: str,
    mode: ImportMode,
    actor: str,
    lock: ImportLock,
    progress: Progress | None = None,
    run_id: int | None = None,
) -> ImportReport:
    """Import a CSV file. Raises ImportBusy when another import runs, UnusableFile when it is not a listings CSV.

    The file is streamed, never held whole: read once for its external ids, once to validate, the valid rows'
    fields spilled to a temporary file and written from it in batches. Nothing is written until every row is
    checked; the database changes are one transaction. Rows are indexed as they are written, in an index write
    that searches see once the database has committed. `run_id` continues a run recorded by `record_run` (the
    web's background imports). The caller's `lock` is taken for the whole run.
    """
    report = ImportReport(mode)
    with lock.held(actor), session_factory() as session:
        mark_interrupted(session, keep=run_id)
        if run_id is not None:
            run = session.get(ImportRun, run_id)
            # A job worker has just picked it up (or an admin's retry of its failed job).
            if run is not None and run.status in ("queued", "failed"):
                run.status, run.started_at, run.finished_at, run.message = "running", utcnow(), None, ""
                session.commit()
        elif not mode.dry_run:
            run = record_run(session, sha256=file_sha256(source), size=source.stat().st_size, filename=filename,
                             mode=mode, actor=actor)
        else:
            run = None
        try:
            return _run_locked(session, run, source, mode, actor, filename, report, progress)
        except (UnusableFile, ImportBusy):
            raise
        except BaseException as exc:
            # Anything else (a database that refuses a write, a full disk): the run says why, not "running".
            session.rollback()
            if run is not None:
                try:
                    mark_failed(session, run, f"{type(exc).__name__}: {exc}"[:2000], report)
                except Exception:
                    log.exception("import run %s failed and its failure could not be recorded", run.id)
            raise


def _run_locked(session: Session, run: ImportRun | None, source: Path, mode: ImportMode, actor: str, filename: str,
                report: ImportReport, progress: Progress | None) -> ImportReport:
    """The import itself, under the import lock; see run_import."""
    def note_progress(done: int, total: int) -> None:
        if run is not None:
            run.rows_done, run.rows_total = done, total
            session.commit()  # its own short transaction: nothing of the import is written yet
        if progress:
            progress(done, total)

    try:
        csv_file = open_csv(source)
    except UnusableFile as exc:
        if run is not None:
            mark_failed(session, run, str(exc), report)
        raise
    ids = _scan_ids(csv_file)
    note_progress(0, ids.rows)
    report.warnings.add(csv_file.warnings)
    report.run_id = run.id if run is not None else None
    with tempfile.TemporaryFile() as spill:
        _spill_valid_rows(csv_file, ids, report, note_progress, spill)
        if not mode.replace:
            # Only replace mode needs the file's ids from here on; at a million rows they hold ~150 MB that the
            # index workers can use.
            ids.first_line.clear()
        rejected = bool(report.errors.total) and not mode.skip_invalid
        # Strict mode with errors counts what the valid rows would do and writes nothing.
        _apply_all(session, spill, ids, mode, not (mode.dry_run or rejected), report)
    if mode.dry_run or rejected:
        session.rollback()
        if run is not None and not mode.dry_run:
            finish(session, run, "rejected", "rows were invalid; nothing was written", report)
        return report
    assert run is not None
    run.rows_done = report.rows
    record_event(session, actor, "import", f"{filename}: {summary(report)}")
    finish(session, run, "indexing", "", report)
    report.written = True
    report.index_error = index_failure(session)
    run.status = "done"
    if report.index_error:
        run.message = (f"The rows were written, but the search index could not take them ({report.index_error}); "
                       "the index follower writes them from the change log once it can.")
    session.commit()
    return report


@dataclass
class FileIds:
    """The first pass over a file: how many records, and on which line each external id stands."""

    rows: int = 0
    first_line: dict[str, int] = field(default_factory=dict)
    repeated: dict[str, list[int]] = field(default_factory=dict)


def _scan_ids(csv_file: CsvFile) -> FileIds:
    """The first pass: count the records and note the lines of each external id."""
    ids = FileIds()
    for item in csv_file.records():
        if isinstance(item, Issue):
            continue
        ids.rows += 1
        external_id = item.values.get("external_id", "")
        if not external_id:
            continue
        first = ids.first_line.setdefault(external_id, item.line)
        if first != item.line:
            ids.repeated.setdefault(external_id, [first]).append(item.line)
    return ids


def _spill_valid_rows(csv_file: CsvFile, ids: FileIds, report: ImportReport, progress: Progress,
                      spill: BinaryIO) -> None:
    """The second pass: each record checked by the row rules (`check_record`) and for a repeated id; valid rows'
    fields go to `spill` in batches, rejected rows to the report's errors CSV (through a temporary file) and their
    problems to its tally."""
    valid: list[dict[str, Any]] = []
    done = 0
    with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as rejected_rows:
        errors_csv = ErrorsCsv(csv_file.header, rejected_rows)
        for item in csv_file.records():
            if isinstance(item, Issue):
                report.errors.add([item])
                errors_csv.add(item.line, [], [item])
                report.rejected += 1
                continue
            done += 1
            fields, row_errors, row_warnings = check_record(item)
            report.warnings.add(row_warnings)
            lines = ids.repeated.get(item.values.get("external_id", ""))
            if lines:
                row_errors.append(Issue(item.line, item.values["external_id"], "external_id",
                                        f"the same external_id is also on {_other_lines(lines, item.line)}"))
            if row_errors:
                report.errors.add(row_errors)
                errors_csv.add(item.line, item.cells, row_errors)
                report.rejected += 1
            else:
                valid.append(fields)
                if len(valid) == FLUSH_EVERY:
                    pickle.dump(valid, spill, protocol=pickle.HIGHEST_PROTOCOL)
                    valid.clear()
            if done % PROGRESS_EVERY == 0:
                progress(done, ids.rows)
        if valid:
            pickle.dump(valid, spill, protocol=pickle.HIGHEST_PROTOCOL)
        report.rows = done
        if report.rejected:
            # Read back whole once, for the import history's column: about the size of the rejected rows.
            rejected_rows.seek(0)
            report.errors_csv = rejected_rows.read()


SHOWN_REPEATS = 5  # lines named in a duplicate-id message; the rest are counted


def _other_lines(lines: list[int], line: int) -> str:
    """The other lines holding an id, the first few by number: listing all of them made an id repeated on 20,000
    lines cost 20,000 × 20,000 (70 s, then out of memory at 6 GB)."""
    others = [n for n in lines[:SHOWN_REPEATS + 1] if n != line][:SHOWN_REPEATS]
    more = len(lines) - 1 - len(others)
    named = f"line {others[0]}" if len(others) == 1 else f"lines {', '.join(map(str, others))}"
    return f"{named} and {more:,} more" if more else named


def _valid_batches(spill: BinaryIO) -> Iterator[list[dict[str, Any]]]:
    spill.seek(0)
    while True:
        try:
            yield pickle.load(spill)
        except EOFError:
            return


def _apply_all(session: Session, spill: BinaryIO, ids: FileIds, mode: ImportMode, write: bool,
               report: ImportReport) -> None:
    """Create, update and (in replace mode) unpublish, in batches inside the caller's transaction; when not
    writing, only count what would change."""
    with session.no_autoflush:
        for batch in _valid_batches(spill):
            _apply(session, batch, write, report, ids.rows)
        if mode.replace:
            _unpublish_missing(session, ids, write, report, ids.rows)


def _apply(session: Session, batch: list[dict[str, Any]], write: bool, report: ImportReport, expected: int) -> None:
    """Create or update a batch of valid rows; when not writing, only count what they would do."""
    existing = _existing(session, [fields["external_id"] for fields in batch])
    new = {fields["external_id"]: (fields["name"], fields.get("city", ""))
           for fields in batch if fields["external_id"] not in existing}
    report.created += len(new)
    slugs = _free_slugs(session, new) if write else {}
    created: list[dict[str, Any]] = []
    written: list[Listing] = []
    for fields in batch:
        listing = existing.get(fields["external_id"])
        for column, added in fields.pop(ADDED_TERMS, {}).items():
            held = getattr(listing, column) if listing is not None else []
            fields[column] = [*held, *(slug for slug in added if slug not in held)]
        if listing is None:
            if write:
                created.append({**fields, "slug": slugs[fields["external_id"]]})
            continue
        changes = {name: value for name, value in fields.items() if getattr(listing, name) != value}
        if not changes:
            report.unchanged += 1
            continue
        report.updated += 1
        if write:
            for name, value in changes.items():
                setattr(listing, name, value)
            written.append(listing)
    _flush_out(session, written, expected)
    if created:
        index_flushed(session, insert_new(session, created), expected)


def _unpublish_missing(session: Session, ids: FileIds, write: bool, report: ImportReport, expected: int) -> None:
    """Replace mode: unpublish the published listings whose external id is not in the file."""
    published = session.execute(select(Listing.id, Listing.external_id).where(Listing.published))
    missing = [pk for pk, external_id in published if external_id not in ids.first_line]
    report.unpublished = len(missing)
    if not write:
        return
    listings: list[Listing] = []
    for listing in scalars_in_batches(session, select(Listing), Listing.id, missing, batch=FLUSH_EVERY):
        listing.published = False
        listings.append(listing)
        if len(listings) == FLUSH_EVERY:
            _flush_out(session, listings, expected)
    _flush_out(session, listings, expected)


def _existing(session: Session, ids: list[str]) -> dict[str, Listing]:
    return {listing.external_id: listing
            for listing in scalars_in_batches(session, select(Listing), Listing.external_id, ids)}


def _free_slugs(session: Session, wanted: dict[str, tuple[str, str]]) -> dict[str, str]:
    """A unique slug for each new external id (name, city given), checked against the database in bulk."""
    slugs = {external_id: make_slug(name, city, external_id) for external_id, (name, city) in wanted.items()}
    candidates = list(slugs.values())
    taken = set(scalars_in_batches(session, select(Listing.slug), Listing.slug, candidates))
    seen: set[str] = set()
    for external_id, slug in slugs.items():
        while slug in taken or slug in seen:
            # Rehashing the slug itself gives a new, still stable suffix.
            slug = make_slug(*wanted[external_id], slug)
        seen.add(slug)
        slugs[external_id] = slug
    return slugs


def _flush_out(session: Session, listings: list[Listing], expected: int) -> None:
    # Sent to the database (still inside the one transaction) and to the index write that the commit completes,
    # then let go, so a big import does not hold every row as an object until the commit.
    if listings:
        session.flush()
        index_flushed(session, listings, expected)
        for listing in listings:
            session.expunge(listing)
        listings.clear()
