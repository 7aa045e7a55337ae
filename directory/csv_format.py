"""The listings CSV format, both ways: reading messy files into validated listing fields, writing listings out."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import urlsplit

from directory.geo import CA_REGIONS, US_REGIONS, PostcodeError, postcodes, region_country
from directory.models import Listing
from directory.vocabulary import TermError, vocabulary

COLUMNS = (
    "external_id", "name", "credentials", "license_number", "license_region", "email", "phone", "website", "address",
    "city", "region", "postcode", "country", "latitude", "longitude", "modalities", "specialties", "languages",
    "insurance", "telehealth", "in_person", "accepting_new_clients", "availability_confirmed_on", "fee_min", "fee_max",
    "sliding_scale", "gender", "bio", "published",
)
ALIASES = {
    "id": "external_id", "listing_id": "external_id", "full_name": "name", "therapist": "name",
    "licence_number": "license_number", "license": "license_number", "licence": "license_number",
    "license_state": "license_region", "licence_province": "license_region", "licensed_in": "license_region",
    "e_mail": "email", "email_address": "email", "telephone": "phone", "phone_number": "phone", "url": "website",
    "web": "website", "street": "address", "street_address": "address", "town": "city", "state": "region",
    "province": "region", "state_province": "region", "zip": "postcode", "zip_code": "postcode", "zipcode": "postcode",
    "postal_code": "postcode", "postalcode": "postcode", "lat": "latitude", "lng": "longitude", "lon": "longitude",
    "long": "longitude", "modality": "modalities", "approaches": "modalities", "specialty": "specialties",
    "specialities": "specialties", "language": "languages", "insurances": "insurance", "insurers": "insurance",
    "online": "telehealth", "virtual": "telehealth", "accepting": "accepting_new_clients",
    "accepting_clients": "accepting_new_clients", "availability_confirmed": "availability_confirmed_on",
    "confirmed_on": "availability_confirmed_on", "sliding": "sliding_scale", "about": "bio", "description": "bio",
}
REQUIRED_COLUMNS = ("external_id", "name")
MULTI = {"modalities": "modality", "specialties": "specialty", "languages": "language", "insurance": "insurance"}
BOOLEANS = {"telehealth": False, "in_person": True, "accepting_new_clients": True, "sliding_scale": False, "published": True}
LENGTHS = {
    "external_id": 100, "name": 200, "credentials": 200, "license_number": 100, "email": 254, "phone": 40,
    "website": 500, "address": 300, "city": 120, "gender": 40, "bio": 10_000,
}
FIELD_LIMIT = 64 * 1024
_TRUE = {"yes", "y", "true", "t", "1"}
_FALSE = {"no", "n", "false", "f", "0"}
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[A-Za-z]{2,}$")
_COUNTRIES = {"us": "US", "usa": "US", "united states": "US", "united states of america": "US",
              "ca": "CA", "can": "CA", "canada": "CA"}
_REGION_NAMES = {name.casefold(): code for code, name in (US_REGIONS | CA_REGIONS).items()}


class UnusableFile(ValueError):
    """A file that cannot be read as a listings CSV at all (empty, binary, no usable header)."""


@dataclass(frozen=True)
class Issue:
    """A problem (or a warning) tied to a line of the file; line 0 means the file as a whole."""

    line: int
    external_id: str
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"line": self.line, "external_id": self.external_id, "field": self.field, "message": self.message}


@dataclass
class Record:
    """One CSV record: the line it starts on, its cells as written, and its cells by column."""

    line: int
    cells: list[str]
    values: dict[str, str]


@dataclass
class CsvFile:
    """A listings CSV on disk whose encoding, delimiter and header have been read; its records are read on demand,
    so that a file of a million rows is never held in memory."""

    path: Path
    encoding: str
    delimiter: str
    header: list[str]
    columns: list[str | None]
    warnings: list[Issue] = field(default_factory=list)

    def _open(self) -> TextIO:
        return self.path.open(encoding=self.encoding, errors="replace" if self.encoding == "cp1252" else "strict",
                              newline="")

    def records(self) -> Iterator[Record | Issue]:
        """Each non-blank record in file order, or an Issue for lines that cannot be read; never raises on bad rows."""
        with self._open() as handle:
            lines = _Lines(handle)
            reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
            next(reader)
            while True:
                lines.new_record()
                start = lines.number + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except (csv.Error, _RecordTooLong) as exc:
                    yield self._unreadable(lines, start, exc)
                    continue
                if any(c.strip() for c in cells):
                    values: dict[str, str] = {}
                    for column, cell in zip(self.columns, cells):
                        if column and column not in values:
                            values[column] = unescape_formula(cell).strip()
                    yield Record(start, cells, values)

    def _unreadable(self, lines: _Lines, start: int, exc: Exception) -> Issue:
        """The Issue for a record the reader gave up on, once the rest of that record is skipped: the reader drops
        only the line it stopped on, so without the skip each following line of a long quoted bio was read as a
        record of its own (100,000 lines of one field became 100,000 rows)."""
        message = str(exc)
        if "field larger than field limit" in message:
            message = f"a field is larger than the {FIELD_LIMIT // 1024} KB limit"
        if "unexpected end of data" in message or lines.skip_rest_of_record(self.delimiter):
            message = (f"a quoted field opened on line {start} is never closed; "
                       f"lines {start}-{lines.number} could not be read")
        elif lines.number > start:
            message += f"; lines {start}-{lines.number} were skipped as one record"
        return Issue(start, "", "", message)


# Longer than any listing can be (a 10,000-character bio and a few hundred characters of the rest), short enough
# that one record's text and cells stay small whatever the file holds.
RECORD_LIMIT = 1024 * 1024


class _RecordTooLong(Exception):
    """A record's lines passed RECORD_LIMIT."""


class _Lines:
    """A file's lines as the CSV reader takes them, numbered, with the lines of the record being read kept, so that
    a record the reader gives up on can be skipped to its real end."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self.number = 0
        self._record: list[str] = []
        self._record_size = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._handle)
        self.number += 1
        self._record.append(line)
        self._record_size += len(line)
        if self._record_size > RECORD_LIMIT:
            raise _RecordTooLong(f"a record is larger than the {RECORD_LIMIT // 1024} KB limit")
        return line

    def new_record(self) -> None:
        """The reader starts a record at the next line."""
        self._record.clear()
        self._record_size = 0

    def skip_rest_of_record(self, delimiter: str) -> bool:
        """Read on to the end of the record being read; True when the file ends inside its quoted field."""
        inside = False
        for line in self._record:
            inside = _quote_open_at_end(line, inside, delimiter)
        self.new_record()
        while inside:
            line = next(self._handle, None)
            if line is None:
                return True
            self.number += 1
            inside = _quote_open_at_end(line, inside, delimiter)
        return False


def _quote_open_at_end(line: str, inside: bool, delimiter: str) -> bool:
    """Whether a quoted field is open at the end of `line`, given whether one was open at its start: the CSV
    reader's own rule (a quote opens a field only at its start, and "" inside one is a quote), by jumps."""
    i = 0
    if not inside and line.startswith('"'):
        inside, i = True, 1
    while True:
        if inside:
            close = line.find('"', i)
            if close < 0:
                return True
            if line.startswith('"', close + 1):
                i = close + 2
                continue
            inside, i = False, close + 1
        next_field = line.find(delimiter, i)
        if next_field < 0:
            return False
        i = next_field + 1
        if line.startswith('"', i):
            inside, i = True, i + 1


def _encoding(path: Path, warnings: list[Issue]) -> str:
    """UTF-16 with a BOM; else UTF-8 (with or without BOM) when every byte decodes as such, else Windows-1252. Raises
    UnusableFile for a NUL anywhere (binary data, which no database column may hold). Read a block at a time."""
    with path.open("rb") as handle:
        if handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            handle.seek(0)
            return _utf16(handle)
        handle.seek(0)
        return _utf8_or_cp1252(handle, warnings)


def _utf16(handle: BinaryIO) -> str:
    # What Excel writes for "Unicode text": its NUL bytes are half of each character, not binary data.
    decoder = codecs.getincrementaldecoder("utf-16")()
    try:
        for block in iter(lambda: handle.read(1 << 20), b""):
            if "\x00" in decoder.decode(block):
                raise UnusableFile("the file is binary, not CSV text (a NUL character in UTF-16 text)")
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise UnusableFile(f"the file starts as UTF-16 text but is not: {exc.reason} at byte {exc.start:,}") from None
    return "utf-16"


def _utf8_or_cp1252(handle: BinaryIO, warnings: list[Issue]) -> str:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    utf8 = True
    offset = 0
    for block in iter(lambda: handle.read(1 << 20), b""):
        nul = block.find(b"\x00")
        if nul >= 0:
            raise UnusableFile(f"the file is binary, not CSV text (a NUL byte at byte {offset + nul + 1:,})")
        offset += len(block)
        if utf8:
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    if not utf8:
        warnings.append(Issue(0, "", "", "the file is not UTF-8; it was read as Windows-1252"))
        return "cp1252"
    return "utf-8-sig"


def _delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def column_for(header: str) -> str | None:
    """The format column a header names (case, spaces, hyphens and aliases allowed), or None."""
    key = re.sub(r"[\s\-]+", "_", header.strip().casefold()).strip("_")
    return key if key in COLUMNS else ALIASES.get(key)


# Quotes, then a character that makes spreadsheets evaluate a cell. Export adds one quote to any such value and
# import removes one, so values that already start with quotes survive the round trip too.
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")


def unescape_formula(cell: str) -> str:
    """Remove the quote that export put before a cell that a spreadsheet would run as a formula."""
    return cell[1:] if cell[:1] == "'" and _FORMULA.match(cell) else cell


def escape_formula(value: str) -> str:
    """A value as an exported cell: quoted against formulas, so that unescape_formula gives the value back."""
    return "'" + value if _FORMULA.match(value) else value


def _protect_raw(cell: str) -> str:
    # A cell copied as written: quoting it keeps spreadsheets from running it and reads back the same.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def open_csv(path: Path) -> CsvFile:
    """Check a file's encoding and header; raises UnusableFile when it cannot be a listings CSV at all."""
    warnings: list[Issue] = []
    csv.field_size_limit(FIELD_LIMIT)
    probe = CsvFile(path, _encoding(path, warnings), ",", [], [], warnings)
    with probe._open() as handle:
        first_line = ""
        for line in handle:
            if line.strip():
                first_line = line
                break
        if not first_line:
            raise UnusableFile("the file is empty")
        handle.seek(0)
        probe.delimiter = _delimiter(handle.readline())
        handle.seek(0)
        try:
            header = next(csv.reader(_Lines(handle), delimiter=probe.delimiter, strict=True))
        except (csv.Error, StopIteration, _RecordTooLong) as exc:
            raise UnusableFile(f"the header line cannot be read: {exc}") from None
    columns = [column_for(h) for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UnusableFile(f"the header has no {' or '.join(missing)} column (found: {', '.join(header)[:200]})")
    unknown = [h for h, c in zip(header, columns) if c is None and h.strip()]
    if unknown:
        warnings.append(Issue(1, "", "", f"unknown columns ignored: {', '.join(unknown)}"))
    seen: set[str] = set()
    for name, column in zip(header, columns):
        if column in seen:
            warnings.append(Issue(1, "", column or "", f"column {name!r} repeats {column}; the first one is used"))
        seen.add(column or "")
    probe.header, probe.columns = header, columns
    return probe


class _RowChecker:
    """Collects every problem of one row while turning its cells into Listing field values."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.values = record.values
        self.external_id = record.values.get("external_id", "")
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.fields: dict[str, Any] = {}

    def error(self, column: str, message: str) -> None:
        self.errors.append(Issue(self.record.line, self.external_id, column, message))

    def warn(self, column: str, message: str) -> None:
        self.warnings.append(Issue(self.record.line, self.external_id, column, message))

    def given(self, column: str) -> bool:
        return column in self.values

    def text(self, column: str) -> None:
        if not self.given(column):
            return
        value = self.values[column]
        if len(value) > LENGTHS[column]:
            self.error(column, f"is {len(value)} characters long; the limit is {LENGTHS[column]}")
        else:
            self.fields[column] = value

    def boolean(self, column: str) -> None:
        if not self.given(column):
            return
        value = self.values[column].casefold()
        if value in _TRUE:
            self.fields[column] = True
        elif value in _FALSE:
            self.fields[column] = False
        elif not value:
            self.fields[column] = BOOLEANS[column]
        else:
            self.error(column, f"{self.values[column][:40]!r} is not yes/no, true/false, y/n or 1/0")

    def number(self, column: str, low: float, high: float, integer: bool = False) -> float | int | None:
        raw = self.values.get(column, "")
        if not raw:
            return None
        cleaned = raw.replace("$", "").replace(",", "") if integer else raw
        try:
            value = float(cleaned)
        except ValueError:
            self.error(column, f"{raw[:40]!r} is not a number")
            return None
        if not low <= value <= high:
            self.error(column, f"{raw[:40]} is out of range ({low:g} to {high:g})")
            return None
        if integer:
            if value != int(value):
                self.error(column, f"{raw[:40]} is not a whole number")
                return None
            return int(value)
        return value

    def terms(self, column: str) -> None:
        if not self.given(column):
            return
        kind = MULTI[column]
        slugs: list[str] = []
        for part in re.split(r"[;|]", self.values[column]):
            # "CBT, EMDR": no term has a comma in its names, so commas separate terms when the whole value names none.
            pieces = [part] if vocabulary.match(kind, part) or "," not in part else part.split(",")
            for piece in pieces:
                if not piece.strip():
                    continue
                try:
                    slug = vocabulary.resolve(kind, piece)
                except TermError as error:
                    self.error(column, str(error))
                    continue
                if slug not in slugs:
                    slugs.append(slug)
        self.fields[column] = slugs

    def check(self) -> None:
        for column in ("external_id", "name"):
            if not self.values.get(column):
                self.error(column, "is required")
        for column in LENGTHS:
            self.text(column)
        for column in BOOLEANS:
            self.boolean(column)
        for column in MULTI:
            self.terms(column)
        self._contact()
        self._place()
        self._fees()
        if self.values.get("availability_confirmed_on"):
            try:
                self.fields["availability_confirmed_on"] = dt.date.fromisoformat(self.values["availability_confirmed_on"])
            except ValueError:
                self.error("availability_confirmed_on", f"{self.values['availability_confirmed_on'][:40]!r} is not a date (YYYY-MM-DD)")
        elif self.given("availability_confirmed_on"):
            self.fields["availability_confirmed_on"] = None

    def _contact(self) -> None:
        email = self.fields.get("email")
        if email and not _EMAIL.match(email):
            self.error("email", f"{email[:60]!r} is not an email address")
        phone = self.fields.get("phone")
        if phone:
            digits = re.sub(r"\D", "", phone.split("x")[0].split("ext")[0])
            if re.search(r"[^\d\s().+\-x/ext]", phone.casefold()) or not 7 <= len(digits) <= 15:
                self.error("phone", f"{phone[:40]!r} is not a phone number")
        website = self.fields.get("website")
        if website:
            if "://" not in website and re.match(r"^[\w-]+(\.[\w-]+)+(/|$)", website):
                self.warn("website", f"{website[:60]!r} has no scheme; https:// was added")
                website = self.fields["website"] = "https://" + website
            parts = urlsplit(website)
            if parts.scheme.casefold() not in ("http", "https") or not parts.netloc or any(c.isspace() for c in website):
                self.error("website", f"{website[:60]!r} is not an http or https address")

    def _region(self, column: str) -> str | None:
        raw = self.values.get(column, "")
        if not raw:
            return None
        code = raw.upper() if raw.upper() in US_REGIONS or raw.upper() in CA_REGIONS else _REGION_NAMES.get(raw.casefold())
        if code is None:
            self.error(column, f"{raw[:40]!r} is not a US state or Canadian province")
        return code

    def _place(self) -> None:
        country_raw = self.values.get("country", "")
        country = _COUNTRIES.get(country_raw.casefold()) if country_raw else None
        if country_raw and country is None:
            self.error("country", f"{country_raw[:40]!r} is not US or CA")
        region = self._region("region")
        licence = self._region("license_region")
        lat = self.number("latitude", -90, 90)
        lon = self.number("longitude", -180, 180)
        if (lat is None) != (lon is None) and not any(e.field in ("latitude", "longitude") for e in self.errors):
            self.error("latitude" if lat is None else "longitude", "latitude and longitude go together; one is missing")
        postcode = self.values.get("postcode", "")
        if postcode and re.fullmatch(r"\d{3,4}", postcode) and country in (None, "US"):
            padded = postcode.zfill(5)
            self.warn("postcode", f"{postcode} was padded to {padded} (a spreadsheet dropped its leading zeros)")
            postcode = padded
        place = None
        if postcode:
            try:
                # Spreadsheets carry no-break and other Unicode spaces, which the API's postcode grammar refuses.
                place = postcodes.lookup(" ".join(postcode.split()))
            except PostcodeError as exc:
                where = f" ({country})" if country else ""
                self.error("postcode", exc.message + where if exc.code == "unknown_postcode" else exc.message)
        elif lat is None and not any(e.field in ("latitude", "longitude") for e in self.errors):
            self.error("postcode", "a postcode, or both latitude and longitude, is required")
        if place is not None:
            if country and country != place.country:
                self.error("country", f"{country} does not match postcode {place.postcode} ({place.country})")
            if region and region != place.region:
                self.error("region", f"{region} does not match postcode {place.postcode} ({place.region})")
            country, region = place.country, place.region
            self.fields["postcode"] = place.postcode
            if not self.fields.get("city"):
                self.fields["city"] = place.name.rsplit(",", 1)[0]
        elif not postcode and lat is not None:
            country = country or (region_country(region) if region else None)
            if country is None:
                self.error("country", "without a postcode, give the country or the region")
            self.fields["postcode"] = ""
        if country:
            self.fields["country"] = country
        if region:
            self.fields["region"] = region
        # Therapists are licensed where they practise unless the file says otherwise.
        self.fields["license_region"] = licence or region or ""
        if self.given("latitude") or self.given("longitude"):
            self.fields["latitude"], self.fields["longitude"] = lat, lon

    def _fees(self) -> None:
        fee_min = self.number("fee_min", 0, 100_000, integer=True)
        fee_max = self.number("fee_max", 0, 100_000, integer=True)
        if fee_min is not None and fee_max is not None and fee_min > fee_max:
            self.error("fee_min", f"fee_min {fee_min} is more than fee_max {fee_max}")
        for column, value in (("fee_min", fee_min), ("fee_max", fee_max)):
            if self.given(column):
                self.fields[column] = value


def check_record(record: Record) -> tuple[dict[str, Any], list[Issue], list[Issue]]:
    """Listing field values of a record (only for the columns the file has), its errors and its warnings."""
    checker = _RowChecker(record)
    checker.check()
    return checker.fields, checker.errors, checker.warnings


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
    return {column: _text(getattr(listing, column)) for column in COLUMNS}


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


def template_csv() -> str:
    """A header plus one example row, for admins to start from."""
    example = {
        "external_id": "assoc-00042", "name": "Jordan Example", "credentials": "LMFT", "license_number": "MFT 12345",
        "license_region": "NY", "email": "jordan@example.org", "phone": "(212) 555-0142",
        "website": "https://example.org", "address": "1 Example Street", "city": "New York", "region": "NY",
        "postcode": "10001", "country": "US", "modalities": "EFT; Gottman Method", "specialties": "depression|couples",
        "languages": "English;Spanish", "insurance": "Aetna", "telehealth": "yes", "in_person": "yes",
        "accepting_new_clients": "yes", "availability_confirmed_on": "2026-11-01", "fee_min": "120", "fee_max": "180",
        "sliding_scale": "no", "gender": "non-binary", "bio": "Couples and individuals; evenings available.",
        "published": "yes",
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerow([example.get(c, "") for c in COLUMNS])
    return out.getvalue()


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
