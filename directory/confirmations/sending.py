"""Sending confirmation requests: a job that claims each request before its message goes (so no two jobs send one),
builds it from the listing as it is then, records how it went, and raises for what may pass later so that the job
is retried; and which requests were lost on the way (to be queued again by the schedule)."""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app
from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.orm import Session

from directory import db, mail
from directory.confirmations.message import build
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing

REQUEUE_AFTER = dt.timedelta(hours=1)  # queued this long ago and still not tried: its job was lost
STUCK_AFTER = dt.timedelta(minutes=30)  # no attempt lasts this long (SMTP_TIMEOUT per step): its worker died


class MailNotSent(Exception):
    """Some messages of a sending job may pass later: the job is retried for them."""


def lost(app: Flask) -> ColumnElement[bool]:
    """Requests whose job was lost: queued an hour ago and never tried (the queue lost it, or it was never queued),
    stuck sending (its worker died mid-message), or failed with retries left but none came (a restart lost the
    waiting retry)."""
    now, waits = app.config["NOW"](), app.config["MAIL_RETRY_WAITS"]
    request = ConfirmationRequest
    return or_(
        and_(request.status == "pending",
             or_(request.queued_at < now - REQUEUE_AFTER,
                 and_(request.queued_at.is_(None), request.created_at < now - REQUEUE_AFTER))),
        and_(request.status == "sending", request.attempted_at < now - STUCK_AFTER),
        and_(request.status == "failed", request.attempts <= len(waits),
             request.attempted_at < now - dt.timedelta(seconds=max(waits, default=0)) - STUCK_AFTER))


def send_requests(request_ids: list[int]) -> None:
    """The sending job: email each request not sent yet. A refusal for good is recorded and not retried; raises
    MailNotSent when any may pass later, so that the job is retried for those."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    later = []
    with db.factory()() as session:
        for request_id in request_ids:
            request = _claim(session, app, request_id)
            if request is not None:
                later.extend(_send_one(session, app, request))
                session.commit()
    if later:
        raise MailNotSent(f"{len(later)} of {len(request_ids)} messages not sent yet; the first: {later[0]}")


def _claim(session: Session, app: Flask, request_id: int) -> ConfirmationRequest | None:
    """The request, marked sending by this job, when it is to be sent (else None: sent, refused, answered, or being
    sent by another job)."""
    claimed = session.execute(update(ConfirmationRequest).where(
        ConfirmationRequest.id == request_id, or_(ConfirmationRequest.status.in_(("pending", "failed")), lost(app)))
        .values(status="sending", attempted_at=app.config["NOW"](), attempts=ConfirmationRequest.attempts + 1))
    session.commit()
    return session.get(ConfirmationRequest, request_id) if claimed.rowcount else None  # type: ignore[attr-defined]


def _send_one(session: Session, app: Flask, request: ConfirmationRequest) -> list[str]:
    """Send one claimed request's mail, to the listing as it is now (its address, its links' stamp), and record how
    it went: [the reason] when it may pass later, else []."""
    listing = session.get(Listing, request.listing_id)
    if listing is None or not listing.published or not listing.email \
            or session.get(ConfirmationOptOut, listing.id) is not None:
        request.status, request.reason = "cancelled", "deleted, unpublished, without an address or unsubscribed"
        return []
    request.email, request.listing_stamp = listing.email, listing.updated_at
    try:
        mail.send(app, build(app, request, listing))
    except mail.Refused as exc:
        request.status, request.reason = "refused", str(exc)[:2000]
    except mail.TRANSIENT as exc:
        request.status, request.reason = "failed", f"{type(exc).__name__}: {exc}"[:2000]
        return [request.reason]
    except Exception as exc:  # a message that cannot be built or sent (a bad header, a bad setting): never retried
        request.status, request.reason = "refused", f"could not be sent: {type(exc).__name__}: {exc}"[:2000]
    else:
        request.status, request.reason, request.sent_at = "sent", "", app.config["NOW"]()
    return []
