"""Background jobs: a web import queued on Redis and run by a real worker process (`flask worker`), the run page
saying so at each step; the Redis server is the local one (CI has it too), and each test has a queue of its own."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directory.models import ImportRun, Listing
from helpers import GOOD, REPO, confirm, flask_env, make_csv, upload, wait_for_run

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture()
def queued_app(app: Flask) -> Iterator[Flask]:
    """The app with its background jobs on a Redis queue of this test's own."""
    app.config.update(REDIS_URL=REDIS_URL, JOB_QUEUE=f"test-{uuid.uuid4().hex}")
    yield app
    Queue(app.config["JOB_QUEUE"], connection=Redis.from_url(REDIS_URL)).delete(delete_jobs=True)


def test_a_web_import_waits_in_the_queue_until_a_worker_process_runs_it(
        queued_app: Flask, admin_client: FlaskClient, session: Session) -> None:
    rows = [{**GOOD, "external_id": f"queued-{n}", "name": f"Queuewell {n}"} for n in range(40)]
    run_id = confirm(admin_client, upload(admin_client, make_csv(rows)))
    assert session.get(ImportRun, run_id).status == "queued"
    page = admin_client.get(f"/admin/imports/{run_id}").get_data(as_text=True)
    assert "waiting for a background worker" in page
    assert len(Queue(queued_app.config["JOB_QUEUE"], connection=Redis.from_url(REDIS_URL))) == 1
    # The history settles a run whose process died once it is past its start-up grace: a queued one has no process
    # yet, however long it waits.
    session.get(ImportRun, run_id).started_at -= dt.timedelta(minutes=10)
    session.commit()
    admin_client.get("/admin/imports")
    session.expire_all()
    assert session.get(ImportRun, run_id).status == "queued"

    worker = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"], cwd=REPO,
                            env={**flask_env(queued_app), "REDIS_URL": REDIS_URL,
                                 "JOB_QUEUE": queued_app.config["JOB_QUEUE"]},
                            capture_output=True, text=True, timeout=180)
    assert worker.returncode == 0, worker.stderr[-3000:]
    run = wait_for_run(session, run_id)
    assert run.status == "done" and run.created == 40, (run.status, run.message)
    assert session.scalar(select(func.count()).where(Listing.external_id.like("queued-%"))) == 40
    assert "done" in admin_client.get(f"/admin/imports/{run_id}").get_data(as_text=True)
    found = queued_app.test_client().get("/api/v1/search", query_string={"q": "Queuewell"}).get_json()
    assert found["total"] == 40


def test_the_worker_command_says_what_it_needs_without_redis(app: Flask) -> None:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "worker", "--burst"], cwd=REPO,
                            env={**flask_env(app), "REDIS_URL": ""}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "REDIS_URL is not set" in result.stderr
