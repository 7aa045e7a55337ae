"""The listing change log and its follower: a numbered row per committed change, in commit order, none for a
rollback; the follower writes what the index lacks (and only that), from a record that survives kills."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from directory.models import Listing, ListingChange
from directory.search import change_log, follower, sync
from directory.search.index.storage import SearchIndex
from helpers import GOOD, REPO, close_app, copy_world, do_import, drop_world, make_app, make_csv


def log_rows(session: Session, after: int = 0) -> list[tuple[int, int, str]]:
    """(seq, listing id, action) of the committed log rows numbered above `after`, read by SQL."""
    session.rollback()
    return [tuple(row) for row in session.execute(  # type: ignore[misc]
        select(ListingChange.seq, ListingChange.listing_id, ListingChange.action)
        .where(ListingChange.seq > after).order_by(ListingChange.seq))]


def latest(session: Session) -> int:
    rows = log_rows(session)
    return rows[-1][0] if rows else 0


def found(client: FlaskClient, words: str) -> int:
    response = client.get("/api/v1/search", query_string={"q": words})
    assert response.status_code == 200, response.data
    return response.get_json()["total"]


def found_ids(client: FlaskClient, words: str) -> set[str]:
    """The ids of every listing a search for `words` finds."""
    response = client.get("/api/v1/search", query_string={"q": words, "per_page": 100})
    assert response.status_code == 200, response.data
    return {result["id"] for result in response.get_json()["results"]}


@pytest.fixture()
def unindexed(app: Flask) -> Iterator[Flask]:
    """The app with its commit path's index write switched off: only the follower brings changes in."""
    factory = app.extensions["db"]
    event.remove(factory, "after_commit", sync._after_commit)
    yield app
    event.listen(factory, "after_commit", sync._after_commit)


def test_every_kind_of_change_logs_each_listing_once_per_commit(app: Flask, session: Session,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    start = latest(session)
    first, second, third = session.scalars(select(Listing).order_by(Listing.id).limit(3)).all()
    first.name, second.published = "Renamed Once", False
    first.bio = "changed twice in one transaction: still one row"
    session.delete(third)
    session.commit()
    rows = log_rows(session, start)
    assert [(listing_id, action) for _, listing_id, action in rows] == [
        (first.id, "updated"), (second.id, "updated"), (third.id, "deleted")]
    assert [seq for seq, _, _ in rows] == sorted(seq for seq, _, _ in rows)

    added = Listing(external_id="log-new", slug="log-new", name="New Person", country="US", postcode="10001")
    session.add(added)
    session.commit()
    assert [(listing_id, action) for _, listing_id, action in log_rows(session, rows[-1][0])] == [
        (added.id, "created")]

    mark = latest(session)
    monkeypatch.setattr(change_log, "APPEND_BATCH", 2)  # SQLite: the three rows in two statements
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    report = do_import(app, make_csv([{**GOOD, "external_id": f"log-imp-{n}", "name": f"Imported {n}"}
                                      for n in range(3)]))
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert report.created == 3
    imported = session.scalars(select(Listing.id).where(Listing.external_id.like("log-imp-%"))).all()
    assert sorted((listing_id, action) for _, listing_id, action in log_rows(session, mark)) == sorted(
        (listing_id, "imported") for listing_id in imported)
    times = set(session.scalars(select(ListingChange.at).where(ListingChange.seq > mark)))
    assert len(times) == 1 and before <= times.pop() <= after  # one commit's time, read back as a naive UTC datetime


def test_a_rollback_a_failed_commit_and_a_savepoint_log_nothing_of_their_own(session: Session) -> None:
    start = latest(session)
    listing = session.scalars(select(Listing).order_by(Listing.id)).first()
    listing.name = "Never Saved"
    session.flush()
    session.rollback()
    assert log_rows(session, start) == []

    twin = session.scalars(select(Listing).order_by(Listing.id).offset(1)).first()
    session.add(Listing(external_id=twin.external_id, slug="other-slug", name="Clash", country="US"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    assert log_rows(session, start) == []

    listing = session.scalars(select(Listing).order_by(Listing.id)).first()
    with session.begin_nested():
        listing.name = "Inside A Savepoint"
    other = session.scalars(select(Listing).order_by(Listing.id).offset(2)).first()
    other.name = "After It"
    session.commit()
    assert [(listing_id, action) for _, listing_id, action in log_rows(session, start)] == [
        (listing.id, "updated"), (other.id, "updated")]


def test_of_two_overlapping_transactions_the_second_waits_and_gets_the_later_number(
        app: Flask, session: Session) -> None:
    client = app.test_client()
    start = latest(session)
    factory = app.extensions["db"]
    first_session, second_session = factory(), factory()
    inside, go_on = threading.Event(), threading.Event()

    # On PostgreSQL the second waits at its commit, for the advisory lock; on SQLite at its first write, for the
    # single writer. Either way it must wait for the first, and number its rows after.
    def hold_in_commit(_session: Session) -> None:
        # Runs after the log's own hook: this transaction has numbered its rows and holds the lock, not committed.
        inside.set()
        assert go_on.wait(30)

    event.listen(first_session, "before_commit", hold_in_commit)
    a, b = session.scalars(select(Listing.id).where(Listing.published).order_by(Listing.id).limit(2)).all()
    first_session.get(Listing, a).name = "Overlap Firstcomer"
    committing = threading.Thread(target=first_session.commit)
    committing.start()
    assert inside.wait(30)
    second_session.get(Listing, b).name = "Overlap Secondcomer"
    second = threading.Thread(target=second_session.commit)
    second.start()
    time.sleep(1.0)
    assert second.is_alive(), "the second transaction committed while the first held its log numbers"
    go_on.set()
    committing.join(30)
    second.join(30)
    first_session.close()
    second_session.close()
    rows = log_rows(session, start)
    assert [listing_id for _, listing_id, _ in rows] == [a, b]
    assert found(client, "Firstcomer") == 1 and found(client, "Secondcomer") == 1


def test_the_follower_writes_what_the_index_lacks_and_reports_the_lag(unindexed: Flask, session: Session) -> None:
    app, client = unindexed, unindexed.test_client()
    index: SearchIndex = app.extensions["search"]
    start = latest(session)
    assert index.applied_change() == start
    renamed, unpublished, deleted = session.scalars(
        select(Listing).where(Listing.published).order_by(Listing.id).limit(3)).all()
    renamed.name = "Follower Quillfeather"
    unpublished.published = False
    session.delete(deleted)
    session.commit()
    assert found(client, "Quillfeather") == 0
    status = follower.status(app.extensions["db"], index)
    assert status["lag_rows"] == 3 and status["latest"] == start + 3 and status["lag_seconds"] >= 0
    assert follower.follow_once(app.extensions["db"], index) == 3
    assert found(client, "Quillfeather") == 1
    results = client.get("/api/v1/search", query_string={"per_page": 100, "q": unpublished.name}).get_json()
    assert unpublished.external_id not in {r["id"] for r in results["results"]}
    assert sync.check(session, index).clean
    assert follower.status(app.extensions["db"], index)["lag_rows"] == 0
    assert follower.follow_once(app.extensions["db"], index) == 0


def test_rows_the_commit_path_already_applied_cost_the_follower_no_index_write(
        app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    index: SearchIndex = app.extensions["search"]
    writes: list[int] = []
    listing = session.scalars(select(Listing).order_by(Listing.id)).first()
    listing.name = "Already Indexed"
    session.commit()
    monkeypatch.setattr(index, "write_locked", lambda ids, docs: writes.append(len(list(ids))))
    assert follower.follow_once(app.extensions["db"], index) == 1
    assert writes == [] and index.applied_change() == latest(session)


def test_an_index_from_before_the_log_is_compared_whole_once(unindexed: Flask, session: Session) -> None:
    app, index = unindexed, unindexed.extensions["search"]
    (index.root / ".applied" / index.generation()).unlink()
    listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
    listing.name = "Before The Log"
    session.commit()
    assert index.applied_change() is None
    assert follower.status(app.extensions["db"], index)["lag_rows"] is None
    assert follower.follow_once(app.extensions["db"], index) == 0
    assert sync.check(session, index).clean and index.applied_change() == latest(session)


def test_a_rebuild_records_the_log_as_it_stood_before_reading(
        app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    index: SearchIndex = app.extensions["search"]
    before = latest(session)
    scan = sync._searchable_documents

    def scan_after_a_commit(reading: Session, skipped: list[int]) -> Iterator[dict[str, object]]:
        # Another process's edit, committed once the rebuild has started reading.
        with app.extensions["db"]() as other:
            other.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first().name = "Midbuild Quail"
            other.commit()
        yield from scan(reading, skipped)

    monkeypatch.setattr(sync, "_searchable_documents", scan_after_a_commit)
    sync.rebuild(app.extensions["db"], index)
    assert latest(session) == before + 1
    assert index.applied_change() == before, "the number must be read before the listings"
    assert (index.root / ".applied" / index.generation()).exists()
    assert follower.follow_once(app.extensions["db"], index) == 1
    assert sync.check(session, index).clean and found(app.test_client(), "Quail") == 1


def test_a_follower_thread_brings_in_a_change_the_commit_path_lost(sample_world: Path, tmp_path: Path) -> None:
    copy_world(sample_world, tmp_path)
    made = make_app(tmp_path, INDEX_FOLLOWER=True)
    try:
        factory = made.extensions["db"]
        event.remove(factory, "after_commit", sync._after_commit)
        elected = time.monotonic() + 5
        while follower.running_follower(Path(made.config["INDEX_DIR"])) != (True, os.getpid()):
            assert time.monotonic() < elected, "no follower elected within 5 s"
            time.sleep(0.05)
        client = made.test_client()
        # Watched by its id: a word's search may also find listings whose text is near it (a sample listing
        # matched "Marrowbone" from the start, which made this test pass before the follower had done anything).
        with factory() as session:
            listing = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()
            assert listing.external_id not in found_ids(client, "Marrowbone")
            listing.name = "Threaded Marrowbone"
            session.commit()
        committed = time.monotonic()
        while listing.external_id not in found_ids(client, "Marrowbone") and time.monotonic() - committed < 5:
            time.sleep(0.05)
        assert listing.external_id in found_ids(client, "Marrowbone"), "not searchable 5 s after its commit"
    finally:
        close_app(made)
        drop_world(tmp_path)
    assert follower.running_follower(tmp_path / "indexes") == (False, None)


# A follower process without the app around it (which takes seconds to load): the same catch-up a follower runs.
# Its third argument makes it die at one exact step: after writing its segment but before Whoosh's commit makes it
# live ("before-toc"), or after that commit but before recording the number applied ("before-record").
FOLLOWER = """
import os, sys
from sqlalchemy.orm import sessionmaker
from whoosh.writing import SegmentWriter
from directory.db import make_engine
from directory.search import follower, sync
from directory.search.index.storage import SearchIndex
if sys.argv[3] == "before-toc":
    SegmentWriter._commit_toc = lambda self, segments: os._exit(9)
elif sys.argv[3] == "before-record":
    SearchIndex.record_applied_change = lambda self, seq: os._exit(9)
factory = sessionmaker(make_engine(sys.argv[1]), expire_on_commit=False)
follower.catch_up(factory, sync.open_index(sys.argv[2], 10.0, factory), lock_wait=10.0)
"""


def _follower_process(app: Flask, dies: str = "when killed") -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", FOLLOWER, app.config["DATABASE_URL"], app.config["INDEX_DIR"],
                             dies], cwd=REPO)


@pytest.mark.timeout(300)
def test_a_follower_killed_anywhere_in_its_write_loses_and_reorders_nothing(
        unindexed: Flask, session: Session, tmp_path: Path) -> None:
    app, index = unindexed, unindexed.extensions["search"]
    saved = tmp_path / "index-before"
    shutil.copytree(index.root, saved, symlinks=True)
    # Listings renamed twice and a few deleted: the index must end with each one's last version.
    listings = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id).limit(300)).all()
    for round_ in ("Quorra", "Zephyrine"):
        for listing in listings:
            listing.name = f"{round_} {listing.id}"
        session.commit()
    for listing in listings[:5]:
        session.delete(listing)
    session.commit()

    def restore() -> None:
        shutil.rmtree(index.root)
        shutil.copytree(saved, index.root, symlinks=True)

    started = time.monotonic()
    assert subprocess.run([sys.executable, "-c", "import directory.search.follower"], cwd=REPO,
                          timeout=60).returncode == 0
    loading = time.monotonic() - started  # before the process writes anything
    restore()
    started = time.monotonic()
    assert _follower_process(app).wait(120) == 0
    whole = time.monotonic() - started
    landed = 0
    for point in [*range(10), "before-toc", "before-record"]:
        if isinstance(point, int):
            # A run may be quicker than the one measured (a busy machine): a kill that comes after the end is tried
            # again, earlier, so that each of the ten lands in a running follower.
            delay = loading + (whole - loading) * (point + 0.5) / 10
            for _attempt in range(6):
                restore()
                process = _follower_process(app)
                time.sleep(delay)
                running = process.poll() is None
                process.kill()
                process.wait(30)
                if running:
                    landed += 1
                    break
                delay *= 0.7
        else:
            restore()
            assert _follower_process(app, dies=point).wait(120) == 9
        follower.catch_up(app.extensions["db"], index, lock_wait=10.0)  # the next follower
        assert sync.check(session, index).clean, f"drift after a kill at {point}"
        assert follower.status(app.extensions["db"], index)["lag_rows"] == 0
    assert landed == 10, f"only {landed} of 10 kills came before the follower had finished"
    client = app.test_client()
    assert found(client, "Zephyrine") == len(listings) - 5
    assert found(client, "Quorra") == 0
