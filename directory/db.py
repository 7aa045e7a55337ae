"""The database: engine, per-request session and session factory, bound to the app by init_app."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, TypeVarTuple

import orjson
from flask import Flask, current_app, g
from sqlalchemy import Row, Select, create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, Session, sessionmaker

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
SQLITE_BUSY_TIMEOUT_MS = 10_000  # also PostgreSQL's lock_timeout: how long a writer waits for another


class Base(DeclarativeBase):
    """Declarative base of every model."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets searches read while one writer commits; the busy timeout makes writers queue, not fail, and stays
    # well under gunicorn's 30 s worker timeout, so a writer that cannot get in is told so instead of killed.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _json_loads(text: str) -> Any:
    """A JSON column's value as `json.loads` reads it: by orjson when that is a list of strings, as every JSON
    column of the models holds."""
    # The facet columns of 100k listings are 680k small arrays: `json.loads` took 1.1 µs each, orjson and this check
    # 0.5. Other values go to `json`: orjson refuses some of what `json` writes and reads back (NaN, a lone surrogate
    # escape) and reads an integer past 64 bits as a float.
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    if type(value) is list and all(type(item) is str for item in value):
        return value
    return json.loads(text)


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL, with SQLite set up for concurrent readers and one writer."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        # A plain postgresql:// URL means psycopg2 to SQLAlchemy; psycopg 3 is the driver this project pins.
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, json_deserializer=_json_loads)
    else:
        # A statement waiting for a row another transaction holds (an import's) gives up like SQLite's busy wait.
        # Every statement is planned for its own values: psycopg prepares a statement after five runs, and a
        # generic plan that PostgreSQL kept from while a table was small had an import into an empty table scan
        # every listing written so far on each lookup of a thousand ids (100k rows: 353 s, then 78 s).
        engine = create_engine(parsed, pool_pre_ping=True, connect_args={
            "options": f"-c lock_timeout={SQLITE_BUSY_TIMEOUT_MS} -c plan_cache_mode=force_custom_plan"})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def init_app(app: Flask) -> None:
    """Create the engine and session factory, and close each request's session at teardown (the schema is
    directory.migrate's)."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db"] = sessionmaker(engine, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def engine(app: Flask | None = None) -> Engine:
    """The engine of `app` (default: the current app)."""
    return factory(app).kw["bind"]


def factory(app: Flask | None = None) -> sessionmaker[Session]:
    """The session factory of `app` (default: the current app), for sessions outside the request's one: CLI
    commands, background imports, streamed responses."""
    return (app or current_app).extensions["db"]


def session() -> Session:
    """The session of the current app context, created on first use."""
    if "db_session" not in g:
        g.db_session = factory()()
    return g.db_session


def scalars_in_batches(session: Session, statement: Select[T], column: QueryableAttribute[Any],
                       values: Sequence[Any], batch: int = 500) -> Iterator[T]:
    """The scalars of `statement` where `column` is in `values`, queried `batch` values at a time; used by the
    import pipeline's id and slug lookups and search sync's listing loads."""
    # One IN list per query stays under SQLite's limit on bound parameters, however many values there are.
    for start in range(0, len(values), batch):
        yield from session.scalars(statement.where(column.in_(values[start:start + batch])))


def rows_in_batches(session: Session, statement: Select[*Ts], column: QueryableAttribute[Any],
                    values: Sequence[Any], batch: int = 500) -> Iterator[Row[*Ts]]:
    """The rows of `statement` where `column` is in `values`, as `scalars_in_batches` queries them."""
    for start in range(0, len(values), batch):
        yield from session.execute(statement.where(column.in_(values[start:start + batch])))


def is_busy(exc: OperationalError) -> bool:
    """Whether a database error means "another transaction holds what this one needs", after waiting for it."""
    return "database is locked" in str(exc) or "lock timeout" in str(exc)


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
