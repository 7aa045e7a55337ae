"""How an import's new listings reach the database: every column given, by the fastest bulk path each database has,
with the ids they were given, so they can be indexed from the values written without reading them back."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from psycopg import sql
from sqlalchemy import JSON, ColumnDefault, Table, select, text
from sqlalchemy.orm import Session

from directory.db import rows_in_batches
from directory.models import Listing

_TABLE: Table = Listing.metadata.tables[Listing.__tablename__]


def insert_new(session: Session, rows: list[dict[str, Any]]) -> list[SimpleNamespace]:
    """Insert new listings inside the session's transaction; each comes back as its column values and new id.

    Every column is given (the model's defaults for those the file lacks, evaluated once a batch: one timestamp
    for its rows), so the row written is the document indexed. Not through the ORM: its bulk INSERT ... RETURNING
    of whole listings, loaded back as objects, took 4.0-4.3 s a 20,000 rows against 1.2 s for Core's, and was 35%
    of a SQLite import's main process."""
    # A nullable column's default None is no ColumnDefault to SQLAlchemy, but the document still reads it.
    defaults = {column.key: None for column in _TABLE.columns if column.nullable}
    defaults.update({column.key: default.arg(None) if default.is_callable else default.arg
                     for column in _TABLE.columns if isinstance(default := column.default, ColumnDefault)})
    full = [{**defaults, **row} for row in rows]
    ids = _copied(session, full) if session.get_bind().dialect.name == "postgresql" else _inserted(session, full)
    return [SimpleNamespace(**row, id=ids[row["external_id"]]) for row in full]


def _inserted(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """SQLite: the rows as one `executemany` of values each column's type has already made ready for the driver,
    then their new ids looked up by external id. SQLAlchemy's INSERT ... RETURNING made each row's parameters
    through its compiler: 100k rows took 7.9 s that way and 6.3 s this way (in an import whose index workers
    share the machine's two cores)."""
    dialect = session.get_bind().dialect
    names = [column.key for column in _TABLE.columns if column.key != "id"]
    # The dialect's own types: a generic Date or DateTime has no processor, and sqlite3's default adapters, which
    # would then store them, write another text form and warn from Python 3.12.
    ready = [(name, _TABLE.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]
    quote = dialect.identifier_preparer.quote
    statement = (f"INSERT INTO {quote(_TABLE.name)} ({', '.join(map(quote, names))}) "
                 f"VALUES ({', '.join('?' * len(names))})")
    session.connection().exec_driver_sql(statement, [
        tuple(row[name] if make is None else make(row[name]) for name, make in ready) for row in rows])
    found = select(Listing.external_id, Listing.id)
    return {external_id: pk for external_id, pk in
            rows_in_batches(session, found, Listing.external_id, [row["external_id"] for row in rows])}


def _copied(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """PostgreSQL: ids drawn from the table's sequence, then the rows sent by COPY. A multi-row INSERT spent most
    of a 100k import in psycopg turning its placeholders into PostgreSQL's (74 s of 121)."""
    ids = session.scalars(text("SELECT nextval(pg_get_serial_sequence('listings', 'id')) FROM generate_series(1, :n)"),
                          {"n": len(rows)}).all()
    names = [column.key for column in _TABLE.columns if column.key != "id"]
    as_json = [isinstance(_TABLE.c[name].type, JSON) for name in names]
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(_TABLE.name), sql.SQL(", ").join(map(sql.Identifier, ["id", *names])))
    driver = session.connection().connection.driver_connection  # the psycopg connection of the session's transaction
    assert driver is not None
    cursor = driver.cursor()
    with cursor, cursor.copy(statement) as copy:
        for pk, row in zip(ids, rows, strict=True):
            copy.write_row([pk, *(json.dumps(row[name]) if is_json else row[name]
                                  for name, is_json in zip(names, as_json, strict=True))])
    return {row["external_id"]: pk for pk, row in zip(ids, rows, strict=True)}
