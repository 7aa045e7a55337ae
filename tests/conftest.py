"""Fixtures: the sample world (2,000 listings) is built once, and each test that writes gets its own copy.

The suite runs on SQLite by default and on PostgreSQL with TEST_DATABASE=postgresql: then every world (the sample,
the shared copy, each test's own) is a database of its own on the server at TEST_DATABASE_URL, copied from the
sample's by CREATE DATABASE ... TEMPLATE, and dropped when its test ends.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from directory import accounts, create_app, db
from directory.web.security import limiter

SAMPLE_SIZE = 2000
SAMPLE_DAY = dt.date(2026, 12, 1)  # "today" for every test app: the sample's confirmation dates count back from it
CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"  # `make test` installs it
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
SIZES = {"wide": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
# The server and an existing database to connect to while creating and dropping the test databases.
SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RUN = f"dirtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"  # this run's databases are named after it
URL_FILE = "database-url"  # in a world's folder: where its database is
# Every test app (and every server a test starts) reads one place table, built once, where `make run` keeps it.
os.environ.setdefault("PLACES_DIR", str(Path(__file__).resolve().parent.parent / "instance"))


def on_postgresql() -> bool:
    """Whether this run tests on PostgreSQL."""
    return BACKEND == "postgresql"


def _server(statement: str) -> None:
    engine = create_engine(SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def _new_database(root: Path, template: str | None = None) -> str:
    """A fresh PostgreSQL database for the world in `root` (a copy of `template` when given); its URL."""
    name = f"{RUN}_{uuid.uuid4().hex[:10]}"
    _server(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    url = make_url(SERVER_URL).set(database=name).render_as_string(hide_password=False)
    (root / URL_FILE).write_text(url)
    return url


def database_url(root: Path) -> str:
    """The database of the world in `root`: an SQLite file inside it, or its own PostgreSQL database."""
    if not on_postgresql():
        return f"sqlite:///{root / 'directory.sqlite3'}"
    if (root / URL_FILE).exists():
        return (root / URL_FILE).read_text()
    root.mkdir(parents=True, exist_ok=True)
    return _new_database(root)


def copy_world(source: Path, target: Path) -> None:
    """Copy a world (database, index, instance folder) whose app is closed, so that changes stay in the copy."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    if on_postgresql():
        _new_database(target, template=make_url(database_url(source)).database)


def drop_world(root: Path) -> None:
    """Drop a world's PostgreSQL database (SQLite files go with the folder)."""
    if on_postgresql() and (root / URL_FILE).exists():
        _server(f'DROP DATABASE IF EXISTS "{make_url(database_url(root)).database}" WITH (FORCE)')


def _make_app(root: Path, **config: object) -> Flask:
    made = create_app({
        "DATABASE_URL": database_url(root),
        "INDEX_DIR": str(root / "indexes"),
        "INSTANCE_PATH": str(root / "instance"),
        "LOAD_SAMPLE_DATA": True,
        "SAMPLE_SIZE": SAMPLE_SIZE,
        "TESTING": True,
        "CLOCK": lambda: SAMPLE_DAY,
        **config,
    })
    limiter.reset()  # the limiter is module-level: counts from an earlier test's app must not carry over
    return made


def close_app(made: Flask) -> None:
    """Close an app's searcher and database connections (a PostgreSQL database can only be copied or dropped
    once nobody is connected to it)."""
    # Left to the garbage collector, an app is freed with its searcher's files in one cycle, in no set order, and
    # a file freed before the searcher is closed warns (an error here).
    made.extensions["search"].close()
    db.engine(made).dispose()


@pytest.fixture(scope="session")
def sample_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A directory holding the sample database and its index, built once per test run."""
    root = tmp_path_factory.mktemp("sample-world")
    # Closing the connections checkpoints SQLite's WAL into the main file, so copies are complete.
    close_app(_make_app(root))
    yield root
    drop_world(root)


@pytest.fixture(scope="session")
def shared_app(sample_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app over a copy of the sample world, for tests that only read."""
    root = tmp_path_factory.mktemp("shared")
    copy_world(sample_world, root)
    made = _make_app(root)
    yield made
    close_app(made)
    drop_world(root)


@contextlib.contextmanager
def world_app(root: Path, **config: object) -> Iterator[Flask]:
    """An app over the world in `root`, closed and its database dropped afterwards."""
    made = _make_app(root, **config)
    try:
        yield made
    finally:
        close_app(made)
        drop_world(root)


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


def axe_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's violations on the page as it stands (its context must bypass the CSP to inject axe)."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async (tags) => (await axe.run(document, {runOnly: {type: "tag", values: tags}}))
        .violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))""",
                         AXE_TAGS)


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
