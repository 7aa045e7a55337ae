"""Typed database models. The database is the source of truth; the search index is derived from it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Float, Integer, LargeBinary, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from directory.db import Base


def utcnow() -> dt.datetime:
    """Now in UTC, without a time zone, as every DateTime column stores it; used by the models' defaults and by
    code that compares with them (sign-in failures, audit events, import runs)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Listing(Base):
    """One therapist's public listing."""

    __tablename__ = "listings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    credentials: Mapped[str] = mapped_column(String(200), default="")
    license_number: Mapped[str] = mapped_column(String(100), default="")
    license_region: Mapped[str] = mapped_column(String(2), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    website: Mapped[str] = mapped_column(String(500), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    city: Mapped[str] = mapped_column(String(120), default="")
    region: Mapped[str] = mapped_column(String(2), default="")
    postcode: Mapped[str] = mapped_column(String(10), default="")
    country: Mapped[str] = mapped_column(String(2))
    latitude: Mapped[float | None] = mapped_column(Float, default=None)
    longitude: Mapped[float | None] = mapped_column(Float, default=None)
    modalities: Mapped[list[str]] = mapped_column(JSON, default=list)
    specialties: Mapped[list[str]] = mapped_column(JSON, default=list)
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    insurance: Mapped[list[str]] = mapped_column(JSON, default=list)
    ages: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    client_types: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    communities: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    telehealth: Mapped[bool] = mapped_column(Boolean, default=False)
    in_person: Mapped[bool] = mapped_column(Boolean, default=True)
    accepting_new_clients: Mapped[bool] = mapped_column(Boolean, default=True)
    availability_confirmed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    fee_min: Mapped[int | None] = mapped_column(Integer, default=None)
    fee_max: Mapped[int | None] = mapped_column(Integer, default=None)
    sliding_scale: Mapped[bool] = mapped_column(Boolean, default=False)
    gender: Mapped[str] = mapped_column(String(40), default="")  # a gender slug, or "" when not said
    # A gender as written that names no term ("Two-Spirit"): kept, shown on the profile, listed for admins.
    gender_unmapped: Mapped[str] = mapped_column(String(40), default="", server_default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    photo: Mapped[str] = mapped_column(String(64), default="", server_default="")  # a Photo's digest, or none
    published: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, index=True)

    def __repr__(self) -> str:
        return f"<Listing {self.external_id} {self.name!r}>"


class ListingChange(Base):
    """A committed change to a listing that search can see, numbered in commit order (see search/change_log.py)."""

    __tablename__ = "listing_changes"
    # SQLite: numbers never reused, even were the newest rows deleted; a follower's "applied up to N" stays true.
    __table_args__ = {"sqlite_autoincrement": True}

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    listing_id: Mapped[int] = mapped_column(Integer)  # no foreign key: a deleted listing keeps its rows
    action: Mapped[str] = mapped_column(String(20))  # created, updated, deleted or imported
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ChangeLogPruned(Base):
    """One row: the number up to which the change log was pruned (an index behind it must be compared whole)."""

    __tablename__ = "change_log_pruned"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    through: Mapped[int] = mapped_column(BigInteger)


class ConfirmationRequest(Base):
    """An email asking a listing's therapist to confirm its claim, recorded before it is queued, and its answer
    (see directory/confirmations)."""

    __tablename__ = "confirmation_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listing_id: Mapped[int] = mapped_column(Integer, index=True)  # no foreign key: a deleted listing keeps its history
    email: Mapped[str] = mapped_column(String(254))  # where it was sent: the listing's address then
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    listing_stamp: Mapped[dt.datetime] = mapped_column(DateTime)  # the listing's updated_at when asked
    was_stale: Mapped[bool] = mapped_column(Boolean)  # whether its claim was stale when asked
    # pending, sending, sent, failed (may be retried), refused (for good) or cancelled
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)  # when its job was last queued
    attempted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)  # the last attempt's start
    reason: Mapped[str] = mapped_column(Text, default="")  # why the last attempt failed
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    answer: Mapped[str] = mapped_column(String(20), default="")  # accepting, not-accepting or unsubscribe
    answered_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    # Confirmed within freshness.ANSWER_WINDOW of being asked (the admin's answer rate counts these).
    answered_in_time: Mapped[bool] = mapped_column(Boolean, default=False)


class ConfirmationOptOut(Base):
    """A listing whose therapist asked for no more confirmation emails."""

    __tablename__ = "confirmation_opt_outs"

    listing_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)


class PeriodicJobRun(Base):
    """When a periodic job was last started, by any process (see directory/periodic.py)."""

    __tablename__ = "periodic_job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_run_at: Mapped[dt.datetime] = mapped_column(DateTime)


class AdminUser(Base):
    """Someone who may sign in to /admin."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Sessions carry the version they were signed in at; signing out or a new password moves it on, which ends
    # every session of the account, cookies copied before included.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ImportRun(Base):
    """One CSV import: who ran it, on what file, in which mode, and what came of it."""

    __tablename__ = "import_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    actor: Mapped[str] = mapped_column(String(254))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None)
    job_id: Mapped[str] = mapped_column(String(64), default="", server_default="")  # its queued job's, if any
    filename: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(40))
    # running → indexing → done; or rejected (strict mode and bad rows), failed (unusable file), interrupted.
    status: Mapped[str] = mapped_column(String(20), default="running")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    unpublished: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    errors_csv: Mapped[str] = mapped_column(Text, default="")


class ImportLockHolder(Base):
    """Who holds the import lock on PostgreSQL, signed by the connection holding its advisory lock (one row)."""

    __tablename__ = "import_lock_holder"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backend_pid: Mapped[int] = mapped_column(Integer)  # a signature counts only while this connection holds the lock
    holder: Mapped[str] = mapped_column(String(254))
    since: Mapped[str] = mapped_column(String(32))  # as the holder's clock wrote it, ISO 8601 to the second


class PendingUpload(Base):
    """An uploaded import file from its preview until its import ends (or it is pruned), in the database so that
    any node can confirm a preview made on another."""

    __tablename__ = "pending_uploads"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # its SHA-256
    data: Mapped[bytes] = mapped_column(LargeBinary)
    errors_csv: Mapped[str] = mapped_column(Text, default="")  # its preview's rejected rows
    kept_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)  # an import of it is queued or running


class Photo(Base):
    """A listing photo as served: a JPEG of at most 600x600 without metadata, named by its SHA-256."""

    __tablename__ = "photos"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """An admin action, kept for accountability."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str] = mapped_column(Text, default="")


class LoginFailure(Base):
    """A wrong password, counted per client address to limit guessing across every worker of an instance."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
