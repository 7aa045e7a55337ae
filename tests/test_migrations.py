"""The schema is Alembic's: one head, migrations that agree with the models, upgrade and downgrade from the CLI,
an old create_all database adopted, and several processes starting on an empty database upgrading it once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import create_engine, inspect, text

from directory import db, migrate, models
from directory.db import Base
from helpers import REPO, database_url, drop_world, on_postgresql


def test_there_is_exactly_one_head_and_the_code_names_it() -> None:
    assert migrate.heads() == [migrate.HEAD] == ["0004"]


def test_a_start_on_an_up_to_date_database_does_not_import_alembic(shared_app: Flask) -> None:
    # Alembic's objects slow every garbage collection of a search worker; only an upgrade needs them.
    script = ("import sys\nfrom directory import create_app\n"
              f"create_app({{'DATABASE_URL': {shared_app.config['DATABASE_URL']!r}, 'LOAD_SAMPLE_DATA': False, "
              f"'INDEX_DIR': {shared_app.config['INDEX_DIR']!r}, 'INSTANCE_PATH': {shared_app.instance_path!r}}})\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_the_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    engine = create_engine(database_url(tmp_path))
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        assert set(inspect(engine).get_table_names()) == {*Base.metadata.tables, "alembic_version"}
        assert models  # the tables above are the models'
    finally:
        engine.dispose()
        drop_world(tmp_path)


def _flask(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url(root), "INDEX_DIR": str(root / "indexes"),
           "INSTANCE_PATH": str(root / "instance"), "LOAD_SAMPLE_DATA": "0", "SECRET_KEY": "test", **env}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_db_commands_upgrade_show_and_downgrade(tmp_path: Path) -> None:
    try:
        shown = _flask(tmp_path, "db", "current")  # the app itself upgraded the empty database at start
        assert shown.returncode == 0 and "database: 0004  newest: 0004" in shown.stdout, shown.stderr
        down = _flask(tmp_path, "db", "downgrade", AUTO_MIGRATE="0")
        assert down.returncode == 0 and "The database schema is at 0003." in down.stdout, down.stderr
        behind = _flask(tmp_path, "db", "current", AUTO_MIGRATE="0")
        assert behind.returncode == 1 and "database: 0003  newest: 0004" in behind.stdout
        assert "run `flask --app app db upgrade`" in behind.stderr
        up = _flask(tmp_path, "db", "upgrade", AUTO_MIGRATE="0")
        assert up.returncode == 0 and "The database schema is at 0004." in up.stdout, up.stderr
    finally:
        drop_world(tmp_path)


def test_a_database_made_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    engine = create_engine(database_url(tmp_path))
    try:
        # What create_all made before migrations existed: the first revision's schema, with no alembic_version.
        migrate.upgrade(engine, migrate.INITIAL)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO audit_events (at, actor, action, detail) "
                                    "VALUES (CURRENT_TIMESTAMP, 'ops', 'edit', 'kept')"))
        started = _flask(tmp_path, "db", "current")
        assert started.returncode == 0 and "database: 0004" in started.stdout, started.stderr
        with engine.connect() as connection:
            assert connection.execute(text("SELECT detail FROM audit_events")).scalars().all() == ["kept"]
    finally:
        engine.dispose()
        drop_world(tmp_path)


def test_four_processes_starting_on_an_empty_database_upgrade_it_once(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url(tmp_path), "LOAD_SAMPLE_DATA": "0", "SECRET_KEY": "test"}
    go = tmp_path / "go"
    # Each process waits for the same moment, then builds the app (which upgrades the schema when it is behind).
    script = (f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
              "from directory import create_app\ncreate_app()\n")
    try:
        processes = [subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE, text=True,
                                      env={**env, "INSTANCE_PATH": str(tmp_path / f"instance-{n}"),
                                           # Own indexes: this test is about the schema; a shared index's first
                                           # build is the safe-start issue's.
                                           "INDEX_DIR": str(tmp_path / f"indexes-{n}")})
                     for n in range(4)]
        time.sleep(1.5)  # imports done: all four reach the schema check together
        go.touch()
        errors = [process.communicate(timeout=120)[1] for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0, 0], errors
        assert sum(e.count("upgrading the database schema") for e in errors) == 1, errors
        engine = create_engine(database_url(tmp_path))
        try:
            assert migrate.current(engine) == migrate.HEAD
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            engine.dispose()
    finally:
        drop_world(tmp_path)


def test_each_half_of_the_suite_runs_on_its_own_database(shared_app: Flask) -> None:
    # A guard against a PostgreSQL half that silently tests SQLite.
    assert db.engine(shared_app).dialect.name == ("postgresql" if on_postgresql() else "sqlite")
