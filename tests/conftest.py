"""Fixtures: the sample world (2,000 listings) is built once, and each test that writes gets its own copy."""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from directory import accounts, create_app
from directory.web.security import limiter

SAMPLE_SIZE = 2000
CHROMIUM = "/usr/bin/chromium"


def _make_app(root: Path, **config: object) -> Flask:
    made = create_app({
        "DATABASE_URL": f"sqlite:///{root / 'directory.sqlite3'}",
        "INDEX_DIR": str(root / "indexes"),
        "INSTANCE_PATH": str(root / "instance"),
        "LOAD_SAMPLE_DATA": True,
        "SAMPLE_SIZE": SAMPLE_SIZE,
        "TESTING": True,
        **config,
    })
    limiter.reset()  # the limiter is module-level: counts from an earlier test's app must not carry over
    return made


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the sample database and its index, built once per test run."""
    root = tmp_path_factory.mktemp("sample-world")
    built = _make_app(root)
    # Closing the connections checkpoints SQLite's WAL into the main file, so copies are complete.
    built.extensions["db"].kw["bind"].dispose()
    return root


@pytest.fixture(scope="session")
def shared_app(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One app over a copy of the sample world, for tests that only read."""
    root = tmp_path_factory.mktemp("shared")
    shutil.copytree(sample_world, root, symlinks=True, dirs_exist_ok=True)
    return _make_app(root)


def _closing(made: Flask) -> Iterator[Flask]:
    yield made
    # The test's own searcher. Left to the garbage collector, an app is freed with its searcher's files in one
    # cycle, in no set order, and a file freed before the searcher is closed warns (an error here).
    made.extensions["search"].close()


@pytest.fixture()
def app(sample_world: Path, tmp_path: Path) -> Iterator[Flask]:
    """An app over a private copy of the sample world, for tests that write."""
    shutil.copytree(sample_world, tmp_path, symlinks=True, dirs_exist_ok=True)
    yield from _closing(_make_app(tmp_path))


@pytest.fixture()
def empty_app(tmp_path: Path) -> Iterator[Flask]:
    """An app with no listings at all."""
    yield from _closing(_make_app(tmp_path, LOAD_SAMPLE_DATA=False))


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


ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "correct horse battery staple"


def csrf_token(html: str) -> str:
    """The CSRF token in a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture()
def admin_client(app: Flask, session: Session) -> FlaskClient:
    """A client signed in as an admin, through the real login form."""
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    client = app.test_client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    response = client.post("/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.data
    return client


@contextlib.contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve an app on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright (Playwright's own browser download does not work here)."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser tab with its own cookies."""
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
