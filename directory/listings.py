"""Listing lookups and naming shared by the pages, the API, the admin area and the CLI."""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnExpressionArgument, Row, Select, bindparam, func, or_, select
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


@functools.cache
def _published_by_ids(columns: tuple[QueryableAttribute[Any], ...]) -> Select[Any]:
    # Built once for each set of columns: `in_(ids)` built per call coerced each id into a bound parameter and
    # computed a new cache key, 0.5 ms of the 2.1 ms a search page's 20 listings took to load at 100k.
    shown = select(Listing.id, *columns) if columns else select(Listing)
    return shown.where(Listing.id.in_(bindparam("ids", expanding=True)), Listing.published)


def published_by_ids(session: Session, ids: Sequence[int]) -> dict[int, Listing]:
    """Published listings by primary key; ids that are gone or unpublished are left out."""
    if not ids:
        return {}
    return {listing.id: listing for listing in session.scalars(_published_by_ids(()), {"ids": list(ids)})}


def published_rows_by_ids(session: Session, ids: Sequence[int],
                          columns: tuple[QueryableAttribute[Any], ...]) -> dict[int, Row[Any]]:
    """Only `columns` of published listings by primary key, as rows read like listings (`row.name`); ids that are
    gone or unpublished are left out."""
    # Rows, not listings, on the session's connection rather than through the ORM's execution: a page of 20 at
    # 100k took 0.33 ms so against 0.54 as listings with only these columns loaded (in-process, interleaved).
    if not ids:
        return {}
    return {row.id: row for row in session.connection().execute(_published_by_ids(columns), {"ids": list(ids)})}


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
