"""Writing the listings CSV: listings as rows of the import format (the export, the template, the edit form's values)
and the rejected rows of an import with their problems."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from sqlalchemy.orm import Session, sessionmaker

from directory.imports.formulas import escape_formula
from directory.imports.row_rules import COLUMNS, Issue
from directory.listings import all_listings
from directory.models import Listing


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ";".join(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def listing_values(listing: Listing) -> dict[str, str]:
    """A listing's fields as import-format text, column by column: the admin edit form's values and, quoted
    against formulas, the export's cells; `check_record` reads them back to the same fields."""
    values = {column: _text(getattr(listing, column)) for column in COLUMNS}
    values["gender"] = listing.gender or listing.gender_unmapped  # as written when it named no gender
    return values


# Numbers are written as numbers: a spreadsheet reads -73.98 as a longitude, and a quote would make it text.
_NUMBERS = frozenset({"latitude", "longitude", "fee_min", "fee_max"})


def listing_row(listing: Listing) -> list[str]:
    """A listing as a row of the import format."""
    return [text if column in _NUMBERS else escape_formula(text) for column, text in listing_values(listing).items()]


def csv_chunks(listings: Iterable[Listing], rows_per_chunk: int = 500) -> Iterator[str]:
    """The export file as text chunks: a header, then one row per listing."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for count, listing in enumerate(listings, 1):
        writer.writerow(listing_row(listing))
        if count % rows_per_chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def export_chunks(factory: sessionmaker[Session]) -> Iterator[str]:
    """Every listing, published or not, as the export file's text chunks, read in a session of its own while the
    chunks are taken (a streamed response outlives its request's session)."""
    with factory() as session:
        yield from csv_chunks(session.scalars(all_listings()))


def template_csv() -> str:
    """A header plus one example row, for admins to start from."""
    example = {
        "external_id": "assoc-00042", "name": "Jordan Example", "credentials": "LMFT", "license_number": "MFT 12345",
        "license_region": "NY", "email": "jordan@example.org", "phone": "(212) 555-0142",
        "website": "https://example.org", "address": "1 Example Street", "city": "New York", "region": "NY",
        "postcode": "10001", "country": "US", "modalities": "EFT; Gottman Method", "specialties": "depression|anxiety",
        "languages": "English;Spanish", "insurance": "Aetna", "telehealth": "yes", "in_person": "yes",
        "accepting_new_clients": "yes", "availability_confirmed_on": "2026-11-01", "fee_min": "120", "fee_max": "180",
        "sliding_scale": "no", "gender": "non-binary", "ages": "adults; young adults",
        "client_types": "individuals; couples", "communities": "LGBTQ+ affirming",
        "bio": "Couples and individuals; evenings available.", "published": "yes",
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerow([example.get(c, "") for c in COLUMNS])
    return out.getvalue()


def _protect_raw(cell: str) -> str:
    # A cell copied as written: quoting it keeps spreadsheets from running it and reads back the same.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


class ErrorsCsv:
    """The rejected rows as written plus an `errors` column, each row once, so they can be fixed and imported
    again; written to a file row by row as validation finds them, never held whole."""

    def __init__(self, header: list[str], out: TextIO) -> None:
        self._width = len(header)
        self._writer = csv.writer(out, lineterminator="\r\n")
        # Header cells are the uploader's text too: a header like `=HYPERLINK(...)` must not run in a spreadsheet.
        self._writer.writerow([*(_protect_raw(name) for name in header), "errors"])

    def add(self, line: int, cells: list[str], issues: Iterable[Issue]) -> None:
        """One rejected row: its cells as written (none for lines that could not be read) and all its problems."""
        message = "; ".join(f"{i.field + ': ' if i.field else ''}{i.message}" for i in issues)
        shown = [_protect_raw(c) for c in cells[:self._width]]
        self._writer.writerow([*shown, *[""] * (self._width - len(shown)), f"line {line}: {message}"])
