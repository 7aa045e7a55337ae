"""The index follower across real processes: an import killed between its database commit and its index commit is
healed by a running server, or by the next server's start; four gunicorn workers elect one follower and another takes
over when it is killed; two servers with their own index folders, started together on one empty database, both end
up with the sample. The database is the truth each index is compared with."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, func, insert, select, update
from sqlalchemy.orm import Session

from directory import db
from directory.models import Listing, ListingChange, utcnow
from directory.places import places
from directory.search.documents import location_of
from directory.search.follower import LOCK_FILE
from helpers import GOOD, REPO, database_url, drop_world, flask_env, make_csv
from servers import first_answer, flask_command, gunicorn, search_total, seconds_until, stop

ROWS = 2000
HEAL_SECONDS = 5.0  # the bound: a lost index write is searchable this soon, a dead follower replaced this soon

# Run in a subprocess: the import's index commit never happens (it sleeps until killed), after its database commit.
STUCK_IMPORT = """
import pathlib, sys, time
from directory.search.index import storage
marker, path = sys.argv[1], sys.argv[2]
def stuck(self):
    pathlib.Path(marker).touch()
    time.sleep(120)
storage.IndexWrite.commit = stuck
from flask.cli import main
sys.argv = ["flask", "--app", "app", "import-csv", path]
main()
"""


# The index ------------------------------------------------------------------------------------------------------------

def _status(app: Flask) -> dict:
    """What `index status --json` prints for the app's index folder."""
    result = app.test_cli_runner().invoke(args=["index", "status", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _check_exit(app: Flask) -> int:
    """The exit code of `index check`: 0 when the index matches the database, 1 on drift."""
    return app.test_cli_runner().invoke(args=["index", "check"]).exit_code


# Crashes between the two commits ---------------------------------------------------------------------------------

def _crashtest(session: Session) -> int:
    """How many of the crash import's listings the database holds."""
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Listing).where(Listing.external_id.like("crash-%"))) or 0


@contextlib.contextmanager
def _import_stuck_after_its_database_commit(app: Flask, session: Session, tmp_path: Path) -> Iterator[list[float]]:
    """Import ROWS new listings in a process stopped between its database and index commits; SIGKILL it when the
    block ends. Yields a list that then holds when it was killed (time.monotonic())."""
    rows = [{**GOOD, "external_id": f"crash-{i}", "name": f"Crashtest {i}"} for i in range(ROWS)]
    path, marker = tmp_path / "crash.csv", tmp_path / "committed"
    path.write_text(make_csv(rows), encoding="utf-8")
    output = tmp_path / "import.log"
    with open(output, "w") as out:
        process = subprocess.Popen([sys.executable, "-c", STUCK_IMPORT, str(marker), str(path)], cwd=REPO,
                                   env=flask_env(app), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    killed: list[float] = []
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), output.read_text()[-3000:]
        assert _crashtest(session) == ROWS, "the import's rows should be committed before its index commit"
        yield killed
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone when it failed before committing
            os.killpg(process.pid, signal.SIGKILL)  # no chance to clean up, as a crash gives none
        killed.append(time.monotonic())
        process.wait(10)


@pytest.mark.timeout(240)
def test_a_running_server_finds_an_import_killed_before_its_index_commit(app: Flask, session: Session,
                                                                         tmp_path: Path) -> None:
    """Its follower indexes the lost write within 5 s of the kill, with no command run."""
    log = tmp_path / "gunicorn.log"
    server, base = gunicorn({**flask_env(app), "INDEX_FOLLOWER": "1"}, 2, log)
    try:
        assert first_answer(server, base, log, q="Crashtest") == 0
        with _import_stuck_after_its_database_commit(app, session, tmp_path) as killed:
            # The stuck import holds the index's writer lock: nothing, the follower included, can index them yet.
            assert search_total(base, q="Crashtest") == 0
        healed = seconds_until(base, ROWS, killed[0], HEAL_SECONDS, q="Crashtest")
        print(f"searchable {healed:.2f} s after the kill")
        status = _status(app)
        assert status["lag_rows"] == 0 and status["applied"] == status["latest"], status
        assert _check_exit(app) == 0
    finally:
        stop(server)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.mark.timeout(240)
def test_a_server_started_after_such_a_crash_catches_up_before_serving(app: Flask, session: Session,
                                                                       tmp_path: Path) -> None:
    """With no server running, status shows the lag; the next server's first answer already has the listings."""
    with _import_stuck_after_its_database_commit(app, session, tmp_path):
        pass
    lagging = _status(app)
    assert lagging["lag_rows"] == ROWS and lagging["follower"] == {"running": False, "pid": None}, lagging
    assert _check_exit(app) == 1, "the index should lack the killed import's listings"
    log = tmp_path / "gunicorn.log"
    server, base = gunicorn({**flask_env(app), "INDEX_FOLLOWER": "1"}, 2, log)
    try:
        assert first_answer(server, base, log, q="Crashtest") == ROWS
        assert _status(app)["lag_rows"] == 0
        assert _check_exit(app) == 0
    finally:
        stop(server)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


# One follower per index folder ----------------------------------------------------------------------------------

def _workers(master: int) -> set[int]:
    """The process ids of a gunicorn master's workers: its children."""
    found: set[int] = set()
    for task in Path(f"/proc/{master}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


def _lock_holders(path: Path) -> list[int]:
    """The processes holding a lock on `path`, as the kernel lists them (by device and inode) in /proc/locks."""
    stat = path.stat()
    key = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    holders = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" not in fields and key in fields:  # "->" marks a process waiting for the lock, not holding it
            holders.append(int(fields[fields.index(key) - 1]))
    return holders


def _has_open(pid: int, path: Path) -> bool:
    """Whether the process has `path` open."""
    with contextlib.suppress(FileNotFoundError):  # a descriptor closed while listed
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    return False


def _elected(app: Flask, master: int, lock: Path) -> int:
    """Once all four workers are up, each with the follower lock open: the one holding it, which status names."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = _workers(master)
        contenders = [pid for pid in workers if _has_open(pid, lock)]
        status = _status(app)
        if len(contenders) == 4 and status["follower"]["running"]:
            break
        time.sleep(0.1)
    assert len(workers) == 4 and sorted(contenders) == sorted(workers), (workers, contenders)
    follower = status["follower"]["pid"]
    assert status["follower"]["running"] and follower in workers, (status, workers)
    # The three others only stand by: the kernel lists a single holder of the lock.
    assert _lock_holders(lock) == [follower]
    return follower


def _rename_as_another_node(app: Flask, listing_id: int, name: str) -> None:
    """Change a listing and log it in one transaction, outside this app's sessions (whose hooks would index it)."""
    now = utcnow()
    with db.engine(app).begin() as connection:
        connection.execute(update(Listing.__table__).where(Listing.__table__.c.id == listing_id)
                           .values(name=name, updated_at=now))
        connection.execute(insert(ListingChange.__table__).values(listing_id=listing_id, action="updated", at=now))


@pytest.mark.timeout(240)
def test_four_workers_elect_one_follower_and_another_takes_over_when_it_dies(app: Flask, session: Session,
                                                                            tmp_path: Path) -> None:
    """One of four workers holds the follower lock; when it is killed a standby holds it within 5 s."""
    log = tmp_path / "gunicorn.log"
    lock = Path(app.config["INDEX_DIR"]) / LOCK_FILE
    server, base = gunicorn({**flask_env(app), "INDEX_FOLLOWER": "1"}, 4, log)
    try:
        first_answer(server, base, log)
        follower = _elected(app, server.pid, lock)

        standbys = _workers(server.pid) - {follower}
        # The master is paused, so that the worker it would start in place of the dead one (whose follower takes a
        # free lock at once) cannot stand in for a standby that fails to take over.
        os.kill(server.pid, signal.SIGSTOP)
        try:
            os.kill(follower, signal.SIGKILL)
            killed = time.monotonic()
            holders: list[int] = []
            while time.monotonic() - killed < HEAL_SECONDS:
                holders = [pid for pid in _lock_holders(lock) if pid != follower]
                if holders and _status(app)["follower"]["pid"] == holders[0]:
                    break
                time.sleep(0.05)
            took = time.monotonic() - killed
        finally:
            os.kill(server.pid, signal.SIGCONT)
        print(f"taken over {took:.2f} s after the kill")
        assert len(holders) == 1 and holders[0] in standbys and took < HEAL_SECONDS, (holders, standbys, took)
        assert _status(app)["follower"] == {"running": True, "pid": holders[0]}

        listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id).limit(1)).one()
        _rename_as_another_node(app, listing.id, "Quillfeather Zanzibarquist")
        healed = seconds_until(base, 1, time.monotonic(), HEAL_SECONDS, q="Zanzibarquist")
        print(f"another node's change searchable after {healed:.2f} s")
        assert _status(app)["lag_rows"] == 0
        assert _check_exit(app) == 0
    finally:
        stop(server)


# Two index folders on one fresh database -------------------------------------------------------------------------

def _placeable_published(url: str) -> int:
    """The published listings a search with no filter should return: those with a place, read from the database."""
    places.use(Path(os.environ["PLACES_DIR"]))  # location_of looks postcodes up in it
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(Listing.latitude, Listing.longitude, Listing.postcode)
                                      .where(Listing.published)).all()
    finally:
        engine.dispose()
    return sum(1 for row in rows if location_of(*row) is not None)


@pytest.mark.timeout(240)
def test_two_servers_with_their_own_index_folders_both_serve_the_sample(tmp_path: Path) -> None:
    """Started together on one empty database, both end up answering with every listing the sample placed."""
    url = database_url(tmp_path)  # an empty database, its own on PostgreSQL
    env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "test",
           "LOAD_SAMPLE_DATA": "1", "SAMPLE_SIZE": "300", "INDEX_FOLLOWER": "1"}
    folders = [str(tmp_path / "indexes-a"), str(tmp_path / "indexes-b")]
    servers = []
    try:
        for n, folder in enumerate(folders):
            servers.append((*gunicorn({**env, "INDEX_DIR": folder}, 1, tmp_path / f"gunicorn-{n}.log"),
                            tmp_path / f"gunicorn-{n}.log"))
        for server, base, log in servers:
            first_answer(server, base, log, seconds=60)
        expected = _placeable_published(url)
        assert expected > 0
        # The server that lost the race to load the sample may have built its index before the sample was
        # committed: its catch-up at start, or else its follower, must bring that index level.
        deadline = time.monotonic() + HEAL_SECONDS
        while time.monotonic() < deadline:
            totals = [(search_total(base), search_total(base, q="depression")) for _, base, _ in servers]
            if totals[0] == totals[1] and totals[0][0] == expected:
                break
            time.sleep(0.1)
        assert totals[0] == totals[1] and totals[0][0] == expected and totals[0][1] > 0, (totals, expected)
        for folder in folders:
            result = flask_command({**env, "INDEX_DIR": folder, "LOAD_SAMPLE_DATA": "0"}, "index", "status", "--json")
            assert result.returncode == 0, result.stdout + result.stderr
            assert json.loads(result.stdout)["lag_rows"] == 0, result.stdout
    finally:
        for server, _, _ in servers:
            stop(server)
        drop_world(tmp_path)
