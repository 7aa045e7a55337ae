"""What admins do and see of confirmations: the stale view's counts and actions, the Freshness figures against a
hand-counted fixture, each listing's history, the outbox with its links cut; and mail that is never lost: sent
through the Redis queue by a worker process, and requests whose job was lost sent again by the schedule."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory import mail, periodic
from directory.confirmations import links, requests
from directory.models import ConfirmationRequest, Listing
from helpers import GOOD, SAMPLE_DAY, csrf_token, do_import, kill_tree, make_csv, start_worker
from smtp_inbox import Inbox, smtp_server

NOON = dt.datetime.combine(SAMPLE_DAY, dt.time(12))
# On SAMPLE_DAY (STALE_AFTER_DAYS 90): stale-1..3 stale with an address, stale-4 stale without, fresh-1 fresh.
ROWS = [
    *({**GOOD, "external_id": f"stale-{n}", "name": f"Stale Person {n}", "email": f"stale{n}@example.org",
       "availability_confirmed_on": "2026-07-01"} for n in (1, 2, 3)),
    {**GOOD, "external_id": "stale-4", "name": "Stale Person 4", "email": "", "availability_confirmed_on": ""},
    {**GOOD, "external_id": "fresh-1", "name": "Fresh Person", "email": "fresh@example.org",
     "availability_confirmed_on": "2026-11-25"},
]


@pytest.fixture()
def app(empty_app: Flask) -> Flask:
    """An app with the five listings above and the app's clocks at NOON on SAMPLE_DAY (mail to the outbox)."""
    empty_app.config.update(NOW=lambda: NOON, CLOCK=lambda: SAMPLE_DAY)
    assert do_import(empty_app, make_csv(ROWS)).created == 5
    return empty_app


def _outbox(app: Flask, count: int) -> list[mail.OutboxMessage]:
    deadline = time.monotonic() + 30
    while len(mail.outbox(app)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return mail.outbox(app)


def _settle(session: Session) -> None:
    """Wait until no request is being sent or waiting to be (the outbox file is written before the status)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and session.scalar(select(ConfirmationRequest.id).where(
            ConfirmationRequest.status.in_(("pending", "sending"))).limit(1)) is not None:
        session.expire_all()
        time.sleep(0.05)


def _id(session: Session, external_id: str) -> int:
    found = session.scalar(select(Listing.id).where(Listing.external_id == external_id))
    assert found is not None
    return found


def test_the_stale_view_counts_then_asks_every_stale_listing_with_an_address_or_one(
        app: Flask, admin_client: FlaskClient, session: Session) -> None:
    page = admin_client.get("/admin/stale").get_data(as_text=True)
    assert "Send 3 email(s)" in page
    response = admin_client.post("/admin/freshness/ask", data={"csrf_token": csrf_token(page), "all": "1",
                                                               "back": "/admin/stale"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/stale"
    assert sorted(message.to for message in _outbox(app, 3)) == [f"stale{n}@example.org" for n in (1, 2, 3)]
    assert "Send 0 email(s)" in admin_client.get("/admin/stale").get_data(as_text=True)  # asked: not again
    # One listing, asked by hand whenever it was last asked; never one without an address; never elsewhere.
    one = {"csrf_token": csrf_token(page), "listing_id": str(_id(session, "stale-1")), "back": "https://evil.example"}
    response = admin_client.post("/admin/freshness/ask", data=one)
    assert response.headers["Location"] == "/admin/freshness"
    assert len(_outbox(app, 4)) == 4
    none = admin_client.post("/admin/freshness/ask", data={**one, "listing_id": str(_id(session, "stale-4"))},
                             follow_redirects=True)
    assert "has no email address" in none.get_data(as_text=True) and len(mail.outbox(app)) == 4
    for bad in ("0", "abc", "99999999999999999999"):
        assert admin_client.post("/admin/freshness/ask", data={**one, "listing_id": bad}).status_code == 404
    _settle(session)
    history = admin_client.get(f"/admin/freshness/listings/{_id(session, 'stale-1')}").get_data(as_text=True)
    assert history.count("stale1@example.org") >= 2 and history.count("<td>sent") == 2


def test_the_freshness_figures_match_a_hand_count_and_the_outbox_hides_the_links(
        app: Flask, admin_client: FlaskClient, session: Session) -> None:
    admin_client.post("/admin/freshness/ask", data={
        "csrf_token": csrf_token(admin_client.get("/admin/stale").get_data(as_text=True)), "all": "1"})
    messages = _outbox(app, 3)
    requests = {request.email: request for request in session.scalars(select(ConfirmationRequest))}
    # stale1 answers "accepting" the same day; stale2 unsubscribes; stale3 does not answer.
    client = app.test_client()
    for email, action in (("stale1@example.org", "accepting"), ("stale2@example.org", "unsubscribe")):
        request = requests[email]
        url = links.PATH + links.sign(app, request.id, request.listing_id, action)
        client.post(url, data={"csrf_token": csrf_token(client.get(url).get_data(as_text=True))})
    _settle(session)
    page, figures = _figures(admin_client)
    assert figures["Confirmed in the last 30 days"] == "2"  # stale1 today, fresh-1 6 days ago
    assert figures["Asked, not answered"] == "1"  # stale3, its links still working
    assert figures["Stale listings that answered within 30 days of being asked"].startswith("100% (1 of 1;")
    # Thirty-one days on, the answer rate counts all three (each had its 30 days): one of three confirmed (an
    # unsubscription answers the email, not the question); stale3's links have expired.
    app.config.update(NOW=lambda: NOON + dt.timedelta(days=31), CLOCK=lambda: SAMPLE_DAY + dt.timedelta(days=31))
    page, figures = _figures(admin_client)
    assert figures["Confirmed in the last 30 days"] == "0"  # stale1, 31 days ago; fresh-1, 37 days ago
    assert figures["Confirmed in the last 90 days"] == "2"
    assert figures["Asked, not answered"] == "0"
    assert figures["Unsubscribed"] == "1" and figures["Mail failed or refused"] == "0"
    assert figures["Stale listings that answered within 30 days of being asked"] == "33% (1 of 3; target 60%)"
    # The outbox shows each message, its tokens cut to their first characters.
    for message in messages:
        tokens = re.findall(r"/listing-check/([\w.-]+)", message.text)
        assert len(tokens) == 3 and all(token not in page for token in tokens)
        assert all(f"/listing-check/{token[:6]}…" in page for token in tokens)


def _figures(client: FlaskClient) -> tuple[str, dict[str, str]]:
    """The Freshness page, and its figures by their names."""
    page = client.get("/admin/freshness").get_data(as_text=True)
    return page, dict(re.findall(r"<dt>([^<]+)</dt>\s*<dd>\s*([^<]+?)\s*</dd>", re.sub(r"\s+", " ", page)))


@pytest.fixture()
def queued_mailing(queued_app: Flask, tmp_path: Path) -> Iterator[tuple[Flask, Inbox]]:
    """The app with its jobs on Redis, run by a worker process, sending to a real SMTP server."""
    with smtp_server() as (inbox, port):
        queued_app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
        worker = start_worker(queued_app, tmp_path / "worker.log", MAIL_SERVER="127.0.0.1", MAIL_PORT=str(port))
        try:
            yield queued_app, inbox
        finally:
            kill_tree(worker)


def test_with_redis_the_mail_is_sent_by_the_worker_process(
        queued_mailing: tuple[Flask, Inbox], session: Session) -> None:
    app, inbox = queued_mailing
    result = app.test_cli_runner().invoke(args=["confirmations", "send", "--json"])
    assert result.exit_code == 0 and '"emails": 3' in result.output, result.output
    assert sorted(message["To"] for message in inbox.wait_for(3)) == [f"stale{n}@example.org" for n in (1, 2, 3)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(session.scalars(select(ConfirmationRequest.status))) != {"sent"}:
        session.expire_all()
        time.sleep(0.1)
    assert set(session.scalars(select(ConfirmationRequest.status))) == {"sent"}


def test_requests_whose_job_was_lost_are_sent_by_the_schedule_once(
        app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request recorded while the queue was down stays pending; one whose worker died mid-message stays sending.
    The schedule sends both again, once, when they are clearly lost, and never one still in its first hour."""
    listings = [_id(session, f"stale-{n}") for n in (1, 2, 3)]
    session.add_all([
        ConfirmationRequest(listing_id=listings[0], email="stale1@example.org", created_at=NOON - dt.timedelta(
            hours=2), listing_stamp=NOON, was_stale=True, status="pending"),
        ConfirmationRequest(listing_id=listings[1], email="stale2@example.org", created_at=NOON - dt.timedelta(
            hours=2), listing_stamp=NOON, was_stale=True, status="sending", attempts=1,
            attempted_at=NOON - dt.timedelta(hours=1)),
        ConfirmationRequest(listing_id=listings[2], email="stale3@example.org", created_at=NOON - dt.timedelta(
            minutes=10), listing_stamp=NOON, was_stale=True, status="pending"),
    ])
    session.commit()
    queued: list[list[int]] = []

    def queue_and_wait(app: Flask, ids: list[int]) -> list[threading.Thread]:
        queued.append(list(ids))
        for thread in original(app, ids):
            thread.join(30)
        return []

    original = requests.queue_sending
    monkeypatch.setattr(requests, "queue_sending", queue_and_wait)
    for _name, thread in periodic.tick(app):
        if thread is not None:
            thread.join(30)
    young = max(session.scalars(select(ConfirmationRequest.id)))
    assert queued == [[young - 2, young - 1]]  # the young pending one waits for its own job
    assert sorted(message.to for message in mail.outbox(app)) == ["stale1@example.org", "stale2@example.org"]
    session.expire_all()
    assert [(request.status, request.attempts) for request in session.scalars(
        select(ConfirmationRequest).order_by(ConfirmationRequest.id))] == [("sent", 1), ("sent", 2), ("pending", 0)]
