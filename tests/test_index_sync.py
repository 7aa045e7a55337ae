"""The index follows database commits (never flushes or rollbacks), rebuilds aside, and reports drift."""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import random
import threading
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory.models import Listing
from directory.search.index.segments import BATCH_SIZE
from directory.search.index.storage import PARALLEL_BATCH, IndexBusy
from directory.search.sync import documents_for, index_flushed
from helpers import held_in_thread


def total(client: FlaskClient, **params: object) -> int:
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 200, response.data
    return response.get_json()["total"]


def ids(client: FlaskClient, **params: object) -> list[str]:
    body = client.get("/api/v1/search", query_string={"per_page": 100, **params}).get_json()
    return [r["id"] for r in body["results"]]


def first_published(session: Session) -> Listing:
    return session.scalars(select(Listing).where(Listing.published).order_by(Listing.id)).first()


def test_a_committed_edit_is_searchable_at_once_and_the_old_text_is_gone(client: FlaskClient, session: Session) -> None:
    listing = first_published(session)
    assert total(client, q="Zanzibarian") == 0
    old_name = listing.name.split()[-1]
    before = total(client, q=old_name)
    listing.name = "Quill Zanzibarian"
    session.commit()
    assert ids(client, q="Zanzibarian") == [listing.external_id]
    assert total(client, q=old_name) == before - 1


def test_a_new_listing_appears_with_its_distance(client: FlaskClient, session: Session) -> None:
    session.add(Listing(
        external_id="t-new", slug="t-new", name="Wren Testwell", country="US", postcode="10001",
        modalities=["eft"], specialties=["depression"], in_person=True, bio="Works with couples.",
        updated_at=dt.datetime(2026, 1, 1),
    ))
    session.commit()
    body = client.get("/api/v1/search", query_string={"postcode": "10001", "q": "Testwell"}).get_json()
    assert [(r["id"], r["distance"]) for r in body["results"]] == [("t-new", 0.0)]


def test_delete_and_unpublish_remove_from_search(client: FlaskClient, session: Session) -> None:
    first, second = session.scalars(select(Listing).where(Listing.published).order_by(Listing.id).limit(2)).all()
    national = total(client)
    session.delete(first)
    second.published = False
    session.commit()
    assert total(client) == national - 2
    assert client.get(f"/api/v1/therapists/{second.external_id}").status_code == 404
    assert client.get(f"/therapists/{second.slug}").status_code == 404


def test_a_rollback_leaves_no_ghost_even_after_a_flush(client: FlaskClient, session: Session) -> None:
    listing = first_published(session)
    listing.name = "Ghostly Phantasmagoria"
    session.flush()
    session.rollback()
    assert total(client, q="Phantasmagoria") == 0
    session.add(Listing(external_id="t-ghost", slug="t-ghost", name="Phantasmagoria", country="US", postcode="10001"))
    session.flush()
    session.rollback()
    assert total(client, q="Phantasmagoria") == 0


def test_a_locked_index_does_not_fail_the_commit_and_check_repairs(
    app: Flask, client: FlaskClient, session: Session, runner: FlaskCliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    index = app.extensions["search"]
    index.lock_timeout = 0.2
    listing = first_published(session)
    with held_in_thread(index.write_lock()):
        listing.name = "Locksmith Ogunbanjo"
        with caplog.at_level(logging.ERROR):
            session.commit()  # the database change stands even though the index is busy
        assert "the follower writes them from the change log" in caplog.text
        assert client.get("/api/v1/search", query_string={"q": "dep"}).status_code == 200
        with pytest.raises(IndexBusy):
            index.write([1], [])
    assert total(client, q="Ogunbanjo") == 0
    checked = runner.invoke(args=["index", "check"])
    assert checked.exit_code == 1 and "stale: 1" in checked.output
    assert runner.invoke(args=["index", "check", "--repair"]).exit_code == 0
    assert ids(client, q="Ogunbanjo") == [listing.external_id]
    assert runner.invoke(args=["index", "check"]).exit_code == 0


def test_check_reports_missing_and_extra_documents(app: Flask, runner: FlaskCliRunner, session: Session) -> None:
    index = app.extensions["search"]
    first = first_published(session)
    index.write([first.id], [])
    unpublished = session.scalars(select(Listing).where(~Listing.published)).first()
    from directory.search.documents import listing_document

    unpublished.published = True
    ghost = listing_document(unpublished)
    unpublished.published = False
    session.rollback()
    index.write([], [ghost])
    result = runner.invoke(args=["index", "check"])
    assert result.exit_code == 1
    assert "missing: 1  extra: 1  stale: 0" in result.output
    assert str(first.id) in result.output and str(unpublished.id) in result.output
    assert runner.invoke(args=["index", "check", "--repair"]).exit_code == 0
    assert runner.invoke(args=["index", "check"]).exit_code == 0


def test_writes_replace_each_listing_by_its_pk_in_whichever_segment_holds_it(app: Flask, session: Session) -> None:
    # Checked against a dict kept by hand. Each write replaces some listings, among them ones an earlier write just
    # replaced (their old versions sit deleted in its segment) and ids the index never held; one write is large
    # enough to go through the worker processes. The index must hold exactly one version of each listing.
    index = app.extensions["search"]
    with app.app_context():
        expected = index.stamps()
        listing_ids = sorted(expected)
        docs = {doc["pk"]: doc for doc in documents_for(session, listing_ids)}
        rng = random.Random(7)
        for version in range(1, 6):
            never_indexed = list(range(10**9, 10**9 + (PARALLEL_BATCH if version == 3 else 2)))
            replaced = rng.sample(listing_ids, 40)
            index.write(replaced + never_indexed, [{**docs[pk], "stamp": float(version)} for pk in replaced[:30]])
            for pk in replaced[30:]:
                expected.pop(pk, None)  # perhaps cleared by an earlier write already
            for pk in replaced[:30]:
                expected[pk] = float(version)
            assert index.stamps() == expected
            asked = [*replaced, *listing_ids[:20], 10**9]
            assert index.stamps_of(asked) == {pk: expected[pk] for pk in asked if pk in expected}


def test_rebuild_switches_while_searches_keep_answering(app: Flask, runner: FlaskCliRunner) -> None:
    expected = app.test_client().get("/api/v1/search", query_string={"postcode": "10001", "q": "depression"}).get_json()
    errors: list[str] = []
    answers = 0
    stop = threading.Event()

    def search_loop() -> None:
        nonlocal answers
        client = app.test_client()
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline and answers < 5000:
            body = client.get("/api/v1/search", query_string={"postcode": "10001", "q": "depression"}).get_json()
            if body is None or body.get("total") != expected["total"] or body["results"] != expected["results"]:
                errors.append(repr(body)[:200])
            answers += 1

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    try:
        generations = {p.name for p in (app.extensions["search"].root).glob("gen-*")}
        result = runner.invoke(args=["index", "rebuild"])
    finally:
        time.sleep(0.2)
        stop.set()
        searcher.join()
    assert result.exit_code == 0, result.output
    assert "Rebuilt the index" in result.output
    after = {p.name for p in app.extensions["search"].root.glob("gen-*")}
    assert after - generations, "no new generation was built"
    assert answers > 5 and not errors, errors[:3]
    assert runner.invoke(args=["index", "check"]).exit_code == 0


def test_rebuild_catches_up_with_changes_committed_while_it_built(app: Flask, session: Session) -> None:
    from directory.search import sync

    listing = first_published(session)
    original = sync._searchable_documents

    def build_then_edit(build_session: Session, skipped: list[int]):  # type: ignore[no-untyped-def]
        yield from original(build_session, skipped)
        with app.extensions["db"]() as other:
            edited = other.get(Listing, listing.id)
            edited.name = "Latecomer Ferreira-Nightingale"
            other.commit()

    sync._searchable_documents = build_then_edit
    try:
        sync.rebuild(app.extensions["db"], app.extensions["search"])
    finally:
        sync._searchable_documents = original
    client = app.test_client()
    assert ids(client, q="Nightingale") == [listing.external_id]


def test_an_empty_database_gives_an_empty_index_not_an_error(empty_app: Flask) -> None:
    client = empty_app.test_client()
    body = client.get("/api/v1/search", query_string={"postcode": "10001"}).get_json()
    assert body["total"] == 0 and body["results"] == []
    runner = empty_app.test_cli_runner()
    assert runner.invoke(args=["index", "check"]).exit_code == 0
    assert runner.invoke(args=["index", "rebuild"]).exit_code == 0


def test_flushed_listings_streamed_to_the_index_are_seen_only_after_the_commit(
    app: Flask, client: FlaskClient, session: Session, runner: FlaskCliRunner
) -> None:
    listing = first_published(session)
    listing.name = "Marigold Streamwright"
    newcomer = Listing(external_id="t-stream", slug="t-stream", name="Streamwright Two", country="US", postcode="10001")
    session.add(newcomer)
    session.flush()
    index_flushed(session, [listing, newcomer], expected=2)
    assert total(client, q="Streamwright") == 0
    # Changed and flushed again after it was streamed: the index must end with the final row, once.
    listing.bio = "Now also sees teenagers in Quokkaville."
    session.flush()
    index_flushed(session, [listing], expected=2)
    session.commit()
    assert sorted(ids(client, q="Streamwright")) == sorted([listing.external_id, "t-stream"])
    assert ids(client, q="Quokkaville") == [listing.external_id]
    assert runner.invoke(args=["index", "check"]).exit_code == 0


@pytest.mark.parametrize("expected", [2, PARALLEL_BATCH], ids=["in-process", "worker-processes"])
def test_a_streamed_write_is_dropped_when_the_transaction_is_not_committed(
    app: Flask, client: FlaskClient, session: Session, expected: int
) -> None:
    index = app.extensions["search"]
    before = len(index.snapshot().every_doc())
    for end in ("rollback", "close"):
        # Enough listings for a full batch to reach the workers when the write uses them.
        listings = [Listing(external_id=f"t-{end}-{n}", slug=f"t-{end}-{n}", name="Vanishing Quillfeather",
                            country="US", postcode="10001") for n in range(min(expected, BATCH_SIZE))]
        session.add_all(listings)
        session.flush()
        index_flushed(session, listings, expected=expected)
        getattr(session, end)()
        assert total(client, q="Quillfeather") == 0
        with index.write_lock(timeout=0):  # the streamed write gave the lock back
            pass
        assert multiprocessing.active_children() == []  # and stopped its index workers
    index.write([], [])
    assert len(index.snapshot().every_doc()) == before
