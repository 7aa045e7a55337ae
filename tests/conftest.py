"""Fixtures: the sample world (2,000 listings) is built once, and each test that writes gets its own copy; the search
contract's world (the sample decorated by search_oracle.py) is built once too, for its two test files.

What they are built from, and what tests share besides fixtures, is in helpers.py (which also says how the suite runs
on PostgreSQL).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from playwright.sync_api import Browser, Page, sync_playwright
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy.orm import Session

from directory import accounts
from helpers import (
    ADMIN_EMAIL, ADMIN_PASSWORD, REPO, SIZES, close_app, copy_world, csrf_token, drop_world, make_app, world_app,
)
from search_oracle import Row, decorate_world, read_rows

CHROMIUM = "/usr/bin/chromium"
# The job tests' Redis: the local server, which CI has too. Without it they fail, saying so (never skipped).
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Every test app (and every server a test starts) reads one place table, built once, where `make run` keeps it.
os.environ.setdefault("PLACES_DIR", str(REPO / "instance"))


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding the sample database and its index, built once per test run."""
    root = tmp_path_factory.mktemp("sample-world")
    # Closing the connections checkpoints SQLite's WAL into the main file, so copies are complete.
    close_app(make_app(root))
    yield root
    drop_world(root)


@pytest.fixture(scope="session")
def shared_app(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app over a copy of the sample world, for tests that only read."""
    root = tmp_path_factory.mktemp("shared")
    copy_world(sample_world, root)
    made = make_app(root)
    yield made
    close_app(made)
    drop_world(root)


@pytest.fixture(scope="session")
def contract_app(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app over a copy of the sample world with the new fields drawn afresh, for the search contract's tests.

    They only read it (one that moves the app's clock puts it back), so both files share one build.
    """
    root = tmp_path_factory.mktemp("contract")
    copy_world(sample_world, root)
    made = make_app(root)
    try:
        with made.app_context(), made.extensions["db"]() as session:
            decorate_world(session)
        yield made
    finally:
        close_app(made)
        drop_world(root)


@pytest.fixture()
def contract_client(contract_app: Flask) -> FlaskClient:
    """A test client of the decorated world."""
    return contract_app.test_client()


@pytest.fixture(scope="session")
def rows(contract_app: Flask) -> list[Row]:
    """Every listing of the decorated world, read straight from its database, for the brute force."""
    with contract_app.app_context(), contract_app.extensions["db"]() as session:
        return read_rows(session)


@pytest.fixture()
def app(sample_world: Path, tmp_path: Path) -> Iterator[Flask]:
    """An app over a private copy of the sample world, for tests that write."""
    copy_world(sample_world, tmp_path)
    with world_app(tmp_path) as made:
        yield made


@pytest.fixture()
def empty_app(tmp_path: Path) -> Iterator[Flask]:
    """An app with no listings at all."""
    with world_app(tmp_path, LOAD_SAMPLE_DATA=False) as made:
        yield made


@pytest.fixture()
def queued_app(app: Flask) -> Iterator[Flask]:
    """The private app with its background jobs on a Redis queue of this test's own (deleted afterwards)."""
    try:
        Redis.from_url(REDIS_URL, socket_connect_timeout=5).ping()
    except RedisError as exc:
        pytest.fail(f"no Redis server at {REDIS_URL} (TEST_REDIS_URL) for the job tests: {exc}")
    app.config.update(REDIS_URL=REDIS_URL, JOB_QUEUE=f"test-{uuid.uuid4().hex}")
    yield app
    # Everything of the queue, its registries' jobs included (RQ keeps a failed job a year).
    queue = Queue(app.config["JOB_QUEUE"], connection=Redis.from_url(REDIS_URL))
    for registry in (queue.failed_job_registry, queue.finished_job_registry, queue.started_job_registry,
                     queue.scheduled_job_registry, queue.deferred_job_registry):
        for job_id in registry.get_job_ids(cleanup=False):
            if (job := queue.fetch_job(job_id)) is not None:
                job.delete()
        queue.connection.delete(registry.key)
    queue.delete(delete_jobs=True)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    """A test client of the private app."""
    return app.test_client()


@pytest.fixture()
def shared_client(shared_app: Flask) -> FlaskClient:
    """A test client of the read-only shared app."""
    return shared_app.test_client()


@pytest.fixture()
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner of the private app."""
    return app.test_cli_runner()


@pytest.fixture()
def session(app: Flask) -> Iterator[Session]:
    """A database session of the private app, as a script would use it.

    No app context is held open: requests made meanwhile must get their own, as in production.
    """
    with app.extensions["db"]() as db_session:
        yield db_session


@pytest.fixture()
def admin_client(app: Flask, session: Session) -> FlaskClient:
    """A client signed in as an admin, through the real login form."""
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.data
    return client


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright (Playwright's own browser download does not work here)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield launched
        launched.close()


@pytest.fixture(params=list(SIZES))
def sized_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A fresh tab at 1280x900 and, as a second run, at 390x844 (touch), able to inject axe-core."""
    phone = request.param == "phone"
    context = browser.new_context(viewport=SIZES[request.param], bypass_csp=True, has_touch=phone, is_mobile=phone)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab with its own cookies."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
