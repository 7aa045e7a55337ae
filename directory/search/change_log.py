"""The listing change log: a numbered row per committed change to a listing that search can see, which the index
follower applies in order (see follower.py).

Rows are written as the last statements of the transaction that made the change, so a rolled-back transaction
leaves none. Their numbers must follow commit order: a follower that has applied up to N never looks below N again,
so a row numbered N-1 that became visible after N would be skipped for ever. Numbers are therefore taken under a
lock held until the commit is visible: PostgreSQL's transaction-scoped advisory lock, and SQLite's single writer,
which every writing transaction holds from its first write to its commit anyway. The lock is taken only at the
commit, not at the first flush, so a long import does not hold back every other write for its whole length.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

from sqlalchemy import DateTime, bindparam, delete, func, select, text
from sqlalchemy.orm import Session

from directory.models import ChangeLogPruned, ListingChange, utcnow

# Any fixed number (see migrate.ADVISORY_LOCK_KEY, which is another).
ADVISORY_LOCK_KEY = 4_242_002
CHANNEL = "listing_changes"  # PostgreSQL's notification of a commit that wrote rows (see wakeups.py)
APPEND_BATCH = 100_000  # rows a statement on SQLite


def append(session: Session, actions: Mapping[int, str]) -> None:
    """Append a row per listing id → action to this transaction, numbered after every committed row; the caller
    commits right after."""
    if not actions:
        return
    ids = sorted(actions)
    at = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        # One statement over two arrays: the lock is held while the rows are written, and for a 100k import a
        # multi-row INSERT took 5.5 s of it, during which every other commit waits.
        session.execute(text("INSERT INTO listing_changes (listing_id, action, at) SELECT listing_id, action, :at FROM "
                             "unnest(CAST(:ids AS integer[]), CAST(:actions AS varchar[])) AS t(listing_id, action)"),
                        {"ids": ids, "actions": [actions[i] for i in ids], "at": at})
        # Delivered at the commit (and never for a rollback): it wakes every node's follower.
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
        return
    # A JSON array a statement, unpacked by SQLite's json_each. With a parameter set a row, a 1M-row import's rows
    # took 9.1 s and 1.1 GB more at its commit; so, 2.1-2.4 s and 22 MB. Their order within the transaction does not
    # matter: the follower reads them all once the commit is visible, and no id is in two.
    rows = text("INSERT INTO listing_changes (listing_id, action, at) SELECT json_extract(value, '$[0]'), "
                "json_extract(value, '$[1]'), :at FROM json_each(:rows)").bindparams(bindparam("at", type_=DateTime()))
    for start in range(0, len(ids), APPEND_BATCH):
        batch = [[i, actions[i]] for i in ids[start:start + APPEND_BATCH]]
        session.execute(rows, {"rows": json.dumps(batch), "at": at})


def latest(session: Session) -> int:
    """The number of the newest committed row (0 before any)."""
    return session.scalar(select(func.max(ListingChange.seq))) or 0


def after(session: Session, seq: int, limit: int) -> list[tuple[int, int]]:
    """Up to `limit` committed rows numbered above `seq`, as (number, listing id), in order."""
    rows = session.execute(select(ListingChange.seq, ListingChange.listing_id).where(ListingChange.seq > seq)
                           .order_by(ListingChange.seq).limit(limit))
    return [(number, listing_id) for number, listing_id in rows]


def oldest_after(session: Session, seq: int) -> tuple[int, ListingChange | None]:
    """How many committed rows are numbered above `seq`, and the first of them."""
    count = session.scalar(select(func.count()).select_from(ListingChange).where(ListingChange.seq > seq)) or 0
    first = session.scalars(select(ListingChange).where(ListingChange.seq > seq).order_by(ListingChange.seq)
                            .limit(1)).first()
    return count, first


def pruned_through(session: Session) -> int:
    """The number up to which rows were pruned (0 before any): an index that applied less missed some."""
    return session.scalar(select(ChangeLogPruned.through).where(ChangeLogPruned.id == 1)) or 0


def prune(session: Session, before: dt.datetime) -> int:
    """Delete the rows written before `before`, on time alone (a node that is down must not keep the log growing
    for ever), but never the newest, whose number the next row follows; record how far; commit. How many went."""
    through = session.scalar(select(func.max(ListingChange.seq)).where(ListingChange.at < before))
    if through is None:
        return 0
    through = min(through, latest(session) - 1)
    deleted = session.execute(delete(ListingChange).where(ListingChange.seq <= through)).rowcount  # type: ignore[attr-defined]
    marker = session.get(ChangeLogPruned, 1)
    if marker is None:
        session.add(ChangeLogPruned(id=1, through=through))
    else:
        marker.through = max(marker.through, through)
    session.commit()
    return int(deleted or 0)
