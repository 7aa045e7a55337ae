"""The database: engine and per-request session, bound to the app by init_app."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    """Declarative base of every model."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets searches read while one writer commits; the busy timeout makes writers queue, not fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for a SQLAlchemy URL, with SQLite set up for concurrent readers and one writer."""
    engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def init_app(app: Flask) -> None:
    """Create the engine and session factory, and close each request's session at teardown."""
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["db"] = sessionmaker(engine, expire_on_commit=False)
    Base.metadata.create_all(engine)
    app.teardown_appcontext(_close_session)


def new_session() -> Session:
    """A fresh session outside the request's one (CLI jobs, background work)."""
    return current_app.extensions["db"]()


def session() -> Session:
    """The session of the current app context, created on first use."""
    if "db_session" not in g:
        g.db_session = new_session()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    db_session = g.pop("db_session", None)
    if db_session is not None:
        db_session.close()
