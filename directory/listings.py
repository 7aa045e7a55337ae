"""Listing lookups and naming shared by the pages, the API, the admin area and the CLI."""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import ColumnExpressionArgument, Dialect, Float, Numeric, Select, bindparam, func, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from directory.availability import Window
from directory.models import Listing


def make_slug(name: str, city: str, external_id: str) -> str:
    """A readable, stable URL slug: name and city, plus a short hash of the import key for uniqueness."""
    ascii_text = unicodedata.normalize("NFKD", f"{name} {city}").encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80].strip("-")
    digest = hashlib.sha1(external_id.encode("utf-8")).hexdigest()[:6]
    return f"{words}-{digest}" if words else digest


def all_listings() -> Select[Listing]:
    """Every listing in export order, fetched in batches."""
    return select(Listing).order_by(Listing.external_id).execution_options(yield_per=1000)


def published_by_slug(session: Session, slug: str) -> Listing | None:
    """The published listing with this slug, or None."""
    return session.scalar(select(Listing).where(Listing.slug == slug, Listing.published))


def published_by_external_id(session: Session, external_id: str) -> Listing | None:
    """The published listing with this import key, or None."""
    return session.scalar(select(Listing).where(Listing.external_id == external_id, Listing.published))


# Built once: `in_(ids)` built per call coerced each id into a bound parameter and computed a new cache key, 0.5 ms of
# the 2.1 ms a search page's 20 listings took to load at 100k.
_PUBLISHED_BY_IDS = select(Listing).where(Listing.id.in_(bindparam("ids", expanding=True)), Listing.published)


def published_by_ids(session: Session, ids: Sequence[int]) -> dict[int, Listing]:
    """Published listings by primary key; ids that are gone or unpublished are left out."""
    if not ids:
        return {}
    return {listing.id: listing for listing in session.scalars(_PUBLISHED_BY_IDS, {"ids": list(ids)})}


class _PageQuery(NamedTuple):
    """A page fetch made ready for one dialect, column set and number of ids."""

    sql: str
    row: Callable[..., Any]  # the named tuple class its rows become, fields named as the listing's attributes
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor) of each column with one


@functools.lru_cache(maxsize=256)
def _page_query(dialect: Dialect, columns: tuple[QueryableAttribute[Any], ...], count: int) -> _PageQuery:
    picked = {attribute.key: attribute.property.columns[0] for attribute in (Listing.id, *columns)}
    if any(isinstance(column.type, (Float, Numeric)) for column in picked.values()):
        # psycopg's numeric processor needs the type code of the driver's cursor, which this does not pass.
        raise ValueError("a page's rows are read without their driver's type codes: no Float or Numeric column")
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"  # sqlite3's, and psycopg's for positions
    sql = (f"SELECT {', '.join(quote(column.name) for column in picked.values())} FROM {quote(Listing.__tablename__)}"
           f" WHERE {quote(Listing.id.property.columns[0].name)} IN ({', '.join([mark] * count)})"
           f" AND {quote(Listing.published.property.columns[0].name)} = {mark}")
    # The dialect's own types, as in an ORM query: on SQLite JSON and dates arrive as text and booleans as integers,
    # on psycopg decoded.
    processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in picked.values()]
    return _PageQuery(sql, namedtuple("ListingRow", list(picked)),
                      tuple((at, make) for at, make in enumerate(processors) if make is not None))


def published_rows_by_ids(session: Session, ids: Sequence[int],
                          columns: tuple[QueryableAttribute[Any], ...]) -> dict[int, Any]:
    """Only `columns` of published listings by id, as named tuples read like listings; others are left out."""
    # Driver SQL on the session's connection (its transaction, SQLAlchemy's error wrapping and events), each value made
    # ready by its column's dialect type. With SQLAlchemy's compiled statement and its rows, loading a page of 20 at
    # 100k and making its API answer took 0.85-1.21 ms; with these, 0.72-0.97 (in-process, alternated; a named
    # tuple's fields read faster). Fetching the rows at once and calling only the processors there are (on SQLite:
    # JSON, booleans, a date; 6 of 16 columns) took the rows alone from 0.22-0.25 to 0.19-0.22 ms p50 (alternated,
    # two runs).
    if not ids:
        return {}
    connection = session.connection()
    query = _page_query(connection.dialect, columns, len(ids))
    rows = {}
    for found in connection.exec_driver_sql(query.sql, (*ids, True)).fetchall():
        values = list(found)
        for at, make in query.processors:
            if values[at] is not None:
                values[at] = make(values[at])
        rows[values[0]] = query.row(*values)
    return rows


def count_all(session: Session) -> int:
    """How many listings there are, published or not."""
    return session.scalar(select(func.count()).select_from(Listing)) or 0


def _stale(fresh: Window) -> list[ColumnExpressionArgument[bool]]:
    # Only what the public sees can mislead them; a listing never confirmed is as stale as one confirmed long ago
    # (or dated in the future, which is a typing error).
    return [Listing.published, or_(Listing.availability_confirmed_on.is_(None),
                                   Listing.availability_confirmed_on < fresh.since,
                                   Listing.availability_confirmed_on > fresh.until)]


def status_counts(session: Session, fresh: Window) -> dict[str, int]:
    """How many listings are published, unpublished, and stale (see `stale_listings`)."""
    return {
        "published": session.scalar(select(func.count()).where(Listing.published)) or 0,
        "unpublished": session.scalar(select(func.count()).where(~Listing.published)) or 0,
        "stale": session.scalar(select(func.count()).where(*_stale(fresh))) or 0,
    }


def stale_listings(session: Session, fresh: Window, limit: int) -> Sequence[Listing]:
    """Published listings whose availability confirmation is outside the window (or missing): the never confirmed
    first, then the oldest confirmed."""
    return session.scalars(select(Listing).where(*_stale(fresh))
                           .order_by(Listing.availability_confirmed_on.is_(None).desc(),
                                     Listing.availability_confirmed_on, Listing.name).limit(limit)).all()


def find_listings(session: Session, text: str, published: bool | None, page: int, per_page: int
                  ) -> tuple[Sequence[Listing], int]:
    """Page `page` (from 1) of the listings whose name, external id or city contains `text`, by name, only the
    published or only the unpublished ones when `published` says so; and how many match in all."""
    query = select(Listing)
    if text:
        # % and _ would act as LIKE wildcards: dropping them keeps the text a plain substring.
        like = f"%{text.replace('%', '').replace('_', '')}%"
        query = query.where(or_(Listing.name.ilike(like), Listing.external_id.ilike(like), Listing.city.ilike(like)))
    if published is not None:
        query = query.where(Listing.published == published)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Listing.name, Listing.id).offset((page - 1) * per_page).limit(per_page)).all()
    return rows, total


def unmapped_genders() -> Select[Listing]:
    """Listings, published or not, whose gender as written names no term, by name: for an admin to choose one."""
    return select(Listing).where(Listing.gender_unmapped != "").order_by(Listing.name, Listing.external_id)
