"""Jobs that fail: retried after each of their waits, in both modes; one that fails for good is listed for the admin
with its reason, and the admin's retry runs it again (or the discard deletes it); a queue that cannot be reached is
said plainly, never a 500."""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory import jobs
from directory.models import AuditEvent, ImportRun
from helpers import GOOD, confirm_form, copy_world, csrf_token, kill_tree, make_csv, start_worker, upload, world_app
from job_fixtures import attempt_times, refuse_then_succeed

WAITS = (1, 3)  # seconds before the first and the second retry


def _attempts_after(path: Path, count: int, seconds: float) -> list[float]:
    """The attempts recorded in `path` once there are `count` of them; an AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while len(attempt_times(path)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    times = attempt_times(path)
    assert len(times) >= count, times
    return times


def _assert_backoff(times: list[float]) -> None:
    """Each retry came after its wait (and not much later: the scheduler looks every second)."""
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert len(gaps) == len(WAITS), gaps
    for gap, wait in zip(gaps, WAITS, strict=True):
        assert wait <= gap < wait + 4, (gaps, WAITS)


def test_a_job_refused_twice_is_retried_after_each_wait_by_the_worker_then_succeeds(
        queued_app: Flask, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    with queued_app.app_context():
        assert jobs.submit(refuse_then_succeed, timeout=30, retry=WAITS, path=str(attempts), refusals=2) is None
    worker = start_worker(queued_app, tmp_path / "worker.log")
    try:
        _assert_backoff(_attempts_after(attempts, 3, 60))
        time.sleep(1)  # a fourth attempt would have run by now
        assert len(attempt_times(attempts)) == 3
        assert jobs.failed_jobs(queued_app) == []
    finally:
        kill_tree(worker)


def test_without_redis_the_same_job_is_retried_in_its_thread(app: Flask, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    with app.app_context():
        thread = jobs.submit(refuse_then_succeed, timeout=30, retry=WAITS, path=str(attempts), refusals=2)
    assert thread is not None
    thread.join(30)
    _assert_backoff(attempt_times(attempts))


def test_a_job_that_always_fails_is_listed_with_its_reason_and_the_admins_retry_runs_it(
        queued_app: Flask, admin_client: FlaskClient, session: Session, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    with queued_app.app_context():
        jobs.submit(refuse_then_succeed, timeout=30, retry=WAITS[:1], path=str(attempts), refusals=3)
    worker = start_worker(queued_app, tmp_path / "worker.log")
    try:
        _attempts_after(attempts, 2, 60)
        deadline = time.monotonic() + 30
        while not jobs.failed_jobs(queued_app) and time.monotonic() < deadline:
            time.sleep(0.1)
        [failed] = jobs.failed_jobs(queued_app)
        assert failed.reason == "ConnectionRefusedError: attempt 2 refused" and failed.what == "refuse then succeed"
        page = admin_client.get("/admin/jobs").get_data(as_text=True)
        assert failed.id in page and "ConnectionRefusedError: attempt 2 refused" in page
        # The admin's retry runs it once more (its third attempt, refused again: back in the list with that reason).
        response = admin_client.post(f"/admin/jobs/{failed.id}/retry", data={"csrf_token": csrf_token(page)})
        assert response.status_code == 302
        _attempts_after(attempts, 3, 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and [job.reason for job in jobs.failed_jobs(queued_app)] != [
                "ConnectionRefusedError: attempt 3 refused"]:
            time.sleep(0.1)
        assert [job.reason for job in jobs.failed_jobs(queued_app)] == ["ConnectionRefusedError: attempt 3 refused"]
        # A fourth attempt succeeds: retried again, it finishes and leaves the list for good.
        page = admin_client.get("/admin/jobs").get_data(as_text=True)
        admin_client.post(f"/admin/jobs/{failed.id}/retry", data={"csrf_token": csrf_token(page)})
        job = jobs.queue(queued_app).fetch_job(failed.id)
        deadline = time.monotonic() + 30
        while job is not None and job.get_status() != "finished" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert job is not None and job.get_status() == "finished" and len(attempt_times(attempts)) == 4
        assert jobs.failed_jobs(queued_app) == []
    finally:
        kill_tree(worker)
    assert session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("job-%"))).all() == [
        "job-retry", "job-retry"]


def test_a_discarded_job_is_gone_and_unknown_jobs_are_404(
        queued_app: Flask, admin_client: FlaskClient, tmp_path: Path) -> None:
    with queued_app.app_context():
        jobs.submit(refuse_then_succeed, timeout=30, path=str(tmp_path / "attempts"), refusals=1)
    worker = start_worker(queued_app, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while not jobs.failed_jobs(queued_app) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        kill_tree(worker)
    [failed] = jobs.failed_jobs(queued_app)
    token = csrf_token(admin_client.get("/admin/jobs").get_data(as_text=True))
    assert admin_client.post(f"/admin/jobs/{failed.id}/discard", data={"csrf_token": token}).status_code == 302
    assert jobs.failed_jobs(queued_app) == [] and jobs.queue(queued_app).fetch_job(failed.id) is None
    for job_id in (failed.id, "no-such-job", f"{failed.id}:x", "a.b"):
        assert admin_client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": token}).status_code == 404


def test_an_unreachable_queue_is_said_plainly_and_the_run_is_not_left_queued(
        app: Flask, admin_client: FlaskClient, session: Session) -> None:
    preview = upload(admin_client, make_csv([{**GOOD, "external_id": "nowhere-1"}]))
    app.config.update(REDIS_URL="redis://127.0.0.1:1/0", JOB_QUEUE="unreachable")  # nothing listens on port 1
    response = admin_client.post("/admin/import/confirm", data=confirm_form(preview))
    assert response.status_code == 503 and "could not be reached" in response.get_data(as_text=True)
    [run] = session.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(1)).all()
    assert run.status == "failed" and "could not be reached" in run.message
    for path in ("/admin/jobs", "/admin/imports", f"/admin/imports/{run.id}"):
        page = admin_client.get(path)
        assert page.status_code == 200 and "cannot be reached" in page.get_data(as_text=True), path


def test_sign_in_still_works_and_is_still_limited_when_the_redis_of_the_limits_is_down(
        sample_world: Path, tmp_path: Path) -> None:
    copy_world(sample_world, tmp_path / "world")
    with world_app(tmp_path / "world", REDIS_URL="redis://127.0.0.1:1/0", LOGIN_RATE_LIMIT="3 per minute") as down:
        client = down.test_client()
        token = csrf_token(client.get("/admin/login").get_data(as_text=True))
        statuses = [client.post("/admin/login", data={"email": "x@example.org", "password": "y", "csrf_token": token})
                    .status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]  # counted in memory meanwhile
