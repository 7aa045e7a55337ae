"""`flask --app app confirmations send`: queue confirmation emails from the command line."""

from __future__ import annotations

import datetime as dt
import json

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Select, func, select

from directory import db
from directory.confirmations import requests
from directory.models import Listing

confirmations_cli = AppGroup("confirmations", help="Emails asking therapists to confirm their listings.")


@confirmations_cli.command("send")
@click.option("--stale-only", "which", flag_value="stale", default=True,
              help="Listings whose claim is older than STALE_AFTER_DAYS or never confirmed (the default).")
@click.option("--all", "which", flag_value="all", help="Every listing with an email address.")
@click.option("--older-than", type=click.IntRange(0, 36500), metavar="DAYS",
              help="Only claims confirmed more than DAYS days ago (or never).")
@click.option("--limit", type=click.IntRange(1), help="At most this many emails, the oldest claims first.")
@click.option("--dry-run", is_flag=True, help="Say how many would be sent; send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def send(which: str, older_than: int | None, limit: int | None, dry_run: bool, as_json: bool) -> None:
    """Queue one email per selected listing that has an address, did not unsubscribe, and was not asked within
    CONFIRMATION_INTERVAL_DAYS (without REDIS_URL, send them and wait)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if older_than is None and which == "stale":
        older_than = app.config["STALE_AFTER_DAYS"]
    today = app.config["CLOCK"]()
    cutoff = None if older_than is None else today - dt.timedelta(days=older_than)

    def count(query: Select[Listing]) -> int:
        return session.scalar(select(func.count()).select_from(query.limit(limit).subquery())) or 0

    with db.factory()() as session:
        due = requests.selection(today, cutoff, requests.interval_start(app))
        asked_lately = count(requests.selection(today, cutoff, None)) - count(due)
        if dry_run:
            emails = count(due)
        else:
            ids = requests.ask(session, app, due, limit)
            emails = len(ids)
            # In-process mode: this process sends them, so it waits (a retry may take MAIL_RETRY_WAITS).
            for thread in requests.queue_sending(app, ids):
                thread.join()
    counts = {"emails": emails, "skipped_asked_lately": asked_lately, "dry_run": dry_run}
    if as_json:
        click.echo(json.dumps(counts))
    else:
        click.echo(f"{'Would queue' if dry_run else 'Queued'} {emails} email(s); {asked_lately} listing(s) "
                   f"asked in the last {app.config['CONFIRMATION_INTERVAL_DAYS']} days were skipped.")
