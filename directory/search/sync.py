"""Keeping the index in step with the database: after-commit sync, full rebuild, drift check and repair."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from directory.models import Listing
from directory.search.index import IndexBusy, SearchIndex
from directory.search.schema import listing_document, location_of, stamp

log = logging.getLogger(__name__)

PENDING = "search_pending"


@dataclass
class Pending:
    """Index work collected during a transaction: latest document per listing, and removals."""

    upserts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)


def _pending(session: Session) -> Pending:
    return session.info.setdefault(PENDING, Pending())


def _after_flush(session: Session, _context: Any) -> None:
    # Documents are built here, while the rows are loaded, but only written once the commit succeeds.
    pending = _pending(session)
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, Listing):
            doc = listing_document(obj)
            key = str(obj.id)
            if doc is None:
                pending.upserts.pop(key, None)
                pending.deletes.add(key)
            else:
                pending.deletes.discard(key)
                pending.upserts[key] = doc
    for obj in session.deleted:
        if isinstance(obj, Listing):
            key = str(obj.id)
            pending.upserts.pop(key, None)
            pending.deletes.add(key)


def _after_commit(session: Session) -> None:
    pending: Pending | None = session.info.pop(PENDING, None)
    if pending is None:
        return
    try:
        session.info["search_index"].apply(pending.upserts, pending.deletes)
    except IndexBusy:
        # The database already holds the change; `index check --repair` brings the index level again.
        log.error("search index busy: %d listing changes not indexed; run `index check --repair`",
                  len(pending.upserts) + len(pending.deletes))


def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING, None)


def install(factory: sessionmaker[Session], index: SearchIndex) -> None:
    """Make every session from `factory` push its committed listing changes to `index`."""
    factory.kw.setdefault("info", {})["search_index"] = index
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_rollback", _after_rollback)


def _searchable_documents(session: Session, skipped: list[int]) -> Iterator[dict[str, Any]]:
    rows = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id).execution_options(yield_per=2000))
    for listing in rows:
        doc = listing_document(listing)
        if doc is None:
            skipped.append(listing.id)
        else:
            yield doc


@dataclass
class Drift:
    """How the index differs from the database."""

    missing: list[int]
    extra: list[int]
    stale: list[int]
    unplaceable: list[int]

    @property
    def clean(self) -> bool:
        """True when the index matches the database."""
        return not (self.missing or self.extra or self.stale)


def check(session: Session, index: SearchIndex) -> Drift:
    """Compare the index with the database's searchable listings."""
    indexed = index.stamps()
    wanted: dict[int, float] = {}
    unplaceable = []
    rows = session.execute(select(Listing.id, Listing.updated_at, Listing.latitude, Listing.longitude, Listing.postcode)
                           .where(Listing.published).execution_options(yield_per=5000))
    for listing_id, updated_at, latitude, longitude, postcode in rows:
        if location_of(latitude, longitude, postcode) is None:
            unplaceable.append(listing_id)
        else:
            wanted[listing_id] = stamp(updated_at)
    return Drift(
        missing=sorted(set(wanted) - set(indexed)),
        extra=sorted(set(indexed) - set(wanted)),
        stale=sorted(i for i in set(wanted) & set(indexed) if wanted[i] != indexed[i]),
        unplaceable=sorted(unplaceable),
    )


def repair_changes(session: Session, drift: Drift) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The documents to write and the ids to delete that would remove a drift."""
    ids = drift.missing + drift.stale
    upserts: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        for listing in session.scalars(select(Listing).where(Listing.id.in_(ids[start:start + 500]))):
            doc = listing_document(listing)
            if doc is not None:
                upserts[doc["id"]] = doc
    return upserts, [str(i) for i in drift.extra]


def rebuild(session_factory: sessionmaker[Session], index: SearchIndex) -> int:
    """Build a fresh index from the database, switch to it, then catch up with changes made meanwhile."""
    skipped: list[int] = []
    with session_factory() as session:
        total = session.scalar(select(func.count()).select_from(Listing).where(Listing.published)) or 0
        docs = _searchable_documents(session, skipped)

        def catch_up() -> tuple[dict[str, dict[str, Any]], list[str]]:
            with session_factory() as fresh:
                return repair_changes(fresh, check(fresh, index))

        # Published listings that cannot be placed on the map are not indexed, and not expected.
        return index.rebuild(docs, expected=lambda: total - len(skipped), catch_up=catch_up)
