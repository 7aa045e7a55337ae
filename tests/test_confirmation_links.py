"""The signed links of confirmation emails cannot be forged, altered, swapped, replayed or outlived: each case gets a
clear page and changes nothing; the pages that can offer a fresh link send it only to the listing's own address; a
GET never changes anything; the pages pass axe at both sizes."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeSerializer
from playwright.sync_api import Page
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directory import mail
from directory.confirmations import links, requests
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing
from helpers import GOOD, SAMPLE_DAY, axe_violations, csrf_token, do_import, live_server, make_csv

NOON = dt.datetime.combine(SAMPLE_DAY, dt.time(12))



@pytest.fixture()
def app(empty_app: Flask) -> Flask:
    """An app with no listings but the test's own (conftest's session and admin_client use it)."""
    return empty_app

@pytest.fixture()
def asked(app: Flask) -> Iterator[tuple[Flask, list[int]]]:
    """The app with two listings (stale claims, with addresses), each asked once at NOON: the request ids."""
    app.config.update(NOW=lambda: NOON)
    do_import(app, make_csv([
        {**GOOD, "external_id": f"link-{n}", "name": f"Morgan Linktest {n}", "email": f"link{n}@example.org",
         "availability_confirmed_on": "2026-06-01", "accepting_new_clients": "no"} for n in (1, 2)]))
    with app.app_context(), app.extensions["db"]() as session:
        listings = session.scalars(select(Listing).order_by(Listing.external_id)).all()
        yield app, requests.record(session, app, listings)


def token(app: Flask, request_id: int, action: str = "accepting", listing_id: int | None = None) -> str:
    """A link's token made here (for the request's own listing unless told otherwise)."""
    with app.extensions["db"]() as session:
        request = session.get(ConfirmationRequest, request_id)
        assert request is not None
        return links.sign(app, request_id, listing_id or request.listing_id, action)


def state(session: Session) -> list[tuple[object, ...]]:
    """Everything an answer could change: the listings' claims, the answers, the opt-outs."""
    session.expire_all()
    return [*session.execute(select(Listing.id, Listing.accepting_new_clients, Listing.availability_confirmed_on,
                                    Listing.updated_at).order_by(Listing.id)),
            *session.execute(select(ConfirmationRequest.id, ConfirmationRequest.answer)),
            (session.scalar(select(func.count()).select_from(ConfirmationOptOut)),)]


def post(client: FlaskClient, url: str) -> tuple[int, str]:
    page = client.get(url).get_data(as_text=True)
    response = client.post(url, data={"csrf_token": csrf_token(page)})
    return response.status_code, response.get_data(as_text=True)


def test_opening_any_link_changes_nothing(asked: tuple[Flask, list[int]], session: Session) -> None:
    app, [first, _second] = asked
    client = app.test_client()
    before = state(session)
    for action in links.ACTIONS:
        for _ in range(2):  # a scanner, then the person
            response = client.get(links.PATH + token(app, first, action))
            assert response.status_code == 200, response.get_data(as_text=True)[-1500:]
            assert client.head(links.PATH + token(app, first, action)).status_code == 200
    assert state(session) == before


def test_forged_altered_swapped_and_foreign_tokens_get_one_plain_page_and_change_nothing(
        asked: tuple[Flask, list[int]], session: Session) -> None:
    app, [first, second] = asked
    client = app.test_client()
    good = token(app, first)
    other_listing = token(app, second).split(".")[0]
    with app.app_context():
        listing_two = session.get(ConfirmationRequest, second).listing_id  # type: ignore[union-attr]
    forged = {
        "altered signature": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "payload swapped for another listing's": other_listing + "." + good.split(".")[1],
        "another listing's id, signed here": token(app, first, listing_id=listing_two),
        "another secret": URLSafeSerializer("not-our-secret", salt="listing-confirmation-link").dumps(
            [first, 1, "accepting"]),
        "a made-up action": links.sign(app, first, 1, "delete"),
        "random": secrets.token_urlsafe(40),
        "no request": links.sign(app, 10**9, 1, "accepting"),
        "huge": "A" * 5000,
    }
    before = state(session)
    bodies = set()
    for case, bad in forged.items():
        for response in (client.get(links.PATH + bad), client.post(links.PATH + bad),
                         client.post(links.ONE_CLICK_PATH + bad, data={"List-Unsubscribe": "One-Click"})):
            assert response.status_code in (400, 404), (case, response.status_code)
        page = client.get(links.PATH + bad)
        assert "This link does not work" in page.get_data(as_text=True) and "fresh link" not in page.get_data(
            as_text=True), case
        bodies.add(page.get_data(as_text=True).replace(bad, ""))
    assert len(bodies) == 1  # nothing in the page depends on what the token named
    # With a form token, as a person on a working link's page would post: still refused, before any change.
    form = {"csrf_token": csrf_token(client.get(links.PATH + good).get_data(as_text=True))}
    for case, bad in forged.items():
        assert client.post(links.PATH + bad, data=form).status_code == 404, case
        assert client.post(links.PATH + bad + "/fresh", data=form).status_code == 404, case
    assert state(session) == before


def test_a_used_link_and_every_link_of_its_email_stop_working(
        asked: tuple[Flask, list[int]], session: Session) -> None:
    app, [first, _second] = asked
    client = app.test_client()
    assert post(client, links.PATH + token(app, first))[0] == 200
    after = state(session)
    for action in ("accepting", "not-accepting"):
        status, page = post(client, links.PATH + token(app, first, action))
        assert status == 410 and "already used" in page, action
    assert state(session) == after


def test_an_expired_link_offers_a_fresh_one_sent_only_to_the_listings_own_address(
        asked: tuple[Flask, list[int]], session: Session) -> None:
    app, [first, _second] = asked
    client = app.test_client()
    app.config.update(NOW=lambda: NOON + dt.timedelta(days=app.config["CONFIRMATION_LINK_DAYS"], seconds=1))
    before = state(session)
    url = links.PATH + token(app, first)
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 410 and "expired" in html and "Email me a fresh link" in html
    assert client.post(url, data={"csrf_token": csrf_token(html)}).status_code == 410
    assert state(session) == before
    # The fresh link goes to the listing's address, whatever the visitor posts besides.
    fresh = client.post(url + "/fresh", data={"csrf_token": csrf_token(html), "email": "attacker@example.net"})
    assert fresh.status_code == 200 and "on its way" in fresh.get_data(as_text=True)
    fresh_again = client.post(url + "/fresh", data={"csrf_token": csrf_token(html)})  # at most one a day
    assert fresh_again.get_data(as_text=True) == fresh.get_data(as_text=True)
    deadline = time.monotonic() + 30
    while not mail.outbox(app) and time.monotonic() < deadline:
        time.sleep(0.05)
    outbox = mail.outbox(app)
    assert [message.to for message in outbox] == ["link1@example.org"]
    # The sending thread ends before the app closes (its connection with it): the fresh request is then sent.
    fresh_status = select(ConfirmationRequest.status).order_by(ConfirmationRequest.id.desc()).limit(1)
    while time.monotonic() < deadline and session.scalar(fresh_status) != "sent":
        session.expire_all()
        time.sleep(0.05)
    assert session.scalar(fresh_status) == "sent"
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(ConfirmationRequest)) == 3


def test_a_link_to_a_listing_changed_since_it_was_sent_is_outdated(
        asked: tuple[Flask, list[int]], session: Session) -> None:
    app, [first, _second] = asked
    request = session.get(ConfirmationRequest, first)
    assert request is not None
    listing = session.get(Listing, request.listing_id)
    assert listing is not None
    listing.phone = "+1 212 555 0100"
    session.commit()
    before = state(session)
    status, page = post(app.test_client(), links.PATH + token(app, first))
    assert status == 410 and "changed since the email was sent" in page and "Email me a fresh link" in page
    assert state(session) == before


def test_link_pages_are_rate_limited_per_address_and_per_listing(asked: tuple[Flask, list[int]]) -> None:
    app, [first, second] = asked
    app.config.update(LINK_RATE_LIMIT="100 per minute", LINK_LISTING_RATE_LIMIT="3 per minute")
    client = app.test_client()
    statuses = [client.get(links.PATH + token(app, first, action)).status_code
                for action in ("accepting", "not-accepting", "unsubscribe", "accepting")]
    assert statuses == [200, 200, 200, 429]
    assert client.get(links.PATH + token(app, second)).status_code == 200  # another listing: its own count
    app.config.update(LINK_RATE_LIMIT="2 per minute", LINK_LISTING_RATE_LIMIT="100 per minute")
    elsewhere = {"REMOTE_ADDR": "192.0.2.7"}
    assert [client.get(links.PATH + token(app, second), environ_base=elsewhere).status_code
            for _ in range(3)] == [200, 200, 429]


def test_the_link_pages_pass_axe_at_both_sizes(asked: tuple[Flask, list[int]], sized_page: Page) -> None:
    app, [first, _second] = asked
    with live_server(app) as url:
        for path in (links.PATH + token(app, first), links.PATH + token(app, first, "unsubscribe"),
                     links.PATH + "not-a-token"):
            sized_page.goto(url + path)
            assert axe_violations(sized_page) == [], path
        app.config.update(NOW=lambda: NOON + dt.timedelta(days=30))
        sized_page.goto(url + links.PATH + token(app, first))
        assert sized_page.get_by_role("button", name="Email me a fresh link").is_visible()
        assert axe_violations(sized_page) == []
