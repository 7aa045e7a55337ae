"""Admin accounts: creation, passwords (Werkzeug's scrypt hashes), sign-in checks."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from directory.models import AdminUser, LoginFailure, utcnow

MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Checked when the email is unknown, so a wrong email costs as much time as a wrong password.
_DUMMY_HASH = generate_password_hash("not a real password")


class AccountError(ValueError):
    """An account operation that cannot be done, with a message for the person doing it."""


def _normal(email: str) -> str:
    return email.strip().lower()


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")


def create_admin(session: Session, email: str, password: str) -> AdminUser:
    """Add an admin; raises AccountError for a bad email, a short password or an existing account."""
    email = _normal(email)
    if not _EMAIL.match(email):
        raise AccountError(f"{email!r} is not an email address")
    _check_password(password)
    if session.scalar(select(AdminUser).where(AdminUser.email == email)):
        raise AccountError(f"{email} is already an admin")
    admin = AdminUser(email=email, password_hash=generate_password_hash(password))
    session.add(admin)
    session.commit()
    return admin


def set_password(session: Session, email: str, password: str) -> None:
    """Replace an admin's password; raises AccountError when there is no such admin or the password is short."""
    admin = session.scalar(select(AdminUser).where(AdminUser.email == _normal(email)))
    if admin is None:
        raise AccountError(f"no admin {email!r}")
    _check_password(password)
    admin.password_hash = generate_password_hash(password)
    admin.session_version += 1  # whoever knew the old password is signed out
    session.commit()


def signed_in_version(session: Session, email: str) -> int | None:
    """The session version an admin's sessions must carry to count as signed in, or None for no such admin."""
    return session.scalar(select(AdminUser.session_version).where(AdminUser.email == _normal(email)))


def end_sessions(session: Session, email: str) -> None:
    """Sign an admin out everywhere: every session signed in before now stops counting."""
    admin = session.scalar(select(AdminUser).where(AdminUser.email == _normal(email)))
    if admin is not None:
        admin.session_version += 1
        session.commit()


def list_admins(session: Session) -> list[AdminUser]:
    """Every admin, by email."""
    return list(session.scalars(select(AdminUser).order_by(AdminUser.email)))


def authenticate(session: Session, email: str, password: str) -> AdminUser | None:
    """The admin with this email and password, or None."""
    admin = session.scalar(select(AdminUser).where(AdminUser.email == _normal(email)))
    if admin is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return admin if check_password_hash(admin.password_hash, password) else None


def recent_failures(session: Session, address: str, seconds: int) -> int:
    """How many wrong passwords came from `address` in the last `seconds`."""
    since = utcnow() - dt.timedelta(seconds=seconds)
    return session.scalar(select(func.count()).select_from(LoginFailure)
                          .where(LoginFailure.address == address, LoginFailure.at >= since)) or 0


def record_failure(session: Session, address: str, seconds: int) -> None:
    """Count a wrong password from `address`; failures older than `seconds` are forgotten on the way."""
    session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - dt.timedelta(seconds=seconds)))
    session.add(LoginFailure(address=address[:64]))
    session.commit()
