"""Periodic jobs: `tick` starts each job of SCHEDULE that is due by the app's clock (config NOW), through
`jobs.submit` (on the queue with Redis, in a thread without), after sweeping abandoned jobs. Each job's last start is
claimed in the database, so however many processes tick (a Ticker thread in every serving process, or cron running
`flask --app app tick`), a job starts once per interval."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable

from flask import Flask, current_app
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from directory import db, jobs
from directory.background import BackgroundThread
from directory.confirmations.requests import ask_due
from directory.imports.uploads import Uploads
from directory.models import PeriodicJobRun
from directory.search import change_log

log = logging.getLogger(__name__)


def prune_uploads() -> None:
    """Delete the import uploads that nobody confirmed within their retention."""
    Uploads(db.factory()).prune()


def prune_change_log() -> None:
    """Delete the change log's rows older than CHANGE_LOG_RETENTION_DAYS."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    with db.factory()() as session:
        change_log.prune(session, app.config["NOW"]() - dt.timedelta(days=app.config["CHANGE_LOG_RETENTION_DAYS"]))


@dataclasses.dataclass(frozen=True)
class PeriodicJob:
    """A job started every `every`, allowed `timeout` seconds."""

    name: str
    every: dt.timedelta
    run: Callable[[], None]
    timeout: int


SCHEDULE = (
    PeriodicJob("prune-uploads", dt.timedelta(hours=1), prune_uploads, timeout=300),
    PeriodicJob("ask-due-listings", dt.timedelta(hours=1), ask_due, timeout=600),
    PeriodicJob("prune-change-log", dt.timedelta(hours=1), prune_change_log, timeout=600),
)


def tick(app: Flask) -> list[tuple[str, threading.Thread | None]]:
    """Sweep abandoned jobs, then start the periodic jobs that are due: each one's name, and its thread in the
    in-process mode (None when queued)."""
    now = app.config["NOW"]()
    with app.app_context():
        jobs.sweep(app)
        return [(job.name, jobs.submit(job.run, timeout=job.timeout))
                for job in SCHEDULE if _claim(db.factory(app), job, now)]


def _claim(factory: sessionmaker[Session], job: PeriodicJob, now: dt.datetime) -> bool:
    """Record that `job` starts at `now` if it is due: whether this process is the one to start it."""
    with factory() as session:
        # Concurrent tickers: the row lock (PostgreSQL) or the write lock (SQLite) lets one UPDATE match.
        claimed = session.execute(update(PeriodicJobRun)
                                  .where(PeriodicJobRun.name == job.name, PeriodicJobRun.last_run_at <= now - job.every)
                                  .values(last_run_at=now))
        if claimed.rowcount:  # type: ignore[attr-defined]
            session.commit()
            return True
        if session.get(PeriodicJobRun, job.name) is not None:
            return False
        session.add(PeriodicJobRun(name=job.name, last_run_at=now))
        try:
            session.commit()
        except IntegrityError:  # another process started it first
            return False
        return True


class Ticker(BackgroundThread):
    """A daemon thread that ticks every `seconds` (config TICK_SECONDS) while its process serves."""

    def __init__(self, app: Flask, seconds: float) -> None:
        super().__init__("ticker")
        self._app = app
        self._seconds = seconds

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self._seconds):
            try:
                tick(self._app)
            except Exception:
                # Once per outage (Redis or the database down), not every few seconds.
                if not failing:
                    log.exception("periodic jobs could not start; trying again every %g s", self._seconds)
                failing = True
            else:
                failing = False
