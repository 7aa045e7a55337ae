"""Background jobs: on Redis through RQ when REDIS_URL is set, run by `flask --app app worker`; without it, in a
thread of the process that asks (the embedded default, which needs no other service). `submit` is the one place
that decides; a job is the same plain function either way, run in the app's context with picklable arguments."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from directory import db
from directory.imports.lock import ImportLock
from directory.imports.report import ImportMode
from directory.imports.uploads import Uploads, run_uploaded_import


def import_timeout(size_bytes: int) -> int:
    """Seconds an import job may run: ten minutes, and a minute more per MB of its file (a 100k-row file is 73 MB
    and took six minutes into PostgreSQL on the development machine, one into SQLite). RQ's default is 180 s."""
    return 600 + 60 * size_bytes // 1_000_000


def submit(job: Callable[..., None], *, timeout: int, **kwargs: Any) -> str:
    """Run `job(**kwargs)` in the background: queued on Redis when REDIS_URL is set, else in a thread here.
    Returns where: "queue" or "thread"."""
    if current_app.config["REDIS_URL"]:
        from redis import Redis
        from rq import Queue

        queue = Queue(current_app.config["JOB_QUEUE"], connection=Redis.from_url(current_app.config["REDIS_URL"]))
        queue.enqueue(job, kwargs=kwargs, job_timeout=timeout)
        return "queue"
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_context() -> None:
        with app.app_context():
            job(**kwargs)

    threading.Thread(target=in_context, daemon=True, name=job.__name__).start()
    return "thread"


def import_upload(path: Path, *, filename: str, mode: ImportMode, actor: str, run_id: int) -> None:
    """The job of a confirmed web import: run it to its end (recorded as `run_id`) and delete its upload."""
    instance = current_app.instance_path
    run_uploaded_import(db.factory(), Uploads(instance), path, filename=filename, mode=mode, actor=actor,
                        run_id=run_id, lock=ImportLock(instance))


def work(app: Flask, burst: bool) -> None:
    """Run jobs from the app's queue until stopped (or, `burst`, until it is empty); in the main thread, since the
    worker handles signals."""
    from redis import Redis
    from rq import Worker

    # Each job runs in a process forked from this one: none may share this one's database connections.
    db.engine(app).dispose()
    with app.app_context():
        Worker([app.config["JOB_QUEUE"]], connection=Redis.from_url(app.config["REDIS_URL"])).work(burst=burst)
