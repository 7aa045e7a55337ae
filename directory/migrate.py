"""Database schema versions: the Alembic migrations in directory/migrations, run by `flask db ...` and at start-up.

At start-up every process checks the database's revision; when it is behind, one process upgrades while the others
wait, under a lock the database's own processes share: a file lock beside an SQLite file, a transaction-scoped
advisory lock on PostgreSQL. So N workers starting at once on a fresh instance upgrade exactly once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from directory import file_lock

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

SCRIPTS = Path(__file__).with_name("migrations")
INITIAL = "0001"  # the schema as `create_all` made it before migrations existed
# The newest revision, also written here so that a start on an up-to-date database never imports Alembic: its
# 21,000 objects made every garbage collection of a search worker slower (54 against 33 ms for a full one).
# tests/test_migrations.py checks it against the scripts.
HEAD = "0011"
LOCK_TIMEOUT = 600.0  # seconds a starting process waits for another's upgrade
# Any fixed number: PostgreSQL advisory locks are named by integers, shared by every client of the database.
ADVISORY_LOCK_KEY = 4_242_001


class SchemaLocked(RuntimeError):
    """Another process held the upgrade lock longer than LOCK_TIMEOUT."""


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.attributes["connection"] = connection
    return config


def heads() -> list[str]:
    """The newest revisions of the migration scripts (exactly one, unless branches were left unmerged)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(_config()).get_heads())


def current(engine: Engine) -> str | None:
    """The database's schema revision, or None before any migration ran."""
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    # What Alembic's MigrationContext.get_current_revision reads, without importing Alembic.
    if "alembic_version" not in inspect(connection).get_table_names():
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _adopt(connection: Connection) -> None:
    # A database made by create_all before migrations existed already holds the initial schema: record it as such,
    # so upgrading does not try to create its tables again.
    from alembic import command

    tables = set(inspect(connection).get_table_names())
    if "listings" in tables and "alembic_version" not in tables:
        log.info("recording the existing schema as revision %s", INITIAL)
        command.stamp(_config(connection), INITIAL)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` (default: the newest), under the upgrade lock."""
    from alembic import command

    with _upgrade_lock(engine) as connection:
        _adopt(connection)
        command.upgrade(_config(connection), revision)


def downgrade(engine: Engine, revision: str = "-1") -> None:
    """Downgrade the schema to `revision` (default: one step back), under the upgrade lock."""
    from alembic import command

    with _upgrade_lock(engine) as connection:
        command.downgrade(_config(connection), revision)


def upgrade_at_start(engine: Engine) -> None:
    """Bring the schema to the newest revision unless it is there already; the first of many processes does it."""
    if current(engine) == HEAD:
        return
    from alembic import command

    with _upgrade_lock(engine) as connection:
        # Another process may have upgraded while this one waited for the lock.
        found = _revision(connection)
        if found == HEAD:
            return
        log.warning("upgrading the database schema from %s to %s", found or "nothing", HEAD)
        _adopt(connection)
        command.upgrade(_config(connection), "head")


@contextlib.contextmanager
def _upgrade_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the database's upgrade lock; committed when the block ends."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("SELECT set_config('lock_timeout', :ms, true)"),
                               {"ms": f"{int(LOCK_TIMEOUT * 1000)}"})
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            yield connection
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        # A private in-memory database (or a backend without a lock of ours): no other process can race for it.
        with engine.begin() as connection:
            yield connection
        return
    path = Path(f"{database}.migrate.lock")
    with open(path, "a+") as handle:
        if not file_lock.acquire(handle, LOCK_TIMEOUT):
            raise SchemaLocked(f"another process has been upgrading {database} for over {LOCK_TIMEOUT:g} s")
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            file_lock.release(handle)
