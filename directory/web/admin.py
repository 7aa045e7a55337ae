"""The admin area: sign-in, listings, CSV import and export, history, audit log, stale listings."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import (Blueprint, Flask, Response, abort, current_app, flash, redirect, render_template, request,
                   session, stream_with_context, url_for)

from directory import accounts, availability, db, photos
from directory.availability import Window
from directory.audit import audit_spool_path, flush_spool, recent_events, record_event, record_event_now
from directory.csv_format import COLUMNS, Record, UnusableFile, check_record, csv_chunks, listing_values, template_csv
from directory.importer import (ImportBusy, ImportMode, import_lock, import_lock_path, recent_runs, record_run,
                                run_import, settle_if_dead, summary)
from directory.listings import all_listings, find_listings, stale_listings, status_counts
from directory.models import ImportRun, Listing
from directory.search.sync import index_failure
from directory.web.security import (admin_required, current_admin, limiter, limits_in_database, safe_next, sign_in,
                                    sign_in_blocked, sign_in_failed)

bp = Blueprint("admin", __name__, url_prefix="/admin")
PER_PAGE = 50
PREVIEW_ERRORS = 50


UPLOAD_RETENTION_SECONDS = 24 * 3600  # a previewed file that was never confirmed is kept this long


def _uploads() -> Path:
    path = Path(current_app.instance_path) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _forget_upload(path: Path) -> None:
    """Delete an upload and its errors file: its import ended, or it could never be imported."""
    path.unlink(missing_ok=True)
    path.with_suffix(".errors.csv").unlink(missing_ok=True)


def _prune_uploads() -> None:
    # Previews nobody confirmed: nothing else would ever delete them.
    cutoff = time.time() - UPLOAD_RETENTION_SECONDS
    for old in _uploads().iterdir():
        with contextlib.suppress(FileNotFoundError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


@bp.route("/login", methods=["GET", "POST"])
# Only wrong passwords use up the limit, so a flood does not lock the real admin out once it stops.
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], exempt_when=limits_in_database,
               deduct_when=lambda response: response.status_code == 401)
def login() -> Any:
    """Sign in; then go to `next` when it is a local path."""
    target = safe_next(request.values.get("next"), url_for("admin.home"))
    if request.method == "POST":
        if limits_in_database() and sign_in_blocked():
            abort(429, description="Too many wrong passwords from this address; wait a minute and try again.")
        with db.factory()() as db_session:
            admin = accounts.authenticate(db_session, request.form.get("email", ""), request.form.get("password", ""))
        if admin is not None:
            record_event_now(db.factory(), audit_spool_path(current_app), admin.email, "login")
        if admin is None:
            if limits_in_database():
                sign_in_failed()
            flash("Wrong email or password.", "error")
            return render_template("admin/login.html", next=target), 401
        sign_in(admin.email, admin.session_version)
        return redirect(target)
    return render_template("admin/login.html", next=target)


@bp.post("/logout")
def logout() -> Response:
    """Sign out, everywhere: cookies copied from any of this admin's sessions open nothing after it."""
    email = current_admin()
    if email is not None:
        with db.factory()() as db_session:
            accounts.end_sessions(db_session, email)
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
@admin_required
def home() -> str:
    """Counts and the latest imports."""
    counts = status_counts(db.session(), availability.window())
    return render_template("admin/home.html", counts=counts, runs=recent_runs(db.session(), 5))


@bp.get("/listings")
@admin_required
def listings() -> str:
    """Every listing, published or not, searchable by name, id or city."""
    q = request.args.get("q", "").strip()[:100]
    status = request.args.get("status", "all")
    page = max(1, min(request.args.get("page", 1, type=int) or 1, 100_000))
    published = {"published": True, "unpublished": False}.get(status)
    rows, total = find_listings(db.session(), q, published, page, PER_PAGE)
    return render_template("admin/listings.html", rows=rows, total=total, page=page, q=q, status=status,
                           pages=max(1, (total + PER_PAGE - 1) // PER_PAGE))


def _commit_listing_change() -> None:
    """Commit an edit, publication or deletion, and tell the admin when search could not take it at once."""
    db.session().commit()
    reason = index_failure(db.session())
    if reason:
        flash(f"Saved, but search does not show the change yet ({reason}); it will after "
              "`flask --app app index check --repair`.", "error")


def _listing_or_404(listing_id: int) -> Listing:
    listing = db.session().get(Listing, listing_id)
    if listing is None:
        abort(404, description="No such listing.")
    return listing


def _as_stored(submitted: str, stored: str) -> str:
    """The stored value when the form sent it back unchanged: browsers send line breaks as CRLF whatever they were,
    and drop a textarea's leading one."""
    def lines(text: str) -> str:
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()

    return stored if lines(submitted) == lines(stored) else submitted


@bp.route("/listings/<id:listing_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_listing(listing_id: int) -> Any:
    """Edit a listing with the same validation as the CSV import; saved changes are searchable at once."""
    listing = _listing_or_404(listing_id)
    if request.method == "GET":
        return render_template("admin/edit.html", listing=listing, values=listing_values(listing), errors={})
    stored = listing_values(listing)
    values = {column: _as_stored(request.form.get(column, "").strip(), stored[column]) for column in COLUMNS}
    values["external_id"] = listing.external_id  # the import key never changes here
    fields, errors, _warnings = check_record(Record(0, [], values))
    by_field: dict[str, list[str]] = {}
    for issue in errors:
        by_field.setdefault(issue.field, []).append(issue.message)
    upload = request.files.get("photo")
    if upload is not None and upload.filename:
        try:
            fields["photo"] = photos.store(db.session(), photos.prepare(upload.read(photos.MAX_BYTES + 1)))
        except photos.PhotoError as exc:
            by_field["photo"] = [str(exc)]
    elif request.form.get("remove_photo") == "1":
        fields["photo"] = ""
    if by_field:
        db.session().rollback()
        return render_template("admin/edit.html", listing=listing, values=values, errors=by_field), 400
    for name, value in fields.items():
        if getattr(listing, name) != value:
            setattr(listing, name, value)
    record_event(db.session(), current_admin() or "", "edit", f"{listing.external_id} {listing.name}")
    _commit_listing_change()
    flash(f"Saved {listing.name}.", "ok")
    return redirect(url_for("admin.listings", q=listing.external_id))


@bp.post("/listings/<id:listing_id>/publish")
@admin_required
def publish(listing_id: int) -> Response:
    """Publish or unpublish a listing (form field `published` = 1 or 0)."""
    listing = _listing_or_404(listing_id)
    listing.published = request.form.get("published") == "1"
    action = "publish" if listing.published else "unpublish"
    record_event(db.session(), current_admin() or "", action, f"{listing.external_id} {listing.name}")
    _commit_listing_change()
    flash(f"{listing.name} is {'published' if listing.published else 'unpublished'}.", "ok")
    return redirect(url_for("admin.listings", q=listing.external_id))


@bp.route("/listings/<id:listing_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_listing(listing_id: int) -> Any:
    """Confirm, then delete a listing for good."""
    listing = _listing_or_404(listing_id)
    if request.method == "GET":
        return render_template("admin/delete.html", listing=listing)
    record_event(db.session(), current_admin() or "", "delete", f"{listing.external_id} {listing.name}")
    db.session().delete(listing)
    _commit_listing_change()
    flash(f"Deleted {listing.name}.", "ok")
    return redirect(url_for("admin.listings"))


def _mode_from(form: Any) -> ImportMode:
    return ImportMode(skip_invalid=form.get("skip_invalid") == "1", replace=form.get("replace") == "1")


@bp.route("/import", methods=["GET", "POST"])
@admin_required
def import_upload() -> Any:
    """Upload a CSV and see the full preview report before anything is written."""
    if request.method == "GET":
        return render_template("admin/import.html")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file to upload.", "error")
        return render_template("admin/import.html"), 400
    _prune_uploads()
    data = upload.read()
    digest = hashlib.sha256(data).hexdigest()
    path = _uploads() / f"{digest}.csv"
    path.write_bytes(data)
    mode = _mode_from(request.form)
    try:
        report = run_import(db.factory(), path, filename=upload.filename, actor=current_admin() or "",
                            mode=ImportMode(dry_run=True, skip_invalid=mode.skip_invalid, replace=mode.replace),
                            lock_path=import_lock_path(current_app))
    except UnusableFile as exc:
        _forget_upload(path)
        flash(f"This file cannot be imported: {exc}.", "error")
        return render_template("admin/import.html"), 400
    except ImportBusy as exc:
        _forget_upload(path)
        flash(f"{exc}. Try again when it has finished.", "error")
        return render_template("admin/import.html"), 409
    if report.errors_csv:
        (_uploads() / f"{digest}.errors.csv").write_text(report.errors_csv, encoding="utf-8")
    return render_template("admin/preview.html", report=report, digest=digest, filename=upload.filename, mode=mode,
                           shown_errors=report.errors.first[:PREVIEW_ERRORS])


def _upload_path(digest: str, suffix: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        abort(404)
    path = _uploads() / f"{digest}{suffix}"
    if not path.exists():
        abort(404, description="That upload is no longer available; upload the file again.")
    return path


@bp.get("/import/<digest>/errors.csv")
@admin_required
def preview_errors(digest: str) -> Response:
    """The previewed file's rejected rows with an `errors` column."""
    return _csv_download(_upload_path(digest, ".errors.csv").read_text(encoding="utf-8"), "errors.csv")


@bp.post("/import/confirm")
@admin_required
def import_confirm() -> Any:
    """Run a previewed import in the background and go to its progress page."""
    digest = request.form.get("digest", "")
    path = _upload_path(digest, ".csv")
    filename = request.form.get("filename", "upload.csv")[:300]
    mode = _mode_from(request.form)
    actor = current_admin() or ""
    try:
        with import_lock(import_lock_path(current_app), actor):
            pass  # free now; the background run takes it for real and reports if someone was faster
    except ImportBusy as exc:
        flash(f"{exc}. Try again when it has finished.", "error")
        return render_template("admin/import.html"), 409
    run = record_run(db.session(), path, filename, mode, actor)
    thread = threading.Thread(target=_background_import, daemon=True, name=f"import-{run.id}",
                              args=(current_app._get_current_object(), path, filename, mode, actor, run.id))  # type: ignore[attr-defined]
    thread.start()
    return redirect(url_for("admin.import_run", run_id=run.id))


def _background_import(app: Flask, path: Path, filename: str, mode: ImportMode, actor: str, run_id: int) -> None:
    with app.app_context(), contextlib.ExitStack() as cleanup:
        # The run keeps the file's name, size and SHA-256, and its rejected rows; the upload itself goes.
        cleanup.callback(_forget_upload, path)
        factory = db.factory(app)
        try:
            run_import(factory, path, filename=filename, mode=mode, actor=actor, run_id=run_id,
                       lock_path=import_lock_path(app))
        except (ImportBusy, UnusableFile) as exc:
            with factory() as s:
                run = s.get(ImportRun, run_id)
                if run is not None:
                    run.status, run.message, run.finished_at = "failed", str(exc), dt.datetime.now()
                    s.commit()
        except Exception:
            app.logger.exception("import %s failed", run_id)
            with factory() as s:
                run = s.get(ImportRun, run_id)
                if run is not None and run.status in ("running", "indexing"):
                    run.status, run.message, run.finished_at = "failed", "an unexpected error stopped it", dt.datetime.now()
                    s.commit()


@bp.get("/imports")
@admin_required
def import_runs() -> str:
    """The import history."""
    runs = recent_runs(db.session(), 200)
    for run in runs:
        settle_if_dead(db.session(), run, import_lock_path(current_app))
    return render_template("admin/runs.html", runs=runs)


@bp.get("/imports/<id:run_id>")
@admin_required
def import_run(run_id: int) -> str:
    """One import: live progress while it runs (the page reloads itself with JavaScript), then its result."""
    run = db.session().get(ImportRun, run_id)
    if run is None:
        abort(404, description="No such import.")
    settle_if_dead(db.session(), run, import_lock_path(current_app))
    elapsed = ((run.finished_at or dt.datetime.now()) - run.started_at).total_seconds()
    rate = run.rows_done / elapsed if elapsed > 0 else 0.0
    eta = (run.rows_total - run.rows_done) / rate if rate and run.rows_total else None
    return render_template("admin/run.html", run=run, rate=rate, eta=eta, summary=summary)


@bp.get("/imports/<id:run_id>/errors.csv")
@admin_required
def import_run_errors(run_id: int) -> Response:
    """A finished import's rejected rows with an `errors` column."""
    run = db.session().get(ImportRun, run_id)
    if run is None or not run.errors_csv:
        abort(404, description="This import has no rejected rows.")
    return _csv_download(run.errors_csv, f"import-{run_id}-errors.csv")


def _csv_download(text: str, name: str) -> Response:
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/import/template.csv")
@admin_required
def import_template() -> Response:
    """An empty import file with one example row."""
    return _csv_download(template_csv(), "listings-template.csv")


@bp.get("/export.csv")
@admin_required
def export() -> Response:
    """Every listing in the import format, streamed."""
    record_event(db.session(), current_admin() or "", "export")
    db.session().commit()
    factory = db.factory()

    def chunks() -> Iterator[str]:
        with factory() as s:
            yield from csv_chunks(s.scalars(all_listings()))

    return Response(stream_with_context(chunks()), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="listings.csv"'})


@bp.get("/audit")
@admin_required
def audit() -> str:
    """The latest admin actions (sign-ins spooled while the database was busy included)."""
    flush_spool(db.factory(), audit_spool_path(current_app))
    return render_template("admin/audit.html", events=recent_events(db.session(), 500))


@bp.get("/stale")
@admin_required
def stale() -> str:
    """Published listings whose availability was last confirmed more than N days ago (or never)."""
    days = request.args.get("days", current_app.config["STALE_AFTER_DAYS"], type=int) or 1
    days = max(1, min(days, 3650))
    today = availability.today()
    rows = stale_listings(db.session(), Window(today - dt.timedelta(days=days), today), 1000)
    return render_template("admin/stale.html", rows=rows, days=days, today=today)
