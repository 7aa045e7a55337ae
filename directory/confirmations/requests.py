"""Confirmation requests: which listings to ask, and asking them: each request recorded in the database (under a lock,
so two asks at once never ask a listing twice) before its mail is queued (see `sending`)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

from flask import Flask, current_app
from sqlalchemy import Select, exists, or_, select, text, update
from sqlalchemy.orm import Session

from directory import db, jobs
from directory.availability import window_on
from directory.confirmations.sending import lost, send_requests
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing

SEND_BATCH = 100  # requests per sending job on Redis: a temporary failure retries only that job's unsent ones
ASK_BATCH = 2000  # listings asked at once at most (each periodic run, each admin click), so a big first ask spreads
ASKING_LOCK_KEY = 4242003  # PostgreSQL advisory lock of the asks (the change log's is 4242002)


def selection(today: dt.date, older_than: dt.date | None, asked_since: dt.datetime | None) -> Select[Listing]:
    """Published listings with an email address that did not unsubscribe, whose claim was confirmed before
    `older_than`, never, or (a typing error) after `today` (`older_than` None: any claim), and that were not asked
    since `asked_since` (None: whenever); the never confirmed first, then the oldest."""
    query = select(Listing).where(Listing.published, Listing.email != "",
                                  ~exists().where(ConfirmationOptOut.listing_id == Listing.id))
    if older_than is not None:
        query = query.where(or_(Listing.availability_confirmed_on.is_(None),
                                Listing.availability_confirmed_on < older_than,
                                Listing.availability_confirmed_on > today))
    if asked_since is not None:
        query = query.where(~exists().where(ConfirmationRequest.listing_id == Listing.id,
                                            ConfirmationRequest.created_at >= asked_since))
    return query.order_by(Listing.availability_confirmed_on.is_(None).desc(), Listing.availability_confirmed_on,
                          Listing.id)


def due_selection(app: Flask) -> Select[Listing]:
    """The listings the schedule asks now: claims STALE_AFTER_DAYS - CONFIRMATION_LEAD_DAYS days old or older (or
    never confirmed), not asked within CONFIRMATION_INTERVAL_DAYS."""
    config = app.config
    age = max(config["STALE_AFTER_DAYS"] - config["CONFIRMATION_LEAD_DAYS"], 1)
    today = config["CLOCK"]()
    return selection(today, today - dt.timedelta(days=age - 1), interval_start(app))


def stale_selection(app: Flask) -> Select[Listing]:
    """Stale claims (older than STALE_AFTER_DAYS, or never confirmed) not asked within the interval."""
    today = app.config["CLOCK"]()
    return selection(today, today - dt.timedelta(days=app.config["STALE_AFTER_DAYS"]), interval_start(app))


def interval_start(app: Flask) -> dt.datetime:
    """Listings asked since this time are not asked again by the schedule or a bulk send."""
    return app.config["NOW"]() - dt.timedelta(days=app.config["CONFIRMATION_INTERVAL_DAYS"])


def ask(session: Session, app: Flask, query: Select[Listing], limit: int | None = ASK_BATCH) -> list[int]:
    """Record a request for each listing `query` selects (up to `limit`), under the asking lock, which is held
    until the requests are committed: two asks at once (the schedule, the CLI, an admin) ask a listing once."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ASKING_LOCK_KEY})
    else:
        # SQLite: a write statement takes the database's one write lock at its start, rows or none.
        session.execute(update(ConfirmationOptOut).where(ConfirmationOptOut.listing_id == -1)
                        .values(at=ConfirmationOptOut.at))
    return record(session, app, session.scalars(query.limit(limit)).all())


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
    """Queue the mail of these requests, each job retried after MAIL_RETRY_WAITS: on Redis SEND_BATCH a job, in
    the in-process mode one job (one thread, one message at a time), whose thread is returned."""
    if not request_ids:
        return []
    with db.factory(app)() as session:
        session.execute(update(ConfirmationRequest).where(ConfirmationRequest.id.in_(request_ids))
                        .values(queued_at=app.config["NOW"]()))
        session.commit()
    batch = SEND_BATCH if app.config["REDIS_URL"] else len(request_ids)
    threads = []
    with app.app_context():
        for start in range(0, len(request_ids), batch):
            ids = list(request_ids[start:start + batch])
            thread = jobs.submit(send_requests, timeout=60 + 30 * len(ids), retry=app.config["MAIL_RETRY_WAITS"],
                                 request_ids=ids)
            threads.extend([thread] if thread is not None else [])
    return threads


def ask_due() -> None:
    """The periodic job: ask the listings that are due, and queue again the requests whose job was lost."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    with db.factory()() as session:
        ids = ask(session, app, due_selection(app))
        ids.extend(session.scalars(select(ConfirmationRequest.id).where(lost(app))))
    queue_sending(app, ids)
