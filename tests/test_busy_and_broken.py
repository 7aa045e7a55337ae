"""When the database is busy or the index cannot be written: nothing is lost, nobody waits past gunicorn's timeout,
and every message says what happened and what to do."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from directory.imports.lock import import_lock
from directory.imports.report import ImportMode
from directory.imports.runs import record_run
from directory.models import AuditEvent, ImportRun, Listing
from helpers import ADMIN_EMAIL, ADMIN_PASSWORD, GOOD, csrf_token, held_in_thread, make_csv, on_postgresql


@contextlib.contextmanager
def _writer_transaction(engine: Engine) -> Iterator[None]:
    """A transaction holding what a big import holds for its whole write phase: SQLite's one writer, or on
    PostgreSQL every listing's row."""
    with engine.connect() as connection:
        if on_postgresql():
            connection.execute(text("UPDATE listings SET name = name"))
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        connection.rollback()


@pytest.fixture()
def writer_held(app: Flask) -> Iterator[threading.Event]:
    """A writer transaction held in another thread, as a big import's would be. Set the event to let go."""
    engine = create_engine(app.config["DATABASE_URL"])
    try:
        with held_in_thread(_writer_transaction(engine)) as release:
            yield release
    finally:
        engine.dispose()


RELOADS = '<script src="/static/progress.js" defer></script>'  # a running import's page reloads itself


def _sign_in(client: FlaskClient) -> tuple[int, float]:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    started = time.monotonic()
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    return response.status_code, time.monotonic() - started


def test_a_sign_in_during_an_import_answers_at_once_and_its_event_is_kept(
    app: Flask, admin_client: FlaskClient, session: Session, writer_held: threading.Event
) -> None:
    # Item 4: a sign-in writes an audit event; on SQLite a big import holds the only writer for tens of seconds.
    status, seconds = _sign_in(app.test_client())
    assert status == 302 and seconds < 2, (status, seconds)
    writer_held.set()
    time.sleep(0.5)
    events = admin_client.get("/admin/audit").get_data(as_text=True)  # moves spooled events into the table
    session.expire_all()
    logins = session.scalars(select(AuditEvent).where(AuditEvent.action == "login")).all()
    assert len(logins) == 2, events[:500]  # the admin_client's own sign-in, and this one
    spool = Path(app.instance_path) / "audit-spool.jsonl"
    assert not spool.exists() or not spool.read_text().strip()


def test_an_edit_during_an_import_is_told_to_retry_before_gunicorns_timeout(
    admin_client: FlaskClient, session: Session, writer_held: threading.Event
) -> None:
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    assert listing is not None
    page = admin_client.get(f"/admin/listings/{listing.id}/edit").get_data(as_text=True)
    started = time.monotonic()
    response = admin_client.post(f"/admin/listings/{listing.id}/publish",
                                 data={"csrf_token": csrf_token(page), "published": "0"})
    waited = time.monotonic() - started
    assert response.status_code == 503 and 9 < waited < 20, (response.status_code, waited)
    assert "busy writing an import" in response.get_data(as_text=True)
    writer_held.set()
    session.expire_all()
    assert session.get(Listing, listing.id).published  # nothing was saved, as the page said


def _full_disk(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_edit_the_index_cannot_take_is_saved_and_the_admin_told(
    app: Flask, admin_client: FlaskClient, session: Session, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Item 5: before, the error page (a 500), and the error handler itself raised rolling back a committed session.
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    assert listing is not None
    index = app.extensions["search"]
    monkeypatch.setattr(index, "write", _full_disk)
    page = admin_client.get(f"/admin/listings/{listing.id}/edit").get_data(as_text=True)
    response = admin_client.post(f"/admin/listings/{listing.id}/publish",
                                 data={"csrf_token": csrf_token(page), "published": "0"}, follow_redirects=True)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "search does not show the change yet" in body
    assert "No space left on device" in body and "index status" in body
    session.expire_all()
    assert not session.get(Listing, listing.id).published
    monkeypatch.undo()
    assert runner.invoke(args=["index", "check"]).exit_code == 1
    assert runner.invoke(args=["index", "follow", "--once"]).exit_code == 0  # what a follower does, once
    assert runner.invoke(args=["index", "check"]).exit_code == 0


@pytest.mark.parametrize("broken", ["disk full", "read-only index folder"])
def test_an_import_the_index_cannot_take_is_committed_and_says_so(
    app: Flask, session: Session, runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    broken: str
) -> None:
    # Item 5: before, a 105-line traceback and a run left at "indexing" (later "interrupted"), or "running".
    index = app.extensions["search"]
    if broken == "disk full":
        monkeypatch.setattr(index, "begin_write", _full_disk)
        monkeypatch.setattr(index, "write", _full_disk)
    else:
        def read_only(*_args: object, **_kwargs: object) -> None:
            raise PermissionError(errno.EACCES, "Permission denied", str(index.root / ".write.lock"))

        monkeypatch.setattr(index, "write_lock", read_only)
    rows = [{**GOOD, "external_id": f"full-{i}", "name": f"Fullerton {i}"} for i in range(30)]
    path = tmp_path / "full.csv"
    path.write_text(make_csv(rows), encoding="utf-8")
    result = runner.invoke(args=["import-csv", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "the rows were written, but the search index could not take them" in result.output
    assert "the index follower writes them from the change log" in result.output
    session.expire_all()
    assert len(session.scalars(select(Listing).where(Listing.external_id.like("full-%"))).all()) == 30
    run = session.scalars(select(ImportRun).order_by(ImportRun.id.desc())).first()
    assert run is not None and run.status == "done" and "the index follower writes them" in run.message
    monkeypatch.undo()
    assert runner.invoke(args=["index", "follow", "--once"]).exit_code == 0
    body = app.test_client().get("/api/v1/search", query_string={"q": "Fullerton", "per_page": 1}).get_json()
    assert body["total"] == 30


def test_a_web_import_whose_process_died_is_shown_as_failed(app: Flask, admin_client: FlaskClient,
                                                            session: Session) -> None:
    # Item 11: the worker running it was killed; its run said "running" (and its page reloaded) for ever.
    dead, alive, young = (record_run(session, sha256="0" * 64, size=1, filename=name, mode=ImportMode(),
                                     actor="someone@example.org") for name in ("dead.csv", "alive.csv", "young.csv"))
    long_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
    dead.started_at = alive.started_at = long_ago
    session.commit()
    page = admin_client.get(f"/admin/imports/{dead.id}").get_data(as_text=True)
    assert "stopped before writing anything" in page and RELOADS not in page
    # A run whose import holds the lock (it is running) and one too young to hold it yet stay as they are.
    with import_lock(app).held("someone@example.org"):
        page = admin_client.get(f"/admin/imports/{alive.id}").get_data(as_text=True)
        assert RELOADS in page and 'http-equiv="refresh"' not in page  # no meta refresh (WCAG 2.2.1)
    assert RELOADS in admin_client.get(f"/admin/imports/{young.id}").get_data(as_text=True)
    session.expire_all()
    assert [session.get(ImportRun, r.id).status for r in (dead, alive, young)] == ["failed", "running", "running"]
    history = admin_client.get("/admin/imports").get_data(as_text=True)
    assert re.search(r"dead\.csv.*?failed", history, re.S)
