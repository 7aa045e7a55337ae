"""Background jobs: on Redis through RQ when REDIS_URL is set, run by `flask --app app worker`; without it, in a
thread of the process that asks (the embedded default, which needs no other service). `submit` is the one place
that decides; a job is the same plain function either way, run in the app's context with picklable arguments.

A worker whose whole process tree dies (SIGKILL, a machine lost) leaves its job "started" in Redis. RQ notices only
when the job's heartbeat expires, a minute after the last one by its own rule, at its maintenance every ten minutes;
`sweep` (each tick, and whenever an admin looks at imports or jobs) instead fails a started job whose worker sent no
heartbeat for ABANDONED_AFTER seconds, and settles its import run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory import db
from directory.imports.lock import import_lock
from directory.imports.report import ImportMode
from directory.imports.runs import STARTUP_GRACE, UNFINISHED, finish, mark_failed
from directory.imports.uploads import Uploads, run_uploaded_import
from directory.models import ImportRun, utcnow

if TYPE_CHECKING:
    from rq import Queue

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5  # how often a worker says it still runs its job (RQ's default is 30)
ABANDONED_AFTER = 20  # seconds without a heartbeat after which a started job is failed: four missed heartbeats


def import_timeout(size_bytes: int) -> int:
    """Seconds an import job may run: ten minutes, and a minute more per MB of its file (a 100k-row file is 73 MB
    and took six minutes into PostgreSQL on the development machine, one into SQLite). RQ's default is 180 s."""
    return 600 + 60 * size_bytes // 1_000_000


def import_job_id(run_id: int) -> str:
    """A new queue id for the job of import run `run_id`, recorded on the run: unique, since one Redis may serve
    several databases (and outlive one), and RQ's job ids are global."""
    return f"import-{run_id}-{uuid.uuid4().hex}"


def submit(job: Callable[..., None], *, timeout: int, job_id: str | None = None, retry: Sequence[int] = (),
           **kwargs: Any) -> threading.Thread | None:
    """Run `job(**kwargs)` in the background: queued on Redis when REDIS_URL is set, else in a thread here (which
    is returned). A job that raises is run again after each of the `retry` waits (seconds) in turn."""
    if current_app.config["REDIS_URL"]:
        from rq import Retry

        # RQ schedules a retry in whole seconds and may start it up to a second early: one more keeps each wait.
        waits = [wait + 1 for wait in retry]
        queue(current_app).enqueue(job, kwargs=kwargs, job_timeout=timeout, job_id=job_id,
                                   retry=Retry(max=len(waits), interval=waits) if waits else None)
        return None
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    thread = threading.Thread(target=_run_in_thread, args=(app, job, kwargs, list(retry)), daemon=True,
                              name=job.__name__)
    thread.start()
    return thread


def _run_in_thread(app: Flask, job: Callable[..., None], kwargs: dict[str, Any], waits: list[int]) -> None:
    """A job of the in-process mode, with its retries: a retry waiting here is lost if the process ends."""
    with app.app_context():
        for wait in [*waits, None]:
            try:
                job(**kwargs)
                return
            except Exception:
                if wait is None:
                    log.exception("job %s failed; no retries left", job.__name__)
                    return
                log.warning("job %s failed; retrying in %d s", job.__name__, wait, exc_info=True)
                time.sleep(wait)


def queue(app: Flask) -> Queue:
    """The app's job queue on Redis (REDIS_URL must be set)."""
    from redis import Redis
    from rq import Queue

    return Queue(app.config["JOB_QUEUE"], connection=Redis.from_url(app.config["REDIS_URL"]))


def import_upload(digest: str, *, filename: str, mode: ImportMode, actor: str, run_id: int) -> None:
    """The job of a confirmed web import: run it to its end (recorded as `run_id`) and delete its upload. Only a run
    that is queued, or failed (an admin's retry), is run: never one that wrote its rows or is running (in a thread,
    the run is recorded running by the request that starts the thread)."""
    with db.factory()() as session:
        run = session.get(ImportRun, run_id)
        if run is None or run.status not in (("queued", "failed") if run.job_id else ("running",)):
            log.warning("import job of run %s not run: the run is %s", run_id, run.status if run else "gone")
            return
    run_uploaded_import(db.factory(), Uploads(db.factory()), digest, filename=filename, mode=mode, actor=actor,
                        run_id=run_id, lock=import_lock(current_app))


def sweep(app: Flask) -> None:
    """Fail the started jobs whose worker went silent, and settle the import runs whose job failed or, queued, is
    gone from Redis (emptied, or restarted without its data); no-op without Redis."""
    if not app.config["REDIS_URL"]:
        return
    jobs = queue(app)
    _fail_silent_jobs(jobs)
    with db.factory(app)() as session:
        for run in session.scalars(select(ImportRun).where(ImportRun.status.in_(("queued", *UNFINISHED)),
                                                           ImportRun.job_id != "")):
            job = jobs.fetch_job(run.job_id)
            if job is not None and job.get_status() == "failed":
                _settle(session, run)
            elif job is None and run.status == "queued" and utcnow() - run.started_at > STARTUP_GRACE:
                # (Younger, its job may not be queued yet.)
                mark_failed(session, run, "Its job is gone from the queue (Redis lost it): nothing was written. "
                                          "Upload the file again.")


def _fail_silent_jobs(jobs: Queue) -> None:
    """Fail (or retry, when it has retries left) each started job whose execution sent no heartbeat for
    ABANDONED_AFTER seconds, as RQ's own cleanup does a minute later."""
    from rq.executions import Execution
    from rq.job_lifecycle import record_job_failure
    from rq.registry import StartedJobRegistry

    registry = StartedJobRegistry(queue=jobs)
    silent_since = time.time() - ABANDONED_AFTER
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        try:
            heard = Execution.fetch(execution_id, job_id, jobs.connection).last_heartbeat.timestamp()
        except ValueError:  # its record expired with its last heartbeat's TTL: long silent
            heard = 0.0
        if heard >= silent_since:
            continue
        job = jobs.fetch_job(job_id)
        with jobs.connection.pipeline() as pipeline:
            pipeline.zrem(registry.key, f"{job_id}:{execution_id}")
            if job is not None and job.get_status() == "started":
                if job.retries_left:
                    job.retry(jobs, pipeline)
                else:
                    record_job_failure(job, f"AbandonedJobError: its worker sent no heartbeat for {ABANDONED_AFTER} "
                                            "s (killed, or its machine lost)", pipeline)
            pipeline.execute()


def _settle(session: Session, run: ImportRun) -> None:
    """Record how a run whose job failed ended: written (it had committed its rows) or failed."""
    if run.status == "indexing":
        # Its rows are in the database; the index follower writes them. Done, so that no one retries it.
        finish(session, run, "done", "The rows were written; the worker running it stopped while indexing them, "
                                     "and the index follower writes them from the change log.")
    else:
        mark_failed(session, run, "The worker running it stopped (killed, or its machine lost) before anything "
                                  "was written.")


@dataclasses.dataclass(frozen=True)
class FailedJob:
    """A job that failed for good, as the admin area lists it."""

    id: str
    what: str
    failed_at: dt.datetime | None
    reason: str


def failed_jobs(app: Flask, limit: int = 200) -> list[FailedJob]:
    """The failed jobs kept on Redis, newest first (none without Redis: in-process jobs are only logged)."""
    if not app.config["REDIS_URL"]:
        return []
    from rq.registry import FailedJobRegistry

    jobs = queue(app)
    found = []
    for job_id in FailedJobRegistry(queue=jobs).get_job_ids(0, limit - 1, desc=True, cleanup=False):
        if (job := jobs.fetch_job(job_id)) is None:
            continue
        try:
            what = (job.func_name or "").rsplit(".", 1)[-1].replace("_", " ")
            result = job.latest_result()
            trace = ((result.exc_string or "") if result is not None else "").strip()
        except Exception as exc:  # its arguments no longer load (code changed since): listed, to be discarded
            what, trace = "(unreadable job)", f"{type(exc).__name__}: {exc}"
        found.append(FailedJob(job.id, what, job.ended_at, trace.splitlines()[-1] if trace else "no reason kept"))
    return found


def retry_failed(app: Flask, job_id: str) -> bool:
    """Queue a failed job again; False when there is no such failed job."""
    from rq.exceptions import InvalidJobOperation, NoSuchJobError
    from rq.registry import FailedJobRegistry

    try:
        FailedJobRegistry(queue=queue(app)).requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError):
        return False
    return True


def discard_failed(app: Flask, job_id: str) -> bool:
    """Delete a failed job; False when there is no such failed job."""
    from rq.registry import FailedJobRegistry

    jobs = queue(app)
    registry = FailedJobRegistry(queue=jobs)
    if (job := jobs.fetch_job(job_id)) is None or job_id not in registry:
        return False
    registry.remove(job, delete_job=True)
    return True


def work(app: Flask, burst: bool) -> None:
    """Run jobs from the app's queue until stopped (or, `burst`, until it is empty), with the scheduler that
    queues retries when their wait is over; in the main thread, since the worker handles signals."""
    from redis import Redis
    from rq import Worker

    class AppWorker(Worker):
        def main_work_horse(self, *args: Any, **kwargs: Any) -> None:
            # Each job runs in a process forked from this one: it must not use this one's pooled connections.
            db.engine(app).dispose(close=False)
            super().main_work_horse(*args, **kwargs)

    db.engine(app).dispose()
    with app.app_context():
        AppWorker([app.config["JOB_QUEUE"]], connection=Redis.from_url(app.config["REDIS_URL"]),
                  job_monitoring_interval=HEARTBEAT_SECONDS).work(burst=burst, with_scheduler=True)
