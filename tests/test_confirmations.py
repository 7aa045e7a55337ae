"""Confirmation requests end to end against a real SMTP server (aiosmtpd on 127.0.0.1): sent, received, parsed, their
links followed (GET shows, POST records), the answer seen through the public API and search; unsubscribing by link
and by one-click POST; a refusing server retried with backoff, then the failure recorded and shown; the schedule on
the app's clock."""

from __future__ import annotations

import datetime as dt
import json
import concurrent.futures
import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from directory import mail, periodic
from directory.confirmations import requests
from directory.models import AuditEvent, ConfirmationRequest, Listing
from helpers import GOOD, SAMPLE_DAY, csrf_token, do_import, make_csv
from smtp_inbox import Inbox, smtp_server

BASE = "https://directory.example.org"
NOON = dt.datetime.combine(SAMPLE_DAY, dt.time(12))
ROWS = [  # on SAMPLE_DAY, with STALE_AFTER_DAYS 90: two stale claims with an address, one fresh, one without address
    {**GOOD, "external_id": "old-1", "name": "Avery Oldclaim", "email": "old1@example.org",
     "accepting_new_clients": "yes", "availability_confirmed_on": "2026-08-01"},
    {**GOOD, "external_id": "old-2", "name": "Blake Neverasked", "email": "old2@example.org",
     "accepting_new_clients": "yes", "availability_confirmed_on": ""},
    {**GOOD, "external_id": "fresh-1", "name": "Casey Recent", "email": "fresh1@example.org",
     "accepting_new_clients": "yes", "availability_confirmed_on": "2026-11-20"},
    {**GOOD, "external_id": "mute-1", "name": "Dana Noaddress", "email": "",
     "accepting_new_clients": "yes", "availability_confirmed_on": "2026-01-01"},
]


def set_time(app: Flask, now: dt.datetime) -> None:
    """Move the app's two clocks (the day of claims, the time of requests) to `now`."""
    app.config.update(NOW=lambda: now, CLOCK=lambda: now.date())



@pytest.fixture()
def app(empty_app: Flask) -> Flask:
    """An app with no listings but the test's own (conftest's session and admin_client use it)."""
    return empty_app

@pytest.fixture()
def mailing(app: Flask) -> Iterator[tuple[Flask, Inbox]]:
    """The app with its four listings, sending to a real SMTP server of its own; the server's inbox."""
    with smtp_server() as (inbox, port):
        app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=port, PUBLIC_BASE_URL=BASE,
                                MAIL_RETRY_WAITS=(1, 2))
        set_time(app, NOON)
        report = do_import(app, make_csv(ROWS))
        assert report.created == 4, report.errors.first
        yield app, inbox


def send(app: Flask, *options: str) -> dict[str, object]:
    """`flask confirmations send --json` with these options: its counts."""
    result = app.test_cli_runner().invoke(args=["confirmations", "send", "--json", *options])
    assert result.exit_code == 0, result.output
    counts: dict[str, object] = json.loads(result.output)
    return counts


def links_of(message: EmailMessage) -> list[str]:
    """The answer links of a message's plain text (accepting, not accepting, unsubscribe), checked against its
    HTML twin."""
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    found = re.findall(re.escape(BASE) + r"/listing-check/[\w.-]+", text)
    assert len(found) == 3 and found == re.findall(re.escape(BASE) + r"/listing-check/[\w.-]+", html), (text, html)
    return found


def to(inbox: Inbox, address: str, count: int) -> EmailMessage:
    """The one message to `address` once the inbox holds `count`."""
    [message] = [message for message in inbox.wait_for(count) if message["To"] == address]
    return message


def path(url: str) -> str:
    return urlsplit(url).path


def listing(session: Session, external_id: str) -> Listing:
    session.expire_all()
    found = session.scalar(select(Listing).where(Listing.external_id == external_id))
    assert found is not None
    return found


def requests_of(session: Session, external_id: str) -> list[ConfirmationRequest]:
    session.expire_all()
    return list(session.scalars(select(ConfirmationRequest).where(
        ConfirmationRequest.listing_id == listing(session, external_id).id).order_by(ConfirmationRequest.id)))


def test_a_therapist_confirms_by_the_emailed_link_and_the_api_and_search_show_it(
        mailing: tuple[Flask, Inbox], session: Session) -> None:
    app, inbox = mailing
    client = app.test_client()
    accepting_near = {"postcode": "10001", "accepting": "1"}
    assert client.get("/api/v1/search", query_string=accepting_near).get_json()["total"] == 1  # fresh-1 only
    assert send(app) == {"emails": 2, "skipped_asked_lately": 0, "dry_run": False}
    message = to(inbox, "old1@example.org", 2)
    assert message["From"] == app.config["MAIL_FROM"] and "Avery Oldclaim" in message["Subject"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith(f"<{BASE}/unsubscribe/")
    # As mail clients read it: the address itself on the header's line, not encoded.
    assert all(f"\r\nList-Unsubscribe: <{BASE}/unsubscribe/".encode() in raw for raw in inbox.raw)
    accepting, not_accepting, _unsubscribe = links_of(message)

    # Opening the link (as a person, or a mail scanner) shows the listing and one button, and changes nothing.
    page = client.get(path(accepting))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Avery Oldclaim" in html and "Yes, I am accepting new clients" in html
    assert html.count('type="submit"') == 1 and "2026-08-01" in html
    assert listing(session, "old-1").availability_confirmed_on == dt.date(2026, 8, 1)

    done = client.post(path(accepting), data={"csrf_token": csrf_token(html)})
    assert done.status_code == 200 and "Thank you" in done.get_data(as_text=True)
    shown = client.get("/api/v1/therapists/old-1").get_json()
    assert shown["availability_confirmed_on"] == SAMPLE_DAY.isoformat() and shown["accepting_new_clients"] is True
    found = client.get("/api/v1/search", query_string=accepting_near).get_json()
    assert sorted(result["name"] for result in found["results"]) == ["Avery Oldclaim", "Casey Recent"]
    [event] = session.scalars(select(AuditEvent).where(AuditEvent.action == "confirm")).all()
    assert event.actor == "therapist (emailed link)" and "confirmed by the therapist through an emailed link" in \
        event.detail and event.detail.startswith("old-1:")
    # The email's other answer no longer works: one answer per email.
    again = client.get(path(not_accepting))
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)


def test_not_accepting_is_recorded_as_a_confirmed_claim(mailing: tuple[Flask, Inbox], session: Session) -> None:
    app, inbox = mailing
    send(app, "--limit", "1")
    [message] = inbox.wait_for(1)
    _accepting, not_accepting, _unsubscribe = links_of(message)
    client = app.test_client()
    page = client.get(path(not_accepting)).get_data(as_text=True)
    assert client.post(path(not_accepting), data={"csrf_token": csrf_token(page)}).status_code == 200
    answered = listing(session, "old-2")  # never confirmed: the oldest claim, asked first
    assert answered.accepting_new_clients is False and answered.availability_confirmed_on == SAMPLE_DAY


def test_unsubscribing_by_link_or_by_one_click_stops_later_emails(
        mailing: tuple[Flask, Inbox], session: Session) -> None:
    app, inbox = mailing
    send(app)
    client = app.test_client()
    by_link = links_of(to(inbox, "old1@example.org", 2))[2]
    page = client.get(path(by_link)).get_data(as_text=True)
    assert "Stop emails about this listing" in page
    assert client.post(path(by_link), data={"csrf_token": csrf_token(page)}).status_code == 200
    # A mail client's one-click unsubscribe: a POST with no form token, no cookie.
    one_click = to(inbox, "old2@example.org", 2)["List-Unsubscribe"].strip("<>")
    assert client.post(path(one_click), data={}).status_code == 400  # not the one-click body
    fresh_client = app.test_client()
    assert fresh_client.post(path(one_click), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert requests_of(session, "old-2")[-1].answer == "unsubscribe"

    set_time(app, NOON + dt.timedelta(days=31))  # past the interval: everyone may be asked again
    assert send(app, "--all") == {"emails": 1, "skipped_asked_lately": 0, "dry_run": False}
    assert [message["To"] for message in inbox.wait_for(3)][2:] == ["fresh1@example.org"]
    # Still listed, still searchable: only the mail stopped.
    assert app.test_client().get("/api/v1/therapists/old-1").status_code == 200


def _settled(session: Session, external_id: str, seconds: float = 30) -> ConfirmationRequest:
    """The listing's latest request once its sending has settled (sent or refused, or failed with no retry left)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        request = requests_of(session, external_id)[-1]
        if request.status in ("sent", "refused") or (request.status == "failed" and request.attempts == 3):
            return request
        time.sleep(0.1)
    raise AssertionError(f"{external_id}: {requests_of(session, external_id)[-1].status} after {seconds} s")


def test_a_refusing_server_is_retried_with_backoff_and_what_finally_fails_is_shown_to_admins(
        mailing: tuple[Flask, Inbox], session: Session, admin_client: FlaskClient) -> None:
    app, inbox = mailing
    inbox.refuse_next = 2  # refused twice for a while, then accepted: sent on the third attempt
    started = time.monotonic()
    send(app, "--limit", "1")
    sent = _settled(session, "old-2")
    assert sent.status == "sent" and sent.attempts == 3 and time.monotonic() - started >= 1 + 2
    assert inbox.wait_for(1)[0]["To"] == "old2@example.org"

    inbox.refuse_next = 99  # refused on every attempt: failed after the last retry, with the server's words
    inbox.refuse_for_good.add("fresh1@example.org")  # a bounce at once: refused, never retried
    send(app, "--all")
    failed, bounced = _settled(session, "old-1"), _settled(session, "fresh-1")
    assert failed.status == "failed" and failed.attempts == 3 and "451" in failed.reason
    assert bounced.status == "refused" and bounced.attempts == 1 and bounced.reason.startswith("550 5.1.1")
    page = admin_client.get("/admin/freshness").get_data(as_text=True)
    assert "Try again later" in page and "No such mailbox here" in page and "failed after 3 attempt(s)" in page


def test_greylisting_is_retried_and_a_message_that_cannot_be_built_does_not_hold_up_the_others(
        mailing: tuple[Flask, Inbox], session: Session) -> None:
    app, inbox = mailing
    inbox.greylist_next = 1  # a recipient refused for now (4xx) is tried again, not taken for a bounce
    send(app, "--limit", "1")
    greylisted = _settled(session, "old-2")
    assert greylisted.status == "sent" and greylisted.attempts == 2
    # A name that cannot go in a header (a line break pasted into the spreadsheet): that message is refused with
    # why, once, and the next one in the same job is sent.
    broken = listing(session, "old-1")
    broken.name = "Avery\r\nBcc: someone@example.net"
    session.commit()
    send(app, "--all")
    refused = _settled(session, "old-1")
    assert refused.status == "refused" and refused.attempts == 1 and refused.reason.startswith("could not be sent")
    assert _settled(session, "fresh-1").status == "sent"
    assert sorted(message["To"] for message in inbox.wait_for(2)) == ["fresh1@example.org", "old2@example.org"]
    assert not any(b"someone@example.net" in raw for raw in inbox.raw)


def test_four_asks_at_the_same_moment_ask_each_listing_once(mailing: tuple[Flask, Inbox], session: Session) -> None:
    app, _inbox = mailing
    start = threading.Barrier(4)
    everyone = requests.selection(SAMPLE_DAY, None, requests.interval_start(app))

    def ask() -> list[int]:
        with app.app_context(), app.extensions["db"]() as own:
            start.wait(10)
            return requests.ask(own, app, everyone)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        asked = sorted(len(ids) for ids in pool.map(lambda _: ask(), range(4)))
    assert asked == [0, 0, 0, 3]
    session.expire_all()
    assert sorted(session.scalars(select(ConfirmationRequest.email))) == [
        "fresh1@example.org", "old1@example.org", "old2@example.org"]


def test_the_schedule_asks_a_listing_once_before_its_claim_goes_stale_and_not_again_within_the_interval(
        app: Flask, session: Session) -> None:
    # No MAIL_SERVER: messages go to the outbox.
    confirmed = SAMPLE_DAY - dt.timedelta(days=70)
    do_import(app, make_csv([{**GOOD, "external_id": "due-1", "email": "due1@example.org",
                              "availability_confirmed_on": confirmed.isoformat()}]))
    asked = []
    for days, expected in ((0, 0), (5, 0), (6, 1), (7, 1), (36, 1), (37, 2)):  # claim age 70 + days
        set_time(app, NOON + dt.timedelta(days=days))
        for _name, thread in periodic.tick(app):
            if thread is not None:
                thread.join(30)
        # Its mail sent before the clock moves on (the sending thread reads the clock too).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(r.status in ("pending", "sending") for r in requests_of(
                session, "due-1")):
            time.sleep(0.05)
        asked.append(len(requests_of(session, "due-1")))
        assert asked[-1] == expected, (days, asked)
    # Asked when its claim was 76 days old (14 before going stale at 90), then once 30 whole days had passed.
    assert [request.created_at for request in requests_of(session, "due-1")] == [
        NOON + dt.timedelta(days=6), NOON + dt.timedelta(days=37)]
    deadline = time.monotonic() + 30  # the sending job runs in a thread of its own
    while len(mail.outbox(app)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    outbox = mail.outbox(app)
    assert len(outbox) == 2 and all(message.to == "due1@example.org" for message in outbox)
