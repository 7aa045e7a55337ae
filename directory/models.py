"""Typed database models. The database is the source of truth; the search index is derived from it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from directory.db import Base


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


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
    telehealth: Mapped[bool] = mapped_column(Boolean, default=False)
    in_person: Mapped[bool] = mapped_column(Boolean, default=True)
    accepting_new_clients: Mapped[bool] = mapped_column(Boolean, default=True)
    availability_confirmed_on: Mapped[dt.date | None] = mapped_column(Date, default=None)
    fee_min: Mapped[int | None] = mapped_column(Integer, default=None)
    fee_max: Mapped[int | None] = mapped_column(Integer, default=None)
    sliding_scale: Mapped[bool] = mapped_column(Boolean, default=False)
    gender: Mapped[str] = mapped_column(String(40), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=_utcnow, onupdate=_utcnow, index=True)

    def __repr__(self) -> str:
        return f"<Listing {self.external_id} {self.name!r}>"
