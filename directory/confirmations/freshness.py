"""What admins see of confirmation: how fresh the claims are, who was asked and did not answer, mail that failed,
who unsubscribed, how many stale listings answered in time, and each listing's history."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from directory.confirmations import links
from directory.confirmations.answers import ANSWER_WINDOW
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing

TARGET_SHARE = 0.6  # the share of asked stale listings we aim to hear from within ANSWER_WINDOW
_LINK_PATHS = "|".join(re.escape(path) for path in (links.PATH, links.ONE_CLICK_PATH))
_TOKEN = re.compile(f"({_LINK_PATHS})" + r"([\w.-]{6})[\w.-]+")


@dataclasses.dataclass(frozen=True)
class Freshness:
    """The admin's overview."""

    confirmed_30: int
    confirmed_90: int
    asked_unanswered: int  # listings whose sent request, its links still working, has no answer
    failed: int
    unsubscribed: int
    stale_asked: int  # listings stale when asked, asked at least ANSWER_WINDOW ago or confirmed since
    stale_answered: int  # of those, the listings that confirmed within ANSWER_WINDOW

    @property
    def answer_share(self) -> float | None:
        """The share of asked stale listings that answered in time (None before any could)."""
        return self.stale_answered / self.stale_asked if self.stale_asked else None


def freshness(session: Session, today: dt.date, now: dt.datetime, link_days: int) -> Freshness:
    """The overview on `today` (claims) and at `now` (requests whose links work for `link_days`), counted per
    listing in the database."""
    def listings(*where: Any) -> int:
        return session.scalar(select(func.count(distinct(ConfirmationRequest.listing_id))).where(*where)) or 0

    def confirmed_since(days: int) -> int:
        return session.scalar(select(func.count()).where(
            Listing.published, Listing.availability_confirmed_on >= today - dt.timedelta(days=days))) or 0

    stale_sent = (ConfirmationRequest.was_stale, ConfirmationRequest.status == "sent")
    return Freshness(
        confirmed_30=confirmed_since(30), confirmed_90=confirmed_since(90),
        asked_unanswered=listings(ConfirmationRequest.status == "sent", ConfirmationRequest.answered_at.is_(None),
                                  ConfirmationRequest.sent_at >= now - dt.timedelta(days=link_days)),
        failed=listings(ConfirmationRequest.status.in_(("failed", "refused"))),
        unsubscribed=session.scalar(select(func.count()).select_from(ConfirmationOptOut)) or 0,
        # Each listing asked while stale, once it had its ANSWER_WINDOW (or answered within it).
        stale_asked=listings(*stale_sent, or_(ConfirmationRequest.answered_in_time,
                                              ConfirmationRequest.created_at <= now - ANSWER_WINDOW)),
        stale_answered=listings(*stale_sent, ConfirmationRequest.answered_in_time))


def failed_requests(session: Session, limit: int) -> Sequence[tuple[ConfirmationRequest, Listing | None]]:
    """The requests whose mail failed (retrying or given up) or was refused, newest first, with their listing."""
    return session.execute(select(ConfirmationRequest, Listing)
                           .outerjoin(Listing, Listing.id == ConfirmationRequest.listing_id)
                           .where(ConfirmationRequest.status.in_(("failed", "refused")))
                           .order_by(ConfirmationRequest.id.desc()).limit(limit)).all()


def history(session: Session, listing_id: int) -> Sequence[ConfirmationRequest]:
    """A listing's requests and their answers, newest first."""
    return session.scalars(select(ConfirmationRequest).where(ConfirmationRequest.listing_id == listing_id)
                           .order_by(ConfirmationRequest.id.desc())).all()


def mask_links(text: str) -> str:
    """A message's text with each link's token cut to its first characters: an admin reading the outbox must not
    be able to answer for a therapist."""
    return _TOKEN.sub(lambda match: f"{match[1]}{match[2]}…", text)
