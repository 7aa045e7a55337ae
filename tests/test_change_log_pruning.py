"""The change log is pruned on time alone (a node that is down must not keep it growing), never its newest row; a
node whose index is behind the pruned rows is compared whole with the database at its next step, then follows."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from directory import create_app, db, periodic
from directory.models import ConfirmationRequest, Listing, ListingChange, utcnow
from directory.search import change_log, follower, sync
from helpers import SAMPLE_DAY, close_app


@pytest.fixture()
def node_b(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """A second node on the app's database: its own index folder (built from the database at its start)."""
    made = create_app({"DATABASE_URL": app.config["DATABASE_URL"], "INDEX_DIR": str(tmp_path / "b-indexes"),
                       "INSTANCE_PATH": str(tmp_path / "b-instance"), "TESTING": True, "SECRET_KEY": "test",
                       "LOAD_SAMPLE_DATA": False, "CLOCK": lambda: SAMPLE_DAY, "INDEX_FOLLOWER": False,
                       "TICK_SECONDS": 0})
    yield made
    close_app(made)


def _rename(session: Session, listing_ids: list[int], name: str) -> None:
    for n, listing_id in enumerate(listing_ids):
        listing = session.get(Listing, listing_id)
        assert listing is not None
        listing.name = f"{name} {n}"
        session.commit()


def _found(app: Flask, words: str) -> int:
    return int(app.test_client().get("/api/v1/search", query_string={"q": words}).get_json()["total"])


def test_pruning_goes_by_age_keeps_the_newest_row_and_says_how_far(app: Flask, session: Session) -> None:
    ids = list(session.scalars(select(Listing.id).order_by(Listing.id).limit(3)))
    _rename(session, ids, "Agewell")
    rows = list(session.scalars(select(ListingChange.seq).order_by(ListingChange.seq)))
    # The first two are eight days old, the last one a day old; retention is seven days.
    session.execute(update(ListingChange).where(ListingChange.seq.in_(rows[:-1]))
                    .values(at=utcnow() - dt.timedelta(days=8)))
    session.execute(update(ListingChange).where(ListingChange.seq == rows[-1])
                    .values(at=utcnow() - dt.timedelta(days=1)))
    session.commit()
    assert change_log.prune(session, utcnow() - dt.timedelta(days=7)) == len(rows) - 1
    assert list(session.scalars(select(ListingChange.seq))) == [rows[-1]]
    assert change_log.pruned_through(session) == rows[-2]
    # Everything old: the newest row stays all the same, so numbers never go back.
    session.execute(update(ListingChange).values(at=utcnow() - dt.timedelta(days=30)))
    session.commit()
    assert change_log.prune(session, utcnow() - dt.timedelta(days=7)) == 0
    assert change_log.latest(session) == rows[-1] and change_log.pruned_through(session) == rows[-2]


def test_the_schedule_prunes_on_the_apps_clock(app: Flask, session: Session) -> None:
    ids = list(session.scalars(select(Listing.id).order_by(Listing.id).limit(2)))
    _rename(session, ids, "Clockwell")
    before = session.scalar(select(func.count()).select_from(ListingChange))
    app.config["NOW"] = lambda: utcnow() + dt.timedelta(days=8)
    for _name, thread in periodic.tick(app):
        if thread is not None:
            thread.join(60)
    # The schedule also asked the sample's due listings to confirm: their mail is written before the app closes.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and session.scalar(select(ConfirmationRequest.id).where(
            ConfirmationRequest.status.in_(("pending", "sending"))).limit(1)) is not None:
        session.expire_all()
        time.sleep(0.1)
    session.expire_all()
    assert before >= 2 and session.scalar(select(func.count()).select_from(ListingChange)) == 1


def test_a_node_behind_the_pruned_rows_is_compared_whole_then_follows(
        app: Flask, node_b: Flask, session: Session) -> None:
    ids = list(session.scalars(select(Listing.id).order_by(Listing.id).limit(4)))
    # Node B is down (nothing follows into its index) while A takes edits, which are then pruned.
    _rename(session, ids[:3], "Prunewell")
    session.execute(update(ListingChange).values(at=utcnow() - dt.timedelta(days=8)))
    session.commit()
    change_log.prune(session, utcnow() - dt.timedelta(days=7))
    _rename(session, ids[3:], "Afterwell")  # and one more, after the pruning
    assert _found(app, "Prunewell") == 3 and _found(node_b, "Prunewell") == 0
    applied = node_b.extensions["search"].applied_change()
    assert applied < change_log.pruned_through(session)
    # B comes back: its next step sees it missed pruned rows, compares its index whole, and is level.
    follower.follow_once(db.factory(node_b), node_b.extensions["search"])
    follower.follow_once(db.factory(node_b), node_b.extensions["search"])
    assert _found(node_b, "Prunewell") == 3 and _found(node_b, "Afterwell") == 1
    assert sync.check(session, node_b.extensions["search"]).clean
    assert node_b.extensions["search"].applied_change() == change_log.latest(session)


def test_a_commit_on_one_node_reaches_the_others_follower_before_its_poll(
        app: Flask, node_b: Flask, session: Session) -> None:
    """On PostgreSQL the commit's notification wakes B's follower at once; on SQLite B finds it at its poll."""
    poll = 6.0
    following = follower.Follower(db.factory(node_b), node_b.extensions["search"], poll=poll)
    following.start()
    try:
        time.sleep(1.5)  # elected, listening, and past its first poll
        [listing_id] = session.scalars(select(Listing.id).order_by(Listing.id).limit(1))
        _rename(session, [listing_id], "Wakewell")
        committed = time.monotonic()
        while _found(node_b, "Wakewell") == 0 and time.monotonic() - committed < 3 * poll:
            time.sleep(0.05)
        took = time.monotonic() - committed
    finally:
        following.stop()
    assert _found(node_b, "Wakewell") == 1
    if db.engine(app).dialect.name == "postgresql":
        assert took < poll / 2, took
    else:
        assert took <= poll + 1.5, took
