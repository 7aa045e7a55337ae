"""An admin's changes to one listing: the edit form checked by the CSV import's row rules and applied, its photo
replaced or removed, publication and deletion. Each change is recorded in the audit log and committed, and is
searchable at once; each returns why search could not take it, when it could not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import delete as sa_delete
from sqlalchemy.orm import Session

from directory import photos
from directory.audit import record_event
from directory.imports.csv_writing import listing_values
from directory.imports.row_rules import COLUMNS, Record, check_record
from directory.models import ConfirmationOptOut, ConfirmationRequest, Listing
from directory.search.sync import index_failure


@dataclass
class Edit:
    """The outcome of saving the edit form: nothing is saved when there are problems."""

    values: dict[str, str]  # the form's values, to show again with the problems
    problems: dict[str, list[str]] = field(default_factory=dict)  # messages by field
    index_error: str | None = None  # why search does not show the saved change yet


def save_edit(session: Session, listing: Listing, form: Mapping[str, str], *, photo: bytes | None,
              actor: str) -> Edit:
    """Check the edit form's values (columns of the import format, `remove_photo`) with the same rules as the
    CSV import, and an uploaded photo (None when none was sent); save them all, or nothing when any has a problem."""
    stored = listing_values(listing)
    values = {column: _as_stored(form.get(column, "").strip(), stored[column]) for column in COLUMNS}
    values["external_id"] = listing.external_id  # the import key never changes here
    fields, errors, _warnings = check_record(Record(0, [], values))
    problems: dict[str, list[str]] = {}
    for issue in errors:
        problems.setdefault(issue.field, []).append(issue.message)
    if photo is not None:
        try:
            fields["photo"] = photos.store(session, photos.prepare(photo))
        except photos.PhotoError as exc:
            problems["photo"] = [str(exc)]
    elif form.get("remove_photo") == "1":
        fields["photo"] = ""
    if problems:
        session.rollback()
        return Edit(values, problems)
    for name, value in fields.items():
        if getattr(listing, name) != value:
            setattr(listing, name, value)
    record_event(session, actor, "edit", _named(listing))
    return Edit(values, index_error=_commit(session))


def _as_stored(submitted: str, stored: str) -> str:
    """The stored value when the form sent it back unchanged: browsers send line breaks as CRLF whatever they were,
    and drop a textarea's leading one."""
    def lines(text: str) -> str:
        return text.replace("\r\n", "\n").replace("\r", "\n").strip()

    return stored if lines(submitted) == lines(stored) else submitted


def set_published(session: Session, listing: Listing, published: bool, actor: str) -> str | None:
    """Publish or unpublish a listing."""
    listing.published = published
    record_event(session, actor, "publish" if published else "unpublish", _named(listing))
    return _commit(session)


def delete(session: Session, listing: Listing, actor: str) -> str | None:
    """Delete a listing for good, with its confirmation requests and opt-out (SQLite may give its id to the next
    listing, which must not inherit them)."""
    record_event(session, actor, "delete", _named(listing))
    session.execute(sa_delete(ConfirmationRequest).where(ConfirmationRequest.listing_id == listing.id))
    session.execute(sa_delete(ConfirmationOptOut).where(ConfirmationOptOut.listing_id == listing.id))
    session.delete(listing)
    return _commit(session)


def _named(listing: Listing) -> str:
    return f"{listing.external_id} {listing.name}"


def _commit(session: Session) -> str | None:
    # The database has the change once committed; the index may still have missed it (see index_failure).
    session.commit()
    return index_failure(session)
