"""Periodic jobs: due by the app's clock (fixed here), started once per interval however many processes tick, in a
thread without Redis and on the queue with it; seen through the one that deletes uploads nobody confirmed within a
day (the other, asking listings to confirm, has its own tests and nothing to ask here: there are no listings)."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import delete

from directory import db, jobs, periodic
from directory.imports.uploads import UPLOAD_RETENTION
from directory.models import PendingUpload, utcnow
from helpers import REPO, flask_env, kill_tree, start_worker

NOON = dt.datetime(2026, 12, 1, 12, 0)
EVERY_JOB = [job.name for job in periodic.SCHEDULE]


@pytest.fixture()
def app(empty_app: Flask) -> Flask:
    """An app with no listings."""
    return empty_app


def _uploads(app: Flask) -> tuple[str, str]:
    """An upload kept longer than the retention and a fresh one, in the app's database: their digests."""
    old, fresh = "a" * 64, "b" * 64
    with db.factory(app)() as session:
        session.execute(delete(PendingUpload))
        for digest, kept_at in ((old, utcnow() - UPLOAD_RETENTION - dt.timedelta(minutes=1)), (fresh, utcnow())):
            session.add(PendingUpload(digest=digest, data=b"external_id\n", errors_csv="", kept_at=kept_at,
                                      confirmed=False))
        session.commit()
    return old, fresh


def _kept(app: Flask, digest: str) -> bool:
    """Whether the upload with this digest is still kept."""
    with db.factory(app)() as session:
        return session.get(PendingUpload, digest) is not None


def _tick_at(app: Flask, now: dt.datetime) -> list[str]:
    """Tick with the app's clock at `now`, waiting for what it starts in threads; the names started."""
    app.config["NOW"] = lambda: now
    started = periodic.tick(app)
    for _name, thread in started:
        if thread is not None:
            thread.join(30)
    return [name for name, _thread in started]


def test_without_redis_a_due_job_runs_in_a_thread_once_per_interval_by_the_apps_clock(app: Flask) -> None:
    old, fresh = _uploads(app)
    assert _tick_at(app, NOON) == EVERY_JOB
    assert not _kept(app, old) and _kept(app, fresh)
    old, _fresh = _uploads(app)
    assert _tick_at(app, NOON + dt.timedelta(minutes=59)) == []  # not due: an hour between runs
    assert _kept(app, old)
    assert _tick_at(app, NOON + dt.timedelta(hours=1)) == EVERY_JOB
    assert not _kept(app, old)


def test_with_redis_a_due_job_is_queued_and_a_worker_runs_it(queued_app: Flask, tmp_path: Path) -> None:
    old, fresh = _uploads(queued_app)
    assert _tick_at(queued_app, NOON) == EVERY_JOB
    assert _kept(queued_app, old) and len(jobs.queue(queued_app)) == len(EVERY_JOB)  # queued, not run here
    assert _tick_at(queued_app, NOON + dt.timedelta(minutes=30)) == []
    worker = start_worker(queued_app, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while _kept(queued_app, old) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        kill_tree(worker)
    assert not _kept(queued_app, old) and _kept(queued_app, fresh)


def test_eight_threads_ticking_at_the_same_moment_start_a_due_job_once(app: Flask) -> None:
    old, _fresh = _uploads(app)
    app.config["NOW"] = lambda: NOON
    start = threading.Barrier(8)

    def tick() -> list[tuple[str, threading.Thread | None]]:
        start.wait(10)
        return periodic.tick(app)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ticked = [started for ticks in pool.map(lambda _: tick(), range(8)) for started in ticks]
    for _name, thread in ticked:  # the jobs end before the app closes (their connections with them)
        if thread is not None:
            thread.join(60)
    assert sorted(name for name, _thread in ticked) == sorted(EVERY_JOB)


def test_four_processes_ticking_at_once_start_a_due_job_once(app: Flask) -> None:
    old, _fresh = _uploads(app)
    env = {**flask_env(app), "TICK_SECONDS": "0"}
    ticks = [subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "tick"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    said = [tick.communicate(timeout=120) for tick in ticks]
    assert all(tick.returncode == 0 for tick in ticks), said
    # Each job is claimed on its own: two processes may share the jobs out, but each job starts once.
    started = [name for out, _err in said if out.strip() != "Started: nothing was due."
               for name in out.strip().removeprefix("Started: ").removesuffix(".").split(", ")]
    assert sorted(started) == sorted(EVERY_JOB), said
    assert not _kept(app, old)
