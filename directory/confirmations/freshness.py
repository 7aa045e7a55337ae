"""What admins see of confirmation: how fresh the claims are, who was asked and did not answer, mail that failed,
who unsubscribed, how many stale listings answered in time, and each listing's history."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directory.confirmations import links
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing

ANSWER_WINDOW = dt.timedelta(days=30)  # a stale listing that answers within this long of being asked counts
CONFIRMING = ("accepting", "not-accepting")
TARGET_SHARE = 0.6  # the share of asked stale listings we aim to hear from within ANSWER_WINDOW
_LINK_PATHS = "|".join(re.escape(path) for path in (links.PATH, links.ONE_CLICK_PATH))
_TOKEN = re.compile(f"({_LINK_PATHS})" + r"([\w.-]{6})[\w.-]+")


@dataclasses.dataclass(frozen=True)
class Freshness:
    """The admin's overview."""

    confirmed_30: int
    confirmed_90: int
    asked_unanswered: int
    failed: int
    unsubscribed: int
    stale_asked: int  # stale when asked, and asked at least ANSWER_WINDOW ago or answered since
    stale_answered: int  # of those, answered within ANSWER_WINDOW

    @property
    def answer_share(self) -> float | None:
        """The share of asked stale listings that answered in time (None before any could)."""
        return self.stale_answered / self.stale_asked if self.stale_asked else None


def freshness(session: Session, today: dt.date, now: dt.datetime) -> Freshness:
    """The overview on `today` (claims) and at `now` (requests)."""
    def confirmed_since(days: int) -> int:
        return session.scalar(select(func.count()).where(
            Listing.published, Listing.availability_confirmed_on >= today - dt.timedelta(days=days))) or 0

    def requests(*where: object) -> int:
        return session.scalar(select(func.count()).select_from(ConfirmationRequest).where(*where)) or 0  # type: ignore[arg-type]

    # Confirmations only: an unsubscription answers the email but leaves the claim as stale as it was.
    stale = session.execute(select(ConfirmationRequest.created_at, ConfirmationRequest.answered_at,
                                   ConfirmationRequest.answer).where(
        ConfirmationRequest.was_stale, ConfirmationRequest.status == "sent")).all()
    counted = [(asked, answered if answer in CONFIRMING else None) for asked, answered, answer in stale
               if answered is not None or now - asked >= ANSWER_WINDOW]
    return Freshness(
        confirmed_30=confirmed_since(30), confirmed_90=confirmed_since(90),
        asked_unanswered=requests(ConfirmationRequest.status == "sent", ConfirmationRequest.answered_at.is_(None)),
        failed=requests(ConfirmationRequest.status.in_(("failed", "refused"))),
        unsubscribed=session.scalar(select(func.count()).select_from(ConfirmationOptOut)) or 0,
        stale_asked=len(counted),
        stale_answered=sum(1 for asked, answered in counted
                           if answered is not None and answered - asked <= ANSWER_WINDOW))


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
