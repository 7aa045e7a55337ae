"""Confirmation requests: which listings to ask, recorded in the database before their mail is queued, sent by a
job that retries what may pass, and answered through a signed link."""

from __future__ import annotations

import dataclasses
import datetime as dt
import smtplib
import threading
from collections.abc import Sequence

from flask import Flask, current_app
from sqlalchemy import ColumnElement, Select, and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from directory import db, jobs, mail
from directory.audit import record_event
from directory.availability import window_on
from directory.confirmations import links
from directory.confirmations.message import build
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing

SEND_BATCH = 100  # requests per sending job: a temporary failure retries only that job's unsent ones
ASK_BATCH = 2000  # listings asked per periodic run, so a first run over a big directory spreads over hours
REQUEUE_AFTER = dt.timedelta(hours=1)  # a request recorded but still unsent this long after is queued again
STUCK_AFTER = dt.timedelta(minutes=30)  # no attempt lasts this long (SMTP_TIMEOUT per step): its worker died
THERAPIST = "therapist (emailed link)"  # the audit log's actor for answers


class MailNotSent(Exception):
    """Some messages of a sending job may pass later: the job is retried for them."""


def selection(older_than: dt.date | None, asked_since: dt.datetime | None) -> Select[Listing]:
    """Published listings with an email address that did not unsubscribe, whose claim was confirmed before
    `older_than` or never (None: any claim), and that were not asked since `asked_since` (None: whenever); the
    never confirmed first, then the oldest."""
    query = select(Listing).where(Listing.published, Listing.email != "",
                                  ~exists().where(ConfirmationOptOut.listing_id == Listing.id))
    if older_than is not None:
        query = query.where(or_(Listing.availability_confirmed_on.is_(None),
                                Listing.availability_confirmed_on < older_than))
    if asked_since is not None:
        query = query.where(~exists().where(ConfirmationRequest.listing_id == Listing.id,
                                            ConfirmationRequest.created_at >= asked_since))
    return query.order_by(Listing.availability_confirmed_on.is_(None).desc(), Listing.availability_confirmed_on,
                          Listing.id)


def due_selection(app: Flask) -> Select[Listing]:
    """The listings the schedule asks now: claims CONFIRMATION_LEAD_DAYS from going stale (or stale already), not
    asked within CONFIRMATION_INTERVAL_DAYS."""
    config = app.config
    age = config["STALE_AFTER_DAYS"] - config["CONFIRMATION_LEAD_DAYS"]
    return selection(config["CLOCK"]() - dt.timedelta(days=max(age, 0)), interval_start(app))


def interval_start(app: Flask) -> dt.datetime:
    """Listings asked since this time are not asked again by a bulk send."""
    return app.config["NOW"]() - dt.timedelta(days=app.config["CONFIRMATION_INTERVAL_DAYS"])


def record(session: Session, app: Flask, listings: Sequence[Listing]) -> list[int]:
    """Record a request for each listing (committed, so nothing is lost if queueing fails): their ids."""
    now, fresh = app.config["NOW"](), window_on(app.config["CLOCK"](), app.config["STALE_AFTER_DAYS"])
    requests = [ConfirmationRequest(listing_id=listing.id, email=listing.email, created_at=now,
                                    listing_stamp=listing.updated_at,
                                    was_stale=not fresh.holds(listing.availability_confirmed_on))
                for listing in listings]
    session.add_all(requests)
    session.commit()
    return [request.id for request in requests]


def queue_sending(app: Flask, request_ids: Sequence[int]) -> list[threading.Thread]:
    """Queue the mail of these requests, SEND_BATCH a job, each retried after MAIL_RETRY_WAITS: the threads that
    send them in the in-process mode (none on Redis)."""
    threads = []
    with app.app_context():
        for start in range(0, len(request_ids), SEND_BATCH):
            thread = jobs.submit(send_requests, timeout=60 + 30 * SEND_BATCH, retry=app.config["MAIL_RETRY_WAITS"],
                                 request_ids=list(request_ids[start:start + SEND_BATCH]))
            threads.extend([thread] if thread is not None else [])
    return threads


def ask_due() -> None:
    """The periodic job: ask the listings that are due, and queue again the requests whose job was lost."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    with db.factory()() as session:
        ids = record(session, app, session.scalars(due_selection(app).limit(ASK_BATCH)).all())
        ids.extend(session.scalars(select(ConfirmationRequest.id).where(_lost(app))))
    queue_sending(app, ids)


def _lost(app: Flask) -> ColumnElement[bool]:
    """Requests whose job was lost: still pending an hour after they were recorded (the queue was down), or stuck
    sending since long before any attempt could last (its worker died mid-message)."""
    now = app.config["NOW"]()
    return or_(and_(ConfirmationRequest.status == "pending", ConfirmationRequest.created_at < now - REQUEUE_AFTER),
               and_(ConfirmationRequest.status == "sending", ConfirmationRequest.attempted_at < now - STUCK_AFTER))


def send_requests(request_ids: list[int]) -> None:
    """The sending job: email each request not sent yet, each claimed first so that no two jobs send it. A refusal
    for good is recorded and not retried; raises MailNotSent when any may pass later, so that the job is retried."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    later = []
    with db.factory()() as session:
        for request_id in request_ids:
            claimed = session.execute(update(ConfirmationRequest).where(
                ConfirmationRequest.id == request_id,
                or_(ConfirmationRequest.status.in_(("pending", "failed")), _lost(app)))
                .values(status="sending", attempted_at=app.config["NOW"](), attempts=ConfirmationRequest.attempts + 1))
            session.commit()
            request = session.get(ConfirmationRequest, request_id)
            if not claimed.rowcount or request is None:  # type: ignore[attr-defined]
                continue  # sent, refused or answered already, or being sent by another job
            listing = session.get(Listing, request.listing_id)
            if listing is None or session.get(ConfirmationOptOut, request.listing_id) is not None:
                request.status, request.reason = "cancelled", "deleted or unsubscribed before it was sent"
            else:
                later.extend(_send_one(app, request, listing))
            session.commit()
    if later:
        raise MailNotSent(f"{len(later)} of {len(request_ids)} messages not sent yet; the first: {later[0]}")


def _send_one(app: Flask, request: ConfirmationRequest, listing: Listing) -> list[str]:
    """Send one request's mail and record how it went: [the reason] when it may pass later, else []."""
    try:
        mail.send(app, build(app, request, listing))
    except mail.Refused as exc:
        request.status, request.reason = "refused", str(exc)[:2000]
    except (OSError, smtplib.SMTPException) as exc:
        request.status, request.reason = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        return [request.reason]
    else:
        request.status, request.reason, request.sent_at = "sent", "", app.config["NOW"]()
    return []


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
    if app.config["NOW"]() - request.created_at > dt.timedelta(days=app.config["CONFIRMATION_LINK_DAYS"]):
        return LinkCheck("expired", action, request, listing)
    if listing.updated_at > request.listing_stamp:
        return LinkCheck("outdated", action, request, listing)
    return LinkCheck("", action, request, listing)


def answer(session: Session, app: Flask, link: LinkCheck) -> bool:
    """Record a working link's answer (whether the listing accepts new clients, confirmed today), audited; False
    when another use of a link of the same request came first."""
    assert link.request is not None and link.listing is not None and not link.problem
    claimed = session.execute(update(ConfirmationRequest).where(ConfirmationRequest.id == link.request.id,
                                                                ConfirmationRequest.answered_at.is_(None))
                              .values(answer=link.action, answered_at=app.config["NOW"]()))
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
