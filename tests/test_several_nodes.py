"""Several nodes on one PostgreSQL database (issue 29): two gunicorn nodes, A and B, each with its own index and
instance folders. What an admin or the CLI changes through A is searchable on B; B killed while A imports and edits
catches up when restarted, from the change log or, behind its pruned rows, by a whole comparison; one import runs at a
time across nodes, a preview made on A is confirmed on B, and B never marks A's running import failed. The database
is the truth each index is compared with (`index check`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from directory import accounts
from directory.imports.csv_writing import listing_values
from directory.models import ImportRun, Listing, utcnow
from directory.search import change_log
from helpers import (
    ADMIN_EMAIL, ADMIN_PASSWORD, GOOD, REPO, confirm_form, csrf_token, flask_env, kill_tree, make_csv, on_postgresql,
)
from servers import first_answer, flask_command, gunicorn, search_total, seconds_until, stop

pytestmark = pytest.mark.skipif(not on_postgresql(), reason="several nodes share a PostgreSQL database; on SQLite "
                                "one machine serves it (its import lock is a file): this module runs in the suite's "
                                "PostgreSQL half, which CI requires")

# How soon a change made on A must be searchable on B here. The benchmark measures the real delay (a poll at most,
# and a NOTIFY wakes B before it); a test machine running the suite beside two nodes needs the margin.
PROPAGATION_SECONDS = 20.0
IMPORT_ROWS = 3000  # several seconds of import into PostgreSQL, so that what happens meanwhile overlaps it

# An import through the CLI that takes the import lock, records its run, then stops before writing anything (it
# sleeps until killed), having touched the marker file named by the first argument.
HELD_IMPORT = """
import pathlib, sys, time
from directory.imports import pipeline
marker, path = sys.argv[1], sys.argv[2]
def held(*args, **kwargs):
    pathlib.Path(marker).touch()
    time.sleep(120)
pipeline._apply_all = held
from flask.cli import main
sys.argv = ["flask", "--app", "app", "import-csv", "--actor", "node-a-cli", path]
main()
"""


class Node:
    """One node: a gunicorn master over the shared database with its own index and instance folders."""

    def __init__(self, name: str, app: Flask, root: Path) -> None:
        self.name = name
        folder = root / name
        env = {**flask_env(app), "INDEX_DIR": str(folder / "indexes"), "INSTANCE_PATH": str(folder / "instance")}
        # No periodic jobs: the sample's listings would be asked to confirm by email, work beside the point here.
        self.env = {**env, "INDEX_FOLLOWER": "1", "TICK_SECONDS": "0"}
        self.logs = folder
        self.starts = 0
        self.server: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        """Start the node and wait for its first search answer (it may build its index from the database first)."""
        self.starts += 1
        log = self.logs / f"gunicorn-{self.starts}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.server, self.base = gunicorn(self.env, 1, log)
        first_answer(self.server, self.base, log, seconds=180)

    def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL)."""
        if self.server is not None and self.server.poll() is None:
            stop(self.server)

    def total(self, **params: str) -> int | None:
        """The node's search total for these parameters."""
        return search_total(self.base, **params)

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A `flask --app app` command run as this node's."""
        return flask_command(self.env, *args)

    def tracebacks(self) -> list[str]:
        """The logs of this node that show a traceback."""
        return [log.name for log in self.logs.glob("gunicorn-*.log") if "Traceback" in log.read_text()]


@pytest.fixture()
def nodes(app: Flask, session: Session, tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    """Nodes A and B on the sample's database, started, with an admin account; stopped afterwards."""
    accounts.create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD)
    a, b = Node("a", app, tmp_path), Node("b", app, tmp_path)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()
    assert a.tracebacks() == b.tracebacks() == []


def _signed_in(node: Node) -> requests.Session:
    """A browser session signed in as the admin on `node` (its cookie, signed with the shared key, works on all)."""
    browser = requests.Session()
    token = csrf_token(browser.get(f"{node.base}/admin/login", timeout=30).text)
    response = browser.post(f"{node.base}/admin/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD,
                                                              "csrf_token": token}, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text[:500]
    return browser


def _token(browser: requests.Session, node: Node, path: str = "/admin/import") -> str:
    return csrf_token(browser.get(f"{node.base}{path}", timeout=30).text)


def _edit(browser: requests.Session, node: Node, listing: Listing, photo: bytes | None = None,
          **changes: str) -> None:
    """Save a listing through the node's admin edit form, with these fields changed (and a photo)."""
    form = {**listing_values(listing), **changes,
            "csrf_token": _token(browser, node, f"/admin/listings/{listing.id}/edit")}
    files = {"photo": ("me.png", photo, "image/png")} if photo else None
    response = browser.post(f"{node.base}/admin/listings/{listing.id}/edit", data=form, files=files,
                            allow_redirects=False, timeout=60)
    assert response.status_code == 302, response.text[:1000]


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "blue").save(out, "PNG")
    return out.getvalue()


def _rows(word: str, count: int, prefix: str) -> str:
    """A CSV of `count` new listings whose bio holds `word`."""
    return make_csv([{**GOOD, "external_id": f"{prefix}-{n}", "name": f"Node Test {n}",
                      "bio": f"Sees adults; {word}."} for n in range(count)])


def _listings(session: Session, count: int, offset: int = 0) -> list[Listing]:
    """Published listings of the sample, by id."""
    session.expire_all()
    return list(session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)
                                .offset(offset).limit(count)))


def _searchable(node: Node, expected: int, since: float, **params: str) -> float:
    return seconds_until(node.base, expected, since, PROPAGATION_SECONDS, **params)


@pytest.mark.timeout(420)
def test_what_an_admin_or_the_cli_changes_on_a_is_searchable_on_b(nodes: tuple[Node, Node], session: Session,
                                                                   tmp_path: Path) -> None:
    a, b = nodes
    browser = _signed_in(a)
    edited, unpublished = _listings(session, 2)
    since = time.monotonic()
    _edit(browser, a, edited, bio=f"{edited.bio} Quetzalnode.")
    print(f"edit: {_searchable(b, 1, since, q='quetzalnode'):.2f} s")
    _edit(browser, a, unpublished, bio=f"{unpublished.bio} Unpublishnode.")
    _searchable(b, 1, since, q="unpublishnode")
    _edit(browser, a, edited, photo=_png())
    session.expire_all()
    digest = session.get(Listing, edited.id).photo
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert f'src="/photos/{digest}.jpg"' in requests.get(f"{b.base}/", params={"q": "quetzalnode"}, timeout=30).text
    assert requests.get(f"{b.base}/photos/{digest}.jpg", timeout=30).status_code == 200

    source = tmp_path / "cli.csv"
    source.write_text(_rows("clinodeword", 40, "cli"), encoding="utf-8")
    since = time.monotonic()
    done = a.flask("import-csv", str(source))
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"CLI import: {_searchable(b, 40, since, q='clinodeword'):.2f} s")

    # The admin's import: previewed on A, confirmed on B (its upload is in the database, not in A's folder).
    response = browser.post(f"{a.base}/admin/import", data={"csrf_token": _token(browser, a)},
                            files={"file": ("web.csv", _rows("webnodeword", 25, "web").encode())}, timeout=60)
    assert response.status_code == 200 and "25</strong> to create" in response.text, response.text[:2000]
    since = time.monotonic()
    confirmed = browser.post(f"{b.base}/admin/import/confirm", data={**confirm_form(response.text),
                                                                     "csrf_token": _token(browser, b)},
                             allow_redirects=False, timeout=60)
    assert confirmed.status_code == 302, confirmed.text[:1000]
    print(f"admin import: {_searchable(a, 25, since, q='webnodeword'):.2f} s on A")
    print(f"admin import: {_searchable(b, 25, since, q='webnodeword'):.2f} s on B")

    since = time.monotonic()
    response = browser.post(f"{a.base}/admin/listings/{unpublished.id}/publish",
                            data={"published": "0", "csrf_token": _token(browser, a, "/admin/listings")},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 302
    print(f"unpublish: {_searchable(b, 0, since, q='unpublishnode'):.2f} s")
    deleted = session.scalar(select(Listing).where(Listing.external_id == "cli-0"))
    since = time.monotonic()
    response = browser.post(f"{a.base}/admin/listings/{deleted.id}/delete",
                            data={"csrf_token": _token(browser, a, f"/admin/listings/{deleted.id}/delete")},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 302
    print(f"delete: {_searchable(b, 39, since, q='clinodeword'):.2f} s")
    for node in (a, b):
        checked = node.flask("index", "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr


def _flask_in_background(node: Node, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO, env=node.env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.timeout(600)
def test_b_killed_while_a_imports_and_edits_catches_up_when_restarted_even_behind_the_pruned_log(
        nodes: tuple[Node, Node], app: Flask, session: Session, tmp_path: Path) -> None:
    a, b = nodes
    browser = _signed_in(a)
    assert b.server is not None
    kill_tree(b.server)
    source = tmp_path / "big.csv"
    source.write_text(_rows("killnodeword", IMPORT_ROWS, "big"), encoding="utf-8")
    importing = _flask_in_background(a, tmp_path / "import.log", "import-csv", str(source))
    edited = _listings(session, 5)
    for n, listing in enumerate(edited):  # while the import runs (its rows are new: no edit waits on them)
        _edit(browser, a, listing, bio=f"{listing.bio} Duringimport{n}.")
    assert importing.wait(300) == 0, (tmp_path / "import.log").read_text()[-3000:]
    assert b.flask("index", "check").returncode == 1  # B's index, down, lacks them

    b.start()  # catches up from its number in the log
    since = time.monotonic()
    _searchable(b, IMPORT_ROWS, since, q="killnodeword")
    for n in range(5):
        _searchable(b, 1, since, q=f"duringimport{n}")
    checked = b.flask("index", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Down again while A edits, and the log pruned past B's number: B compares its index whole, then follows.
    b.stop()
    later = _listings(session, 3, offset=10)
    for n, listing in enumerate(later):
        _edit(browser, a, listing, bio=f"{listing.bio} Afterprune{n}.")
    with app.app_context():
        assert change_log.prune(session, before=utcnow() + dt.timedelta(seconds=1)) > 0
    assert b.flask("index", "check").returncode == 1
    b.start()
    since = time.monotonic()
    for n in range(3):
        _searchable(b, 1, since, q=f"afterprune{n}")
    checked = b.flask("index", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    since = time.monotonic()
    _edit(browser, a, later[0], bio=f"{later[0].bio} Followsagain.")
    _searchable(b, 1, since, q="followsagain")


@contextlib.contextmanager
def _import_holding_the_lock(node: Node, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An import through the node's CLI that holds the import lock (and its run "running") until the block ends,
    when it is killed with SIGKILL."""
    source, marker = tmp_path / "held.csv", tmp_path / "holding"
    source.write_text(_rows("heldnodeword", 5, "held"), encoding="utf-8")
    log = tmp_path / "held.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-c", HELD_IMPORT, str(marker), str(source)], cwd=REPO,
                                   env=node.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), log.read_text()[-3000:]
        yield process
    finally:
        kill_tree(process)


@pytest.mark.timeout(420)
def test_one_import_at_a_time_across_nodes_and_b_never_fails_as_running_import(
        nodes: tuple[Node, Node], session: Session, tmp_path: Path) -> None:
    a, b = nodes
    browser = _signed_in(b)
    with _import_holding_the_lock(a, tmp_path):
        response = browser.post(f"{b.base}/admin/import", data={"csrf_token": _token(browser, b)},
                                files={"file": ("web.csv", _rows("busyword", 2, "busy").encode())}, timeout=60)
        assert response.status_code == 409
        assert "An import is running (started by node-a-cli at" in response.text
        refused = b.flask("import-csv", str(tmp_path / "held.csv"))
        assert refused.returncode == 1
        assert "An import is running (started by node-a-cli" in refused.stderr, refused.stderr
        # Old enough for B to judge it: B asks the database, where A's connection holds the lock.
        run = session.scalars(select(ImportRun).where(ImportRun.filename == "held.csv")).one()
        assert run.status == "running"
        session.execute(update(ImportRun).where(ImportRun.id == run.id)
                        .values(started_at=utcnow() - dt.timedelta(minutes=10)))
        session.commit()
        for path in ("/admin/imports", f"/admin/imports/{run.id}"):
            assert browser.get(f"{b.base}{path}", timeout=30).status_code == 200
        session.expire_all()
        assert session.get(ImportRun, run.id).status == "running"
    # A's import died (its whole process killed): B now sees the lock free and says so.
    page = browser.get(f"{b.base}/admin/imports/{run.id}", timeout=30).text
    assert "stopped before writing anything" in page
    session.expire_all()
    assert session.get(ImportRun, run.id).status == "failed"

    # Two imports started at the same moment, one through each node's CLI: one runs, the other is told who holds it.
    started = []
    for node in (a, b):
        source = tmp_path / f"race-{node.name}.csv"
        source.write_text(_rows(f"race{node.name}word", IMPORT_ROWS, f"race-{node.name}"), encoding="utf-8")
        started.append(_flask_in_background(node, tmp_path / f"race-{node.name}.log", "import-csv",
                                            "--actor", f"cli on {node.name}", str(source)))
    codes = [process.wait(300) for process in started]
    said = {node.name: (tmp_path / f"race-{node.name}.log").read_text() for node in (a, b)}
    assert sorted(codes) == [0, 1], said
    loser = "a" if codes[0] == 1 else "b"
    winner = "b" if loser == "a" else "a"
    assert f"An import is running (started by cli on {winner} at" in said[loser], said
    for node in (a, b):
        _searchable(node, IMPORT_ROWS, time.monotonic(), q=f"race{winner}word")
        assert node.total(q=f"race{loser}word") == 0
