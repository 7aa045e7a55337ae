"""Imports under stress: killed with SIGKILL at several moments, run side by side, searched while they run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directory.imports.lock import import_lock
from directory.imports.pipeline import run_import
from directory.imports.report import ImportMode
from directory.models import ImportRun, Listing
from directory.search.index.storage import PARALLEL_BATCH
from helpers import GOOD, REPO, flask_env, make_csv

ROWS = 3000


def _import_process(app: Flask, path: Path) -> subprocess.Popen[bytes]:
    # A session of its own, so that every process it starts (forkserver, resource tracker, index workers) shares its
    # process group and can be found after it died.
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "import-csv", str(path)],
                            cwd=REPO, env=flask_env(app), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _file(tmp_path: Path, session: Session, rows_count: int = ROWS) -> tuple[Path, set[str]]:
    """New rows, plus an edit of 200 existing listings: the database must show all of it or none of it."""
    existing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id).limit(200)).all()
    rows = [{**GOOD, "external_id": f"kill-{i}", "name": f"Killtest {i}"} for i in range(rows_count)]
    rows += [{**GOOD, "external_id": listing.external_id, "name": f"Renamed {listing.id}"} for listing in existing]
    path = tmp_path / "big.csv"
    path.write_text(make_csv(rows), encoding="utf-8")
    return path, {listing.external_id for listing in existing}


def _state(session: Session, edited: set[str]) -> tuple[int, int]:
    session.expire_all()
    created = session.scalar(select(func.count()).where(Listing.external_id.like("kill-%"))) or 0
    renamed = session.scalar(select(func.count()).where(Listing.external_id.in_(edited),
                                                        Listing.name.like("Renamed %"))) or 0
    return created, renamed


# 3,000 rows are written in this process; 6,000 (with the 200 edits, above PARALLEL_BATCH) by the index workers too.
@pytest.mark.parametrize("rows", [ROWS, PARALLEL_BATCH + 1000])
def test_sigkill_at_any_moment_leaves_before_or_after_and_check_repairs(
    app: Flask, session: Session, runner: FlaskCliRunner, tmp_path: Path, rows: int
) -> None:
    path, edited = _file(tmp_path, session, rows)
    started = time.monotonic()
    _import_process(app, tmp_path / "missing.csv").communicate(timeout=60)
    startup = time.monotonic() - started
    # Kill later and later until a kill lands after the commit: the kills sweep parsing, writing and indexing.
    outcomes = []
    for step in range(40):
        process = _import_process(app, path)
        time.sleep(startup * 0.8 + 0.3 * step * rows / ROWS)
        process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        # Nothing it started may hold its output open, or live on: a caller waiting for the output would hang.
        process.communicate(timeout=10)
        while _group_alive(process.pid) and time.monotonic() - killed < 10:
            time.sleep(0.1)
        assert not _group_alive(process.pid), f"processes of the killed import still run: step {step}"
        after = _state(session, edited)
        assert after in ((0, 0), (rows, len(edited))), f"half an import is in the database: {after}"
        outcomes.append(after)
        repair = runner.invoke(args=["index", "check", "--repair"])
        assert repair.exit_code == 0, repair.output
        assert runner.invoke(args=["index", "check"]).exit_code == 0
        if after != (0, 0):
            break
    assert outcomes.count((0, 0)) >= 2 and outcomes[-1] == (rows, len(edited)), outcomes
    finished = _import_process(app, path)
    output = finished.communicate(timeout=120)[0].decode()
    assert finished.returncode == 0, output
    assert _state(session, edited) == (rows, len(edited))
    assert runner.invoke(args=["index", "check"]).exit_code == 0
    body = app.test_client().get("/api/v1/search", query_string={"q": "Killtest", "per_page": 1}).get_json()
    assert body["total"] == rows
    statuses = [r.status for r in session.scalars(select(ImportRun).order_by(ImportRun.id))]
    assert statuses[-1] == "done" and set(statuses[:-1]) <= {"interrupted", "done"}


def test_two_imports_at_once_one_runs_the_other_is_told_who_runs(app: Flask, session: Session, tmp_path: Path) -> None:
    path, _ = _file(tmp_path, session)
    processes = [_import_process(app, path) for _ in range(2)]
    results = sorted((p.wait(120), p.communicate(timeout=30)[0].decode()) for p in processes)
    (ok_code, ok_output), (busy_code, busy_output) = results
    assert ok_code == 0 and "created           3000" in ok_output, ok_output
    assert busy_code == 1 and "An import is running (started by cli at" in busy_output, busy_output
    assert "Traceback" not in busy_output and "LockError" not in busy_output


def test_searches_see_the_old_listings_until_the_import_commits(app: Flask, session: Session, tmp_path: Path) -> None:
    path, _ = _file(tmp_path, session)
    client = app.test_client()
    old_total = client.get("/api/v1/search").get_json()["total"]
    seen: set[int] = set()
    failures: list[str] = []
    done = threading.Event()

    def search() -> None:
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            response = client.get("/api/v1/search", query_string={"q": "Killtest", "per_page": 1})
            if response.status_code != 200:
                failures.append(response.get_data(as_text=True)[:200])
            else:
                seen.add(response.get_json()["total"])
            time.sleep(0.05)  # leave the import most of the GIL

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        report = run_import(app.extensions["db"], path, filename="big.csv", mode=ImportMode(),
                            actor="test", lock=import_lock(app))
    finally:
        time.sleep(0.2)
        done.set()
        searcher.join()
    assert report.written and not failures
    assert seen <= {0, ROWS} and ROWS in seen and 0 in seen
    assert client.get("/api/v1/search").get_json()["total"] == old_total + ROWS
