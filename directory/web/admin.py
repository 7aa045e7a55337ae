"""The admin area: sign-in, listings, CSV import and export, history, audit log, stale listings."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request, session,
                   stream_with_context, url_for)
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from directory import accounts, db, jobs, listing_edits, photos
from directory.audit import audit_spool_path, commit_event, flush_spool, recent_events, record_event_now
from directory.availability import Window
from directory.imports.csv_reading import UnusableFile
from directory.imports.csv_writing import export_chunks, listing_values, template_csv
from directory.imports.lock import ImportBusy, ImportLock, import_lock
from directory.imports.report import ImportMode, summary
from directory.imports.runs import mark_failed, recent_runs, record_run, settle_if_dead
from directory.imports.uploads import Uploads, preview_upload
from directory.listings import find_listings, stale_listings, status_counts, unmapped_genders
from directory.models import ImportRun, Listing
from directory.vocabulary import vocabulary
from directory.web import admin_freshness, app_state
from directory.web.security import (admin_required, current_admin, limiter, limits_in_database, safe_next, sign_in,
                                    sign_in_blocked, sign_in_failed)

T = TypeVar("T")
bp = Blueprint("admin", __name__, url_prefix="/admin")
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")  # what RQ allows in a job id
PER_PAGE = 50
PREVIEW_ERRORS = 50
STALE_ROWS = 1000
# The edit form's list columns shown as boxes to tick (their vocabularies are short), by the kind of their terms.
TICKED_COLUMNS = {"ages": "age", "client_types": "client_type", "communities": "community"}


def _import_lock() -> ImportLock:
    """The app's import lock, shared with the CLI and every node."""
    return import_lock(current_app)


def _uploads() -> Uploads:
    """The app's store of uploaded import files."""
    return Uploads(db.factory())


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
            record_event_now(db.factory(), audit_spool_path(current_app.instance_path), admin.email, "login")
        if admin is None:
            if limits_in_database():
                sign_in_failed()
            flash("Wrong email or password.", "error")
            return render_template("admin/login.html", next=target), 401
        sign_in(admin.email, admin.session_version)
        return redirect(target)
    return render_template("admin/login.html", next=target)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
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
    counts = status_counts(db.session(), app_state.fresh_window())
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


def _listing_or_404(listing_id: int) -> Listing:
    """The listing with this id, published or not.

    :raise 404: when there is none.
    """
    listing = db.session().get(Listing, listing_id)
    if listing is None:
        abort(404, description="No such listing.")
    return listing


def _flash_unindexed(reason: str | None) -> None:
    """Tell the admin when search could not take a saved change at once."""
    if reason:
        flash(f"Saved, but search does not show the change yet ({reason}); it will as soon as the index can take "
              "it (`flask --app app index status` shows what is pending).", "error")


def _uploaded_photo() -> bytes | None:
    upload = request.files.get("photo")
    return upload.read(photos.MAX_BYTES + 1) if upload is not None and upload.filename else None


def _edit_form(listing: Listing) -> dict[str, str]:
    """The edit form as `save_edit` reads it, one text a column of the import format: a list column's ticked boxes
    joined as the CSV writes them, the values already stored first and in their order, so that an untouched form
    changes nothing."""
    form = request.form.to_dict()
    stored = listing_values(listing)
    for column in TICKED_COLUMNS:
        ticked = request.form.getlist(column)
        kept = [slug for slug in stored[column].split(";") if slug in ticked]
        form[column] = ";".join(kept + [value for value in ticked if value not in kept])
    return form


def _edit_page(listing: Listing, values: dict[str, str], errors: dict[str, list[str]]) -> str:
    """The edit form: the list columns of TICKED_COLUMNS as boxes (those the value names ticked), gender as a choice
    of its terms, not said, or the text as written when it names none."""
    ticked = {column: {slug for part in re.split(r"[;|]", values[column])
                       if len(found := vocabulary.match(kind, part)) == 1 for slug in found}
              for column, kind in TICKED_COLUMNS.items()}
    return render_template("admin/edit.html", listing=listing, values=values, errors=errors, ticked=ticked,
                           ticked_kinds=TICKED_COLUMNS, vocabulary=vocabulary)


@bp.route("/listings/<id:listing_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_listing(listing_id: int) -> Any:
    """Edit a listing with the same validation as the CSV import; saved changes are searchable at once."""
    listing = _listing_or_404(listing_id)
    if request.method == "GET":
        return _edit_page(listing, listing_values(listing), {})
    edit = listing_edits.save_edit(db.session(), listing, _edit_form(listing), photo=_uploaded_photo(),
                                   actor=current_admin() or "")
    if edit.problems:
        return _edit_page(listing, edit.values, edit.problems), 400
    _flash_unindexed(edit.index_error)
    flash(f"Saved {listing.name}.", "ok")
    return redirect(url_for("admin.listings", q=listing.external_id))


@bp.post("/listings/<id:listing_id>/publish")
@admin_required
def publish(listing_id: int) -> ResponseReturnValue:
    """Publish or unpublish a listing (form field `published` = 1 or 0)."""
    listing = _listing_or_404(listing_id)
    _flash_unindexed(listing_edits.set_published(db.session(), listing, request.form.get("published") == "1",
                                                 current_admin() or ""))
    flash(f"{listing.name} is {'published' if listing.published else 'unpublished'}.", "ok")
    return redirect(url_for("admin.listings", q=listing.external_id))


@bp.route("/listings/<id:listing_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_listing(listing_id: int) -> Any:
    """Confirm, then delete a listing for good."""
    listing = _listing_or_404(listing_id)
    if request.method == "GET":
        return render_template("admin/delete.html", listing=listing)
    _flash_unindexed(listing_edits.delete(db.session(), listing, current_admin() or ""))
    flash(f"Deleted {listing.name}.", "ok")
    return redirect(url_for("admin.listings"))


def _mode_from(form: Any) -> ImportMode:
    return ImportMode(skip_invalid=form.get("skip_invalid") == "1", replace=form.get("replace") == "1")


def _busy(exc: ImportBusy) -> tuple[str, int]:
    """The import page again, saying who runs the import that holds the lock."""
    flash(f"{exc}. Try again when it has finished.", "error")
    return render_template("admin/import.html"), 409


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
    mode = _mode_from(request.form)
    try:
        digest, report = preview_upload(db.factory(), _uploads(), upload.read(), filename=upload.filename, mode=mode,
                                        actor=current_admin() or "", lock=_import_lock())
    except UnusableFile as exc:
        flash(f"This file cannot be imported: {exc}.", "error")
        return render_template("admin/import.html"), 400
    except ImportBusy as exc:
        return _busy(exc)
    return render_template("admin/preview.html", report=report, digest=digest, filename=upload.filename, mode=mode,
                           shown_errors=report.errors.first[:PREVIEW_ERRORS])


def _found(find: Callable[[str], T | None], digest: str) -> T:
    """What `find` (an upload's size, or its rejected rows) gives for an upload's digest.

    :raise 404: when the digest is malformed or the upload is gone.
    """
    try:
        found = find(digest)
    except ValueError:
        abort(404)
    if found is None:
        abort(404, description="That upload is no longer available; upload the file again.")
    return found


@bp.get("/import/<digest>/errors.csv")
@admin_required
def preview_errors(digest: str) -> Response:
    """The previewed file's rejected rows with an `errors` column."""
    return _csv_download(_found(_uploads().errors, digest), "errors.csv")


@bp.post("/import/confirm")
@admin_required
def import_confirm() -> Any:
    """Run a previewed import in the background and go to its progress page."""
    uploads = _uploads()
    digest = request.form.get("digest", "")
    filename = request.form.get("filename", "upload.csv")[:300]
    mode = _mode_from(request.form)
    actor = current_admin() or ""
    try:
        _import_lock().check_free()  # free now; the background run takes it for real and reports if someone was faster
    except ImportBusy as exc:
        return _busy(exc)
    size = _found(uploads.confirm, digest)
    queued = bool(current_app.config["REDIS_URL"])
    run = record_run(db.session(), sha256=digest, size=size, filename=filename, mode=mode, actor=actor,
                     status="queued" if queued else "running")
    if queued:
        run.job_id = jobs.import_job_id(run.id)
        db.session().commit()
    try:
        jobs.submit(jobs.import_upload, timeout=jobs.import_timeout(size), job_id=run.job_id or None, digest=digest,
                    filename=filename, mode=mode, actor=actor, run_id=run.id)
    except RedisError as exc:
        mark_failed(db.session(), run, f"The job queue (Redis) could not be reached: {exc}")
        flash(f"The import could not be queued: the job queue (Redis) could not be reached ({exc}). "
              "Confirm it again when it is back.", "error")
        return render_template("admin/import.html"), 503
    return redirect(url_for("admin.import_run", run_id=run.id))


@bp.get("/imports")
@admin_required
def import_runs() -> str:
    """The import history."""
    _sweep_jobs()
    runs = recent_runs(db.session(), 200)
    lock = _import_lock()
    for run in runs:
        settle_if_dead(db.session(), run, lock)
    return render_template("admin/runs.html", runs=runs)


@bp.get("/imports/<id:run_id>")
@admin_required
def import_run(run_id: int) -> str:
    """One import: live progress while it runs (the page reloads itself with JavaScript), then its result."""
    _sweep_jobs()
    run = db.session().get(ImportRun, run_id)
    if run is None:
        abort(404, description="No such import.")
    settle_if_dead(db.session(), run, _import_lock())
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
    commit_event(db.session(), current_admin() or "", "export")
    return Response(stream_with_context(export_chunks(db.factory())), mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="listings.csv"'})


@bp.get("/audit")
@admin_required
def audit() -> str:
    """The latest admin actions (sign-ins spooled while the database was busy included)."""
    flush_spool(db.factory(), audit_spool_path(current_app.instance_path))
    return render_template("admin/audit.html", events=recent_events(db.session(), 500))


@bp.get("/stale")
@admin_required
def stale() -> str:
    """Published listings whose availability was last confirmed more than N days ago (or never), and listings
    whose gender as written names no term."""
    days = request.args.get("days", current_app.config["STALE_AFTER_DAYS"], type=int) or 1
    days = max(1, min(days, 3650))
    today = app_state.today()
    rows = stale_listings(db.session(), Window(today - dt.timedelta(days=days), today), STALE_ROWS)
    unmapped = db.session().scalars(unmapped_genders().limit(STALE_ROWS)).all()
    return render_template("admin/stale.html", rows=rows, days=days, today=today, unmapped=unmapped,
                           limit=STALE_ROWS, genders=[term.name for term in vocabulary.terms["gender"].values()],
                           to_ask=admin_freshness.count_stale_to_ask())


def _sweep_jobs() -> bool:
    """Settle abandoned jobs now rather than at the next tick: whether the queue could be reached."""
    try:
        jobs.sweep(current_app._get_current_object())  # type: ignore[attr-defined]
    except RedisError as exc:
        flash(f"The job queue (Redis) cannot be reached: {exc}", "error")
        return False
    return True


@bp.get("/jobs")
@admin_required
def failed_jobs() -> str:
    """Background jobs that failed for good, with why, to retry or discard."""
    reachable = _sweep_jobs()
    failed = jobs.failed_jobs(current_app._get_current_object()) if reachable else []  # type: ignore[attr-defined]
    return render_template("admin/jobs.html", failed=failed, queued=bool(current_app.config["REDIS_URL"]))


@bp.post("/jobs/<job_id>/retry")
@admin_required
def retry_job(job_id: str) -> ResponseReturnValue:
    """Queue a failed job again."""
    return _failed_job_action(job_id, "retry", jobs.retry_failed, "queued again")


@bp.post("/jobs/<job_id>/discard")
@admin_required
def discard_job(job_id: str) -> ResponseReturnValue:
    """Delete a failed job."""
    return _failed_job_action(job_id, "discard", jobs.discard_failed, "discarded")


def _failed_job_action(job_id: str, action: str, act: Callable[[Any, str], bool], done: str) -> ResponseReturnValue:
    if not JOB_ID.fullmatch(job_id) or not current_app.config["REDIS_URL"]:
        abort(404, description="No such failed job.")
    try:
        found = act(current_app._get_current_object(), job_id)  # type: ignore[attr-defined]
    except RedisError as exc:
        flash(f"The job queue (Redis) cannot be reached: {exc}", "error")
        return redirect(url_for("admin.failed_jobs"))
    if not found:
        abort(404, description="No such failed job (already retried or discarded?).")
    commit_event(db.session(), current_admin() or "", f"job-{action}", job_id)
    flash(f"Job {job_id} {done}.", "info")
    return redirect(url_for("admin.failed_jobs"))
