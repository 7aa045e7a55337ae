"""Answers to confirmation requests through their signed links: whether a link works now, and what its answer
records (the listing's claim, confirmed today, or its unsubscription), audited."""

from __future__ import annotations

import dataclasses
import datetime as dt

from flask import Flask
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from directory.audit import record_event
from directory.confirmations import links
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing

ANSWER_WINDOW = dt.timedelta(days=30)  # a stale listing that confirms within this long of being asked answered in time
THERAPIST = "therapist (emailed link)"  # the audit log's actor for answers


@dataclasses.dataclass
class LinkCheck:
    """What a link is: `problem` is "" when it works, else why not ("invalid", "expired", "used", "outdated")."""

    problem: str
    action: str = ""
    request: ConfirmationRequest | None = None
    listing: Listing | None = None


def check_link(session: Session, app: Flask, token: str) -> LinkCheck:
    """Whether a link works now, and for what."""
    said = links.read(app, token)
    if said is None:
        return LinkCheck("invalid")
    request_id, listing_id, action = said
    request = session.get(ConfirmationRequest, request_id)
    listing = session.get(Listing, listing_id)
    if request is None or listing is None or request.listing_id != listing_id:
        return LinkCheck("invalid")
    if request.answered_at is not None:
        return LinkCheck("used", action, request, listing)
    if app.config["NOW"]() - (request.sent_at or request.created_at) > dt.timedelta(
            days=app.config["CONFIRMATION_LINK_DAYS"]):
        return LinkCheck("expired", action, request, listing)
    if listing.updated_at > request.listing_stamp:
        return LinkCheck("outdated", action, request, listing)
    return LinkCheck("", action, request, listing)


def answer(session: Session, app: Flask, link: LinkCheck) -> bool:
    """Record a working link's answer (whether the listing accepts new clients, confirmed today), audited; False
    when another use of a link of the same request came first."""
    assert link.request is not None and link.listing is not None and not link.problem
    now = app.config["NOW"]()
    claimed = session.execute(update(ConfirmationRequest).where(ConfirmationRequest.id == link.request.id,
                                                                ConfirmationRequest.answered_at.is_(None))
                              .values(answer=link.action, answered_at=now,
                                      answered_in_time=now - link.request.created_at <= ANSWER_WINDOW))
    if not claimed.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        return False
    listing = link.listing
    listing.accepting_new_clients = link.action == "accepting"
    listing.availability_confirmed_on = app.config["CLOCK"]()
    record_event(session, THERAPIST, "confirm", f"{listing.external_id}: confirmed by the therapist through an "
                 f"emailed link: {'accepting' if listing.accepting_new_clients else 'not accepting'} new clients")
    session.commit()
    return True


def opt_out(session: Session, app: Flask, link: LinkCheck) -> None:
    """Never ask this link's listing again (any signed unsubscribe link works, expired or used: stopping mail
    harms nothing), audited; its request is answered "unsubscribe" unless it was answered before."""
    assert link.request is not None and link.listing is not None
    now = app.config["NOW"]()
    session.execute(update(ConfirmationRequest).where(ConfirmationRequest.id == link.request.id,
                                                      ConfirmationRequest.answered_at.is_(None))
                    .values(answer="unsubscribe", answered_at=now))
    if session.get(ConfirmationOptOut, link.listing.id) is None:
        session.add(ConfirmationOptOut(listing_id=link.listing.id, at=now))
        record_event(session, THERAPIST, "unsubscribe", f"{link.listing.external_id}: no more confirmation emails")
    try:
        session.commit()
    except IntegrityError:  # a second unsubscribe of the listing at the same moment: it is unsubscribed
        session.rollback()
