"""Starting, rebuilding and importing at once, as a deployment does: four gunicorn workers on an empty instance,
three rebuilds together, a rebuild racing an import. Each ends with one valid live index that matches the database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from whoosh import index as whoosh_index

from directory.models import Listing
from directory.search.index.storage import CLAIMS, CURRENT, SearchIndex
from helpers import (
    GOOD, REPO, copy_world, database_url, drop_world, flask_env, free_port, http_get, make_csv, world_app,
)


def _flask(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _searchable(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Listing).where(Listing.published)) or 0


def _live_generation(index_dir: str) -> Path:
    live = Path(index_dir) / CURRENT
    target = live.resolve()
    assert target.is_dir() and any(target.glob("_MAIN_*.toc")), f"the live link points at {target}: not an index"
    return target


def test_prune_leaves_a_generation_another_process_is_building(tmp_path: Path) -> None:
    index = SearchIndex(tmp_path)
    index.ensure()
    live = _live_generation(str(tmp_path))
    with index._new_generation() as building:  # claimed, as a rebuild in another process holds it
        stale = tmp_path / "gen-00000000000000-stale000"
        stale.mkdir()
        index._prune(keep={live})
        assert building.is_dir(), "a generation being built was deleted"
        assert not stale.exists(), "an unclaimed old generation was kept"
    index._prune(keep={live})
    assert not building.exists() and not (tmp_path / CLAIMS / building.name).exists()
    index.close()


def test_three_rebuilds_at_once_leave_one_valid_index(app: Flask, session: Session, runner: FlaskCliRunner) -> None:
    env = flask_env(app)
    expected = _searchable(session)
    for _trial in range(3):
        processes = [_flask(env, "index", "rebuild") for _ in range(3)]
        outputs = [p.communicate(timeout=240)[0] for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0], outputs
        assert not any("Traceback" in output for output in outputs), outputs
        _live_generation(app.config["INDEX_DIR"])
        assert runner.invoke(args=["index", "check"]).exit_code == 0
        body = app.test_client().get("/api/v1/search", query_string={"per_page": 1}).get_json()
        assert body["total"] == expected
    # What is left on disk: the live generation, at most the one before it, nothing half-built.
    assert len(list(Path(app.config["INDEX_DIR"]).glob("gen-*"))) <= 2


def test_a_rebuild_racing_an_import_loses_nothing(app: Flask, session: Session, runner: FlaskCliRunner,
                                                 tmp_path: Path) -> None:
    rows = [{**GOOD, "external_id": f"race-{i}", "name": f"Racewell {i}"} for i in range(6000)]
    path = tmp_path / "race.csv"
    path.write_text(make_csv(rows), encoding="utf-8")
    env = flask_env(app)
    importing = _flask(env, "import-csv", str(path))
    time.sleep(1.0)
    rebuilding = _flask(env, "index", "rebuild")
    outputs = [importing.communicate(timeout=300)[0], rebuilding.communicate(timeout=300)[0]]
    assert (importing.returncode, rebuilding.returncode) == (0, 0), outputs
    assert not any("Traceback" in output for output in outputs), outputs
    assert runner.invoke(args=["index", "check"]).exit_code == 0
    body = app.test_client().get("/api/v1/search", query_string={"q": "Racewell", "per_page": 1}).get_json()
    assert body["total"] == 6000


@pytest.mark.parametrize("trial", range(2))
def test_four_gunicorn_workers_start_cleanly_on_an_empty_instance(tmp_path: Path, trial: int) -> None:
    # The first start of a deployment: no schema, no index, no listings, no secret key; all four workers at once.
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(tmp_path), "INDEX_DIR": str(tmp_path / "indexes"),
           "INSTANCE_PATH": str(tmp_path / "instance"), "LOAD_SAMPLE_DATA": "1", "SAMPLE_SIZE": "2000"}
    env.pop("SECRET_KEY", None)
    env["SINGLE_NODE"] = "1"  # one deployment's first start: on PostgreSQL it must say it is alone to go keyless
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "4", "-b", f"127.0.0.1:{port}",
                                   "--timeout", "60", "app:app"], cwd=REPO, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        status = 0
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status, _ = http_get(f"{base}/api/v1/search?per_page=1")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.5)
        assert server.poll() is None, log.read_text()[-3000:]
        assert status == 200, log.read_text()[-3000:]
        # Many requests, so that every worker answers some: each sees the same complete index.
        totals = set()
        for _ in range(40):
            code, body = http_get(f"{base}/api/v1/search?per_page=1&postcode=10001&radius=500")
            assert code == 200, body[:300]
            totals.add(json.loads(body)["total"])
        assert len(totals) == 1, totals
        text = log.read_text()
        assert "Traceback" not in text and "Worker failed to boot" not in text, text[-3000:]
        assert text.count("Booting worker") == 4, text[-3000:]
        _live_generation(env["INDEX_DIR"])
        checked = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "index", "check"], cwd=REPO,
                                 env={**env, "LOAD_SAMPLE_DATA": "0"}, capture_output=True, text=True, timeout=120)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        drop_world(tmp_path)


def test_an_index_written_before_a_field_existed_is_rebuilt_at_start(sample_world: Path, tmp_path: Path) -> None:
    # The confirmation-date column came with the freshness rule; an index from before it lacks the column, and a
    # search for accepting listings would fail on it. Such an index is rebuilt by the first process to start.
    copy_world(sample_world, tmp_path)
    index = SearchIndex(str(tmp_path / "indexes"))
    older = whoosh_index.open_dir(str(index.root / os.readlink(index.root / CURRENT)))
    writer = older.writer()
    writer.remove_field("confirmed")
    writer.commit()
    assert index.fields_outdated() == {"confirmed"}
    with world_app(tmp_path) as started:
        assert started.extensions["search"].fields_outdated() == set()
        body = started.test_client().get("/api/v1/search", query_string={"postcode": "10001", "accepting": "1"})
        assert body.status_code == 200 and body.get_json()["total"] > 0
        assert started.test_cli_runner().invoke(args=["index", "check"]).exit_code == 0


@pytest.mark.parametrize("command", [None, "import-csv"])
def test_a_serving_process_freezes_its_postcode_tables_out_of_the_collector_and_a_command_does_not(
        tmp_path: Path, command: str | None) -> None:
    # As gunicorn imports app.py (no command), and as `flask --app app import-csv` does (a command runs).
    enter = f"import click; click.Context(click.Command({command!r}), info_name={command!r}).__enter__(); " \
        if command else ""
    env = {**os.environ, "DATABASE_URL": database_url(tmp_path), "INDEX_DIR": str(tmp_path / "indexes"),
           "INSTANCE_PATH": str(tmp_path / "instance"), "LOAD_SAMPLE_DATA": "0", "INDEX_FOLLOWER": "0",
           "TICK_SECONDS": "0", "SINGLE_NODE": "1"}
    script = f"{enter}import gc, app; from directory.geo import postcodes; " \
        "print(gc.get_freeze_count(), postcodes._us is not None)"
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    frozen, loaded = done.stdout.split()
    if command is None:
        assert int(frozen) > 100_000 and loaded == "True"  # ~300,000 long-lived objects, the ZIP table among them
    else:
        assert int(frozen) == 0 and loaded == "False"
