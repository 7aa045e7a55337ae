"""What several test files share and is not a fixture (the fixtures are in conftest.py, built from these): the sample
world and apps over copies of it, a good CSV row and the import helpers, the admin's sign-in, servers on free ports, a
holder that keeps a lock in another thread, and the browser's accessibility check.

The suite runs on SQLite by default and on PostgreSQL with TEST_DATABASE=postgresql: then every world (the sample,
the shared copy, each test's own) is a database of its own on the server at TEST_DATABASE_URL, copied from the
sample's by CREATE DATABASE ... TEMPLATE, and dropped when its test ends.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from directory import create_app, db
from directory.imports.lock import import_lock
from directory.imports.pipeline import run_import
from directory.imports.report import ImportMode
from directory.models import ImportRun
from directory.web.security import limiter

REPO = Path(__file__).resolve().parent.parent

# The sample world -----------------------------------------------------------------------------------------------

SAMPLE_SIZE = 2000
SAMPLE_DAY = dt.date(2026, 12, 1)  # "today" for every test app: the sample's confirmation dates count back from it
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
# The server and an existing database to connect to while creating and dropping the test databases.
SERVER_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
RUN = f"dirtest_{os.getpid()}_{uuid.uuid4().hex[:6]}"  # this run's databases are named after it
URL_FILE = "database-url"  # in a world's folder: where its database is


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


def make_app(root: Path, **config: object) -> Flask:
    """A test app over the world in `root` (built there with the sample when empty); close it with close_app."""
    made = create_app({
        "DATABASE_URL": database_url(root),
        "INDEX_DIR": str(root / "indexes"),
        "INSTANCE_PATH": str(root / "instance"),
        "LOAD_SAMPLE_DATA": True,
        "SAMPLE_SIZE": SAMPLE_SIZE,
        "TESTING": True,
        "CLOCK": lambda: SAMPLE_DAY,
        "INDEX_FOLLOWER": False,  # the tests of tests/test_follower*.py turn it on
        "TICK_SECONDS": 0,  # periodic jobs start when a test calls periodic.tick
        "SECRET_KEY": "test",
        **config,
    })
    # The limiter is module-level: counts from an earlier test's app must not carry over (a Redis that is down, in
    # the test of that, holds none).
    with contextlib.suppress(RedisConnectionError):
        limiter.reset()
    return made


def close_app(made: Flask) -> None:
    """Close an app's searcher and database connections (a PostgreSQL database can only be copied or dropped
    once nobody is connected to it)."""
    # Left to the garbage collector, an app is freed with its searcher's files in one cycle, in no set order, and
    # a file freed before the searcher is closed warns (an error here).
    for thread in ("index_follower", "ticker"):
        if thread in made.extensions:
            made.extensions[thread].stop()
    made.extensions["search"].close()
    db.engine(made).dispose()


@contextlib.contextmanager
def world_app(root: Path, **config: object) -> Iterator[Flask]:
    """An app over the world in `root`, closed and its database dropped afterwards."""
    made = make_app(root, **config)
    try:
        yield made
    finally:
        close_app(made)
        drop_world(root)


def flask_env(app: Flask) -> dict[str, str]:
    """The environment for a `flask --app app` process over this app's world (not filled with the sample)."""
    return {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"], "INDEX_DIR": app.config["INDEX_DIR"],
            "INSTANCE_PATH": app.instance_path, "LOAD_SAMPLE_DATA": "0", "SECRET_KEY": "test"}


# The admin ------------------------------------------------------------------------------------------------------

ADMIN_EMAIL = "admin@example.org"
ADMIN_PASSWORD = "correct horse battery staple"


def csrf_token(html: str) -> str:
    """The CSRF token in a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


# Imports --------------------------------------------------------------------------------------------------------

GOOD = {  # a row every rule accepts
    "external_id": "imp-1", "name": "Robin Example", "postcode": "10001", "modalities": "EFT",
    "specialties": "depression", "telehealth": "yes", "in_person": "yes", "bio": "Couples and individuals.",
}


def make_csv(rows: list[dict[str, str]], delimiter: str = ",", columns: list[str] | None = None,
             newline: str = "\r\n") -> str:
    """A CSV file of `rows` with a header (by default every key the rows use, in order of first use)."""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, delimiter=delimiter, lineterminator=newline)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def do_import(app: Flask, data: bytes | str, **mode: bool) -> Any:
    """Import a file's contents in this process, as the CLI does, under the instance's import lock; the report."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    path = Path(app.instance_path) / "upload.csv"
    path.write_bytes(data)
    with app.app_context():
        return run_import(app.extensions["db"], path, filename="t.csv", mode=ImportMode(**mode), actor="test",
                          lock=import_lock(app))


def error_lines(report: Any) -> list[tuple[int, str]]:
    """The (line, field) of each error an import report lists."""
    return [(e.line, e.field) for e in report.errors.first]


def upload(client: FlaskClient, text: str, **options: str) -> str:
    """Upload a CSV file to the admin's import form (with any of its options); the preview page."""
    token = csrf_token(client.get("/admin/import").get_data(as_text=True))
    form = {"csrf_token": token, "file": (io.BytesIO(text.encode()), "list.csv"), **options}
    response = client.post("/admin/import", data=form, content_type="multipart/form-data")
    return response.get_data(as_text=True)


def confirm_form(preview: str) -> dict[str, str]:
    """The fields the preview's confirm button posts."""
    confirm_part = preview.split('action="/admin/import/confirm"')[1]
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', confirm_part))


def confirm(client: FlaskClient, preview: str) -> int:
    """Press the preview's confirm button; the id of the import run it starts."""
    response = client.post("/admin/import/confirm", data=confirm_form(preview))
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return int(response.headers["Location"].rsplit("/", 1)[1])


def wait_for_run(session: Session, run_id: int, seconds: float = 60) -> ImportRun:
    """The import run once it has finished (done or failed); an AssertionError after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        session.expire_all()
        run = session.get(ImportRun, run_id)
        if run.status not in ("running", "indexing"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"import {run_id} still running after {seconds} s")


# Threads, servers and ports -------------------------------------------------------------------------------------

@contextlib.contextmanager
def held_in_thread(hold: AbstractContextManager[object], seconds: float = 60) -> Iterator[threading.Event]:
    """Enter `hold` (a lock, a transaction) in another thread, as another worker would, and keep it until the
    with-block ends or the yielded event is set; the block starts once it is held.

    For example `with held_in_thread(import_lock(app).held("someone@example.org")):`, or
    `held_in_thread(index.write_lock())`. What entering or leaving it raises is raised here; after `seconds` the
    holder lets go.
    """
    held, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def holder() -> None:
        try:
            with hold:
                held.set()
                release.wait(seconds)
        except BaseException as error:  # handed to the test's thread
            failed.append(error)
            held.set()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10), "the other thread never got hold"
        if failed:
            raise failed[0]
        yield release
    finally:
        release.set()
        thread.join(30)
    if failed:
        raise failed[0]


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[str]:
    """Run a server bound to 127.0.0.1 in a thread for the block; yields its base URL."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _read_whole(app: Flask) -> Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]:
    """The app as a WSGI callable that reads each answer whole and closes it before sending it.

    Werkzeug's development server closes an answer only after checking its socket for unread data, and that check
    raises when the browser has dropped the connection (a page left mid-load, on a busy machine): the static file
    being sent is then left to the garbage collector, which the suite's warnings-as-errors reports in whatever test
    runs next. Production serves with gunicorn; the test server's answers are small.
    """
    def whole(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            if hasattr(answer, "close"):
                answer.close()
    return whole


@contextlib.contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve an app on a free port of 127.0.0.1 in a thread; yields its base URL."""
    with serving(make_server("127.0.0.1", 0, _read_whole(app), threaded=True)) as url:
        yield url


def start_worker(app: Flask, log: Path, **env_vars: str) -> subprocess.Popen[bytes]:
    """A `flask --app app worker` process on this app's world and job queue (test jobs importable from tests/), in a
    session of its own, with these environment variables besides, its output in `log`; stop it with kill_tree."""
    env = {**flask_env(app), "REDIS_URL": app.config["REDIS_URL"], "JOB_QUEUE": app.config["JOB_QUEUE"],
           "PYTHONPATH": str(REPO / "tests"), **env_vars}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def process_tree(pid: int) -> list[int]:
    """`pid` and every process descended from it, read from /proc (a job's work horse leaves its parent's group)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def kill_tree(process: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL a process and all its descendants at once, as a dying machine would; the pids killed."""
    tree = process_tree(process.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(30)
    return tree


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nobody listens on now, for a server in another process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str) -> tuple[int, bytes]:
    """GET a URL over the network: its status and body, error statuses included (OSError when nobody answers)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


# The browser ----------------------------------------------------------------------------------------------------

SIZES = {"wide": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"  # `make test` installs it
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def browser_page(browser: Browser, size: str, javascript: bool = True) -> Page:
    """A tab in a fresh browser context at one of SIZES (a phone: touch, mobile), able to inject axe-core; close it
    with page.context.close()."""
    phone = size == "phone"
    context = browser.new_context(viewport=SIZES[size], java_script_enabled=javascript, has_touch=phone,
                                  is_mobile=phone, bypass_csp=True)
    context.set_default_timeout(15_000)
    return context.new_page()


def axe_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's violations on the page as it stands (its context must bypass the CSP to inject axe), once its
    stylesheets have loaded: a page reached by a form's POST can show its heading before its styles apply, and axe
    then measured unstyled links (target-size, on a loaded CI machine)."""
    page.wait_for_load_state("load")
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async (tags) => (await axe.run(document, {runOnly: {type: "tag", values: tags}}))
        .violations.map(v => ({id: v.id, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))""",
                         AXE_TAGS)
