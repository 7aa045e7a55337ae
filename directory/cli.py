"""Command-line commands: index, sample data, CSV import and export, admin accounts, listings to look at."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from directory import accounts, db, jobs, migrate, periodic, sample
from directory.confirmations.commands import confirmations_cli
from directory.imports.csv_reading import UnusableFile
from directory.imports.csv_writing import csv_chunks
from directory.imports.lock import ImportBusy, import_lock
from directory.imports.pipeline import run_import
from directory.imports.report import ImportMode, ImportReport
from directory.listings import all_listings, count_all, unmapped_genders
from directory.search import follower
from directory.search.index.storage import IndexBusy, RebuildFailed
from directory.search.sync import check, rebuild
from directory.search.sync import repair as repair_drift
from directory.vocabulary import vocabulary
from directory.web.app_state import current_index, today

index_cli = AppGroup("index", help="Build and check the search index.")
db_cli = AppGroup("db", help="The database schema (Alembic migrations).")
sample_cli = AppGroup("sample", help="Fictional sample listings.")


@index_cli.command("rebuild")
def index_rebuild() -> None:
    """Build a new index from the database beside the live one, verify it, and switch to it."""
    started = time.monotonic()
    try:
        count = rebuild(db.factory(), current_index())
    except (RebuildFailed, IndexBusy) as exc:
        raise click.ClickException(f"rebuild failed, live index unchanged: {exc}") from exc
    click.echo(f"Rebuilt the index: {count} listings in {time.monotonic() - started:.1f} s.")


@index_cli.command("check")
@click.option("--repair", is_flag=True, help="Write missing and stale listings and remove extra ones.")
def index_check(repair: bool) -> None:
    """Report listings missing from, extra in, or stale in the index; exit 1 when there is drift."""
    index = current_index()
    with db.factory()() as session:
        drift = check(session, index)
        click.echo(f"missing: {len(drift.missing)}  extra: {len(drift.extra)}  stale: {len(drift.stale)}")
        for label, ids in (("missing", drift.missing), ("extra", drift.extra), ("stale", drift.stale)):
            if ids:
                click.echo(f"  {label} listing ids: {', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}")
        if drift.unplaceable:
            click.echo(f"  {len(drift.unplaceable)} published listings have no usable location and are not searchable.")
        if drift.outdated:
            click.echo("The index was written by an older version (before docnum files, without a field this one "
                       "reads, with one it dropped, or with another text analysis) and must be rebuilt (--repair "
                       "does it).")
        if drift.clean:
            click.echo("The index matches the database.")
            return
        if repair:
            repair_drift(db.factory(), index, drift)
            click.echo("Repaired.")
            return
    raise SystemExit(1)


@index_cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def index_status(as_json: bool) -> None:
    """Show the live generation, how far it has applied the change log, its lag, and the follower."""
    found = follower.status(db.factory(), current_index())
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    applied = "none recorded" if found["applied"] is None else found["applied"]
    lag = "unknown" if found["lag_rows"] is None else f"{found['lag_rows']} rows"
    if found["lag_rows"]:
        lag += f", the oldest committed {found['lag_seconds']:.1f} s ago"
    pid = found["follower"]["pid"]
    click.echo(f"generation: {found['generation'] or 'none'}\napplied:    {applied} of {found['latest']}\n"
               f"lag:        {lag}\nfollower:   {'none' if pid is None else f'process {pid}'}")


@index_cli.command("follow")
@click.option("--once", is_flag=True, help="Apply what the index lacks of the change log, then exit.")
def index_follow(once: bool) -> None:
    """Apply the change log to the index: what it lacks (--once), or as the folder's follower until stopped."""
    if once:
        try:
            follower.catch_up(db.factory(), current_index(), current_app.config["INDEX_LOCK_TIMEOUT"])
        except IndexBusy as exc:
            raise click.ClickException(f"{exc}; try again once it is done") from exc
        click.echo(f"The index has applied the change log up to {current_index().applied_change()}.")
        return
    following = follower.Follower(db.factory(), current_index())
    following.start()
    click.echo("Following the change log once elected (another process may hold the folder's follower lock); "
               "Ctrl-C stops.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        following.stop()


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the database schema to REVISION (default: the newest)."""
    migrate.upgrade(db.engine(), revision)
    click.echo(f"The database schema is at {migrate.current(db.engine())}.")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def db_downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (default: one step back)."""
    migrate.downgrade(db.engine(), revision)
    click.echo(f"The database schema is at {migrate.current(db.engine()) or 'no revision (empty)'}.")


@db_cli.command("current")
def db_current() -> None:
    """Show the database's schema revision and the newest one; exit 1 when the database is behind."""
    revision = migrate.current(db.engine())
    click.echo(f"database: {revision or 'no revision (empty)'}  newest: {migrate.HEAD}")
    if revision != migrate.HEAD:
        raise SystemExit(1)


@sample_cli.command("load")
@click.option("--count", default=2000, show_default=True, help="How many listings to generate.")
def sample_load(count: int) -> None:
    """Load fictional sample listings into an empty database."""
    added = sample.load_if_empty(db.factory(), count, today())
    click.echo(f"Loaded {added} sample listings." if added else "The database already has listings; nothing loaded.")


def _print_summary(report: ImportReport) -> None:
    rows = [("rows", report.rows), ("created", report.created), ("updated", report.updated),
            ("unchanged", report.unchanged), ("unpublished", report.unpublished), ("rejected", report.rejected),
            ("warnings", report.warnings.total)]
    for label, count in rows:
        click.echo(f"  {label:<12}{count:>10}")
    for issue in report.warnings.first[:20]:
        click.echo(f"warning: line {issue.line}: {issue.field + ': ' if issue.field else ''}{issue.message}")
    for issue in report.errors.first[:50]:
        click.echo(f"error: line {issue.line} [{issue.external_id}] {issue.field + ': ' if issue.field else ''}"
                   f"{issue.message}", err=True)
    if report.errors.total > 50:
        click.echo(f"... and {report.errors.total - 50:,} more errors (--errors-csv writes every rejected row with "
                   "its errors); all errors by field and problem:", err=True)
        for tally in report.errors.counts()[:20]:
            click.echo(f"{tally['count']:>10,}  {tally['field'] or '(line)'}: {tally['problem']}", err=True)


@click.command("import-csv")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Validate and report; write nothing.")
@click.option("--skip-invalid", is_flag=True, help="Write the valid rows even when some are invalid.")
@click.option("--replace", is_flag=True, help="Unpublish listings whose external_id is not in the file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--actor", default="cli", show_default=True, help="Who to record in the import history.")
@click.option("--errors-csv", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the rejected rows, each with its errors, to this file (to fix and import again).")
@with_appcontext
def import_csv(file: Path, dry_run: bool, skip_invalid: bool, replace: bool, as_json: bool, actor: str,
               errors_csv: Path | None) -> None:
    """Import listings from a CSV file. Exit 0: all rows imported; 1: rows rejected or nothing written; 2: unusable."""
    try:
        file.open("rb").close()
    except OSError as exc:
        click.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        sys.exit(2)
    mode = ImportMode(dry_run=dry_run, skip_invalid=skip_invalid, replace=replace)
    started = time.monotonic()
    show_bar = not as_json and sys.stderr.isatty()
    bar = (click.progressbar(length=1, label="validating", file=sys.stderr, show_eta=True, show_pos=True)
           if show_bar else None)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)
            rate = done / max(time.monotonic() - started, 1e-6)
            bar.label = f"validating ({rate:,.0f} rows/s)"

    try:
        report = run_import(db.factory(), file, filename=file.name, mode=mode, actor=actor,
                            lock=import_lock(current_app), progress=progress)
    except UnusableFile as exc:
        click.echo(f"error: {file} is not a usable listings CSV: {exc}", err=True)
        sys.exit(2)
    except ImportBusy as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except (OSError, SQLAlchemyError) as exc:
        # Recorded in the import history as failed, with the same reason; nothing of the file was written.
        click.echo(f"error: the import failed, nothing was written: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    finally:
        if bar is not None:
            bar.render_finish()
    if errors_csv is not None and report.errors_csv:
        errors_csv.write_text(report.errors_csv, encoding="utf-8", newline="")
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        verdict = "dry run, nothing written" if dry_run else ("written" if report.written else "nothing written")
        click.echo(f"Import of {file.name} ({mode.label}): {verdict} in {time.monotonic() - started:.1f} s")
        _print_summary(report)
    if report.index_error:
        click.echo(f"error: the rows were written, but the search index could not take them ({report.index_error}); "
                   "the index follower writes them from the change log once it can (`flask --app app index status` "
                   "shows what is pending)", err=True)
    sys.exit(0 if (report.written or dry_run) and not report.rejected and not report.index_error else 1)


@click.command("export-csv")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@with_appcontext
def export_csv(file: Path) -> None:
    """Write every listing (published or not) to FILE in the import format."""
    with db.factory()() as session, file.open("w", encoding="utf-8", newline="") as out:
        for chunk in csv_chunks(session.scalars(all_listings())):
            out.write(chunk)
        count = count_all(session)
    click.echo(f"Exported {count} listings to {file}.")


@click.command("prepare")
@with_appcontext
def prepare() -> None:
    """Make what a first start makes (schema, place table, index, sample: the app did on loading), then say so.
    `make run` runs it before the server, whose workers must not spend their start-up timeout building."""
    # What the index lacks of the change log (a crash after a commit, say) is written now; the follower logs it.
    try:
        follower.catch_up(db.factory(), current_index(), current_app.config["INDEX_LOCK_TIMEOUT"])
    except IndexBusy:
        click.echo("The index is busy (an import or a rebuild); the server's follower applies what it lacks.")
    with db.factory()() as session:
        count = count_all(session)
    click.echo(f"Ready: {count} listings in the database, indexed in {current_app.extensions['search'].root}.")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop once the queue is empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run background jobs (web imports) from the Redis queue at REDIS_URL until stopped."""
    if not current_app.config["REDIS_URL"]:
        raise click.ClickException("REDIS_URL is not set: without it, background jobs run in the web process")
    jobs.work(current_app._get_current_object(), burst)  # type: ignore[attr-defined]


@click.command("tick")
@with_appcontext
def tick() -> None:
    """Start the periodic jobs that are due (for cron, when TICK_SECONDS=0 turns the servers' ticking off)."""
    started = periodic.tick(current_app._get_current_object())  # type: ignore[attr-defined]
    for _name, thread in started:
        if thread is not None:  # in-process mode: this process is the one running it
            thread.join()
    click.echo("Started: " + (", ".join(name for name, _ in started) or "nothing was due") + ".")


admin_cli = AppGroup("admin", help="Admin accounts.")


def _password_command(name: str) -> Callable[[Callable[..., None]], click.Command]:
    """An `admin` command taking an EMAIL argument and a password, prompted or (--password-stdin) read from stdin."""
    def wrap(command: Callable[..., None]) -> click.Command:
        command = click.option("--password-stdin", is_flag=True,
                               help="Read the password from standard input (for scripts).")(command)
        return admin_cli.command(name)(click.argument("email")(command))
    return wrap


def _with_password(change: Callable[[Session, str, str], object], email: str, password_stdin: bool) -> None:
    """Read a password (prompted twice, or one line of stdin) and apply an account change with it."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else click.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    with db.factory()() as session:
        try:
            change(session, email, password)
        except accounts.AccountError as exc:
            raise click.ClickException(str(exc)) from exc


@_password_command("create")
def admin_create(email: str, password_stdin: bool) -> None:
    """Create an admin account."""
    _with_password(accounts.create_admin, email, password_stdin)
    click.echo(f"Created admin {email.strip().lower()}.")


@_password_command("set-password")
def admin_set_password(email: str, password_stdin: bool) -> None:
    """Change an admin's password."""
    _with_password(accounts.set_password, email, password_stdin)
    click.echo(f"Password changed for {email.strip().lower()}.")


@admin_cli.command("list")
def admin_list() -> None:
    """List admin accounts."""
    with db.factory()() as session:
        admins = accounts.list_admins(session)
    for admin in admins:
        click.echo(f"{admin.email}\tcreated {admin.created_at:%Y-%m-%d %H:%M}")
    if not admins:
        click.echo("No admins yet: flask --app app admin create EMAIL")


listings_cli = AppGroup("listings", help="Listings that need an admin's look.")


@listings_cli.command("unmapped-genders")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def listings_unmapped_genders(as_json: bool) -> None:
    """List the listings (published or not) whose gender, as written, names no term: external id, name, text."""
    with db.factory()() as session:
        rows = [{"external_id": listing.external_id, "name": listing.name, "gender": listing.gender_unmapped}
                for listing in session.scalars(unmapped_genders())]
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    for row in rows:
        click.echo("\t".join((row["external_id"], row["name"], row["gender"])))
    # On stderr: the rows stay a clean tab-separated list for another program.
    terms = ", ".join(vocabulary.slugs("gender"))
    click.echo(f"{len(rows)} listing{'' if len(rows) == 1 else 's'} with a gender that names none of {terms}: kept as "
               "written and shown on the profile, but not a filter; the admin's edit form can choose a term.",
               err=True)


def init_app(app: Flask) -> None:
    """Register the commands."""
    app.cli.add_command(index_cli)
    app.cli.add_command(db_cli)
    app.cli.add_command(sample_cli)
    app.cli.add_command(import_csv)
    app.cli.add_command(export_csv)
    app.cli.add_command(prepare)
    app.cli.add_command(worker)
    app.cli.add_command(tick)
    app.cli.add_command(confirmations_cli)
    app.cli.add_command(admin_cli)
    app.cli.add_command(listings_cli)
