"""The audit log of admin actions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from directory.models import AuditEvent


def record_event(session: Session, actor: str, action: str, detail: str = "") -> None:
    """Add an audit event to the session; it is kept when the caller commits."""
    session.add(AuditEvent(actor=actor, action=action, detail=detail[:2000]))


def recent_events(session: Session, limit: int) -> Sequence[AuditEvent]:
    """The latest `limit` audit events, newest first."""
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)).all()
