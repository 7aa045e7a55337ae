"""Command-line commands: `flask --app app index rebuild|check`, `flask --app app sample load`."""

from __future__ import annotations

import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from directory import sample
from directory.search import current_index
from directory.search.index import IndexBusy, RebuildFailed
from directory.search.sync import check, rebuild, repair_changes

index_cli = AppGroup("index", help="Build and check the search index.")
sample_cli = AppGroup("sample", help="Fictional sample listings.")


@index_cli.command("rebuild")
def index_rebuild() -> None:
    """Build a new index from the database beside the live one, verify it, and switch to it."""
    started = time.monotonic()
    try:
        count = rebuild(current_app.extensions["db"], current_index())
    except (RebuildFailed, IndexBusy) as exc:
        raise click.ClickException(f"rebuild failed, live index unchanged: {exc}") from exc
    click.echo(f"Rebuilt the index: {count} listings in {time.monotonic() - started:.1f} s.")


@index_cli.command("check")
@click.option("--repair", is_flag=True, help="Write missing and stale listings and remove extra ones.")
def index_check(repair: bool) -> None:
    """Report listings missing from, extra in, or stale in the index; exit 1 when there is drift."""
    index = current_index()
    with current_app.extensions["db"]() as session:
        drift = check(session, index)
        click.echo(f"missing: {len(drift.missing)}  extra: {len(drift.extra)}  stale: {len(drift.stale)}")
        for label, ids in (("missing", drift.missing), ("extra", drift.extra), ("stale", drift.stale)):
            if ids:
                click.echo(f"  {label} listing ids: {', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}")
        if drift.unplaceable:
            click.echo(f"  {len(drift.unplaceable)} published listings have no usable location and are not searchable.")
        if drift.clean:
            click.echo("The index matches the database.")
            return
        if repair:
            index.apply(*repair_changes(session, drift))
            click.echo("Repaired.")
            return
    raise SystemExit(1)


@sample_cli.command("load")
@click.option("--count", default=2000, show_default=True, help="How many listings to generate.")
def sample_load(count: int) -> None:
    """Load fictional sample listings into an empty database."""
    added = sample.load_if_empty(current_app.extensions["db"], count)
    click.echo(f"Loaded {added} sample listings." if added else "The database already has listings; nothing loaded.")


def init_app(app: Flask) -> None:
    """Register the command groups."""
    app.cli.add_command(index_cli)
    app.cli.add_command(sample_cli)
