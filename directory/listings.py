"""Listing lookups and naming shared by the pages, the API and the CLI."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from directory.models import Listing


def make_slug(name: str, city: str, external_id: str) -> str:
    """A readable, stable URL slug: name and city, plus a short hash of the import key for uniqueness."""
    ascii_text = unicodedata.normalize("NFKD", f"{name} {city}").encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80].strip("-")
    digest = hashlib.sha1(external_id.encode("utf-8")).hexdigest()[:6]
    return f"{words}-{digest}" if words else digest


def all_listings() -> Select[tuple[Listing]]:
    """Every listing in export order, fetched in batches."""
    return select(Listing).order_by(Listing.external_id).execution_options(yield_per=1000)


def published_by_slug(session: Session, slug: str) -> Listing | None:
    """The published listing with this slug, or None."""
    return session.scalar(select(Listing).where(Listing.slug == slug, Listing.published))


def published_by_external_id(session: Session, external_id: str) -> Listing | None:
    """The published listing with this import key, or None."""
    return session.scalar(select(Listing).where(Listing.external_id == external_id, Listing.published))


def published_by_ids(session: Session, ids: Sequence[int]) -> dict[int, Listing]:
    """Published listings by primary key; ids that are gone or unpublished are left out."""
    if not ids:
        return {}
    rows = session.scalars(select(Listing).where(Listing.id.in_(ids), Listing.published))
    return {listing.id: listing for listing in rows}
