"""Keeping the index in step with the database: each commit's listing changes logged (change_log) and written to the
index right after it, the first build, full rebuild, drift check and repair. What a commit's own process could not
write, the follower applies from the log."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from directory.db import rows_in_batches, scalars_in_batches
from directory.models import Listing
from directory.search import change_log
from directory.search.documents import FACET_FIELDS, ListingValues, listing_document, location_of, stamp
from directory.search.index.storage import PARALLEL_BATCH, IndexBusy, IndexWrite, SearchIndex

log = logging.getLogger(__name__)

PENDING = "search_pending"
INDEX_FAILED = "search_index_failed"


@dataclass
class Pending:
    """Listings touched during a transaction; their committed state is indexed once the commit succeeds.

    A big transaction (an import) may instead send its listings to an open index write as it flushes them
    (`index_flushed`); that write is committed right after the database commit and cancelled on rollback.
    """

    changed: set[int] = field(default_factory=set)
    actions: dict[int, str] = field(default_factory=dict)  # listing id → what happened, for the change log
    stream: IndexWrite | None = None
    streamed: set[int] = field(default_factory=set)
    stream_refused: bool = False


def _after_flush(session: Session, _context: Any) -> None:
    # Only ids are kept: the documents are built from the committed rows, so a big import holds no documents in
    # memory, and of two transactions touching one listing the later index write always sees the later row.
    pending = session.info.setdefault(PENDING, Pending())
    for action, objects in (("created", session.new), ("updated", session.dirty), ("deleted", session.deleted)):
        for obj in objects:
            if isinstance(obj, Listing) and obj.id is not None:
                pending.changed.add(obj.id)
                if action == "deleted":
                    pending.actions[obj.id] = action
                else:
                    pending.actions.setdefault(obj.id, action)


def _before_commit(session: Session) -> None:
    # A savepoint's commit also comes here: its changes are logged with the whole transaction's.
    if session.in_nested_transaction():
        return
    session.flush()  # SQLAlchemy's own final flush comes after this hook: flushed here, its changes are logged
    pending: Pending | None = session.info.get(PENDING)
    if pending is not None and pending.actions:
        change_log.append(session, pending.actions)
        pending.actions = {}


# The columns a document is made of, which the rebuild and the sync read as rows: 97k listings made into documents
# took 14.2-18.3 CPU s as ORM objects, 11.0-13.8 as rows, the same documents.
DOCUMENT_COLUMNS = tuple(getattr(Listing, name)
                         for name in dict.fromkeys((*ListingValues.__annotations__, *FACET_FIELDS.values())))


def documents_for(session: Session, ids: list[int]) -> Iterator[dict[str, Any]]:
    """Index documents of the searchable listings among `ids`, read in batches."""
    for listing in rows_in_batches(session, select(*DOCUMENT_COLUMNS), Listing.id, ids):
        doc = listing_document(listing)
        if doc is not None:
            yield doc


def index_flushed(session: Session, listings: Sequence[ListingValues], expected: int) -> None:
    """Index listings just flushed or bulk-inserted, in a write that becomes visible right after the database commit.

    Indexing while the transaction goes on lets the index workers run beside the database work instead of after
    it. A listing already sent, or flushed again later, is left to the after-commit path, which reads the
    committed row. `expected` is about how many listings the transaction writes in all: thousands go through
    the worker-process writer.
    """
    pending = session.info.setdefault(PENDING, Pending())
    fresh = [listing for listing in listings if listing.id not in pending.streamed]
    if not fresh:
        return
    for listing in fresh:
        pending.actions.setdefault(listing.id, "imported")
    if pending.stream is None and not pending.stream_refused:
        try:
            pending.stream = session.info["search_index"].begin_write(bulk=expected >= PARALLEL_BATCH)
        except (IndexBusy, OSError):
            pending.stream_refused = True  # the after-commit path tries again, and reports if it still cannot
    if pending.stream is None:
        # Rows inserted in bulk never pass through a flush, so the after-commit path hears of them only here.
        pending.changed.update(listing.id for listing in fresh)
        return
    docs = [doc for listing in fresh if (doc := listing_document(listing)) is not None]
    pending.stream.write([listing.id for listing in fresh], docs)
    for listing in fresh:
        pending.streamed.add(listing.id)
        pending.changed.discard(listing.id)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its changes are the whole transaction's, indexed once that commits
    pending: Pending | None = session.info.pop(PENDING, None)
    if pending is None:
        return
    try:
        if pending.stream is not None:
            # Committed first, so that a listing changed again after it was streamed is replaced below.
            pending.stream.commit()
        if pending.changed:
            ids = sorted(pending.changed)
            with session.info["session_factory"]() as fresh:
                session.info["search_index"].write(ids, documents_for(fresh, ids))
    except (IndexBusy, OSError) as exc:
        # The database holds the change whatever happens here (a busy index, a full disk, a read-only folder), so
        # the commit must not look failed; the follower writes it from the change log once it can.
        reason = "the search index is busy" if isinstance(exc, IndexBusy) else f"{type(exc).__name__}: {exc}"
        log.error("listing changes were saved but not indexed (%s); the follower writes them from the change log",
                  reason)
        session.info[INDEX_FAILED] = reason


def index_failure(session: Session) -> str | None:
    """Why the index missed the changes of this session's last commit (they are saved), or None when it has them;
    reading it clears it."""
    return session.info.pop(INDEX_FAILED, None)


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # A rollback, or a session closed with its transaction open: nothing of it may reach the index.
    if transaction.parent is None:
        pending: Pending | None = session.info.pop(PENDING, None)
        if pending is not None and pending.stream is not None:
            pending.stream.cancel()


def install(factory: sessionmaker[Session], index: SearchIndex) -> None:
    """Make every session from `factory` log its listing changes as it commits and push them to `index` after."""
    info = factory.kw.setdefault("info", {})
    info["search_index"] = index
    info["session_factory"] = factory
    event.listen(factory, "after_flush", _after_flush)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_commit", _after_commit)
    event.listen(factory, "after_transaction_end", _after_transaction_end)


def open_index(root: str | Path, lock_timeout: float, session_factory: sessionmaker[Session]) -> SearchIndex:
    """The index under `root`, taking in every listing change that a session from `session_factory` commits."""
    index = SearchIndex(Path(root), lock_timeout=lock_timeout)
    install(session_factory, index)
    return index


def _searchable_documents(session: Session, skipped: list[int]) -> Iterator[dict[str, Any]]:
    # In postcode order, so that the listings near one place get neighbouring docnums (see IndexSnapshot.positions).
    # Run as a Core statement: the ORM's handling of each row took as long again as reading it, for nothing a
    # plain row of columns lacks (the session has no pending changes to flush first).
    rows = session.connection().execute(select(*DOCUMENT_COLUMNS).where(Listing.published)
                                        .order_by(Listing.country, Listing.postcode, Listing.id)
                                        .execution_options(yield_per=2000))
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
    outdated: bool = False  # written by an older version (see OutdatedIndex): only a rebuild brings it up to date

    @property
    def clean(self) -> bool:
        """True when the index matches the database."""
        return not (self.missing or self.extra or self.stale or self.outdated)


def check(session: Session, index: SearchIndex) -> Drift:
    """Compare the index with the database's searchable listings."""
    outdated = bool(index.fields_outdated()) or index.snapshot().outdated()
    rows = session.execute(select(Listing.id, Listing.updated_at, Listing.latitude, Listing.longitude, Listing.postcode)
                           .where(Listing.published).execution_options(yield_per=5000))
    return _drift(index.stamps(), rows, outdated)


def check_listings(session: Session, index: SearchIndex, ids: list[int]) -> Drift:
    """`check`, for the listings `ids` only (deleted ones included)."""
    listings = scalars_in_batches(session, select(Listing).where(Listing.published), Listing.id, ids)
    rows = ((listing.id, listing.updated_at, listing.latitude, listing.longitude, listing.postcode)
            for listing in listings)
    return _drift(index.stamps_of(ids), rows, outdated=False)


def _drift(indexed: dict[int, float], rows: Iterable[Any], outdated: bool) -> Drift:
    """How `indexed` (listing id → version) differs from the published rows (id, updated_at, latitude, longitude,
    postcode) that should be indexed."""
    wanted: dict[int, float] = {}
    unplaceable = []
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
        outdated=outdated,
    )


def repair(session_factory: sessionmaker[Session], index: SearchIndex, drift: Drift) -> None:
    """Remove a drift (the caller holds no writer lock): rewrite missing and stale listings and remove extra ones,
    or rebuild an outdated index."""
    if drift.outdated:
        rebuild(session_factory, index)
        return
    with session_factory() as session:
        index.write(*repair_changes(session, drift))


def repair_changes(session: Session, drift: Drift) -> tuple[list[int], Iterator[dict[str, Any]]]:
    """The ids to clear from the index and the documents to write that remove a drift."""
    rewrite = drift.missing + drift.stale
    return rewrite + drift.extra, documents_for(session, rewrite)


def rebuild(session_factory: sessionmaker[Session], index: SearchIndex) -> int:
    """Build a fresh index from the database, switch to it, then catch up with changes made meanwhile."""
    skipped: list[int] = []
    with session_factory() as session:
        # Read before the listings: every change numbered up to here is in what the build reads, and the follower
        # replays the rest, some of which the build may have read too (replaying a change rewrites it as it is).
        applied = change_log.latest(session)
        total = session.scalar(select(func.count()).select_from(Listing).where(Listing.published)) or 0
        docs = _searchable_documents(session, skipped)

        def catch_up(write: Callable[[list[int], Iterator[dict[str, Any]]], None]) -> None:
            with session_factory() as fresh:
                write(*repair_changes(fresh, check(fresh, index)))
            index.record_applied_change(applied)

        # Published listings that cannot be placed on the map are not indexed, and not expected.
        return index.rebuild(docs, expected=lambda: total - len(skipped), catch_up=catch_up)


def build_if_missing(session_factory: sessionmaker[Session], index: SearchIndex, then: Callable[[], object]) -> None:
    """Build the index from the database when there is none yet (first start, or a fresh INDEX_DIR), then run
    `then` (loading sample data, say); when several processes start at once, one does both and the others wait."""

    def first_build() -> None:
        log.info("building the search index in %s", index.root)
        started = time.monotonic()
        indexed = rebuild(session_factory, index)
        log.info("indexed %d listings in %.1f s", indexed, time.monotonic() - started)
        then()

    index.build_once(first_build)
