"""The schema is Alembic's: one head, migrations that agree with the models, upgrade and downgrade from the CLI,
an old create_all database adopted, several processes starting on an empty database upgrading it once, and the data
migrations (gender as a vocabulary, who a therapist sees out of specialties) mapping real values as documented."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
import sqlalchemy as sa
from sqlalchemy import create_engine, inspect, text

from directory import db, migrate, models
from directory.db import Base
from helpers import REPO, database_url, drop_world, on_postgresql


def test_there_is_exactly_one_head_and_the_code_names_it() -> None:
    assert migrate.heads() == [migrate.HEAD] == ["0011"]


def test_a_start_on_an_up_to_date_database_does_not_import_alembic(shared_app: Flask) -> None:
    # Alembic's objects slow every garbage collection of a search worker; only an upgrade needs them.
    script = ("import sys\nfrom directory import create_app\n"
              f"create_app({{'DATABASE_URL': {shared_app.config['DATABASE_URL']!r}, 'LOAD_SAMPLE_DATA': False, "
              f"'INDEX_DIR': {shared_app.config['INDEX_DIR']!r}, 'INSTANCE_PATH': {shared_app.instance_path!r}, "
              "'SECRET_KEY': 'test'})\n"
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
        assert shown.returncode == 0 and "database: 0011  newest: 0011" in shown.stdout, shown.stderr
        down = _flask(tmp_path, "db", "downgrade", AUTO_MIGRATE="0")
        assert down.returncode == 0 and "The database schema is at 0010." in down.stdout, down.stderr
        behind = _flask(tmp_path, "db", "current", AUTO_MIGRATE="0")
        assert behind.returncode == 1 and "database: 0010  newest: 0011" in behind.stdout
        assert "run `flask --app app db upgrade`" in behind.stderr
        up = _flask(tmp_path, "db", "upgrade", AUTO_MIGRATE="0")
        assert up.returncode == 0 and "The database schema is at 0011." in up.stdout, up.stderr
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
        assert started.returncode == 0 and "database: 0011" in started.stdout, started.stderr
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


# Genders as people have typed them into the free-text field before 0005, each with what 0005 must make of it,
# decided by hand from the gender vocabulary (vocabulary.json): (gender, gender_unmapped). A value naming no term is
# kept as written; one that declines to say a gender becomes blank, as a blank one stays.
GENDERS_WRITTEN = {
    "Female": ("woman", ""), "F": ("woman", ""), "woman": ("woman", ""), " Female ": ("woman", ""),
"trans woman": ("woman", ""), "Cisgender woman": ("woman", ""),
    "Man": ("man", ""), "man": ("man", ""), "MAN": ("man", ""), "male": ("man", ""), "M": ("man", ""),
    "Trans Man": ("man", ""),
    "Non-binary": ("non-binary", ""), "nonbinary": ("non-binary", ""), "NB": ("non-binary", ""),
    "genderqueer": ("non-binary", ""), "agender": ("non-binary", ""), "Gender non-conforming": ("non-binary", ""),
    "Prefer not to say": ("", ""), "N/A": ("", ""), "n/a": ("", ""), "Decline to state": ("", ""), "-": ("", ""),
    "": ("", ""),
    # Names no term: kept, to be listed for an admin and shown on the profile as written.
    "Two-Spirit": ("", "Two-Spirit"), "Woman (she/her)": ("", "Woman (she/her)"), "Bigender": ("", "Bigender"),
    "genderqueer woman": ("", "genderqueer woman"), "x" * 40: ("", "x" * 40),
}
# Specialties before 0005, and (specialties, ages, client types) after: couples and adolescents were specialties.
SPECIALTIES_WRITTEN = [
    (["couples", "depression"], (["depression"], [], ["couples"])),
    (["adolescents"], ([], ["teens"], [])),
    (["anxiety", "adolescents", "grief", "couples"], (["anxiety", "grief"], ["teens"], ["couples"])),
    (["depression", "relationship-issues"], (["depression", "relationship-issues"], [], [])),
    ([], ([], [], [])),
]
_OLD_LISTINGS = sa.table(  # the listings table as revision 0004 has it, as far as these rows need
    "listings", *(sa.column(name) for name in (
        "external_id", "slug", "name", "credentials", "license_number", "license_region", "email", "phone",
        "website", "address", "city", "region", "postcode", "country", "telehealth", "in_person",
        "accepting_new_clients", "sliding_scale", "gender", "bio", "published", "updated_at", "photo")),
    *(sa.column(name, sa.JSON) for name in ("modalities", "specialties", "languages", "insurance")))


def _old_row(number: int, gender: str, specialties: list[str]) -> dict[str, Any]:
    return {"external_id": f"old-{number}", "slug": f"old-{number}", "name": f"Old {number}", "credentials": "",
            "license_number": "", "license_region": "NY", "email": "", "phone": "", "website": "", "address": "",
            "city": "New York", "region": "NY", "postcode": "10001", "country": "US", "telehealth": False,
            "in_person": True, "accepting_new_clients": True, "sliding_scale": False, "gender": gender, "bio": "",
            "published": True, "updated_at": sa.func.current_timestamp(), "photo": "", "modalities": ["cbt"],
            "specialties": specialties, "languages": ["english"], "insurance": []}


def test_genders_and_moved_specialties_are_mapped_by_the_upgrade_and_none_is_lost(tmp_path: Path) -> None:
    engine = create_engine(database_url(tmp_path))
    try:
        migrate.upgrade(engine, "0004")
        rows = [_old_row(n, gender, ["depression"]) for n, gender in enumerate(GENDERS_WRITTEN)]
        # The same text on two listings: both mapped.
        rows.append(_old_row(len(rows), "Female", ["depression"]))
        rows.append(_old_row(len(rows), "Two-Spirit", ["depression"]))
        first_moved = len(rows)
        rows += [_old_row(first_moved + n, "", before) for n, (before, _) in enumerate(SPECIALTIES_WRITTEN)]
        with engine.begin() as connection:
            for row in rows:
                connection.execute(sa.insert(_OLD_LISTINGS).values(**row))
        migrate.upgrade(engine)
        assert migrate.current(engine) == "0011"
        with engine.connect() as connection:
            found = {row.external_id: row for row in connection.execute(text(
                "SELECT external_id, gender, gender_unmapped, specialties, ages, client_types, communities "
                "FROM listings"))}
        assert len(found) == len(rows)
        for row in rows:
            if int(row["external_id"].split("-")[1]) < first_moved:
                assert (found[row["external_id"]].gender, found[row["external_id"]].gender_unmapped) == \
                    GENDERS_WRITTEN[row["gender"]], row["gender"]
        for n, (_, after) in enumerate(SPECIALTIES_WRITTEN):
            moved = found[f"old-{first_moved + n}"]
            assert tuple(_json(moved, column) for column in ("specialties", "ages", "client_types")) == after
        assert all(_json(row, "communities") == [] for row in found.values())
        # Nothing typed is lost: every value that named no gender and said something is kept, exactly as written.
        kept = {row.gender_unmapped for row in found.values() if row.gender_unmapped}
        assert kept == {written for written, (_, unmapped) in GENDERS_WRITTEN.items() if unmapped}
        # The downgrade gives the free-text field back what it kept (mapped values stay their term's slug).
        migrate.downgrade(engine, "0004")
        with engine.connect() as connection:
            back = {row.external_id: row.gender for row in connection.execute(text(
                "SELECT external_id, gender FROM listings"))}
        assert back["old-0"] == "woman"
        assert {back[f"old-{n}"] for n, written in enumerate(GENDERS_WRITTEN) if GENDERS_WRITTEN[written][1]} == kept
    finally:
        engine.dispose()
        drop_world(tmp_path)


def _json(row: Any, column: str) -> list[str]:
    value = getattr(row, column)
    return json.loads(value) if isinstance(value, str) else value  # SQLite hands JSON back as text here
